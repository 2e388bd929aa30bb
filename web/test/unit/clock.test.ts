// The Rust SDK's clock.rs tests (and its module example), ported scenario for scenario: the
// same simulated network, seeds, parameters and bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ClockSync,
  defaultClockConfig,
  type ClockConfig,
  type ClockSample,
  type PingProbe,
  type PongReply,
} from '../../src/clock';
import { XorShift64Star as Rng, roundHalfAway } from './sim';

/** A network between the client and the relay, and the relay's clock. */
interface Net {
  /** Server clock = local × (1 + skew) + offset. */
  skew: number;
  offset: number;
  /** Fixed one-way delays, µs (different: the path is asymmetric). */
  baseOut: number;
  baseBack: number;
  /** Mean of the exponential jitter per direction, µs. */
  jitter: number;
  /** Probability that a datagram is lost, per direction. */
  loss: number;
  /** Probability of a 50 ms queueing spike, per direction. */
  spike: number;
  /** Jitter uniform in ±`jitter` (the sync benchmark's link emulator) rather than exponential. */
  uniform: boolean;
}

function serverAt(net: Net, local: number): number {
  return net.offset + Math.floor(local * (1.0 + net.skew));
}

function trueServer(net: Net, local: number): number {
  return serverAt(net, local);
}

function oneWay(net: Net, rng: Rng, base: number): number | undefined {
  if (rng.chance(net.loss)) return undefined;
  const spike = rng.chance(net.spike) ? 50_000.0 : 0.0;
  const jitter = net.uniform ? net.jitter * (2.0 * rng.unit() - 1.0) : rng.exponential(net.jitter);
  return base + jitter + spike;
}

function wan(skewPpm: number): Net {
  return {
    skew: skewPpm * 1e-6,
    offset: 1_700_000_000_000_000,
    baseOut: 9_000.0,
    baseBack: 6_000.0,
    jitter: 400.0,
    loss: 0.03,
    spike: 0.03,
    uniform: false,
  };
}

function loopback(skewPpm: number): Net {
  return {
    skew: skewPpm * 1e-6,
    offset: 1_700_000_000_000_000,
    baseOut: 45.0,
    baseBack: 45.0,
    jitter: 5.0,
    loss: 0.01,
    spike: 0.0,
    uniform: false,
  };
}

const START = 3_000_000;

/** Drives a `ClockSync` over a `Net`, faster than real time. */
class Sim {
  readonly net: Net;
  private readonly rng: Rng;
  readonly clock = new ClockSync(defaultClockConfig());
  now = START;
  /** Pongs in flight: [arrival local time, pong]. */
  private readonly inFlight: Array<[number, PongReply]> = [];
  /** Local time of the last ping sent. */
  lastPing = 0;

  constructor(net: Net, seed: bigint) {
    this.net = net;
    this.rng = new Rng(seed);
  }

  /** Runs until local time `until`, calling `check` after every event. */
  run(until: number, pinging: boolean, check: (sim: Sim) => void): void {
    for (;;) {
      const nextPing = pinging ? (this.clock.pollTimeout() ?? Infinity) : Infinity;
      let nextPong = Infinity;
      for (const [at] of this.inFlight) nextPong = Math.min(nextPong, at);
      const next = Math.max(Math.min(nextPing, nextPong), this.now);
      if (next > until) {
        this.now = until;
        return;
      }
      this.now = next;
      const i = this.inFlight.findIndex(([at]) => at === next);
      if (i >= 0) {
        // Vec::swap_remove.
        const [at, pong] = this.inFlight[i]!;
        const last = this.inFlight.pop()!;
        if (i < this.inFlight.length) this.inFlight[i] = last;
        this.clock.onPong(pong, at);
      } else {
        const ping = this.clock.pollPing(this.now);
        if (ping !== undefined) {
          this.lastPing = this.now;
          this.send(ping);
        }
      }
      check(this);
    }
  }

