/**
 * Drift control: keeps the local player on the room timeline without stutter.
 *
 * A port of the Rust SDK's `drift.rs` (same rules, constants and floating-point operations).
 * Owns the decision of *how* to close the gap between where the player is and where the room
 * timeline says it should be: play at the room rate, nudge the playback rate, or seek. It does
 * not read clocks, talk to players or follow timelines: the caller samples the player, converts
 * the sample's time to server time, evaluates `positionAt` for that time, calls
 * {@link DriftController.update} and applies the returned {@link Correction}. Sans-IO, so tests
 * drive it through simulated minutes in milliseconds.
 *
 * ```text
 * every ~100 ms:   sample the player; now = server time of the sample
 *                  switch (ctl.update(now, positionAt(timeline, now), timeline.rate,
 *                                     timeline.paused, position, rate)) { ... }
 * seek finished:   ctl.seekLanded(requestedAt, now)
 * new timeline:    ctl.timelineChanged()   (when it takes effect)
 * ```
 *
 * Feed it the most precise position the player has (a browser's
 * `requestVideoFrameCallback` media time); a frame-quantised position works too, at a few
 * milliseconds' cost (the caller should add half a frame if it is the frame's start time).
 *
 * Why it is built this way:
 * - Rate for small errors, seek for large ones. A seek is visible and lands on a frame, so it
 *   cannot correct anything finer; a rate nudge of a few percent with pitch correction is
 *   practically inaudible and corrects continuously. Seeks are kept for errors a nudge would
 *   take many seconds to remove (or catching up with a new timeline), rationed by a cooldown.
 * - Few, planned rate changes. A correction is a *nudge*: one rate chosen to remove the error
 *   in about `correctionTimeS` (`rate = room rate × (1 − error / correction time)`, within
 *   ±`maxRateNudge`), held until the error is gone, then one change back; a fast nudge is
 *   tapered once or twice so it can stop precisely. The hysteresis between `engageUs` and
 *   `deadZoneUs` keeps a settled player still, and no rate is sent that differs from the
 *   player's by less than 0.05 %.
 * - Measured, never expected. Every decision starts from the measured position. The position
 *   jump a rate change causes (the "kick", e.g. mpv's pitch correction) is learned and planned
 *   around: a nudge that ends with a kick of +5 ms is ended 5 ms early.
 * - Filtered, because readings are noisy. The error goes through a small Kalman filter whose
 *   model knows the rate the player runs at (no lag on the controller's own corrections). It
 *   also estimates the player clock's rate error, so a device whose clock runs 0.2 % fast is
 *   played 0.2 % slower (its *neutral* rate) instead of being corrected over and over, and it
 *   measures the reading noise, widening the thresholds when readings are coarse.
 */

import type { ServerTime } from './timeline';

/**
 * The assumed length of one video frame, seconds (25 fps; 24–30 fps players are close). Below
 * about a frame, seeking cannot help (an exact seek lands on a frame boundary).
 */
const ASSUMED_FRAME_S = 0.04;

/** During catch-up, seek as soon as the error exceeds this many frames. */
const CATCH_UP_FRAMES = 4.0;

/** Share of the reading noise added to the engage margin (see `controlRate`). */
const WANDER_SHARE = 0.3;

/** Playback rates above this are not playback (mpv's limit is 100): such input is ignored. */
const MAX_RATE = 100.0;

/** Relative rate difference below which a new rate is not worth a command. */
const RATE_EPSILON = 0.0005;

/** Smallest nudge: a nudge exists to move the player, so it must move it measurably. */
const MIN_NUDGE = 0.002;

/** A rate command the player has not applied after this long (µs) is sent again. */
const RESEND_AFTER_US = 1_000_000;

/** A paused room already seeked to within this of its position (s) does not seek again. */
const SAME_PAUSED_TARGET_S = 0.001;

/**
 * How far (relative) the player's clock may be estimated to run off; real clocks are off by a
 * fraction of a percent, and a larger estimate must not steer the rate far.
 */
const MAX_CLOCK_ERROR = 0.01;

/** Largest kick (position jump per rate change) the controller believes in, seconds. */
const MAX_KICK_S = 0.03;

/**
 * Updates further apart than this (s) restart the error filter (the player may have stalled,
 * the machine slept): extrapolating across such a gap would trust the model too much.
 */
const MAX_GAP_S = 2.0;

/**
 * A reading this far (seconds, and many standard deviations) from the prediction is a jump
 * (stall, external seek, an unannounced timeline): restart the filter there.
 */
