// The connection drops: the page notices, reconnects with its resume token and comes back as
// the same member, with its role, following the room's position.
//
// The WebSocket goes through a TCP proxy the test owns, so "the socket cut" is a real cut of
// the TCP connection (both directions destroyed), not a call into the page.
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import { after, before, test } from 'node:test';
import { convergeAndMeasure, createRoom, openPage, percentile, readPlayer, startBrowser, startRelay, waitUntil } from './harness.mjs';

/** A loopback TCP proxy whose live connections can be cut. */
function tcpProxy(targetPort) {
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        connections: () => sockets.size / 2,
        cut() {
          const n = sockets.size / 2;
          for (const s of sockets) s.destroy();
          sockets.clear();
          return n;
        },
        close: () => new Promise((r) => server.close(r)),
      }),
    );
  });
}

let relay;
let browser;
let proxy;
let ada;
let bob;

before(async () => {
  relay = await startRelay();
  proxy = await tcpProxy(relay.ports.http);
  browser = await startBrowser();
  ada = await openPage(browser, `${relay.url}?name=Ada`);
  const invite = await createRoom(ada, { name: 'Ada' });
  // Bob is a co-host on the WebSocket fallback, through the proxy.
  bob = await openPage(browser, `${invite}&name=Bob&transport=websocket&ws=${encodeURIComponent(`ws://127.0.0.1:${proxy.port}/ws`)}`);
  await waitUntil('Bob in the room', async () => (await readPlayer(bob)).role === 'member');
  const bobId = (await readPlayer(bob)).you;
  await ada.evaluate((id) => window.lockstep.client.setRole(id, 'cohost'), bobId);
  await waitUntil('Bob a co-host', async () => (await readPlayer(bob)).role === 'cohost');
  await waitUntil('both loaded', async () => (await readPlayer(ada)).readyState >= 3 && (await readPlayer(bob)).readyState >= 3);
  await ada.evaluate(() => window.lockstep.video.play());
  await waitUntil('Bob playing', async () => !(await readPlayer(bob)).paused);
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await relay?.stop();
});

test('the socket is cut: Bob reconnects as the same co-host and follows the room again', async (t) => {
  const before = await readPlayer(bob);
  assert.equal(proxy.connections(), 1);
  assert.equal(proxy.cut(), 1);
  await waitUntil('Bob notices and reconnects', async () => (await readPlayer(bob)).connection.phase === 'reconnecting', 5000, 10);
  await waitUntil("Bob's overlay says so", async () => /Reconnecting/i.test((await bob.textContent('[data-test=connection]')) ?? ''), 5000, 10);
  // While he is away the room moves on: Ada seeks.
  await ada.evaluate(() => {
    window.lockstep.video.currentTime = 50;
  });
  await waitUntil('Bob connected again', async () => (await readPlayer(bob)).connection.phase === 'connected', 15000);
  const after = await readPlayer(bob);
  assert.equal(after.you, before.you, 'resumed as the same member');
  assert.equal(after.role, 'cohost', 'with the same role');
  await waitUntil('Bob caught up with the seek', async () => (await readPlayer(bob)).position > 50);
  const { samples } = await convergeAndMeasure([ada, bob]);
  const p95 = percentile(samples.map(Math.abs), 95);
  t.diagnostic(`after reconnecting: |gap| p95 ${p95.toFixed(2)} ms`);
  assert.ok(p95 < 20, `p95 ${p95} ms`);
});

test('the relay goes away and comes back: the page reconnects by itself', async () => {
  const ports = relay.ports;
  await relay.stop();
  await waitUntil('Ada reconnecting', async () => (await readPlayer(ada)).connection.phase === 'reconnecting', 10000);
  relay = await startRelay({ ports });
  await waitUntil('Ada connected to the new relay', async () => (await readPlayer(ada)).connection.phase === 'connected', 20000);
});
