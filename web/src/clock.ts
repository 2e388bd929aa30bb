/**
 * Clock synchronisation with the relay: offset *and* skew from the four-timestamp exchange.
 *
 * A port of the Rust SDK's `clock.rs` (same rules, constants and arithmetic). Owns the client's
 * estimate of the relay's server time (PROTOCOL.md §5): when to send a `ping`, which `pong`s to
 * believe, and the line `server = local + offset + skew × Δlocal` fitted through the believable
 * samples. {@link ClockSync} is a sans-IO state machine: it never reads a clock, opens a socket
 * or sets a timer; the caller passes its monotonic clock in (*local time*, integer
 * microseconds) and sends what {@link ClockSync.pollPing} returns (adding `type: 'ping'`).
 * The same inputs always give the same estimate.
 *
 * Why offset and skew: a sample's offset is exact only when the path is symmetric, otherwise
 * off by at most half the round trip, so the sample with the smallest delay is the most
 * trustworthy (Cristian, NTP). But two crystals disagree on the length of a second by tens to
 * hundreds of ppm: at 200 ppm the offset moves 6 ms in the 30 s a lost run of pings or a
 * sleeping tab can last, more than lockstep's whole ~5 ms budget. So the estimate is a line
 * through the recent low-delay samples, its slope the skew, and it keeps predicting between
 * pings.
 *
 * Integers: times are microseconds held in JS numbers, at most 2^53 − 1 (the protocol's limit;
 * the Rust `u64::MAX` saturation bound becomes `Number.MAX_SAFE_INTEGER` here). Where Rust
 * computes in `i128`, the sums here are exact too (error-free float sums, no BigInt).
 */

import type { ServerTime } from './timeline';

/** Fewer accepted samples than this give no skew: a slope through two or three points is mostly their noise. */
const MIN_FIT_SAMPLES = 4;

/** A fitted skew is used only when it exceeds this many standard errors. */
const SIGNIFICANT_SLOPE = 3.0;

/**
 * Samples spanning less local time than this give no skew: a 1 s burst with 100 µs of offset
 * noise could fake a 100 ppm slope. (After the burst the next ping widens the span.)
 */
const MIN_FIT_SPAN_US = 2_000_000;

/**
 * A sample counts as queueing noise when its delay exceeds the minimum by more than
 * `max(minDelay, OUTLIER_MARGIN_FLOOR_US)`: on loopback (minimum 30 µs) a 60 µs sample is still
 * perfectly good, so the margin never shrinks below 1 ms.
 */
const OUTLIER_MARGIN_FLOOR_US = 1_000;

/**
 * The noise a sample has even with no queueing at all (clock granularity, scheduling), µs; it
 * keeps the weight of a sample with no excess delay finite.
 */
const WEIGHT_FLOOR_US = 20.0;

/**
 * Whatever the configuration says, skew is never believed beyond ±10%: no working clock is that
 * far off, and it keeps `1 + skew` well away from zero when converting back.
 */
const SKEW_LIMIT = 0.1;

/** The fewest sent-but-unanswered pings remembered (more when the burst is longer). */
const MIN_OUTSTANDING = 16;

/** The most sent-but-unanswered pings remembered, whatever the burst: a bound on memory. */
const MAX_OUTSTANDING = 1_024;

/** The largest time (the Rust `u64::MAX`): server and local times are at most 2^53 − 1. */
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** Settings of a {@link ClockSync}. All but `maxSkewPpm` are non-negative integers. */
export interface ClockConfig {
  /** Pings in the initial burst (after construction and {@link ClockSync.reset}). */
  burstPings: number;
  /** Local microseconds between the burst's pings. */
  burstIntervalUs: number;
  /**
   * Local microseconds between pings after the burst; the relay suggests one in
   * `welcome.limits.ping_interval_ms` (see {@link ClockSync.setIntervalUs}).
   */
  intervalUs: number;
  /** Accepted samples kept (a bounded ring; the oldest goes first). At least one is always kept. */
  window: number;
  /**
   * Samples whose pong arrived longer ago than this (local µs, measured from the newest pong)
   * are dropped: the line is fitted over recent history only.
   */
  maxSampleAgeUs: number;
  /**
   * The largest skew believed, in parts per million (either sign); the fit is clamped to it.
   * Capped at 100 000 (10%) whatever is set here.
   */
  maxSkewPpm: number;
}

/** Ten pings 100 ms apart, then one every 2 s; 64 samples of at most 2 minutes; ±500 ppm. */
export function defaultClockConfig(): ClockConfig {
  return {
    burstPings: 10,
    burstIntervalUs: 100_000,
    intervalUs: 2_000_000,
    window: 64,
    maxSampleAgeUs: 120_000_000,
    maxSkewPpm: 500.0,
  };
}