  private send(ping: PingProbe): void {
    const out = oneWay(this.net, this.rng, this.net.baseOut);
    if (out === undefined) return;
    const arrive = ping.t0 + out;
    const held = 10.0 + this.rng.unit() * 40.0;
    const back = oneWay(this.net, this.rng, this.net.baseBack);
    if (back === undefined) return;
    const t1 = serverAt(this.net, arrive);
    const t2 = serverAt(this.net, arrive + held);
    const t3 = Math.ceil(arrive + held + back);
    this.inFlight.push([t3, { seq: ping.seq, t0: ping.t0, t1, t2 }]);
  }

  /** |estimated − true| server time at local time `at`, µs. */
  errorAt(at: number): number | undefined {
    const est = this.clock.serverTime(at);
    if (est === undefined) return undefined;
    return Math.abs(est - trueServer(this.net, at));
  }
}

const SEEDS: readonly bigint[] = [0x9e37_79b9_7f4a_7c15n, 42n, 0xdead_beefn, 7n];
const SKEWS_PPM: readonly number[] = [0.0, 200.0, -200.0];
const TOLERANCE_US = 20;

test('module example: one exchange gives offset, server time and bound', () => {
  const clock = new ClockSync(defaultClockConfig());
  // At local time 5 s the first ping of the burst is due at once.
  const ping = clock.pollPing(5_000_000);
  assert.ok(ping, 'a burst starts at once');
  assert.equal(clock.pollTimeout(), 5_100_000);
  // The relay (whose clock reads 1 s more) answers; the pong arrives 400 us later.
  const pong: PongReply = { seq: ping.seq, t0: ping.t0, t1: 6_000_200, t2: 6_000_200 };
  const sample = clock.onPong(pong, 5_000_400);
  assert.ok(sample, 'matches the ping');
  assert.equal(sample.offsetMicros(), 1_000_000);
  assert.equal(clock.serverTime(5_000_400), 6_000_400);
  assert.equal(clock.estimate()?.errorBoundUs, 200);
});

test('the burst gives an estimate within a second', () => {
  for (const skew of SKEWS_PPM) {
    for (const seed of SEEDS) {
      const sim = new Sim(wan(skew), seed);
      sim.run(START + 1_000_000, true, () => {});
      const est = sim.clock.estimate();
      assert.ok(est, 'estimated after 1 s');
      assert.ok(est.samples >= 5, JSON.stringify(est));
      // At least the 20 ms that make up the path: a wrong offset would be way off.
      assert.ok(sim.errorAt(sim.now)! < 10_000);
    }
  }
});

/** After the burst, the error of `serverTime` stays within the estimate's own bound. */
test('error stays within the bound on a lossy jittery path', () => {
  for (const skew of SKEWS_PPM) {
    for (const seed of SEEDS) {
      const sim = new Sim(wan(skew), seed);
      let worst = 0;
      let worstMargin = -Infinity;
      sim.run(START + 180_000_000, true, (sim) => {
        if (sim.now < START + 1_000_000) return;
        const est = sim.clock.estimate();
        assert.ok(est, 'estimated');
        const err = sim.errorAt(sim.now)!;
        worst = Math.max(worst, err);
        worstMargin = Math.max(worstMargin, err - est.errorBoundUs);
        assert.ok(
          err <= est.errorBoundUs + TOLERANCE_US,
          `skew ${skew} seed ${seed} at ${sim.now - START}: error ${err} > bound ${est.errorBoundUs}`,
        );
      });
      console.log(`wan skew ${skew} seed ${seed}: worst ${worst} us, margin ${worstMargin}`);
    }
  }
});

/**
 * A long jittery path (the sync benchmark's 50 ms link): the best samples' offsets scatter by
 * milliseconds, and a slope fitted to that scatter would be extrapolated into tens of
 * milliseconds. Without a real skew, none may be invented.
 */
