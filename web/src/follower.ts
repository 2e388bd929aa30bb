/**
 * Holding a player on the room's timeline: the decisions, without the IO.
 *
 * A port of the Rust SDK's `follower.rs`. Owns the client's view of the room timeline (the one
 * in effect and the one scheduled next), turns player samples into corrections through the
 * {@link DriftController}, and knows when to act (the local time a scheduled change takes
 * effect). The caller measures the player, calls {@link Follower.step} and carries out the
 * commands.
 */

import type { ClockSync } from './clock';
import { DriftController, type DriftConfig } from './drift';
import { isOlderThan, positionAt, type ServerTime, type Timeline } from './timeline';

/** A position reading from the player. */
export interface Sample {
  /** Media position, seconds. */
  position: number;
  /** Local monotonic time the position was true at, integer microseconds. */
  atLocal: number;
  /** Whether the player is paused. */
  paused: boolean;
  /** The rate the player runs at. */
  rate: number;
}

/** Something to do to the player: pause or resume; seek exactly here (seconds); run at a rate. */
export type PlayerCommand =
  | { kind: 'setPaused'; paused: boolean }
  | { kind: 'seek'; position: number }
  | { kind: 'setRate'; rate: number };

/**
 * How far (µs of media) a paused player may stand from where the room will start before it is
 * moved there first (about a frame).
 */
const PREPOSITION_US = 20_000.0;

/** The decisions of a player following a room. */
export class Follower {
  private current: Timeline | undefined = undefined;
  private next: Timeline | undefined = undefined;
  private readonly drift: DriftController;
  private seekRequestedAt: ServerTime | undefined = undefined;

  /** A follower with these drift settings. */
  constructor(config: DriftConfig) {
    this.drift = new DriftController(config);
  }

  /**
   * A timeline from the relay (`state_update` or `room_state`). Older and equal sequence
   * numbers are ignored; `reset` takes it whatever its number (a new room). Kept as a copy.
   */
  onTimeline(timeline: Timeline, reset: boolean): void {
    const newest = this.next ?? this.current;
    if (!reset && newest !== undefined && !isOlderThan(newest, timeline)) return;
    if (reset) {
      this.current = { ...timeline };
      this.next = undefined;
      this.drift.timelineChanged();
    } else {
      this.next = { ...timeline };
    }
  }

  /** Leaves the room: nothing to follow. */
  clear(): void {
    this.current = undefined;
    this.next = undefined;
  }

  /** The timeline in effect (a copy). */
  timeline(): Timeline | undefined {
    return this.current === undefined ? undefined : { ...this.current };
  }

  /** When, in local time, the scheduled timeline takes effect (wake up then). */
  nextChangeLocal(clock: ClockSync): number | undefined {
    return this.next === undefined ? undefined : clock.localTime(this.next.at);
  }

  /** The player's error against the timeline, µs (for `stats.drift_us`). */
  driftUs(): number {
    return this.drift.lastErrorUs();
  }

  /** Seeks and rate changes made so far. */
  corrections(): [seeks: number, rateChanges: number] {
    return [this.drift.seeks(), this.drift.rateChanges()];
  }

  /** A seek the follower asked for has landed (at local time `nowLocal`). */
  seekLanded(clock: ClockSync, nowLocal: number): void {
    const asked = this.seekRequestedAt;
    this.seekRequestedAt = undefined;
    const now = clock.serverTime(nowLocal);
    if (asked !== undefined && now !== undefined) this.drift.seekLanded(asked, now);
  }

  /** One control step on a fresh sample: what to tell the player. */
  step(clock: ClockSync, sample: Sample): PlayerCommand[] {
    const measuredAt = clock.serverTime(sample.atLocal);
    if (measuredAt === undefined) return [];
    if (this.next !== undefined && this.next.at <= measuredAt) {
      this.current = this.next;
      this.next = undefined;
      this.drift.timelineChanged();
    }
    const timeline = this.current;
    if (timeline === undefined) return [];
    const commands: PlayerCommand[] = [];
    // A play scheduled while paused: stand where the room will start, so starting on time is
    // all that remains.
    const next = this.next;
    if (next !== undefined && timeline.paused && !next.paused && sample.paused) {
      if (Math.abs(sample.position - next.position) * 1e6 > PREPOSITION_US) {
        this.seekRequestedAt = measuredAt;
        commands.push({ kind: 'seek', position: next.position });
      }
      // Standing where the room will start: hold there, even when the paused timeline in
      // effect names another position (a seek and a play scheduled within one lead).
      return commands;
    }
    if (timeline.paused !== sample.paused) {
      commands.push({ kind: 'setPaused', paused: timeline.paused });
    }
    const target = positionAt(timeline, measuredAt);
    const correction = this.drift.update(
      measuredAt,
      target,
      timeline.rate,
      timeline.paused,
      sample.position,
      sample.rate,
    );
    switch (correction.kind) {
      case 'keep':
        break;
      case 'setRate':
        commands.push({ kind: 'setRate', rate: correction.rate });
        break;
      case 'seek':
        this.seekRequestedAt = measuredAt;
        commands.push({ kind: 'seek', position: correction.position });
        break;
    }
    // Back to the room's own rate when nothing else set it (a room rate change).
    if (
      !timeline.paused &&
      !commands.some((c) => c.kind === 'setRate') &&
      Math.abs(sample.rate - timeline.rate) > timeline.rate * 0.06
    ) {
      commands.push({ kind: 'setRate', rate: timeline.rate });
    }
    return commands;
  }
}