const OUTLIER_S = 0.1;

/** Process noise of the error, s²/s: playback jitter the model does not explain. */
const Q_ERROR = 0.03e-3 * 0.03e-3;
/** Process noise of the clock rate error, 1/s: clocks wander, very slowly. */
const Q_CLOCK = 1e-7 * 1e-7;
/** Variance of one kick around the learned kick, s² (mpv's kick ranges over 5–14 ms). */
const KICK_VARIANCE = 2e-3 * 2e-3;
/** Variance of a kick before the reading noise is known (and kicks can be learned), s². */
const UNSEEN_KICK_VARIANCE = 4e-3 * 4e-3;
/** Process noise of the learned kick per rate change, s². */
const Q_KICK = 0.5e-3 * 0.5e-3;
/** Prior variance of the clock rate error (clocks within about ±0.5 %). */
const PRIOR_CLOCK_VARIANCE = 0.005 * 0.005;
/** Prior variance of the kick, s². */
const PRIOR_KICK_VARIANCE = 5e-3 * 5e-3;
/** First guess of the measurement variance, s²; learned from the readings. */
const INITIAL_MEASUREMENT_VARIANCE = 1.5e-3 * 1.5e-3;
/** Bounds of the learned measurement variance, s². */
const MIN_MEASUREMENT_VARIANCE = 0.05e-3 * 0.05e-3;
const MAX_MEASUREMENT_VARIANCE = 30e-3 * 30e-3;
/** Variance of the error taken from a single reading at a (re)start, s², at least. */
const START_VARIANCE = 20e-3 * 20e-3;
/** Second differences needed before the reading noise is believed. */
const NOISE_WARM_UP = 5;
/** Weight of one reading in the measurement variance estimate. */
const MEASUREMENT_VARIANCE_WEIGHT = 0.05;

/** The largest u32, where Rust's saturating counters stop. */
const U32_MAX = 0xffff_ffff;

/**
 * Tuning of the {@link DriftController}. The defaults aim at players within a couple of
 * milliseconds of each other on a good link, with corrections nobody notices.
 */
export interface DriftConfig {
  /**
   * Errors within this (µs) need no correction: a nudge ends once the error is this small, and
   * long nudges are tapered so that they can end this precisely.
   */
  deadZoneUs: number;
  /**
   * A settled player (within the dead zone since the last seek or new timeline) starts a nudge
   * only when further off than this (µs), or earlier if its clock is shown to be carrying it
   * away. The gap to `deadZoneUs` is the hysteresis that keeps a settled player from being
   * nudged back and forth by noise.
   */
  engageUs: number;
  /** Largest relative rate change around the room rate (0.05: ±5 %). */
  maxRateNudge: number;
  /** A nudge aims to remove the error in about this many seconds (`error / correctionTimeS`). */
  correctionTimeS: number;
  /** Errors beyond this (µs) are corrected by a seek: a nudge would take too long. */
  seekThresholdUs: number;
  /**
   * No second seek within this (µs) of the previous one, unless the error grew past four times
   * `seekThresholdUs`: a player that keeps missing must not be kept seeking.
   */
  seekCooldownUs: number;
  /** First guess (µs) of how long a seek takes to land; learned from `seekLanded`. */
  initialSeekLatencyUs: number;
}

/** The defaults of the Rust SDK. */
export function defaultDriftConfig(): DriftConfig {
  return {
    deadZoneUs: 1_000,
    engageUs: 3_000,
    maxRateNudge: 0.05,
    correctionTimeS: 1.5,
    seekThresholdUs: 400_000,
    seekCooldownUs: 2_000_000,
    initialSeekLatencyUs: 100_000,
  };
}

/**
 * What the caller should do to the player after one control step: leave it; set its playback
 * rate; or seek it (exactly, not to a keyframe) to `position` seconds, already aimed ahead by
 * the expected seek latency, and report the landing with {@link DriftController.seekLanded}.
 */
export type Correction =
  | { kind: 'keep' }
  | { kind: 'setRate'; rate: number }
  | { kind: 'seek'; position: number };

/** Whether a nudge is under way: idle at the neutral rate, or playing at `rate` since `since`. */
type Mode = { kind: 'idle' } | { kind: 'nudging'; rate: number; since: ServerTime };

/** The filter's view of the error after one reading (seconds). */
interface Estimate {
  /** Filtered error (measured − target). */
  error: number;
  /** Standard deviation of `error`. */
  sigma: number;
  /** Standard deviation of one reading. */
  noise: number;
}