test('a jittery path does not invent a skew', () => {
  for (const seed of SEEDS) {
    const net: Net = {
      skew: 0.0,
      offset: 1_700_000_000_000_000,
      baseOut: 40_000.0,
      baseBack: 40_000.0,
      jitter: 10_000.0,
      loss: 0.01,
      spike: 0.0,
      uniform: true,
    };
    const sim = new Sim(net, seed);
    let worst = 0;
    sim.run(START + 60_000_000, true, (sim) => {
      if (sim.now >= START + 1_000_000) worst = Math.max(worst, sim.errorAt(sim.now)!);
    });
    const est = sim.clock.estimate()!;
    assert.ok(Math.abs(est.skew) < 50e-6, `seed ${seed}: invented skew ${est.skew}`);
    // 30 s on without pings, still within a few ms.
    const later = sim.now + 30_000_000;
    const drifted = sim.errorAt(later)!;
    assert.ok(drifted < 5_000, `seed ${seed}: ${drifted} us off 30 s later`);
    assert.ok(worst < 10_000, `seed ${seed}: worst ${worst} us`);
  }
});

test('a loopback path is accurate to tens of microseconds', () => {
  for (const skew of SKEWS_PPM) {
    for (const seed of SEEDS) {
      const sim = new Sim(loopback(skew), seed);
      let worst = 0;
      // With skew, the first 2 s hold no slope yet (at 200 ppm the burst's best sample ages
      // 200 us per second); from the fit on, it is as good as without.
      const from = skew === 0.0 ? 1_000_000 : 5_000_000;
      sim.run(START + 120_000_000, true, (sim) => {
        if (sim.now < START + from) return;
        const err = sim.errorAt(sim.now)!;
        worst = Math.max(worst, err);
        const bound = sim.clock.estimate()!.errorBoundUs;
        assert.ok(err <= bound + TOLERANCE_US, `${err} > ${bound}`);
        assert.ok(err < 50, `skew ${skew} seed ${seed} at ${sim.now}: ${err}`);
      });
      const est = sim.clock.estimate()!;
      assert.ok(est.bestRttUs <= 120, JSON.stringify(est));
      assert.ok(est.errorBoundUs <= 60, JSON.stringify(est));
      console.log(`loopback skew ${skew} seed ${seed}: worst ${worst} us`);
    }
  }
});

test('skew keeps the estimate right between pings', () => {
  for (const skew of [200.0, -200.0]) {
    for (const seed of SEEDS) {
      // A jittery, lossy, spiky path with symmetric base delays, so that what is measured is
      // the extrapolation, not the (unknowable) asymmetry.
      const net: Net = { ...wan(skew), baseOut: 7_500.0, baseBack: 7_500.0 };
      const sim = new Sim(net, seed);
      sim.run(START + 60_000_000, true, () => {});
      const atLastPing = sim.errorAt(sim.lastPing)!;
      // No more pings: 30 s of silence (lost pongs, a sleeping tab).
      const until = sim.lastPing + 30_000_000;
      sim.run(until, false, () => {});
      const est = sim.clock.estimate()!;
      assert.ok(Math.abs(est.skew * 1e6 - skew) < 5.0, JSON.stringify(est));
      const err = sim.errorAt(until)!;
      assert.ok(err < 1_000, `skew ${skew} seed ${seed}: ${err} us off after 30 s`);
      // The same offset without skew would be 6 ms off by now.
      const skewFree = roundHalfAway(est.offsetUs) + until;
      const skewFreeErr = Math.abs(skewFree - trueServer(sim.net, until));
      assert.ok(skewFreeErr > 5_000, `${skewFreeErr}`);
      console.log(
        `skew ${skew} seed ${seed}: fitted ${(est.skew * 1e6).toFixed(1)} ppm; ${atLastPing} us off ` +
          `at the last ping, ${err} us 30 s later, ${skewFreeErr} us without skew`,
      );
    }
  }
});

/**
 * Sends the due ping at `now` and answers it through a path of `out` + `back` µs with the
 * server clock at `now + offset` (no skew); returns what `onPong` said.
 */
function exchange(
  clock: ClockSync,
  now: number,
  offset: number,
  out: number,
  back: number,
): ClockSample | undefined {
  const ping = clock.pollPing(now);
  assert.ok(ping, 'a ping is due');
  const t1 = now + out + offset;
  return clock.onPong({ seq: ping.seq, t0: ping.t0, t1, t2: t1 }, now + out + back);
}