/**
 * The current estimate of the relay's clock against the local one:
 * `server(local) = local + offsetUs + skew × (local − reference)`.
 */
export interface ClockEstimate {
  /** `server − local` at local time `reference`, microseconds. */
  offsetUs: number;
  /** The local time (µs) `offsetUs` holds at: the newest sample used. */
  reference: number;
  /**
   * How fast the offset changes: d(offset)/d(local), e.g. `200e-6` when the relay's clock runs
   * 200 ppm faster than the local one. Zero until enough samples span enough time.
   */
  skew: number;
  /**
   * Bound on the offset error: half the best (minimum-delay) sample's delay, µs. This is what
   * path asymmetry can hide; it does not cover skew extrapolated far ahead.
   */
  errorBoundUs: number;
  /** The best sample's round-trip delay (without the relay's processing), µs. */
  bestRttUs: number;
  /** How many samples the estimate was derived from (those kept after outlier rejection). */
  samples: number;
}

/** A ping to send (the caller adds `type: 'ping'`). */
export interface PingProbe {
  seq: number;
  /** Local time at sending, µs. */
  t0: number;
}

/** A pong received (structurally the protocol's `pong` message). */
export interface PongReply {
  /** The ping's `seq`. */
  seq: number;
  /** The ping's `t0`, echoed. */
  t0: number;
  /** Server time the ping arrived. */
  t1: ServerTime;
  /** Server time the pong left. */
  t2: ServerTime;
}

/** One four-timestamp exchange (PROTOCOL.md §5). */
export class ClockSample {
  constructor(
    /** Client time the ping was sent. */
    readonly t0: number,
    /** Relay time the ping arrived. */
    readonly t1: number,
    /** Relay time the pong was sent. */
    readonly t2: number,
    /** Client time the pong arrived. */
    readonly t3: number,
  ) {}

  /**
   * Estimated `server − client` offset, µs (`((t1 − t0) + (t2 − t3)) / 2`, truncated toward
   * zero). Exact when the path is symmetric; otherwise off by at most half the delay, which is
   * why the sample with the smallest delay is the best one.
   */
  offsetMicros(): number {
    return halfSum(sub(this.t1, this.t0), sub(this.t2, this.t3));
  }

  /** Round-trip delay, µs, excluding the relay's own processing time. */
  delayMicros(): number {
    return sub(sub(this.t3, this.t0), sub(this.t2, this.t1));
  }

  /** Bound on the offset error: half the delay. */
  errorBoundMicros(): number {
    return Math.trunc(Math.max(this.delayMicros(), 0) / 2);
  }
}

/**
 * The fitted line, kept with an integer part so that a 1.7e15 µs offset (a UNIX-epoch server
 * clock) loses no precision to floating point.
 */
interface Fit {
  /** Integer part of the offset at `reference`: the best sample's offset. */
  base: number;
  /** The fitted offset at `reference` minus `base`, µs. */
  residual: number;
  reference: number;
  skew: number;
  errorBoundUs: number;
  bestRttUs: number;
  samples: number;
}

/**
 * The sans-IO clock synchroniser: sends pings, takes pongs, estimates server time.
 *
 * ```ts
 * const clock = new ClockSync(defaultClockConfig());
 * const ping = clock.pollPing(5_000_000)!;          // the burst starts at once
 * clock.pollTimeout();                               // 5_100_000
 * clock.onPong({ seq: ping.seq, t0: ping.t0, t1: 6_000_200, t2: 6_000_200 }, 5_000_400);
 * clock.serverTime(5_000_400);                       // 6_000_400
 * ```
 */
export class ClockSync {
  private config: ClockConfig;
  /**
   * The `seq` of the next ping (u32, wrapping). Not reset by {@link reset}, so a late pong from
   * the previous relay can never match a ping sent to the next one.
   */
  private nextSeq = 0;
  /** Pings of the current burst already sent. */
  private burstSent = 0;
  /** Local time the next ping is due. */
  private nextPingAt = 0;
  /** Local time the last ping was sent, once one was. */
  private lastPingAt: number | undefined = undefined;
  /** Sent pings not yet answered, `[seq, t0]`, oldest first, bounded. */
  private outstanding: Array<[number, number]> = [];
  /** Accepted samples, oldest first, at most `window`. */
  private samples: ClockSample[] = [];
  /** The estimate from `samples`, recomputed whenever they change. */
  private fit: Fit | undefined = undefined;

