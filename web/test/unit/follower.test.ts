// The follower (follower.rs has no tests of its own): the Rust SDK's crate example, plus
// timeline scheduling, sequence numbers, reset and prepositioning.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ClockSync, defaultClockConfig } from '../../src/clock';
import { defaultDriftConfig } from '../../src/drift';
import { Follower, type PlayerCommand } from '../../src/follower';
import type { Timeline } from '../../src/timeline';

/** The relay's clock reads this much more than ours. */
const OFFSET = 1_000_000_000;

/** A clock that knows the offset exactly from one symmetric exchange. */
function syncedClock(): ClockSync {
  const clock = new ClockSync(defaultClockConfig());
  const ping = clock.pollPing(0);
  assert.ok(ping, 'a ping is due at once');
  clock.onPong({ seq: ping.seq, t0: ping.t0, t1: OFFSET + 100, t2: OFFSET + 110 }, 210);
  assert.equal(clock.serverTime(0), OFFSET);
  return clock;
}

function timeline(fields: Partial<Timeline> & { seq: number }): Timeline {
  return { position: 0.0, rate: 1.0, paused: false, at: OFFSET, ...fields };
}

test('crate example: a paused player joining a playing room is told to play and catch up', () => {
  const clock = syncedClock();
  // The room plays from 60 s; our player is paused at 0.
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline({ position: 60.0, rate: 1.0, paused: false, at: OFFSET, seq: 0 }, true);
  const commands = follower.step(clock, { position: 0.0, atLocal: 500_000, paused: true, rate: 1.0 });
  assert.ok(commands.some((c) => c.kind === 'setPaused' && !c.paused), JSON.stringify(commands));
  assert.ok(commands.some((c) => c.kind === 'seek' && c.position > 60.0), JSON.stringify(commands));
  assert.deepEqual(follower.corrections(), [1, 0]);
  assert.equal(follower.driftUs(), -60_500_000);
});

test('a scheduled timeline takes effect at its `at`, not before', () => {
  const clock = syncedClock();
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 60.0, seq: 1 }), true);
  // On time: nothing to do.
  assert.deepEqual(
    follower.step(clock, { position: 61.0, atLocal: 1_000_000, paused: false, rate: 1.0 }),
    [],
  );
  // A pause at 62 s, taking effect at server time OFFSET + 2 s.
  follower.onTimeline(timeline({ position: 62.0, paused: true, at: OFFSET + 2_000_000, seq: 2 }), false);
  assert.equal(follower.timeline()?.seq, 1);
  assert.equal(follower.nextChangeLocal(clock), 2_000_000);
  // Before `at` the old timeline is followed: keep playing.
  assert.deepEqual(
    follower.step(clock, { position: 61.5, atLocal: 1_500_000, paused: false, rate: 1.0 }),
    [],
  );
  assert.deepEqual(
    follower.step(clock, { position: 61.999, atLocal: 1_999_000, paused: false, rate: 1.0 }),
    [],
  );
  assert.equal(follower.timeline()?.seq, 1);
  // At `at` the new one takes over: pause, already at the right place.
  assert.deepEqual<PlayerCommand[]>(
    follower.step(clock, { position: 62.0, atLocal: 2_000_000, paused: false, rate: 1.0 }),
    [{ kind: 'setPaused', paused: true }],
  );
  assert.equal(follower.timeline()?.seq, 2);
  assert.equal(follower.nextChangeLocal(clock), undefined);
});

test('older and equal sequence numbers are ignored; a reset takes any', () => {
  const clock = syncedClock();
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 10.0, seq: 5 }), true);
  // Older and equal: ignored, nothing scheduled.
  follower.onTimeline(timeline({ position: 10.0, paused: true, seq: 4 }), false);
  follower.onTimeline(timeline({ position: 10.0, paused: true, seq: 5 }), false);
  assert.equal(follower.nextChangeLocal(clock), undefined);
  assert.equal(follower.timeline()?.seq, 5);
  assert.deepEqual(
    follower.step(clock, { position: 10.5, atLocal: 500_000, paused: false, rate: 1.0 }),
    [],
  );
  // Newer: scheduled; then compared against the scheduled one.
  const six = timeline({ position: 20.0, paused: true, at: OFFSET + 3_000_000, seq: 6 });
  follower.onTimeline(six, false);
  assert.equal(follower.nextChangeLocal(clock), 3_000_000);
  follower.onTimeline(timeline({ position: 30.0, at: OFFSET + 4_000_000, seq: 6 }), false);
  follower.onTimeline(timeline({ position: 30.0, at: OFFSET + 4_000_000, seq: 5 }), false);
  assert.equal(follower.nextChangeLocal(clock), 3_000_000);
  // The follower keeps its own copy.
  six.seq = 100;
  six.at = 0;
  assert.equal(follower.nextChangeLocal(clock), 3_000_000);
  // A reset (a new room) takes its timeline whatever its number, and drops the scheduled one.
  follower.onTimeline(timeline({ position: 0.0, paused: true, seq: 0 }), true);
  assert.equal(follower.timeline()?.seq, 0);
  assert.equal(follower.nextChangeLocal(clock), undefined);
});