const OFFSET = 1_700_000_000_000_000;

test('outliers do not move the estimate', () => {
  const clock = new ClockSync(defaultClockConfig());
  let now = START;
  for (let i = 0; i < 20; i++) {
    const jitter = (i * 37) % 100;
    exchange(clock, now, OFFSET, 5_000 + jitter, 5_000 + ((i * 53) % 100));
    now = clock.pollTimeout()!;
  }
  const before = clock.estimate()!;
  assert.equal(before.samples, 20);
  // 50 ms of queueing on the way out, none back: the sample's offset is 25 ms off.
  const spike = exchange(clock, now, OFFSET, 55_000, 5_000);
  assert.ok(spike, 'accepted');
  assert.equal(spike.offsetMicros(), OFFSET + 25_000);
  assert.deepEqual(clock.estimate(), before);
  // Just over the margin (min delay 10 ms + 10 ms) is out too; just under counts.
  now = clock.pollTimeout()!;
  assert.ok(exchange(clock, now, OFFSET, 15_001, 5_000), 'accepted');
  assert.deepEqual(clock.estimate(), before);
  now = clock.pollTimeout()!;
  assert.ok(exchange(clock, now, OFFSET, 14_900, 5_000), 'accepted');
  assert.equal(clock.estimate()!.samples, 21);
});

test('a sample with little delay beats the rest', () => {
  const clock = new ClockSync(defaultClockConfig());
  exchange(clock, START, OFFSET, 3_000, 1_000);
  const first = clock.estimate()!;
  assert.equal(first.errorBoundUs, 2_000);
  assert.equal(first.bestRttUs, 4_000);
  assert.equal(first.skew, 0.0);
  // Better: 200 us each way, symmetric.
  exchange(clock, START + 100_000, OFFSET, 200, 200);
  const est = clock.estimate()!;
  assert.equal(est.errorBoundUs, 200);
  assert.equal(est.bestRttUs, 400);
  assert.equal(est.offsetUs, OFFSET);
  // The first sample's 4 ms exceeds 400 us + 1 ms: queueing, not used any more.
  assert.equal(est.samples, 1);
  const local = START + 500_000;
  assert.equal(clock.serverTime(local), local + OFFSET);
});

test('bad pongs are ignored', () => {
  const clock = new ClockSync(defaultClockConfig());
  const ping = clock.pollPing(START)!;
  const good: PongReply = {
    seq: ping.seq,
    t0: ping.t0,
    t1: OFFSET + START + 500,
    t2: OFFSET + START + 520,
  };
  // Unknown seq.
  const unknown = { ...good, seq: ping.seq + 1000 };
  assert.equal(clock.onPong(unknown, START + 1_000), undefined);
  // A t0 other than the ping's (a forgery or a confused relay): ignored, ping still open.
  const wrongT0 = { ...good, t0: ping.t0 + 1 };
  assert.equal(clock.onPong(wrongT0, START + 1_000), undefined);
  // Impossible: arrived before it was sent; the relay sent before it received; the relay held
  // it longer than the whole round trip.
  assert.equal(clock.onPong(good, START - 1), undefined);
  const backwards = { ...good, t2: OFFSET + START + 400 };
  assert.equal(clock.onPong(backwards, START + 1_000), undefined);
  const heldTooLong = { ...good, t2: OFFSET + START + 5_000 };
  assert.equal(clock.onPong(heldTooLong, START + 1_000), undefined);
  assert.equal(clock.estimate(), undefined);
  // The real answer is still taken, once.
  const sample = clock.onPong(good, START + 1_020);
  assert.ok(sample, 'the real pong');
  assert.equal(sample.delayMicros(), 1_000);
  assert.equal(clock.onPong(good, START + 1_020), undefined);
  assert.equal(clock.onPong(good, START + 900), undefined);
  assert.equal(clock.estimate()!.samples, 1);
});

