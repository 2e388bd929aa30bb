// WebTransport that does not connect: the page falls back to the WebSocket by itself, says so,
// and works in the room like anyone else. Also: the demo page loads cleanly from the relay.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { createRoom, openPage, readPlayer, startBrowser, startRelay, waitUntil } from './harness.mjs';

let relay;
let browser;
let blackhole;

before(async () => {
  relay = await startRelay();
  browser = await startBrowser();
  // A UDP port that swallows everything: the QUIC handshake never completes.
  blackhole = createSocket('udp4');
  await new Promise((r) => blackhole.bind(0, '127.0.0.1', r));
});

after(async () => {
  blackhole?.close();
  await browser?.close();
  await relay?.stop();
});

test('the demo page loads from the relay without errors', async () => {
  const page = await openPage(browser, relay.url);
  await page.locator('[data-test=lobby]').waitFor();
  await waitUntil('connected', async () => (await readPlayer(page)).connection?.phase === 'connected');
  const errors = page.lockstepLog.filter((l) => l.startsWith('[error]') || l.startsWith('[pageerror]'));
  assert.deepEqual(errors, []);
});

test('WebTransport unreachable: falls back to the WebSocket and takes part', async () => {
  const wt = `https://127.0.0.1:${blackhole.address().port}/lockstep`;
  const ada = await openPage(browser, `${relay.url}?name=Ada&wt=${encodeURIComponent(wt)}`);
  const started = Date.now();
  await waitUntil('connected', async () => (await readPlayer(ada)).connection?.phase === 'connected', 15000);
  const r = await readPlayer(ada);
  assert.equal(r.connection.transport, 'websocket');
  assert.ok(Date.now() - started < 10000, 'the fallback came within the WebTransport timeout');
  assert.ok(ada.lockstepLog.some((l) => /falling back to WebSocket/.test(l)), ada.lockstepLog.join('\n'));
  const invite = await createRoom(ada, { name: 'Ada' });
  assert.match(await ada.textContent('[data-test=connection]'), /WebSocket/);
  const bob = await openPage(browser, `${invite}&name=Bob`);
  await waitUntil('Bob sees Ada over the WebSocket', async () =>
    bob.evaluate(() => [...window.lockstep.client.members.values()].some((m) => m.name === 'Ada' && m.transport === 'websocket')),
  );
});