/** One reading, kept to predict the next. */
interface Reading {
  at: ServerTime;
  target: number;
  playerRate: number;
  /** The reading's error (measured − target). */
  error: number;
}

type Vec3 = [number, number, number];
type Mat3 = [Vec3, Vec3, Vec3];

/**
 * A Kalman filter over `[error, clock rate error, kick]`.
 *
 * Between two readings the error moves by what the player played (`playerRate × dt × (1 +
 * clock error)`) minus what the timeline moved, plus the kick if the player's rate changed; the
 * reading is the error plus noise whose variance is learned from the readings themselves.
 */
class ErrorFilter {
  /** `[error (s), clock rate error (relative), kick (s)]`. */
  x: Vec3 = [0, 0, 0];
  /** Covariance of `x`. */
  p: Mat3 = zero3();
  /** Measurement variance learned from the innovations, s²: catches what the model misses, slowly. */
  rInnovation = 0;
  /**
   * Measurement variance learned from second differences of the readings, s²: independent of
   * the filter's state, so right within a few readings of a start.
   */
  rDifference = 0;
  /** How many second differences `rDifference` was learned from. */
  differenceSamples = 0;
  /** The previous reading's motion-compensated increment, for the next second difference. */
  lastIncrement: number | undefined = undefined;
  /** The previous reading; `undefined` after a restart (the error is taken from the next one). */
  last: Reading | undefined = undefined;

  constructor() {
    this.init();
  }

  private init(): void {
    this.x = [0.0, 0.0, 0.0];
    this.p = [
      [0.0, 0.0, 0.0],
      [0.0, PRIOR_CLOCK_VARIANCE, 0.0],
      [0.0, 0.0, PRIOR_KICK_VARIANCE],
    ];
    this.rInnovation = MIN_MEASUREMENT_VARIANCE;
    this.rDifference = INITIAL_MEASUREMENT_VARIANCE;
    this.differenceSamples = 0;
    this.lastIncrement = undefined;
    this.last = undefined;
  }

  /**
   * Forgets the error (the position jumped or the timeline changed) but keeps what was learned
   * about the device: its clock rate error, its kick and its reading noise.
   */
  restart(): void {
    this.last = undefined;
    this.lastIncrement = undefined;
  }

  /** The measurement variance: the larger of the two estimates. */
  effectiveR(): number {
    return fmax(this.rInnovation, this.rDifference);
  }

  /** Whether the reading noise has been measured: until then a kick cannot be told from noise. */
  warmedUp(): boolean {
    return this.differenceSamples >= NOISE_WARM_UP;
  }