  /** A synchroniser with no samples; its first ping (the burst's start) is due at once. */
  constructor(config: ClockConfig) {
    this.config = { ...config };
  }

  /**
   * The ping to send now (local time `now`), if one is due.
   *
   * A burst of `burstPings` pings `burstIntervalUs` apart comes first, so an estimate exists
   * within about a second; then one ping per `intervalUs`. The ping's `t0` is `now` and `seq`
   * increments with every ping. The next one is scheduled from `now`, so a caller that polls
   * late gets one ping, not a catch-up flurry.
   */
  pollPing(now: number): PingProbe | undefined {
    if (now < this.nextPingAt) return undefined;
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    let gap: number;
    if (this.burstSent < this.config.burstPings) {
      this.burstSent += 1;
      gap =
        this.burstSent < this.config.burstPings
          ? this.config.burstIntervalUs
          : this.config.intervalUs;
    } else {
      gap = this.config.intervalUs;
    }
    // A zero gap would hand out pings forever at one instant.
    this.nextPingAt = saturatingAdd(now, Math.max(gap, 1));
    this.lastPingAt = now;

    const cap = Math.min(
      Math.max(this.config.burstPings + 4, MIN_OUTSTANDING),
      MAX_OUTSTANDING,
    );
    while (this.outstanding.length >= cap) this.outstanding.shift();
    this.outstanding.push([seq, now]);
    return { seq, t0: now };
  }

  /** When the next ping is due (local µs). Always defined: pings never stop. */
  pollTimeout(): number | undefined {
    return this.nextPingAt;
  }

  /**
   * A pong arrived at local time `t3`; returns the sample it made, if accepted.
   *
   * Ignored (`undefined`): a `seq` matching no unanswered ping (unknown, or already answered),
   * a `t0` other than the ping's (the ping stays unanswered then), and impossible timestamps
   * (`t3 < t0`, `t2 < t1`, or the relay holding the ping longer than the whole round trip).
   * An accepted sample may still be an outlier that the estimate does not use.
   */
  onPong(pong: PongReply, t3: number): ClockSample | undefined {
    const idx = this.outstanding.findIndex((entry) => entry[0] === pong.seq);
    if (idx < 0) return undefined;
    const t0 = this.outstanding[idx]![1];
    if (t0 !== pong.t0) return undefined;
    const sample = new ClockSample(t0, pong.t1, pong.t2, t3);
    if (t3 < t0 || sample.t2 < sample.t1 || sample.delayMicros() < 0) return undefined;
    this.outstanding.splice(idx, 1);

    const window = Math.max(this.config.window, 1);
    while (this.samples.length >= window) this.samples.shift();
    this.samples.push(sample);
    const maxAge = this.config.maxSampleAgeUs;
    this.samples = this.samples.filter((s) => Math.max(t3 - s.t3, 0) <= maxAge);
    this.fit = fitLine(this.samples, this.skewLimit());
    return sample;
  }

  /** The current estimate, once at least one sample exists. */
  estimate(): ClockEstimate | undefined {
    const f = this.fit;
    if (f === undefined) return undefined;
    return {
      offsetUs: f.base + f.residual,
      reference: f.reference,
      skew: f.skew,
      errorBoundUs: f.errorBoundUs,
      bestRttUs: f.bestRttUs,
      samples: f.samples,
    };
  }

  /**
   * Server time at local time `local` (offset and skew applied), once estimated. Saturates at
   * 0 and 2^53 − 1.
   */
  serverTime(local: number): ServerTime | undefined {
    const f = this.fit;
    if (f === undefined) return undefined;
    const since = sub(local, f.reference);
    const fraction = f.residual + f.skew * since;
    return saturateTime(local, f.base, roundToInt(fraction));
  }

  /**
   * Local time at which the server clock reads `server`, once estimated: the inverse of
   * {@link serverTime} (to within a microsecond of rounding). Saturates at 0 and 2^53 − 1.
   */
  localTime(server: ServerTime): number | undefined {
    const f = this.fit;
    if (f === undefined) return undefined;
    // server = ref + base + residual + (1 + skew)(local - ref)
    const beyond = exactSum([server, -f.reference, -f.base]) - f.residual;
    const since = roundToInt(beyond / (1.0 + f.skew));
    return saturateTime(f.reference, since);
  }

  /**
   * Forgets every sample and unanswered ping (after reconnecting to another relay, whose clock
   * is another clock); pings restart with a burst due at `now`.
   *
   * The interval adopted with {@link setIntervalUs} is kept, and so is the `seq` counter, so
   * that late pongs from the old relay match nothing.
   */
  reset(now: number): void {
    this.burstSent = 0;
    this.nextPingAt = now;
    this.lastPingAt = undefined;
    this.outstanding = [];
    this.samples = [];
    this.fit = undefined;
  }