test('clear leaves nothing to follow; no estimate, no commands', () => {
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 10.0, seq: 1 }), true);
  // No clock estimate yet: no server time, so nothing can be decided.
  const fresh = new ClockSync(defaultClockConfig());
  assert.deepEqual(follower.step(fresh, { position: 0.0, atLocal: 0, paused: true, rate: 1.0 }), []);
  const clock = syncedClock();
  follower.clear();
  assert.equal(follower.timeline(), undefined);
  assert.equal(follower.nextChangeLocal(clock), undefined);
  assert.deepEqual(follower.step(clock, { position: 0.0, atLocal: 0, paused: true, rate: 1.0 }), []);
});

test('a paused player is prepositioned where a scheduled play starts', () => {
  const clock = syncedClock();
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 10.0, paused: true, seq: 1 }), true);
  // Play from 10 s at server time OFFSET + 2 s.
  follower.onTimeline(timeline({ position: 10.0, at: OFFSET + 2_000_000, seq: 2 }), false);
  // The player stands at 4 s: moved to where the room will start, and nothing else.
  assert.deepEqual<PlayerCommand[]>(
    follower.step(clock, { position: 4.0, atLocal: 1_000_000, paused: true, rate: 1.0 }),
    [{ kind: 'seek', position: 10.0 }],
  );
  follower.seekLanded(clock, 1_100_000);
  // There: nothing more to do until the play.
  assert.deepEqual(
    follower.step(clock, { position: 10.0, atLocal: 1_200_000, paused: true, rate: 1.0 }),
    [],
  );
  assert.deepEqual(
    follower.step(clock, { position: 10.0, atLocal: 1_900_000, paused: true, rate: 1.0 }),
    [],
  );
  // At `at`: start, on time, no seek needed.
  assert.deepEqual<PlayerCommand[]>(
    follower.step(clock, { position: 10.0, atLocal: 2_000_000, paused: true, rate: 1.0 }),
    [{ kind: 'setPaused', paused: false }],
  );
});

test('a player within about a frame of a scheduled play is not prepositioned', () => {
  const clock = syncedClock();
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 10.0, paused: true, seq: 1 }), true);
  follower.onTimeline(timeline({ position: 10.0, at: OFFSET + 2_000_000, seq: 2 }), false);
  // 0.5 ms off: within 20 ms (no preposition) and within the dead zone (no paused seek).
  assert.deepEqual(
    follower.step(clock, { position: 10.0005, atLocal: 1_000_000, paused: true, rate: 1.0 }),
    [],
  );
});

test('a seek with the player at a far-off rate also restores the room rate', () => {
  const clock = syncedClock();
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 60.0, seq: 1 }), true);
  // 5 s behind at double speed: the drift controller seeks (catch-up), and the rate it did not
  // set is put back to the room's.
  const commands = follower.step(clock, { position: 56.0, atLocal: 1_000_000, paused: false, rate: 2.0 });
  assert.equal(commands.length, 2, JSON.stringify(commands));
  assert.equal(commands[0]!.kind, 'seek');
  assert.deepEqual(commands[1], { kind: 'setRate', rate: 1.0 });
});

test('a seek and a play scheduled within one lead: the player waits where the play starts', () => {
  const clock = syncedClock();
  const follower = new Follower(defaultDriftConfig());
  follower.onTimeline(timeline({ position: 10.0, paused: true, seq: 1 }), true);
  // Seek to 30 s (still paused) at +1 s, then play from 30 s at +2 s; only the newest is kept.
  follower.onTimeline(timeline({ position: 30.0, paused: true, at: OFFSET + 1_000_000, seq: 2 }), false);
  follower.onTimeline(timeline({ position: 30.0, at: OFFSET + 2_000_000, seq: 3 }), false);
  assert.deepEqual<PlayerCommand[]>(
    follower.step(clock, { position: 10.0, atLocal: 500_000, paused: true, rate: 1.0 }),
    [{ kind: 'seek', position: 30.0 }],
  );
  follower.seekLanded(clock, 600_000);
  // At 30 s, while the timeline in effect still says "paused at 10 s": not sent back there.
  for (const atLocal of [700_000, 1_200_000, 1_900_000]) {
    assert.deepEqual(follower.step(clock, { position: 30.0, atLocal, paused: true, rate: 1.0 }), []);
  }
  assert.deepEqual<PlayerCommand[]>(
    follower.step(clock, { position: 30.0, atLocal: 2_000_000, paused: true, rate: 1.0 }),
    [{ kind: 'setPaused', paused: false }],
  );
});