  /** Folds one reading in and returns the filtered error. */
  update(now: ServerTime, target: number, playerRate: number, measured: number): Estimate {
    const z = measured - target;
    const prev = this.last;
    this.last = { at: now, target, playerRate, error: z };
    if (prev === undefined) return this.startAt(z);
    const dt = secondsSince(now, prev.at);
    if (!(dt >= 0.0 && dt <= MAX_GAP_S)) return this.startAt(z);

    // Predict.
    const changed = Math.abs(playerRate - prev.playerRate) > 1e-9 * fmax(playerRate, 1.0);
    const a = playerRate * dt;
    const learning = this.warmedUp();
    const s = changed && learning ? 1.0 : 0.0;
    // A rate change may move the position (the kick): learned once the reading noise is known,
    // before that only allowed for, so that it is taken as a step and not as drift.
    const stepVariance = !changed ? 0.0 : learning ? KICK_VARIANCE : UNSEEN_KICK_VARIANCE;
    const moved = target - prev.target;
    this.learnDifference(changed, z - prev.error - (a - moved));
    const predicted = this.x[0] + a * (1.0 + this.x[1]) - moved + s * this.x[2];
    const f: Mat3 = [
      [1.0, a, s],
      [0.0, 1.0, 0.0],
      [0.0, 0.0, 1.0],
    ];
    const p = mul(mul(f, this.p), transpose(f));
    p[0][0] += Q_ERROR * dt + stepVariance;
    p[1][1] += Q_CLOCK * dt;
    p[2][2] += s * Q_KICK;

    // Correct.
    const innovation = z - predicted;
    const spread = p[0][0] + this.effectiveR();
    if (Math.abs(innovation) > OUTLIER_S && innovation * innovation > 36.0 * spread) {
      return this.startAt(z);
    }
    const noiseSample = clamp(
      innovation * innovation - p[0][0],
      MIN_MEASUREMENT_VARIANCE,
      MAX_MEASUREMENT_VARIANCE,
    );
    const gain: Vec3 = [p[0][0] / spread, p[1][0] / spread, p[2][0] / spread];
    const x: Vec3 = [this.x[0], this.x[1], this.x[2]];
    x[0] = predicted;
    const row0: Vec3 = [p[0][0], p[0][1], p[0][2]];
    for (let i = 0; i < 3; i++) {
      x[i] += gain[i]! * innovation;
      for (let j = 0; j < 3; j++) {
        p[i]![j] -= gain[i]! * row0[j]!;
      }
    }
    // Keep the covariance symmetric and its variances non-negative against rounding.
    const tidy = zero3();
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        tidy[i]![j] = i === j ? fmax(p[i]![i]!, 0.0) : (p[i]![j]! + p[j]![i]!) / 2.0;
      }
    }
    x[1] = clamp(x[1], -MAX_CLOCK_ERROR, MAX_CLOCK_ERROR);
    x[2] = clamp(x[2], -MAX_KICK_S, MAX_KICK_S);
    if (x.every(Number.isFinite) && tidy.every((row) => row.every(Number.isFinite))) {
      this.x = x;
      this.p = tidy;
      this.rInnovation += MEASUREMENT_VARIANCE_WEIGHT * (noiseSample - this.rInnovation);
    } else {
      // Cannot happen with finite inputs; never let it poison later steps.
      this.init();
      return this.startAt(z);
    }
    return {
      error: this.x[0],
      sigma: Math.sqrt(this.p[0][0]),
      noise: Math.sqrt(this.effectiveR()),
    };
  }

  /**
   * Learns the reading noise from the second difference of motion-compensated readings: over
   * two steps at one rate the true error moves in a straight line, so what is left is reading
   * noise (six times its variance, for independent readings).
   */
  private learnDifference(rateChanged: boolean, increment: number): void {
    const previous = this.lastIncrement;
    this.lastIncrement = increment;
    if (rateChanged) {
      // A kick may hide in this increment: start over.
      this.lastIncrement = undefined;
      return;
    }
    if (previous === undefined) return;
    const second = clamp(increment - previous, -OUTLIER_S, OUTLIER_S);
    this.differenceSamples = Math.min(this.differenceSamples + 1, U32_MAX);
    const weight = fmax(
      1.0 / Math.min(this.differenceSamples + 1, U32_MAX),
      MEASUREMENT_VARIANCE_WEIGHT,
    );
    const sample = clamp(
      (second * second) / 6.0,
      MIN_MEASUREMENT_VARIANCE,
      MAX_MEASUREMENT_VARIANCE,
    );
    this.rDifference += weight * (sample - this.rDifference);
  }

  /** Takes the error from one reading, uncorrelated with what is known about the device. */
  private startAt(z: number): Estimate {
    this.x[0] = z;
    for (let i = 0; i < 3; i++) {
      this.p[0][i] = 0.0;
      this.p[i]![0] = 0.0;
    }
    // Not trusted more than a rough figure until the next readings confirm it: a first reading
    // may be a frame off, and a filter that believed it would blame the difference on the clock.
    this.p[0][0] = fmax(this.effectiveR(), START_VARIANCE);
    return { error: z, sigma: Math.sqrt(this.p[0][0]), noise: Math.sqrt(this.effectiveR()) };
  }

  /** The player clock's estimated rate error (positive: it runs fast). */
  clockError(): number {
    return this.x[1];
  }

  /** How fast the error grows at `playerRate` (s/s), and the standard deviation of that figure. */
  drift(playerRate: number, roomRate: number): [number, number] {
    const velocity = playerRate * (1.0 + this.x[1]) - roomRate;
    return [velocity, playerRate * Math.sqrt(this.p[1][1])];
  }

  /**
   * The kick to plan with: the learned one once it stands out of its own uncertainty, otherwise
   * none (planning around noise would add error, not remove it).
   */
  kick(): number {
    const kick = this.x[2];
    return this.warmedUp() && Math.abs(kick) > 2.0 * Math.sqrt(this.p[2][2]) ? kick : 0.0;
  }
}

/**
 * Keeps one player on the room timeline: a sans-IO state machine fed one player reading per
 * step. See the module documentation for the run loop and the reasoning.
 */
