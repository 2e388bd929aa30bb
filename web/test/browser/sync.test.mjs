// Two viewers in one room, one on WebTransport and one forced onto the WebSocket fallback:
// play, pause, seek and rate from either reach the other, and their players, sampled together,
// stay within a bound once converged.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  convergeAndMeasure,
  createRoom,
  gapMs,
  openPage,
  percentile,
  readPlayer,
  screenshot,
  startBrowser,
  startRelay,
  waitUntil,
} from './harness.mjs';

/** Both players within this of each other after converging, p95 (ms). */
const P95_BOUND_MS = 20;
/** And never further apart than this while measuring (ms). */
const MAX_BOUND_MS = 40;

let relay;
let browser;
let ada;
let bob;

before(async () => {
  relay = await startRelay();
  browser = await startBrowser();
  ada = await openPage(browser, `${relay.url}?name=Ada`);
  const invite = await createRoom(ada, { name: 'Ada' });
  bob = await openPage(browser, `${invite}&name=Bob&transport=websocket`);
  await waitUntil('Bob in the room', async () => (await readPlayer(bob)).role === 'member');
  await waitUntil('both players loaded', async () => {
    const [a, b] = await Promise.all([readPlayer(ada), readPlayer(bob)]);
    return a.readyState >= 3 && b.readyState >= 3;
  });
  // Pass the remote: playback from everyone (the host's toggle in the overlay).
  await ada.click('[data-test=everyone-controls]');
  await waitUntil('everyone controls', () => bob.evaluate(() => window.lockstep.client.canControl));
});

after(async () => {
  await browser?.close();
  await relay?.stop();
});

function dumpOnFailure(t) {
  return (e) => {
    t.diagnostic(`Ada's console:\n${ada?.lockstepLog?.slice(-30).join('\n')}`);
    t.diagnostic(`Bob's console:\n${bob?.lockstepLog?.slice(-30).join('\n')}`);
    throw e;
  };
}

test('each page is on the transport it asked for', async () => {
  const [a, b] = await Promise.all([readPlayer(ada), readPlayer(bob)]);
  assert.equal(a.connection.transport, 'webtransport');
  assert.equal(b.connection.transport, 'websocket');
  assert.match(await ada.textContent('[data-test=connection]'), /WebTransport/);
  assert.match(await bob.textContent('[data-test=connection]'), /WebSocket/);
  // The participants list shows both members with their transports.
  await waitUntil('two rows in the participants list', async () => (await ada.locator('[data-test=participants] [data-member-id]').count()) === 2);
});

test('play from Ada reaches Bob, and they converge', async (t) => {
  await ada.evaluate(() => window.lockstep.video.play());
  await waitUntil('Bob playing', async () => !(await readPlayer(bob)).paused);
  const { samples, convergedAfterMs } = await convergeAndMeasure([ada, bob]).catch(dumpOnFailure(t));
  const p95 = percentile(samples.map(Math.abs), 95);
  const max = Math.max(...samples.map(Math.abs));
  t.diagnostic(`converged after ${convergedAfterMs} ms; |gap| p95 ${p95.toFixed(2)} ms, max ${max.toFixed(2)} ms over ${samples.length} samples`);
  assert.ok(p95 < P95_BOUND_MS, `p95 ${p95} ms`);
  assert.ok(max < MAX_BOUND_MS, `max ${max} ms`);
  // The frame on screen (requestVideoFrameCallback) is within about a frame (24 fps) of the room.
  const frames = [];
  for (let i = 0; i < 20; i += 1) {
    const [a, b] = await Promise.all([readPlayer(ada), readPlayer(bob)]);
    if (a.frameDriftMs !== undefined) frames.push(a.frameDriftMs);
    if (b.frameDriftMs !== undefined) frames.push(b.frameDriftMs);
    await new Promise((r) => setTimeout(r, 50));
  }
  t.diagnostic(`frame on screen vs the room: ${frames.length} reads, worst ${Math.max(...frames.map(Math.abs)).toFixed(1)} ms`);
  assert.ok(frames.length >= 20, `only ${frames.length} frame reads`);
  assert.ok(frames.every((f) => Math.abs(f) < 60), `frame drift ${JSON.stringify(frames)}`);
});

test('pause from Bob (WebSocket) reaches Ada at the same position', async () => {
  await bob.evaluate(() => window.lockstep.video.pause());
  await waitUntil('Ada paused', async () => (await readPlayer(ada)).paused);
  await waitUntil('both paused at the same frame', async () => {
    const g = await gapMs(ada, bob);
    return g.a.paused && g.b.paused && Math.abs(g.gap) < 25;
  }, 5000);
});

test('seek from Bob reaches Ada', async () => {
  await bob.evaluate(() => {
    window.lockstep.video.currentTime = 30;
  });
  await waitUntil('Ada at 30 s', async () => {
    const a = await readPlayer(ada);
    return Math.abs(a.position - 30) < 0.05 && a.paused;
  });
});

test('rate from Bob reaches Ada, and they converge at 1.5x', async (t) => {
  await ada.evaluate(() => window.lockstep.video.play());
  await waitUntil('Bob playing', async () => !(await readPlayer(bob)).paused);
  await bob.evaluate(() => {
    window.lockstep.video.playbackRate = 1.5;
  });
  await waitUntil('the room at 1.5x on Ada', async () => (await readPlayer(ada)).roomRate === 1.5);
  await waitUntil('Ada playing near 1.5x', async () => Math.abs((await readPlayer(ada)).rate - 1.5) < 0.05);
  const { samples } = await convergeAndMeasure([ada, bob]).catch(dumpOnFailure(t));
  const p95 = percentile(samples.map(Math.abs), 95);
  t.diagnostic(`at 1.5x: |gap| p95 ${p95.toFixed(2)} ms`);
  assert.ok(p95 < P95_BOUND_MS, `p95 ${p95} ms`);
});

test('seek from Ada while playing reaches Bob', async (t) => {
  await ada.evaluate(() => {
    window.lockstep.video.playbackRate = 1;
  });
  await waitUntil('the room back at 1x', async () => (await readPlayer(bob)).roomRate === 1);
  await ada.evaluate(() => {
    window.lockstep.video.currentTime = 60;
  });
  await waitUntil('Bob near 60 s', async () => {
    const b = await readPlayer(bob);
    return b.position > 59.5 && b.position < 64 && !b.paused;
  });
  const { samples } = await convergeAndMeasure([ada, bob]).catch(dumpOnFailure(t));
  const p95 = percentile(samples.map(Math.abs), 95);
  t.diagnostic(`after a seek: |gap| p95 ${p95.toFixed(2)} ms`);
  assert.ok(p95 < P95_BOUND_MS, `p95 ${p95} ms`);
});

test('screenshots of the room page, wide and 375 px', async () => {
  await ada.evaluate(() => window.lockstep.client.chat('Popcorn ready?'));
  await bob.evaluate(() => window.lockstep.client.react('🍿'));
  await waitUntil('the chat line on Bob', async () => (await bob.textContent('[data-test=chat-log]'))?.includes('Popcorn'));
  const wide = await screenshot(ada, 'room-1280.png');
  await bob.setViewportSize({ width: 375, height: 812 });
  const narrow = await screenshot(bob, 'room-375.png');
  // Nothing sticks out sideways at 375 px.
  const overflow = await bob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the 375 px viewport`);
  assert.ok(wide && narrow);
});