  /**
   * Adopts the relay's suggested interval between pings (`welcome.limits.ping_interval_ms` ×
   * 1000). After the burst, the next ping is rescheduled to the new interval after the last
   * one. Zero (or anything not positive) is ignored.
   */
  setIntervalUs(intervalUs: number): void {
    if (!(intervalUs > 0)) return;
    this.config.intervalUs = intervalUs;
    if (this.burstSent >= this.config.burstPings && this.lastPingAt !== undefined) {
      this.nextPingAt = saturatingAdd(this.lastPingAt, intervalUs);
    }
  }

  /** The configured skew limit as a fraction, sanitised (never NaN, at most {@link SKEW_LIMIT}). */
  private skewLimit(): number {
    const limit = Math.abs(this.config.maxSkewPpm) * 1e-6;
    return Number.isNaN(limit) ? 0.0 : Math.min(limit, SKEW_LIMIT);
  }
}

/**
 * Fits the line through `samples`, or `undefined` when there are none.
 *
 * 1. The best sample is the one with the smallest delay (the first such): its offset error is
 *    at most half its delay, so it gives the error bound, the integer base of the offset, and
 *    the fallback estimate.
 * 2. Samples whose delay exceeds `min + max(min, 1 ms)` waited in some queue; queueing is
 *    rarely symmetric, so their offsets can be off by up to half that wait. They are dropped.
 * 3. With at least {@link MIN_FIT_SAMPLES} left spanning at least {@link MIN_FIT_SPAN_US},
 *    offset is fitted against local time by weighted least squares, weights
 *    `1 / (excess² + floor²)` (a sample's delay above the minimum is jitter split between the
 *    directions in some unknown way). The slope (skew) is kept only when significant, clamped
 *    to `±skewLimit`, and the offset refitted at that slope.
 * 4. Otherwise skew is zero and the offset is the best sample's.
 */
function fitLine(samples: readonly ClockSample[], skewLimit: number): Fit | undefined {
  if (samples.length === 0) return undefined;
  const delays = samples.map((s) => s.delayMicros());
  let bestIndex = 0;
  for (let i = 1; i < samples.length; i++) {
    if (delays[i]! < delays[bestIndex]!) bestIndex = i;
  }
  const best = samples[bestIndex]!;
  const minDelay = Math.max(delays[bestIndex]!, 0);
  const threshold = minDelay + Math.max(minDelay, OUTLIER_MARGIN_FLOOR_US);
  const base = best.offsetMicros();
  const errorBoundUs = Math.abs(best.errorBoundMicros());
  const bestRttUs = Math.abs(minDelay);

  const kept: ClockSample[] = [];
  const keptDelays: number[] = [];
  samples.forEach((s, i) => {
    if (delays[i]! <= threshold) {
      kept.push(s);
      keptDelays.push(delays[i]!);
    }
  });
  const fallback: Fit = {
    base,
    residual: 0.0,
    reference: midpoint(best),
    skew: 0.0,
    errorBoundUs,
    bestRttUs,
    samples: kept.length,
  };

  const mids = kept.map(midpoint);
  const first = mids.length > 0 ? Math.min(...mids) : 0;
  const last = mids.length > 0 ? Math.max(...mids) : 0;
  if (kept.length < MIN_FIT_SAMPLES || Math.max(last - first, 0) < MIN_FIT_SPAN_US) {
    return fallback;
  }

  // The newest sample used is the reference; x and y are small numbers relative to it and to
  // the best offset, so doubles keep sub-microsecond precision.
  const reference = mids[mids.length - 1]!;
  const xs: number[] = [];
  const ys: number[] = [];
  const ws: number[] = [];
  kept.forEach((s, i) => {
    xs.push(sub(mids[i]!, reference));
    ys.push(sub(s.offsetMicros(), base));
    const excess = keptDelays[i]! - minDelay;
    ws.push(1.0 / (excess * excess + WEIGHT_FLOOR_US * WEIGHT_FLOOR_US));
  });
  const n = xs.length;
  let sumW = 0.0;
  for (let i = 0; i < n; i++) sumW += ws[i]!;
  let sumWx = 0.0;
  for (let i = 0; i < n; i++) sumWx += ws[i]! * xs[i]!;
  const meanX = sumWx / sumW;
  let sumWy = 0.0;
  for (let i = 0; i < n; i++) sumWy += ws[i]! * ys[i]!;
  const meanY = sumWy / sumW;
  let sxx = 0.0;
  let sxy = 0.0;
  for (let i = 0; i < n; i++) {
    const w = ws[i]!;
    const dx = xs[i]! - meanX;
    sxx = sxx + w * dx * dx;
    sxy = sxy + w * dx * (ys[i]! - meanY);
  }
  let slope = sxy / sxx;
  if (!Number.isFinite(slope) || !Number.isFinite(meanX) || !Number.isFinite(meanY)) {
    return fallback;
  }
  // Keep the slope only where the data show it: on a jittery path the best samples' offsets
  // scatter by milliseconds, and a slope fitted over a few seconds of that is noise that
  // extrapolation would multiply. Its standard error must be well below the slope.
  let sumW2 = 0.0;
  for (let i = 0; i < n; i++) sumW2 += ws[i]! * ws[i]!;
  const nEff = (sumW * sumW) / sumW2;
  let residualSum = 0.0;
  for (let i = 0; i < n; i++) {
    const r = ys[i]! - (meanY + slope * (xs[i]! - meanX));
    residualSum += ws[i]! * r * r;
  }
  const residualVar = residualSum / sumW;
  const xVar = sxx / sumW;
  const standardError = Math.sqrt(residualVar / (xVar * fmax(nEff - 2.0, 1.0)));
  if (Number.isFinite(standardError) && Math.abs(slope) < SIGNIFICANT_SLOPE * standardError) {
    slope = 0.0;
  }
  const skew = slope > skewLimit ? skewLimit : slope < -skewLimit ? -skewLimit : slope;
  // The weighted least-squares line passes through the weighted mean point; at a clamped slope
  // that is still the best intercept.
  const residual = meanY - skew * meanX;
  if (!Number.isFinite(residual)) return fallback;
  return {
    base,
    residual,
    reference,
    skew,
    errorBoundUs,
    bestRttUs,
    samples: kept.length,
  };
}