export class DriftController {
  private readonly config: DriftConfig;
  private readonly filter = new ErrorFilter();
  private mode: Mode = { kind: 'idle' };
  /** The player's rate is not known to be right (new timeline, after a seek): set it next step. */
  private reassertRate = true;
  /**
   * Whether the error has been within the dead zone since the last seek or new timeline. Until
   * then the player is corrected down to the dead zone rather than left anywhere inside the
   * engage threshold: the hysteresis is for a player that was on time and drifted.
   */
  private settled = false;
  /** Just after a new timeline (or the first step): seek at a few frames, ignore the cooldown. */
  private catchUp = true;
  /** Server time of the seek the player is still busy with. */
  private pendingSeek: ServerTime | undefined = undefined;
  /** Server time of the last seek requested. */
  private lastSeekAt: ServerTime | undefined = undefined;
  /** Target of the last seek made while the room was paused. */
  private pausedSeekTarget: number | undefined = undefined;
  /** Whether the last step saw a paused room. */
  private wasPaused = false;
  /** Smoothed seek latency, seconds, and how many landings it was learned from. */
  private seekLatencyS: number;
  private latencySamples = 0;
  /** The last rate asked of the player and when. */
  private commanded: { rate: number; at: ServerTime } | undefined = undefined;
  /** Time of the previous step and the smoothed interval between steps, seconds. */
  private lastStepAt: ServerTime | undefined = undefined;
  private intervalS = 0.1;
  /** Last error reported by `lastErrorUs`, seconds. */
  private lastErrorS = 0.0;
  private seekCount = 0;
  private rateChangeCount = 0;

  /** A controller that has seen nothing yet: its first step may seek at once (catch-up). */
  constructor(config: DriftConfig) {
    this.config = { ...config };
    this.seekLatencyS = Math.max(config.initialSeekLatencyUs, 0) / 1e6;
  }

  /**
   * One control step.
   *
   * `now`: server time (µs) at which `measured` was sampled from the player; `target`: the room
   * timeline's position at `now` (seconds), moving at `roomRate` unless `paused`;
   * `playerRate`: the rate the player runs at now.
   *
   * Error is `measured − target` (positive: the player is ahead). In a paused room the player is
   * seeked to the target when more than about a frame off, and otherwise left alone. In a
   * playing room, large errors are seeked (aimed ahead by the learned seek latency), smaller
   * ones nudged away by the rate.
   *
   * Inputs that are not finite, or rates that are not positive, change nothing and give
   * `keep`: one bad reading must not throw the player around.
   */
  update(
    now: ServerTime,
    target: number,
    roomRate: number,
    paused: boolean,
    measured: number,
    playerRate: number,
  ): Correction {
    const rateOk = (rate: number): boolean => rate > 0.0 && rate <= MAX_RATE;
    const usable =
      Number.isFinite(target) &&
      Number.isFinite(measured - target) &&
      rateOk(roomRate) &&
      rateOk(playerRate);
    if (!usable) return { kind: 'keep' };
    this.trackInterval(now);
    const raw = measured - target;

    if (this.pendingSeek !== undefined) {
      if (microsSince(now, this.pendingSeek) < this.seekTimeoutUs()) {
        // The player is busy seeking: its position is frozen and says nothing.
        this.lastErrorS = raw;
        return { kind: 'keep' };
      }
      // The landing was never reported: assume it happened and look afresh.
      this.pendingSeek = undefined;
      this.filter.restart();
    }

    if (paused) return this.updatePaused(now, target, raw);
    if (this.wasPaused) {
      // Playing again (the caller should also have called `timelineChanged`).
      this.wasPaused = false;
      this.pausedSeekTarget = undefined;
      this.filter.restart();
      this.mode = { kind: 'idle' };
      this.reassertRate = true;
      this.settled = false;
    }

    const estimate = this.filter.update(now, target, playerRate, measured);
    this.lastErrorS = estimate.error;
    const seek = this.seekIfNeeded(now, estimate.error, target, roomRate);
    if (seek !== undefined) return seek;
    return this.controlRate(now, estimate, roomRate, playerRate);
  }

  /**
   * The player finished a seek requested at `requestedAt` (server time) and reported `landed`
   * at `now`; learn the seek latency (smoothed) so the next seek aims ahead by it. The first
   * landings weigh most (the initial latency is only a guess), later ones a quarter each.
   */
  seekLanded(requestedAt: ServerTime, now: ServerTime): void {
    this.pendingSeek = undefined;
    this.filter.restart();
    const latency = secondsSince(now, requestedAt);
    if (!(latency >= 0.0 && latency <= 10.0)) return;
    this.latencySamples = Math.min(this.latencySamples + 1, U32_MAX);
    const weight = fmax(1.0 / Math.min(this.latencySamples + 1, U32_MAX), 0.25);
    this.seekLatencyS += weight * (latency - this.seekLatencyS);
  }

