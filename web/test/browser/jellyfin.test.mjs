// The Jellyfin overlay inside a stand-in for jellyfin-web (Jellyfin itself cannot run here):
// a page with Jellyfin's `ApiClient`, its `video.htmlvideoplayer` appearing when playback
// starts, and `POST /Lockstep/Token` answering as the plugin does (HS256 tokens with the claims
// of docs/AUTH.md, minted by the relay's own `lockstep token`). The relay requires tokens, so
// everything below proves the overlay got its JWT from the "plugin".
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { convergeAndMeasure, percentile, relayBinary, startBrowser, startRelay, waitUntil, webDir } from './harness.mjs';

const SECRET = 'jellyfin-test-secret-0123456789abcdef';
const ITEM = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

let relay;
let browser;
let jellyfin;
const pages = {};

function page(title) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Jellyfin</title>
<style>body{margin:0;background:#101010;color:#ddd;font-family:sans-serif}.videoPlayerContainer{position:fixed;inset:0;background:#000}
.htmlvideoplayer{width:100%;height:100%}</style></head><body>
<button id="play">Play</button>
<script>
window.ApiClient = { serverAddress: () => location.origin, accessToken: () => 'tok-' + new URLSearchParams(location.search).get('user') };
document.getElementById('play').onclick = () => {
  const c = document.createElement('div'); c.className = 'videoPlayerContainer';
  const v = document.createElement('video'); v.className = 'htmlvideoplayer'; v.autoplay = false;
  v.src = '/Videos/${ITEM}/stream.webm?static=true';
  const osd = document.createElement('h3'); osd.className = 'osdTitle'; osd.textContent = ${JSON.stringify(title)};
  c.append(v, osd); document.body.append(c); location.hash = '#/video?id=${ITEM}';
};
</script>
<script src="/Lockstep/overlay.js"></script></body></html>`;
}

/** The stand-in Jellyfin server: its web page, the plugin's two endpoints, and a video stream. */
function startJellyfin(relayUrl) {
  const clip = readFileSync(join(webDir, 'media/test-clip.webm'));
  const minted = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/web/index.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page('Big Buck Bunny'));
    } else if (url.pathname === '/Lockstep/overlay.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(join(webDir, 'dist/lockstep-jellyfin.js')));
    } else if (url.pathname === '/Lockstep/Token' && req.method === 'POST') {
      // As the plugin: only for a signed-in user (Jellyfin's token in both headers).
      const token = String(req.headers['x-emby-token'] ?? '');
      if (!token.startsWith('tok-') || !String(req.headers.authorization ?? '').includes(`Token="${token}"`)) {
        res.writeHead(401).end();
        return;
      }
      const user = token.slice(4);
      const jwt = execFileSync(relayBinary(), ['token', '--secret', SECRET, '--sub', `${user.toLowerCase()}0000000000000000000000000000`.slice(0, 32), '--name', user, '--perm', 'create_rooms'])
        .toString()
        .trim();
      minted.push(user);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: jwt, relayUrl, expiresAt: Math.floor(Date.now() / 1000) + 600 }));
    } else if (url.pathname === `/Videos/${ITEM}/stream.webm`) {
      const range = /bytes=(\d*)-(\d*)/.exec(req.headers.range ?? '');
      const start = range?.[1] ? Number(range[1]) : 0;
      const end = range?.[2] ? Math.min(Number(range[2]), clip.length - 1) : clip.length - 1;
      res.writeHead(range ? 206 : 200, {
        'content-type': 'video/webm',
        'accept-ranges': 'bytes',
        'content-length': end - start + 1,
        ...(range ? { 'content-range': `bytes ${start}-${end}/${clip.length}` } : {}),
      });
      res.end(clip.subarray(start, end + 1));
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ base: `http://127.0.0.1:${server.address().port}`, minted, close: () => new Promise((r) => server.close(r)) })),
  );
}

async function open(user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await context.newPage();
  p.lockstepLog = [];
  p.on('console', (m) => p.lockstepLog.push(`[${m.type()}] ${m.text()}`));
  await p.goto(`${jellyfin.base}/web/index.html?user=${user}`);
  await p.click('#play');
  await p.locator('[data-test=jf-open]').waitFor({ timeout: 10000 });
  await p.click('[data-test=jf-open]');
  await p.locator('[data-test=jf-lobby] [data-test=connection][data-phase=connected]').waitFor({ timeout: 15000 });
  // The stand-in page's player, seen through the overlay's handle (for readPlayer-like checks).
  await p.evaluate(() => {
    window.lockstep = window.lockstepJellyfin;
  });
  return p;
}

before(async () => {
  relay = await startRelay({ extraArgs: ['--require-auth', '--jwt-secret', SECRET] });
  jellyfin = await startJellyfin(relay.url.replace(/\/$/, ''));
  browser = await startBrowser();
});

after(async () => {
  await browser?.close();
  await jellyfin?.close();
  await relay?.stop();
});

test('signed in through the plugin token, the host creates a room for the Jellyfin item', async () => {
  pages.ada = await open('Ada');
  assert.equal(await pages.ada.evaluate(() => window.lockstepJellyfin.client.name), 'Ada', 'the name comes from the JWT');
  await pages.ada.click('[data-test=create]');
  await pages.ada.locator('[data-test=overlay]').waitFor({ timeout: 10000 });
  const media = await pages.ada.evaluate(() => window.lockstepJellyfin.client.room.media);
  assert.equal(media.item_id, ITEM);
  assert.equal(media.url, undefined, 'each member plays their own Jellyfin copy');
  assert.ok(jellyfin.minted.includes('Ada'));
});

test("a second Jellyfin user joins by invite and follows the host's playback", async (t) => {
  const invite = await pages.ada.inputValue('[data-test=invite-link]');
  const code = new URL(invite).searchParams.get('join');
  pages.bob = await open('Bob');
  await pages.bob.fill('[data-test=join-code]', code);
  await pages.bob.click('[data-test=join]');
  await pages.bob.locator('[data-test=overlay]').waitFor({ timeout: 10000 });
  await waitUntil('Bob bound to the player', () => pages.bob.evaluate(() => Boolean(window.lockstepJellyfin.sync)));
  await pages.ada.evaluate(() => window.lockstepJellyfin.client.play());
  await waitUntil("Bob's Jellyfin player playing", () => pages.bob.evaluate(() => !window.lockstepJellyfin.video.paused));
  const { samples } = await convergeAndMeasure([pages.ada, pages.bob]);
  const p95 = percentile(samples.map(Math.abs), 95);
  t.diagnostic(`Jellyfin players: |gap| p95 ${p95.toFixed(2)} ms`);
  assert.ok(p95 < 20, `p95 ${p95} ms`);
});
