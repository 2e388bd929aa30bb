// The host's page closes: after the room's host grace the host role moves to the next member,
// and the others keep playing throughout.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRoom, openPage, readPlayer, sleep, startBrowser, startRelay, waitUntil } from './harness.mjs';

let relay;
let browser;
let ada;
let bob;
let cy;

before(async () => {
  relay = await startRelay();
  browser = await startBrowser();
  ada = await openPage(browser, `${relay.url}?name=Ada`);
  const invite = await createRoom(ada, { name: 'Ada' });
  bob = await openPage(browser, `${invite}&name=Bob`);
  cy = await openPage(browser, `${invite}&name=Cy&transport=websocket`);
  for (const p of [ada, bob, cy]) {
    await waitUntil('in the room, clip loaded', async () => {
      const r = await readPlayer(p);
      return r.role !== undefined && r.readyState >= 3;
    });
  }
  // A short grace so the test need not wait the default 30 s.
  await ada.evaluate(() => window.lockstep.client.updateOptions({ host_grace_ms: 1500 }));
});

after(async () => {
  await browser?.close();
  await relay?.stop();
});

test('control moves to Bob and the others keep playing', async () => {
  await ada.evaluate(() => window.lockstep.video.play());
  await waitUntil('Bob and Cy playing', async () => !(await readPlayer(bob)).paused && !(await readPlayer(cy)).paused).catch(async (e) => {
    const state = JSON.stringify({ ada: await readPlayer(ada), bob: await readPlayer(bob), cy: await readPlayer(cy) });
    throw new Error(`${e.message}; ${state}; Ada's log: ${ada.lockstepLog.slice(-15).join(' | ')}; Bob's log: ${bob.lockstepLog.slice(-15).join(' | ')}`);
  });
  const bobId = (await readPlayer(bob)).you;
  // The tab goes away (as when it is closed; the relay may only notice by its idle timeout).
  await ada.context().close();
  await waitUntil('Bob is the host', async () => (await readPlayer(bob)).role === 'host', 20000).catch(async (e) => {
    const members = await bob.evaluate(() => JSON.stringify([...window.lockstep.client.members.values()]));
    throw new Error(`${e.message}; Bob sees ${members}; Bob's log: ${bob.lockstepLog.slice(-20).join(' | ')}`);
  });
  assert.equal((await readPlayer(cy)).host, bobId);
  await waitUntil("Bob's overlay shows his role", async () => (await bob.textContent('[data-test=role]'))?.includes('host'));
  // They kept playing: nobody paused, positions still advance.
  const before = await readPlayer(cy);
  await sleep(1000);
  const later = await readPlayer(cy);
  assert.equal(later.paused, false);
  assert.ok(later.position - before.position > 0.8, `Cy advanced ${later.position - before.position} s in 1 s`);
  // The new host controls: Bob pauses, Cy follows.
  await bob.evaluate(() => window.lockstep.video.pause());
  await waitUntil('Cy paused by the new host', async () => (await readPlayer(cy)).paused).catch(async (e) => {
    const state = JSON.stringify({ bob: await readPlayer(bob), cy: await readPlayer(cy) });
    throw new Error(`${e.message}; ${state}; Bob's log: ${bob.lockstepLog.slice(-15).join(' | ')}`);
  });
});
