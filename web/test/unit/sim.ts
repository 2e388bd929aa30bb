// Deterministic PRNGs for the simulations, the same generators as the Rust SDK's tests (in
// 64-bit BigInt arithmetic, so a seed gives the very same stream as in Rust), and the room
// timeline's command math (Rust's `Timeline::apply`), which the web client itself does not need.
import { positionAt, type ServerTime, type Timeline } from '../../src/timeline';

const MASK = (1n << 64n) - 1n;
const TWO_53 = 2 ** 53;

/** xorshift64*: a tiny deterministic PRNG, enough for a simulated network (clock tests). */
export class XorShift64Star {
  private state: bigint;

  constructor(seed: bigint) {
    this.state = seed & MASK;
  }

  nextU64(): bigint {
    let x = this.state;
    x ^= x >> 12n;
    x ^= (x << 25n) & MASK;
    x ^= x >> 27n;
    this.state = x;
    return (x * 0x2545_f491_4f6c_dd1dn) & MASK;
  }

  /** Uniform in (0, 1]. */
  unit(): number {
    return Number((this.nextU64() >> 11n) + 1n) / TWO_53;
  }

  chance(p: number): boolean {
    return this.unit() <= p;
  }

  exponential(mean: number): number {
    return -mean * Math.log(this.unit());
  }
}

/** splitmix64: deterministic, no dependency (drift tests). */
export class SplitMix64 {
  private state: bigint;

  constructor(seed: bigint) {
    this.state = seed & MASK;
  }

  nextU64(): bigint {
    this.state = (this.state + 0x9e37_79b9_7f4a_7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58_476d_1ce4_e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d0_49bb_1331_11ebn) & MASK;
    return z ^ (z >> 31n);
  }

  uniform(lo: number, hi: number): number {
    const unit = Number(this.nextU64() >> 11n) / TWO_53;
    return lo + (hi - lo) * unit;
  }
}

/** A change to playback that every member applies at the same server time. */
export type PlaybackCommand =
  | { kind: 'play' }
  | { kind: 'pause' }
  | { kind: 'seek'; position: number }
  | { kind: 'setRate'; rate: number };

/** The timeline that results from `command` taking effect at server time `at`. */
export function applyCommand(timeline: Timeline, command: PlaybackCommand, at: ServerTime): Timeline {
  const here = positionAt(timeline, at);
  let position: number;
  let rate = timeline.rate;
  let paused = timeline.paused;
  switch (command.kind) {
    case 'play':
      position = here;
      paused = false;
      break;
    case 'pause':
      position = here;
      paused = true;
      break;
    case 'seek':
      position = Math.max(command.position, 0);
      break;
    case 'setRate':
      position = here;
      rate = command.rate;
      break;
  }
  return { position, rate, paused, at, seq: timeline.seq + 1 };
}

/** Rust's `f64::round`: half away from zero. */
export function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}
