/**
 * The room's playback as the protocol defines it (PROTOCOL.md §5): "at server time `at` the
 * media was at `position`, moving at `rate` unless `paused`". Evaluated, never streamed.
 */

/** Microseconds on the relay's monotonic clock (a safe integer). */
export type ServerTime = number;

/** A room timeline (PROTOCOL.md §7.2). */
export interface Timeline {
  /** Media position at `at`, seconds. */
  position: number;
  /** Playback rate (kept while paused). */
  rate: number;
  /** Whether playback is paused. */
  paused: boolean;
  /** Server time the other fields are true at, µs. */
  at: ServerTime;
  /** Increases by one with every change. */
  seq: number;
}

/**
 * The position at server time `t`, exactly as the reference implementation computes it (the
 * same operations in the same order, so both agree to the last bit).
 */
export function positionAt(timeline: Timeline, t: ServerTime): number {
  if (timeline.paused) return timeline.position;
  const p = timeline.position + ((t - timeline.at) / 1e6) * timeline.rate;
  return Math.max(0, p);
}

/** Whether `a` is superseded by `b` (PROTOCOL.md §5: the highest `seq` wins). */
export function isOlderThan(a: Timeline, b: Timeline): boolean {
  return a.seq < b.seq;
}
