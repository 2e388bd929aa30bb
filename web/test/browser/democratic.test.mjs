// Democratic mode with three viewers: the host switches the room to democratic, a member's
// seek becomes a proposal, the others see the vote prompt, a vote passes it, and the decision
// is applied on every player.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRoom, openPage, readPlayer, startBrowser, startRelay, waitUntil } from './harness.mjs';

let relay;
let browser;
const pages = {};

before(async () => {
  relay = await startRelay();
  browser = await startBrowser();
  pages.ada = await openPage(browser, `${relay.url}?name=Ada`);
  const invite = await createRoom(pages.ada, { name: 'Ada', room: 'Vote night' });
  pages.bob = await openPage(browser, `${invite}&name=Bob`);
  pages.cy = await openPage(browser, `${invite}&name=Cy&transport=websocket`);
  for (const p of Object.values(pages)) {
    await waitUntil('a member in the room with the clip loaded', async () => {
      const r = await readPlayer(p);
      return r.role !== undefined && r.readyState >= 3;
    });
  }
});

after(async () => {
  await browser?.close();
  await relay?.stop();
});

test('the host switches the room to democratic mode', async () => {
  await pages.ada.click('[data-test=mode-democratic]');
  for (const p of Object.values(pages)) {
    await waitUntil('democratic mode everywhere', async () => (await readPlayer(p)).mode === 'democratic');
  }
});

test('a seek by a member becomes a proposal; a vote passes it; everyone moves', async () => {
  // Cy drags the playhead: in democratic mode that proposes, it does not apply.
  await pages.cy.evaluate(() => {
    window.lockstep.video.currentTime = 42;
  });
  const prompt = pages.bob.locator('[data-test=proposal]');
  await prompt.waitFor({ timeout: 10000 });
  assert.match((await prompt.textContent()) ?? '', /0:42/);
  // Until the vote passes, nobody moves: Cy's player goes back to where the room is.
  await waitUntil('Cy back on the room timeline', async () => (await readPlayer(pages.cy)).position < 5);
  assert.ok((await readPlayer(pages.ada)).position < 5);
  // Three present: 2 yes votes needed (more than 50%); Cy's proposal counts as one.
  await pages.bob.click('[data-test=proposal] [data-test=vote-yes]');
  for (const [name, p] of Object.entries(pages)) {
    await waitUntil(`${name} at 42 s`, async () => Math.abs((await readPlayer(p)).position - 42) < 0.05);
  }
  // The prompt is gone once decided.
  await waitUntil('the prompt gone', async () => (await pages.ada.locator('[data-test=proposal]').count()) === 0);
});

test('a pause applies at once (pause without vote), a play goes to a vote and a no rejects it', async () => {
  await pages.bob.evaluate(() => window.lockstep.video.play());
  await pages.ada.locator('[data-test=proposal]').waitFor({ timeout: 10000 });
  // Ada and Cy both vote no: it can no longer pass.
  await pages.ada.click('[data-test=proposal] [data-test=vote-no]');
  await pages.cy.click('[data-test=proposal] [data-test=vote-no]');
  await waitUntil('the prompt gone', async () => (await pages.ada.locator('[data-test=proposal]').count()) === 0);
  for (const p of Object.values(pages)) {
    const r = await readPlayer(p);
    assert.equal(r.roomPaused, true);
  }
});