test('pongs from before a reset are ignored', () => {
  const clock = new ClockSync(defaultClockConfig());
  const old = clock.pollPing(START)!;
  exchange(clock, START + 100_000, OFFSET, 100, 100);
  assert.ok(clock.estimate() !== undefined);
  clock.reset(START + 200_000);
  assert.equal(clock.estimate(), undefined);
  assert.equal(clock.serverTime(START), undefined);
  assert.equal(clock.localTime(OFFSET), undefined);
  const late: PongReply = { seq: old.seq, t0: old.t0, t1: OFFSET, t2: OFFSET };
  assert.equal(clock.onPong(late, START + 200_100), undefined);
  // A fresh burst with fresh seqs.
  const first = clock.pollPing(START + 200_000)!;
  assert.ok(first.seq > 1);
  assert.equal(clock.pollTimeout(), START + 300_000);
});

test('local time inverts server time', () => {
  for (const skew of SKEWS_PPM) {
    const sim = new Sim(wan(skew), 1n);
    sim.run(START + 30_000_000, true, () => {});
    const est = sim.clock.estimate()!;
    assert.ok(Math.abs(est.skew * 1e6 - skew) < 20.0, JSON.stringify(est));
    for (const x of [0, 1, START, sim.now, sim.now + 1, sim.now + 3_600_000_000, 2 ** 52]) {
      const server = sim.clock.serverTime(x)!;
      const back = sim.clock.localTime(server)!;
      assert.ok(Math.abs(back - x) <= 1, `skew ${skew}: ${x} -> ${server} -> ${back}`);
    }
  }
});

test('pings come in a burst, then at the interval', () => {
  const clock = new ClockSync(defaultClockConfig());
  assert.equal(clock.pollTimeout(), 0);
  const sent: PingProbe[] = [];
  let now = START;
  while (now < START + 10_000_000) {
    const ping = clock.pollPing(now);
    if (ping !== undefined) {
      assert.equal(ping.t0, now);
      assert.equal(clock.pollPing(now), undefined, 'one ping per due time');
      sent.push(ping);
    }
    now += 10_000;
  }
  assert.deepEqual(
    sent.map((p) => p.t0 - START),
    [
      0, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 700_000, 800_000, 900_000,
      2_900_000, 4_900_000, 6_900_000, 8_900_000,
    ],
  );
  assert.deepEqual(
    sent.map((p) => p.seq),
    Array.from({ length: 14 }, (_, i) => i),
  );

  // The relay suggests 5 s: the next ping moves to 5 s after the last.
  clock.setIntervalUs(5_000_000);
  assert.equal(clock.pollTimeout(), START + 13_900_000);
  clock.setIntervalUs(0);
  assert.equal(clock.pollTimeout(), START + 13_900_000);
  // Polled late: one ping, the next an interval after it, no catch-up.
  assert.ok(clock.pollPing(START + 20_000_000) !== undefined);
  assert.equal(clock.pollPing(START + 20_000_000), undefined);
  assert.equal(clock.pollTimeout(), START + 25_000_000);

  // A reset starts a new burst; the adopted interval stays.
  clock.reset(START + 30_000_000);
  assert.equal(clock.pollTimeout(), START + 30_000_000);
  for (let i = 0; i < 10; i++) {
    const at = START + 30_000_000 + i * 100_000;
    assert.ok(clock.pollPing(at) !== undefined);
  }
  assert.equal(clock.pollTimeout(), START + 30_900_000 + 5_000_000);
});

test('skew is clamped and old samples age out', () => {
  const config: ClockConfig = { ...defaultClockConfig(), window: 8, maxSampleAgeUs: 10_000_000 };
  let clock = new ClockSync(config);
  // A relay clock gaining 2000 ppm (2 ms per second) on a clean path.
  let now = START;
  for (let i = 0; i < 30; i++) {
    const drift = Math.floor((now - START) / 500);
    exchange(clock, now, OFFSET + drift, 100, 100);
    now = clock.pollTimeout()!;
  }
  const est = clock.estimate()!;
  assert.equal(est.skew, 500e-6);
  assert.ok(est.samples <= 6, `10 s at one ping per 2 s: ${JSON.stringify(est)}`);
  assert.equal(clock['samples'].length, est.samples);
  // Window of 8 holds: the burst alone is 10.
  clock = new ClockSync({ ...defaultClockConfig(), window: 8 });
  for (let i = 0; i < 10; i++) exchange(clock, START + i * 100_000, OFFSET, 100, 100);
  assert.equal(clock['samples'].length, 8);
  assert.equal(clock.estimate()!.samples, 8);
});