/** The local time a sample's offset describes: halfway between sending and receiving (floored). */
function midpoint(s: ClockSample): number {
  const lo = Math.min(s.t0, s.t3);
  const hi = Math.max(s.t0, s.t3);
  return lo + Math.floor((hi - lo) / 2);
}

/** Rust's `f64::max`: a NaN argument gives the other one. */
function fmax(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return Math.max(a, b);
}

/**
 * Rounds half away from zero (Rust's `f64::round`); NaN gives 0 and huge values are capped at
 * ±2^60, far enough out that any time they are added to saturates just as in Rust.
 */
function roundToInt(v: number): number {
  if (Number.isNaN(v)) return 0;
  const r = v < 0 ? -Math.round(-v) : Math.round(v);
  return Math.min(Math.max(r, -(2 ** 60)), 2 ** 60) + 0;
}

/** `a − b` for integers, as Rust's `i128` difference converted to a double. */
function sub(a: number, b: number): number {
  return exactSum([a, -b]);
}

/**
 * The sum of a few integer terms (each below 2^61) as Rust's `i128` arithmetic gives it,
 * converted to a double: the exact sum, correctly rounded (so exact whenever it is a safe
 * integer). Each addition's rounding error is recovered exactly (Knuth's two-sum) and added
 * back once at the end. No BigInt: the browser bundle targets engines without it.
 */
function exactSum(terms: readonly number[]): number {
  let sum = 0;
  let error = 0;
  for (const t of terms) {
    const next = sum + t;
    const virtual = next - sum;
    error += sum - (next - virtual) + (t - virtual);
    sum = next;
  }
  return Number.isFinite(sum) ? sum + error : sum;
}

/**
 * `(a + b) / 2` truncated toward zero, exactly, for safe integers `a` and `b` (the result is
 * always a safe integer).
 */
function halfSum(a: number, b: number): number {
  const sum = a + b;
  if (Number.isSafeInteger(sum) || !Number.isFinite(sum)) return Math.trunc(sum / 2);
  // The float sum rounded: a + b = sum + error exactly. |sum| ≥ 2^53, so sum is even.
  const virtual = sum - a;
  const error = a - (sum - virtual) + (b - virtual);
  const half = error % 2 === 0 ? error / 2 : (error - Math.sign(sum)) / 2;
  return sum / 2 + half;
}

/** `a + b` saturating at the largest time. */
function saturatingAdd(a: number, b: number): number {
  return Math.min(a + b, MAX_TIME);
}

/** The exact sum of integer terms, saturated to the time range `[0, 2^53 − 1]`. */
function saturateTime(...terms: number[]): number {
  return Math.min(Math.max(exactSum(terms), 0), MAX_TIME);
}
