// Shared pieces of the browser tests: a real relay (the `lockstep` binary) on loopback, real
// headless Chromium (Debian's, driven by playwright-core; never a downloaded browser), pages
// on the relay's demo page, and the measurements the tests assert on.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = resolve(here, '../..');
export const repoDir = resolve(webDir, '..');
export const artifactsDir = join(webDir, 'test-artifacts');

/** The relay binary: `$LOCKSTEP_BIN`, else the workspace's debug build. */
export function relayBinary() {
  const bin = process.env.LOCKSTEP_BIN ?? join(repoDir, 'target/debug/lockstep');
  if (!existsSync(bin)) {
    throw new Error(`no relay binary at ${bin}: run \`cargo build -p lockstep-relay\` first (./scripts/test.sh does)`);
  }
  return bin;
}

/** Debian's Chromium (`apt-get install chromium`); `$CHROMIUM` overrides. */
export function chromiumPath() {
  const path = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(path)) throw new Error(`no Chromium at ${path}: apt-get install chromium (./scripts/test.sh does)`);
  return path;
}

/** Waits for `predicate` (sync or async) to hold, polling; fails with `what` after `timeoutMs`. */
export async function waitUntil(what, predicate, timeoutMs = 15000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await predicate();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the relay on loopback with free ports. Resolves with its page URL and a `stop()`.
 * `ports` pins the ports (to restart a relay where it was).
 */
export async function startRelay({ ports, extraArgs = [] } = {}) {
  const certsDir = mkdtempSync(join(tmpdir(), 'lockstep-certs-'));
  const args = [
    'serve',
    '--http',
    `127.0.0.1:${ports?.http ?? 0}`,
    '--webtransport',
    `127.0.0.1:${ports?.webtransport ?? 0}`,
    '--certs-dir',
    certsDir,
    ...extraArgs,
  ];
  const child = spawn(relayBinary(), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  const url = await Promise.race([
    waitUntil('the relay to print its page URL', () => /open (http:\/\/\S+)/.exec(stdout)?.[1], 20000),
    exited.then((code) => {
      throw new Error(`relay exited (${code}) before it was ready:\n${stderr}`);
    }),
  ]);
  const http = Number(new URL(url).port);
  const webtransport = Number(/WebTransport https:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
  return {
    url: url.replace(/\/?$/, '/'),
    ports: { http, webtransport },
    certsDir,
    logs: () => stderr,
    /** Kills it at once (SIGKILL), as a crash would. */
    async kill() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(certsDir, { recursive: true, force: true });
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(certsDir, { recursive: true, force: true });
    },
  };
}

/**
 * A real `redis-server` on a free loopback port, keeping nothing on disk. Resolves with its
 * `redis://` URL and a `stop()`.
 */
export async function startRedis() {
  const { createServer } = await import('node:net');
  const port = await new Promise((r) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => r(port));
    });
  });
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  await Promise.race([
    waitUntil('redis-server to accept connections', () => /Ready to accept connections/.test(out), 10000),
    exited.then((code) => {
      throw new Error(`redis-server exited (${code}); ./scripts/test.sh installs it:\n${out}`);
    }),
  ]);
  return {
    url: `redis://127.0.0.1:${port}/`,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Headless Chromium as the tests run it (WebTransport needs QUIC: no --disable-quic). */
export async function startBrowser() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/**
 * Opens the demo page in its own browser context (its own storage: another viewer). Console
 * errors and page errors are collected so a test can show them when it fails.
 */
export async function openPage(browser, url, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(url);
  page.lockstepLog = log;
  return page;
}

/** Creates a room through the lobby UI (with the built-in test clip); returns the invite link. */
export async function createRoom(page, { name, room = 'Movie night' }) {
  await page.fill('[data-test=name]', name);
  await page.fill('[data-test=room-name]', room);
  await page.click('[data-test=create]');
  const input = page.locator('[data-test=invite-link]');
  await input.waitFor({ timeout: 15000 });
  await waitUntil('the invite link', async () => (await input.inputValue()).includes('join='));
  return await input.inputValue();
}

/** Where the page's player and room stand, with the browser's wall clock (ms) it was read at. */
export function readPlayer(page) {
  return page.evaluate(() => {
    const w = window.lockstep;
    const v = w?.video;
    return {
      t: performance.timeOrigin + performance.now(),
      position: v ? v.currentTime : NaN,
      paused: v ? v.paused : true,
      rate: v ? v.playbackRate : NaN,
      readyState: v ? v.readyState : 0,
      connection: w?.client?.connection,
      you: w?.client?.you,
      role: w?.client?.me?.role,
      host: w?.client?.room?.host,
      mode: w?.client?.room?.mode,
      roomRate: w?.client?.timeline?.rate,
      roomPaused: w?.client?.timeline?.paused,
      corrections: w?.sync?.corrections,
      frameDriftMs: w?.sync?.frameDriftMs,
    };
  });
}

/**
 * The position difference between two pages in ms, the reads brought to one instant (both
 * pages share the machine's clock): `a` is ahead when positive.
 */
export async function gapMs(a, b) {
  const [ra, rb] = await Promise.all([readPlayer(a), readPlayer(b)]);
  const bAtA = rb.position + (rb.paused ? 0 : ((ra.t - rb.t) / 1000) * rb.rate);
  return { gap: (ra.position - bAtA) * 1000, a: ra, b: rb };
}

/** Saves a screenshot under web/test-artifacts/ (CI keeps it). */
export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export function percentile(values, p) {
  const sorted = [...values].sort((x, y) => x - y);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Waits until the pages hold within `withinMs` of `pages[0]` for `holdMs` (bounded by
 * `timeoutMs`), then measures the gaps for `measureMs`. Returns the gaps in ms.
 */
export async function convergeAndMeasure(pages, { withinMs = 20, holdMs = 1500, timeoutMs = 20000, measureMs = 4000 } = {}) {
  const [first, ...rest] = pages;
  const start = Date.now();
  let holdingSince;
  let last;
  for (;;) {
    const gaps = await Promise.all(rest.map((p) => gapMs(first, p)));
    last = gaps;
    const ok = gaps.every((g) => Math.abs(g.gap) < withinMs && !g.a.paused && !g.b.paused);
    if (ok) {
      holdingSince ??= Date.now();
      if (Date.now() - holdingSince >= holdMs) break;
    } else {
      holdingSince = undefined;
    }
    if (Date.now() - start > timeoutMs) {
      throw new Error(`pages did not converge within ${withinMs} ms in ${timeoutMs} ms: last ${JSON.stringify(last.map((g) => ({ gap: g.gap, a: g.a, b: g.b })))}`);
    }
    await sleep(100);
  }
  const convergedAfterMs = Date.now() - start;
  const samples = [];
  const end = Date.now() + measureMs;
  while (Date.now() < end) {
    for (const p of rest) samples.push((await gapMs(first, p)).gap);
    await sleep(100);
  }
  return { samples, convergedAfterMs };
}