/** The TS analogue of `u64::MAX`: times are at most 2^53 − 1 (PROTOCOL.md §5). */
const MAX = Number.MAX_SAFE_INTEGER;

function assertTime(t: number | undefined): void {
  if (t !== undefined) assert.ok(Number.isSafeInteger(t) && t >= 0, `not a time: ${t}`);
}

test('extreme values do not throw', () => {
  const configs: ClockConfig[] = [
    defaultClockConfig(),
    {
      burstPings: 0xffff_ffff,
      burstIntervalUs: 0,
      intervalUs: 0,
      window: 0,
      maxSampleAgeUs: 0,
      maxSkewPpm: NaN,
    },
    {
      burstPings: 0,
      burstIntervalUs: MAX,
      intervalUs: MAX,
      window: Number.MAX_SAFE_INTEGER,
      maxSampleAgeUs: MAX,
      maxSkewPpm: Infinity,
    },
  ];
  const times = [0, 1, Math.floor(MAX / 2), MAX - 1, MAX];
  for (const config of configs) {
    const clock = new ClockSync(config);
    for (const t0 of times) {
      for (const t1 of times) {
        for (const t2 of times) {
          for (const t3 of times) {
            const ping = clock.pollPing(t0);
            if (ping === undefined) {
              clock.reset(t0);
              continue;
            }
            clock.onPong({ seq: ping.seq, t0: ping.t0, t1, t2 }, t3);
            const est = clock.estimate();
            if (est !== undefined) assert.ok(!Number.isNaN(est.offsetUs + est.skew));
            for (const x of times) {
              assertTime(clock.serverTime(x));
              assertTime(clock.localTime(x));
            }
            clock.setIntervalUs(t3);
            assertTime(clock.pollTimeout());
          }
        }
      }
    }
  }
  // Extreme but possible samples give saturated, not wrapped, times.
  const clock = new ClockSync(defaultClockConfig());
  const ping = clock.pollPing(0)!;
  assert.ok(clock.onPong({ seq: ping.seq, t0: 0, t1: MAX, t2: MAX }, 0) !== undefined);
  assert.equal(clock.serverTime(MAX), MAX);
  assert.equal(clock.localTime(0), 0);
});

/**
 * Not in the Rust tests (there `i128` makes it trivial): sample arithmetic past 2^53 is exact
 * and truncates toward zero, as PROTOCOL.md §5 specifies.
 */
test('sample arithmetic is exact beyond 2^53', () => {
  // (MAX − 1) + (MAX − 2) = 2^54 − 5, odd: halved and truncated toward zero.
  const up = new ClockSync(defaultClockConfig());
  const ping = up.pollPing(1)!;
  const sample = up.onPong({ seq: ping.seq, t0: 1, t1: MAX, t2: MAX }, 2)!;
  assert.equal(sample.offsetMicros(), MAX - 2);
  assert.equal(sample.delayMicros(), 1);
  assert.equal(up.serverTime(2), MAX);
  assert.equal(up.serverTime(0), MAX - 2);
  assert.equal(up.localTime(MAX - 2), 0);
  // −(MAX − 1) − MAX = −(2^54 − 3): truncated toward zero, not floored.
  const down = new ClockSync(defaultClockConfig());
  const ping2 = down.pollPing(MAX - 1)!;
  const sample2 = down.onPong({ seq: ping2.seq, t0: MAX - 1, t1: 0, t2: 0 }, MAX)!;
  assert.equal(sample2.offsetMicros(), -(MAX - 1));
  assert.equal(sample2.delayMicros(), 1);
  assert.equal(down.serverTime(MAX), 1);
  assert.equal(down.serverTime(MAX - 1), 0);
  assert.equal(down.localTime(1), MAX);
  assert.equal(down.localTime(0), MAX - 1);
});
