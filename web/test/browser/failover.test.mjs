// Two relays share rooms through a real redis-server. The page's relay is killed (SIGKILL):
// the page moves to the other relay its relay listed, resumes there as the same member with
// the same role, and the room (taken over from Redis) is still playing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRoom, openPage, readPlayer, startBrowser, startRedis, startRelay, waitUntil } from './harness.mjs';

let redis;
let home;
let survivor;
let browser;
let ada;

before(async () => {
  redis = await startRedis();
  home = await startRelay({ extraArgs: ['--redis', redis.url] });
  survivor = await startRelay({ extraArgs: ['--redis', redis.url] });
  await waitUntil(
    'the relays list each other',
    async () => ((await (await fetch(`${home.url}api/config`)).json()).relays ?? []).length === 1,
    10000,
    100,
  );
  browser = await startBrowser();
  ada = await openPage(browser, `${home.url}?name=Ada`);
  await createRoom(ada, { name: 'Ada' });
  await waitUntil('loaded', async () => (await readPlayer(ada)).readyState >= 3);
  await ada.evaluate(() => window.lockstep.video.play());
  await waitUntil('the room plays', async () => (await readPlayer(ada)).roomPaused === false);
});

after(async () => {
  await browser?.close();
  await home?.stop();
  await survivor?.stop();
  await redis?.stop();
});

test("the page's relay is killed: the page resumes on the other relay, in the same room, still playing", async (t) => {
  const before = await readPlayer(ada);
  const room = await ada.evaluate(() => window.lockstep.client.room.id);
  // Give the relay a moment to store the room as it is now.
  await new Promise((r) => setTimeout(r, 500));
  const killed = Date.now();
  await home.kill();
  await waitUntil('Ada reconnecting', async () => (await readPlayer(ada)).connection.phase === 'reconnecting', 10000, 20);
  await waitUntil('Ada connected again', async () => (await readPlayer(ada)).connection.phase === 'connected', 20000, 20);
  t.diagnostic(`back ${Date.now() - killed} ms after the kill`);
  const after = await readPlayer(ada);
  assert.equal(after.you, before.you, 'the same member');
  assert.equal(after.role, 'host', 'still the host');
  assert.equal(await ada.evaluate(() => window.lockstep.client.room.id), room, 'the same room');
  assert.equal(after.roomPaused, false, 'still playing');
  // The room works on its new relay: Ada pauses it there.
  await ada.evaluate(() => window.lockstep.client.pause());
  await waitUntil('paused through the new relay', async () => (await readPlayer(ada)).roomPaused === true, 10000);
});