  /**
   * A new timeline took effect (seek/rate change/pause by the room): forget nudge and
   * hysteresis state, allow an immediate seek (catch-up). What was learned about the device
   * (clock rate error, kick, reading noise, seek latency) is kept.
   */
  timelineChanged(): void {
    this.filter.restart();
    this.mode = { kind: 'idle' };
    this.reassertRate = true;
    this.settled = false;
    this.catchUp = true;
    this.lastSeekAt = undefined;
    this.pausedSeekTarget = undefined;
  }

  /**
   * Last error (measured − target) in µs, for `stats.drift_us`: the filtered error while
   * playing, the raw one while paused or seeking. Rounded half away from zero (as Rust does).
   */
  lastErrorUs(): number {
    const v = this.lastErrorS * 1e6;
    if (Number.isNaN(v)) return 0;
    const r = v < 0 ? -Math.round(-v) : Math.round(v);
    return Math.min(Math.max(r, -Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER) + 0;
  }

  /** How many seeks the controller asked for. */
  seeks(): number {
    return this.seekCount;
  }

  /** How many rate changes the controller asked for. */
  rateChanges(): number {
    return this.rateChangeCount;
  }

  private trackInterval(now: ServerTime): void {
    if (this.lastStepAt !== undefined) {
      const dt = secondsSince(now, this.lastStepAt);
      if (dt > 0.0 && dt <= 1.0) this.intervalS += 0.2 * (dt - this.intervalS);
    }
    this.lastStepAt = now;
  }

  private seekTimeoutUs(): number {
    const latencyUs = this.seekLatencyS * 1e6;
    return Math.trunc(clamp(4.0 * latencyUs, 500_000.0, 5_000_000.0));
  }

  private seekThresholdS(): number {
    return this.config.seekThresholdUs / 1e6;
  }

  /** Whether the cooldown lets a seek for an error of `size` seconds through now. */
  private cooldownAllows(now: ServerTime, size: number): boolean {
    if (this.lastSeekAt === undefined) return true;
    return (
      microsSince(now, this.lastSeekAt) >= this.config.seekCooldownUs ||
      size > 4.0 * this.seekThresholdS()
    );
  }

  private seek(now: ServerTime, position: number): Correction {
    this.seekCount += 1;
    this.pendingSeek = now;
    this.lastSeekAt = now;
    this.catchUp = false;
    this.mode = { kind: 'idle' };
    this.reassertRate = true;
    this.settled = false;
    this.filter.restart();
    return { kind: 'seek', position: fmax(position, 0.0) };
  }

  /**
   * Paused room: seek if more than about a frame off (a frame is what a seek can resolve), once
   * per target; no rate games.
   */
  private updatePaused(now: ServerTime, target: number, raw: number): Correction {
    this.wasPaused = true;
    this.mode = { kind: 'idle' };
    this.filter.restart();
    this.lastErrorS = raw;
    const size = Math.abs(raw);
    // Past the dead zone, seek once to the room's exact position: every member's player then
    // lands on the same frame, where stopping wherever the pause caught it could leave members
    // a frame apart.
    const limit = this.config.deadZoneUs / 1e6;
    // A seek to this very target already landed as close as the player can get; only a miss by
    // several frames is retried.
    const tried =
      this.pausedSeekTarget !== undefined &&
      Math.abs(this.pausedSeekTarget - target) < SAME_PAUSED_TARGET_S &&
      size <= CATCH_UP_FRAMES * ASSUMED_FRAME_S;
    if (size > limit && !tried && (this.catchUp || this.cooldownAllows(now, size))) {
      this.pausedSeekTarget = target;
      return this.seek(now, target);
    }
    return { kind: 'keep' };
  }

  /**
   * Playing room: seek during catch-up beyond a few frames, otherwise beyond the seek threshold
   * if the cooldown allows.
   */
  private seekIfNeeded(
    now: ServerTime,
    error: number,
    target: number,
    roomRate: number,
  ): Correction | undefined {
    const size = Math.abs(error);
    // Aim ahead: the player stands still while seeking and resumes where it landed.
    const aim = target + roomRate * this.seekLatencyS;
    if (this.catchUp) {
      if (size > CATCH_UP_FRAMES * ASSUMED_FRAME_S) return this.seek(now, aim);
      this.catchUp = false;
    }
    if (size > this.seekThresholdS() && this.cooldownAllows(now, size)) {
      return this.seek(now, aim);
    }
    return undefined;
  }

  private maxNudge(): number {
    const m = this.config.maxRateNudge;
    return Number.isFinite(m) ? clamp(m, 0.0, 0.5) : 0.0;
  }

  private correctionTimeS(): number {
    const t = this.config.correctionTimeS;
    return Number.isFinite(t) ? fmax(t, 0.05) : 1.5;
  }

  /** Rate control with hysteresis and planned nudges. */
  private controlRate(
    now: ServerTime,
    estimate: Estimate,
    roomRate: number,
    playerRate: number,
  ): Correction {
    const m = this.maxNudge();
    const clock = this.filter.clockError();
    const kick = this.filter.kick();
    // The rate at which this player keeps pace with the room: a fast clock plays slower.
    const neutral = clamp(roomRate / (1.0 + clock), roomRate * (1.0 - m), roomRate * (1.0 + m));
    const dead = fmax(this.config.deadZoneUs / 1e6, 0.0);
    const engage = fmax(this.config.engageUs / 1e6, dead);
    // Coarse readings widen the band: the filter's own uncertainty is not an error. The filter
    // takes readings as independent; frame-quantised ones are not (the sampling phase drifts
    // slowly against the frames), so its uncertainty understates how far the estimate wanders,
    // and a share of the reading noise is added.
    const margin = 2.0 * estimate.sigma + WANDER_SHARE * estimate.noise;
    const error = estimate.error;

    const mode = this.mode;
    if (mode.kind === 'idle') {
      // Outside the dead zone and provably drifting further out (the player's rate was set from
      // a clock estimate that has since improved): waiting for the engage threshold would only
      // make the error larger. Not when rate changes kick: then every correction costs a
      // kick-sized excursion, so the fewer the better.
      const drift = this.filter.drift(playerRate, roomRate);
      const driftingOut =
        kick === 0.0 && error * drift[0] > 0.0 && Math.abs(drift[0]) > 2.0 * drift[1];
      if (Math.abs(error) <= dead) this.settled = true;
      const threshold = this.settled ? engage : dead;
      // In the first readings ever, how noisy they are is not known yet, so neither is what
      // counts as an error: a few tenths of a second of patience (large errors are seeked
      // regardless) buys a first nudge that is planned right.
      const wanted =
        Math.abs(error) > threshold + margin || (driftingOut && Math.abs(error) > dead + margin);
      if (wanted && this.filter.warmedUp()) {
        // Starting kicks the error once, ending kicks it again: cover both.
        return this.startNudge(now, error + 2.0 * kick, error, neutral, roomRate, playerRate);
      }
      // The neutral rate follows the clock estimate, which keeps improving; the player is moved
      // to it when a nudge ends, not on every refinement (that would be chatter). Only a rate
      // outside anything this controller would ask for (a room rate change, someone else's
      // command) is corrected here at once.
      const off = Math.abs(playerRate / roomRate - 1.0) > m + MAX_CLOCK_ERROR;
      if (this.reassertRate || off) {
        this.reassertRate = false;
        return this.commandRate(now, neutral, roomRate, playerRate);
      }
      return this.resendIfIgnored(now, roomRate, playerRate);
    }

    const rate = mode.rate;
    const since = mode.since;
    // How fast the error closes at the nudge rate, and where the player would end up if it went
    // back to the neutral rate now (the kick included).
    const velocity = rate * (1.0 + clock) - roomRate;
    const aim = error + kick;
    // Steps come every `intervalS`: the best possible stop is half a step away.
    const step = (Math.abs(velocity) * this.intervalS) / 2.0;
    const crossed = aim * velocity >= 0.0;
    const t = this.correctionTimeS();
    if (crossed && Math.abs(aim) > engage + margin) {
      // Far past the target or moving away from it (an unexpected kick, a clock estimate that
      // moved): one new plan costs one rate change, stopping and starting again two.
      return this.startNudge(now, aim + kick, error, neutral, roomRate, playerRate);
    }
    if (crossed || Math.abs(aim) <= fmax(fmax(step, estimate.sigma), dead / 2.0)) {
      this.mode = { kind: 'idle' };
      // Settled if it lands in the dead zone; one that did not is planned again from the dead
      // zone, not from the engage threshold.
      this.settled = Math.abs(aim) <= dead;
      this.reassertRate = false;
      return this.commandRate(now, neutral, roomRate, playerRate);
    }
    // Fast nudge close to its end: slow down so it can stop within the dead zone.
    const taper = step > dead && Math.abs(aim) <= (Math.abs(velocity) * t) / 2.0;
    // Far slower than planned (the player did not take the rate, the clock estimate moved):
    // plan again, at most once per correction time.
    const stalled =
      Math.abs(aim) > Math.abs(velocity) * 3.0 * t && secondsSince(now, since) > t;
    if (taper || stalled) {
      return this.startNudge(now, aim + kick, error, neutral, roomRate, playerRate);
    }
    return this.resendIfIgnored(now, roomRate, playerRate);
  }

  /**
   * Starts (or re-plans) a nudge to remove `distance` seconds of error in about the correction
   * time: `rate = neutral × (1 − distance / correctionTime)`, clamped to
   * `roomRate × (1 ± maxRateNudge)`.
   */
  private startNudge(
    now: ServerTime,
    distance: number,
    error: number,
    neutral: number,
    roomRate: number,
    playerRate: number,
  ): Correction {
    const m = this.maxNudge();
    let nudge = clamp(-distance / this.correctionTimeS(), -m, m);
    const least = fmin(MIN_NUDGE, m);
    if (Math.abs(nudge) < least) {
      const towards = distance !== 0.0 ? -distance : -error;
      nudge = copysign(least, towards);
    }
    const rate = clamp(neutral * (1.0 + nudge), roomRate * (1.0 - m), roomRate * (1.0 + m));
    this.mode = { kind: 'nudging', rate, since: now };
    return this.commandRate(now, rate, roomRate, playerRate);
  }

  /** Asks for `rate` unless the player already runs within a hair of it: no chatter. */
  private commandRate(
    now: ServerTime,
    rate: number,
    roomRate: number,
    playerRate: number,
  ): Correction {
    this.commanded = { rate, at: now };
    if (Math.abs(rate - playerRate) > RATE_EPSILON * roomRate) {
      this.rateChangeCount += 1;
      return { kind: 'setRate', rate };
    }
    return { kind: 'keep' };
  }

  /** Sends the last rate again if the player has not taken it after a while. */
  private resendIfIgnored(now: ServerTime, roomRate: number, playerRate: number): Correction {
    const c = this.commanded;
    if (
      c !== undefined &&
      Math.abs(c.rate - playerRate) > RATE_EPSILON * roomRate &&
      microsSince(now, c.at) >= RESEND_AFTER_US
    ) {
      return this.commandRate(now, c.rate, roomRate, playerRate);
    }
    return { kind: 'keep' };
  }
}

/** `now − earlier` in µs (both safe integers, so exact). */
function microsSince(now: ServerTime, earlier: ServerTime): number {
  return now - earlier;
}

/** `now − earlier` in seconds, as Rust's `ServerTime::seconds_since`. */
function secondsSince(now: ServerTime, earlier: ServerTime): number {
  return microsSince(now, earlier) / 1_000_000.0;
}

/** Rust's `f64::max`: a NaN argument gives the other one. */
function fmax(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return Math.max(a, b);
}

/** Rust's `f64::min`: a NaN argument gives the other one. */
function fmin(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return Math.min(a, b);
}

/** `x` limited to `[lo, hi]` as `x.max(lo).min(hi)` in Rust; never throws with odd bounds. */
function clamp(x: number, lo: number, hi: number): number {
  return fmin(fmax(x, lo), hi);
}

/** Rust's `f64::copysign`: the magnitude of `magnitude` with the sign (bit) of `sign`. */
function copysign(magnitude: number, sign: number): number {
  const negative = sign < 0 || Object.is(sign, -0);
  return negative ? -Math.abs(magnitude) : Math.abs(magnitude);
}

function zero3(): Mat3 {
  return [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
}

function mul(a: Mat3, b: Mat3): Mat3 {
  const out = zero3();
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      out[i]![j] = a[i]![0]! * b[0]![j]! + a[i]![1]! * b[1]![j]! + a[i]![2]! * b[2]![j]!;
    }
  }
  return out;
}

function transpose(a: Mat3): Mat3 {
  const out = zero3();
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) out[i]![j] = a[j]![i]!;
  }
  return out;
}
