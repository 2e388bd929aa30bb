/**
 * The overlay inside jellyfin-web, injected by the Jellyfin plugin.
 *
 * It waits for Jellyfin's video player (`video.htmlvideoplayer`), puts a small "Watch together"
 * button over it, and opens the overlay (compact) in a side panel. The relay token and the
 * relay's URL come from the plugin (`POST <server>/Lockstep/Token`), so members join as their
 * Jellyfin user. Rooms name a Jellyfin item (`media.item_id`, no URL): every member plays their
 * own copy, and the overlay keeps Jellyfin's own `<video>` on the room's timeline.
 */
import { LockstepClient, LockstepError } from './client';
import type { Media, PolicyMode } from './protocol';
import { h, show } from './ui/dom';
import { modeSelect, roomPasswordInput } from './ui/fields';
import { explainError } from './ui/errors';
import { type OverlayHandle, mountConnectionBadge, mountOverlay } from './ui/overlay';
import { injectExtraStyles, injectStyles } from './ui/styles';
import { Toasts } from './ui/toasts';
import { VideoSync } from './video';

/** The parts of jellyfin-web's `window.ApiClient` we use. */
interface JellyfinApiClient {
  serverAddress(): string;
  accessToken(): string;
}

declare global {
  interface Window {
    ApiClient?: JellyfinApiClient;
    /** For tests and debugging: the injection's state. */
    lockstepJellyfin?: LockstepJellyfin;
  }
}

/** What the plugin's token endpoint answers. */
export interface TokenResponse {
  token: string;
  relayUrl: string;
  expiresAt?: string | number;
}

const PLAYER_SELECTOR = 'video.htmlvideoplayer';
/** The most often the document is searched for the player after DOM changes, ms. */
const CHECK_DELAY_MS = 250;
/** How often the player we found is checked for removal or replacement, ms. */
const POLL_MS = 1000;
const INVITE_KEY = 'lockstep.invite';

const JF_CSS = `
.ls-jf-open {
  position: fixed; top: 80px; right: 16px; z-index: 2147482400;
  display: inline-flex; align-items: center; gap: 8px; min-height: 38px; padding: 8px 14px; margin: 0;
  font: 600 14px/1.2 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #e9edf3;
  background: rgba(19, 23, 30, .82); border: 1px solid rgba(255,255,255,.16); border-radius: 999px;
  box-shadow: 0 6px 20px rgba(0,0,0,.4); cursor: pointer; backdrop-filter: blur(6px);
  opacity: .88; transition: opacity .15s, background-color .15s;
}
.ls-jf-open[hidden] { display: none; }
.ls-jf-open:hover { opacity: 1; background: rgba(30, 36, 48, .95); }
.ls-jf-open:focus-visible { outline: none; box-shadow: 0 0 0 2px #0d1015, 0 0 0 4px #9ab8ff; }
.ls-jf-open[data-in-room]::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: #3ecf8e; box-shadow: 0 0 0 3px rgba(62,207,142,.2); }
.ls-jf-panel {
  position: fixed; top: 0; right: 0; bottom: 0; z-index: 2147482500; width: min(380px, 100vw);
  display: flex; flex-direction: column; background: #0d1015; border-left: 1px solid #2c3441;
  box-shadow: -12px 0 40px rgba(0,0,0,.45); transform: translateX(105%); transition: transform .2s ease-out;
  visibility: hidden;
}
.ls-jf-panel[data-open] { transform: none; visibility: visible; }
.ls-jf-head { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 12px 12px 12px 16px; border-bottom: 1px solid #2c3441; }
.ls-jf-head h2 { font-size: 16px; }
.ls-jf-body { flex: 1 1 auto; min-height: 0; overflow-y: auto; overscroll-behavior: contain; }
.ls-jf-lobby { display: flex; flex-direction: column; gap: 12px; padding: 12px; }
.ls-jf-lobby .ls-section { display: flex; flex-direction: column; gap: 10px; padding: 12px; background: var(--ls-surface); border: 1px solid var(--ls-border); border-radius: var(--ls-radius); }
.ls-jf-note { padding: 10px 12px; margin: 12px 12px 0; border-radius: var(--ls-radius); background: #1b2440; border: 1px solid #2f3f6b; color: #cfe0ff; display: flex; flex-direction: column; gap: 8px; }
.ls-jf-error { color: #ffb3b3; font-size: 13.5px; padding: 8px 12px; border-radius: 8px; background: #2a1a1f; border: 1px solid #5a2f35; }
@media (prefers-reduced-motion: reduce) { .ls-jf-panel { transition: none; } }
`;

/** The Jellyfin server's base URL (`ApiClient`, or the page's address minus `/web/...`). */
function serverBase(): string {
  const api = window.ApiClient;
  const fromApi = api && typeof api.serverAddress === 'function' ? api.serverAddress() : undefined;
  if (fromApi) return fromApi.replace(/\/+$/, '');
  const path = location.pathname;
  const web = path.lastIndexOf('/web/');
  return `${location.origin}${web >= 0 ? path.slice(0, web) : ''}`;
}

/** A relay token for the signed-in Jellyfin user, from the plugin. */
export async function fetchToken(): Promise<TokenResponse> {
  const api = window.ApiClient;
  const access = api && typeof api.accessToken === 'function' ? api.accessToken() : undefined;
  if (!access) throw new Error('Sign in to Jellyfin first.');
  const response = await fetch(`${serverBase()}/Lockstep/Token`, {
    method: 'POST',
    headers: {
      Authorization: `MediaBrowser Token="${access}"`,
      'X-Emby-Token': access,
      Accept: 'application/json',
    },
    cache: 'no-store',
  });
  if (!response.ok) {
    const why =
      response.status === 404
        ? ' (is the Lockstep plugin installed?)'
        : response.status === 401 || response.status === 403
          ? ' (not allowed: sign in again, or ask the admin)'
          : '';
    throw new Error(`The Lockstep plugin answered ${response.status}${why}.`);
  }
  const body = (await response.json()) as Record<string, unknown>;
  const token = body.token ?? body.Token;
  const relayUrl = body.relayUrl ?? body.RelayUrl;
  if (typeof token !== 'string' || typeof relayUrl !== 'string' || !relayUrl) {
    throw new Error('The Lockstep plugin gave no relay token or URL: check its settings.');
  }
  return { token, relayUrl, expiresAt: (body.expiresAt ?? body.ExpiresAt) as string | number | undefined };
}

const ID = /([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})/i;

/** Jellyfin ids compare without dashes, in lower case. */
function normaliseId(id: string | undefined): string | undefined {
  return id ? id.replace(/-/g, '').toLowerCase() : undefined;
}

/** What Jellyfin is playing: item id, title and duration, as far as the page tells. */
export function currentItem(video: HTMLVideoElement | undefined, lastDetailsId?: string): { itemId?: string; title: string; duration?: number } {
  let itemId: string | undefined;
  for (const src of [video?.currentSrc, video?.src, video?.querySelector('source')?.src]) {
    const m = src ? new RegExp(`/(?:Videos|Items)/${ID.source}/`, 'i').exec(src) : null;
    if (m) {
      itemId = m[1];
      break;
    }
  }
  const metadata = typeof navigator !== 'undefined' ? navigator.mediaSession?.metadata : undefined;
  if (!itemId && metadata) {
    for (const art of metadata.artwork ?? []) {
      const m = new RegExp(`/Items/${ID.source}/Images`, 'i').exec(art.src);
      if (m) {
        itemId = m[1];
        break;
      }
    }
  }
  if (!itemId) {
    const m = new RegExp(`[?&]id=${ID.source}`, 'i').exec(location.hash);
    if (m) itemId = m[1];
  }
  itemId = normaliseId(itemId ?? lastDetailsId);
  const osd = document.querySelector('.osdTitle, .videoOsdTitle, .osdMediaTitle');
  const title =
    metadata?.title?.trim() ||
    osd?.textContent?.trim() ||
    document.title.replace(/\s*[|-]\s*Jellyfin\s*$/i, '').trim() ||
    'Jellyfin video';
  const duration = video && Number.isFinite(video.duration) && video.duration > 0 ? video.duration : undefined;
  return { itemId, title: title.slice(0, 256), duration };
}

/** Finds Jellyfin's player element as it comes and goes, without watching the DOM for long. */
class PlayerWatcher {
  current?: HTMLVideoElement;
  private observer?: MutationObserver;
  private checkTimer?: ReturnType<typeof setTimeout>;
  private pollTimer?: ReturnType<typeof setInterval>;

  constructor(private onChange: (video: HTMLVideoElement | undefined) => void) {}

  start(): void {
    this.check();
  }

  private observe(): void {
    if (this.observer || !document.body) return;
    this.observer = new MutationObserver(() => this.schedule());
    this.observer.observe(document.body, { childList: true, subtree: true });
  }

  /** DOM changes come in bursts: look once per burst. */
  private schedule(): void {
    if (this.checkTimer !== undefined) return;
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      this.check();
    }, CHECK_DELAY_MS);
  }

  private check(): void {
    const video = document.querySelector<HTMLVideoElement>(PLAYER_SELECTOR) ?? undefined;
    if (video !== this.current) {
      this.current = video;
      this.onChange(video);
    }
    if (video) {
      // Found: no need to watch every DOM change; a cheap poll notices when it goes away.
      this.observer?.disconnect();
      this.observer = undefined;
      this.pollTimer ??= setInterval(() => this.check(), POLL_MS);
    } else {
      clearInterval(this.pollTimer);
      this.pollTimer = undefined;
      this.observe();
    }
  }

  stop(): void {
    this.observer?.disconnect();
    this.observer = undefined;
    clearTimeout(this.checkTimer);
    clearInterval(this.pollTimer);
  }
}

class LockstepJellyfin {
  client?: LockstepClient;
  sync?: VideoSync;
  video?: HTMLVideoElement;
  private readonly toasts: Toasts;
  private readonly button: HTMLButtonElement;
  private readonly panel: HTMLElement;
  private readonly body: HTMLElement;
  private readonly leaveButton: HTMLButtonElement;
  private overlay?: OverlayHandle;
  private overlaySync?: VideoSync;
  private lobby?: HTMLElement;
  private badge?: { el: HTMLElement; destroy(): void };
  private mismatch?: HTMLElement;
  private starting?: Promise<LockstepClient>;
  private startError?: string;
  private open = false;
  private invite?: string;
  private lastDetailsId?: string;
  private readonly watcher: PlayerWatcher;

  constructor() {
    injectStyles();
    injectExtraStyles('lockstep-jellyfin-styles', JF_CSS);
    this.toasts = new Toasts();
    this.invite = readInvite();

    this.button = h('button', {
      class: 'ls-jf-open',
      type: 'button',
      'data-test': 'jf-open',
      'aria-haspopup': 'dialog',
      text: 'Watch together',
    });
    this.button.addEventListener('click', () => this.setOpen(!this.open));
    this.leaveButton = h('button', {
      class: 'ls-btn ls-btn-danger ls-btn-sm',
      type: 'button',
      'data-test': 'leave',
      text: 'Leave',
    });
    this.leaveButton.addEventListener('click', () => {
      this.client?.leaveRoom().catch((e: unknown) => this.toasts.show(explainError(e), 'error'));
    });
    const close = h('button', {
      class: 'ls-btn ls-btn-ghost ls-btn-sm',
      type: 'button',
      'data-test': 'jf-close',
      'aria-label': 'Close the panel',
      text: '✕',
    });
    close.addEventListener('click', () => this.setOpen(false));
    this.body = h('div', { class: 'ls-jf-body' });
    this.panel = h(
      'aside',
      { class: 'ls-theme ls-jf-panel', 'data-test': 'jf-panel', role: 'dialog', 'aria-label': 'Watch together' },
      h('div', { class: 'ls-jf-head' }, h('h2', { text: 'Watch together' }), h('div', { class: 'ls-row' }, this.leaveButton, close)),
      this.body,
    );
    // Jellyfin's player has keyboard shortcuts (space, arrows, f...) on the document: typing in
    // the panel must not reach them.
    for (const type of ['keydown', 'keyup', 'keypress'] as const) {
      this.panel.addEventListener(type, (e) => {
        if (e.key !== 'Escape') e.stopPropagation();
      });
    }
    this.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.setOpen(false);
    });
    document.body.append(this.button, this.panel);

    window.addEventListener('hashchange', this.onHash);
    this.onHash();
    this.watcher = new PlayerWatcher((video) => this.onVideo(video));
    this.watcher.start();
    this.update();
  }

  private readonly onHash = () => {
    const m = /#\/details\?(?:.*&)?id=([0-9a-f-]{32,36})/i.exec(location.hash);
    if (m) this.lastDetailsId = m[1];
  };

  private onVideo(video: HTMLVideoElement | undefined): void {
    this.video?.removeEventListener('loadedmetadata', this.onMediaChange);
    this.video = video;
    // Jellyfin may reuse its element for the next item: look again when new media loads.
    video?.addEventListener('loadedmetadata', this.onMediaChange);
    this.bindSync();
    if (video && this.invite && !this.client?.room) this.setOpen(true);
    this.update();
  }

  private readonly onMediaChange = () => {
    this.bindSync();
    this.update();
  };

  /** Whether Jellyfin plays the room's item (or either is unknown). */
  private playsRoomItem(): boolean {
    const roomItem = normaliseId(this.client?.room?.media?.item_id);
    const playing = currentItem(this.video, this.lastDetailsId).itemId;
    return roomItem === undefined || playing === undefined || roomItem === playing;
  }

  /**
   * A VideoSync exists exactly while we are in a room and Jellyfin plays its item: another
   * film must not be pushed around by the room's timeline.
   */
  private bindSync(): void {
    const want = this.client?.room && this.video && this.playsRoomItem() ? this.video : undefined;
    if (this.sync && this.sync.video === want) return;
    this.sync?.destroy();
    this.sync = want && this.client ? new VideoSync(this.client, want, { loadMedia: false }) : undefined;
  }

  private setOpen(open: boolean): void {
    this.open = open;
    if (open) void this.ensureClient();
    this.update();
    if (open) {
      const first = this.panel.querySelector<HTMLElement>('input, button:not([data-test=jf-close])');
      setTimeout(() => first?.focus(), 50);
    }
  }

  /** Fetches a token and connects, once. */
  private ensureClient(): Promise<LockstepClient> {
    if (this.client) return Promise.resolve(this.client);
    if (this.starting) return this.starting;
    this.startError = undefined;
    this.starting = (async () => {
      const first = await fetchToken();
      let initial: string | undefined = first.token;
      const client = new LockstepClient({
        relayUrl: first.relayUrl,
        // The first connection uses the token we have; later ones (reconnects) fetch afresh.
        token: async () => {
          const t = initial;
          initial = undefined;
          return t ?? (await fetchToken()).token;
        },
      });
      this.client = client;
      client.on('room', () => {
        this.bindSync();
        this.update();
      });
      client.on('notice', (n) => {
        if (!client.room) this.toasts.show(n.text, n.level === 'error' ? 'error' : 'info');
      });
      client.on('connection', () => this.update());
      client.connect().catch(() => undefined);
      return client;
    })();
    this.starting.then(
      () => {
        this.starting = undefined;
        this.update();
      },
      (e: unknown) => {
        this.starting = undefined;
        this.startError = explainError(e);
        this.update();
      },
    );
    this.update();
    return this.starting;
  }

  /** Brings the button and the panel in line with the state. */
  private update(): void {
    const client = this.client;
    const inRoom = client?.room !== undefined;
    show(this.button, this.video !== undefined || inRoom || this.invite !== undefined);
    this.button.textContent = inRoom ? 'Watching together' : this.invite ? 'Join watch party' : 'Watch together';
    if (inRoom) this.button.setAttribute('data-in-room', '');
    else this.button.removeAttribute('data-in-room');
    this.button.setAttribute('aria-expanded', String(this.open));
    if (this.open) this.panel.setAttribute('data-open', '');
    else this.panel.removeAttribute('data-open');
    show(this.leaveButton, inRoom);

    if (!client) {
      this.unmountOverlay();
      this.unmountLobby();
      this.body.replaceChildren(
        this.startError
          ? h(
              'div',
              { class: 'ls-jf-lobby' },
              h('p', { class: 'ls-jf-error', 'data-test': 'jf-error', role: 'alert', text: this.startError }),
              h('button', {
                class: 'ls-btn ls-btn-primary',
                type: 'button',
                'data-test': 'jf-retry',
                text: 'Try again',
                on: { click: () => void this.ensureClient() },
              }),
            )
          : h('div', { class: 'ls-jf-lobby' }, h('p', { class: 'ls-muted', text: 'Connecting…' })),
      );
      return;
    }
    if (inRoom) {
      this.unmountLobby();
      if (!this.overlay || this.overlaySync !== this.sync) {
        this.unmountOverlay();
        this.mismatch = h('div', { class: 'ls-jf-note', 'data-test': 'jf-media-mismatch' });
        this.body.replaceChildren(this.mismatch);
        this.overlaySync = this.sync;
        this.overlay = mountOverlay(this.body, client, this.sync, {
          compact: true,
          video: this.video,
          inviteBaseUrl: `${location.origin}${location.pathname}`,
          toasts: this.toasts,
        });
      }
      this.updateMismatch(client);
    } else {
      this.unmountOverlay();
      if (!this.lobby) this.mountLobby(client);
    }
  }

  /** "This room watches X": when the room's item is not what Jellyfin plays. */
  private updateMismatch(client: LockstepClient): void {
    const note = this.mismatch;
    if (!note) return;
    const media = client.room?.media;
    const differs = media?.item_id !== undefined && (!this.video || !this.playsRoomItem());
    show(note, differs);
    if (!differs || !media?.item_id) return;
    const itemId = media.item_id;
    const go = h('button', {
      class: 'ls-btn ls-btn-primary ls-btn-sm',
      type: 'button',
      'data-test': 'jf-open-item',
      text: 'Open it in Jellyfin',
    });
    go.addEventListener('click', () => {
      location.hash = `#/details?id=${encodeURIComponent(itemId)}`;
    });
    note.replaceChildren(
      h(
        'span',
        {},
        'This room watches ',
        h('strong', { text: media.title }),
        this.video ? ', not what is playing here: the room’s playback is not applied to it.' : '.',
      ),
      h('div', {}, go),
    );
  }

  private unmountOverlay(): void {
    this.overlay?.destroy();
    this.overlay = undefined;
    this.overlaySync = undefined;
    this.mismatch?.remove();
    this.mismatch = undefined;
  }

  private unmountLobby(): void {
    this.badge?.destroy();
    this.badge = undefined;
    this.lobby?.remove();
    this.lobby = undefined;
  }

  private mountLobby(client: LockstepClient): void {
    this.badge = mountConnectionBadge(client);
    const item = currentItem(this.video, this.lastDetailsId);
    const field = (label: string, input: HTMLElement) => h('label', { class: 'ls-field' }, h('span', { text: label }), input);
    const roomName = h('input', {
      class: 'ls-input',
      type: 'text',
      'data-test': 'room-name',
      maxlength: '64',
      value: `${item.title}`.slice(0, 64),
    });
    const mode = modeSelect();
    const password = roomPasswordInput();
    const create = h('button', { class: 'ls-btn ls-btn-primary', type: 'submit', 'data-test': 'create', text: 'Create room' });
    const createError = h('p', { class: 'ls-jf-error', 'data-test': 'create-error', role: 'alert' });
    const nowPlaying = h('p', { class: 'ls-small ls-muted', 'data-test': 'jf-now-playing' });
    const refreshNowPlaying = () => {
      const it = currentItem(this.video, this.lastDetailsId);
      nowPlaying.textContent = this.video ? `Now playing: ${it.title}` : 'Start playing something first: the room watches what you play.';
      create.disabled = !this.video;
    };
    refreshNowPlaying();
    const createForm = h(
      'form',
      { class: 'ls-section', 'data-test': 'create-form', novalidate: true },
      h('h3', { text: 'Start a watch party' }),
      nowPlaying,
      field('Room name', roomName),
      field('Who decides', mode),
      field('Password', password),
      createError,
      create,
    );
    show(createError, false);
    createForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const it = currentItem(this.video, this.lastDetailsId);
      const media: Media = { title: it.title };
      if (it.itemId) media.item_id = it.itemId;
      if (it.duration !== undefined) media.duration = it.duration;
      create.disabled = true;
      show(createError, false);
      client
        .createRoom({
          name: roomName.value.trim() || it.title.slice(0, 64) || 'Watch party',
          media,
          mode: mode.value as PolicyMode,
          password: password.value || undefined,
        })
        .catch((err: unknown) => {
          createError.textContent = explainError(err);
          show(createError, true);
        })
        .finally(refreshNowPlaying);
    });

    const code = h('input', {
      class: 'ls-input',
      type: 'text',
      'data-test': 'join-code',
      placeholder: 'Invite code or link',
      spellcheck: 'false',
      autocomplete: 'off',
      value: this.invite ?? '',
    });
    const joinPassword = h('input', {
      class: 'ls-input',
      type: 'password',
      'data-test': 'join-password',
      placeholder: 'Only if the room has one',
      maxlength: '128',
    });
    const join = h('button', { class: 'ls-btn ls-btn-primary', type: 'submit', 'data-test': 'join', text: 'Join room' });
    const joinError = h('p', { class: 'ls-jf-error', 'data-test': 'join-error', role: 'alert' });
    show(joinError, false);
    const joinForm = h(
      'form',
      { class: 'ls-section', 'data-test': 'join-form', novalidate: true },
      h('h3', { text: 'Join a watch party' }),
      field('Invite', code),
      field('Password', joinPassword),
      joinError,
      join,
    );
    joinForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = parseInvite(code.value);
      if (!value) {
        code.focus();
        return;
      }
      join.disabled = true;
      show(joinError, false);
      client
        .joinRoom(value, joinPassword.value || undefined)
        .then(() => {
          this.invite = undefined;
          clearInvite();
        })
        .catch((err: unknown) => {
          joinError.textContent = explainError(err);
          show(joinError, true);
          if (err instanceof LockstepError && err.code === 'wrong_password') joinPassword.focus();
        })
        .finally(() => {
          join.disabled = false;
        });
    });

    this.lobby = h(
      'div',
      { class: 'ls-jf-lobby', 'data-test': 'jf-lobby' },
      h('div', {}, this.badge.el),
      this.invite ? joinForm : createForm,
      this.invite ? createForm : joinForm,
    );
    this.body.replaceChildren(this.lobby);
  }

  destroy(): void {
    this.watcher.stop();
    this.video?.removeEventListener('loadedmetadata', this.onMediaChange);
    window.removeEventListener('hashchange', this.onHash);
    this.unmountOverlay();
    this.unmountLobby();
    this.sync?.destroy();
    this.client?.close();
    this.toasts.destroy();
    this.button.remove();
    this.panel.remove();
  }
}

/** An invite code from a code or a link (`?join=`, also inside the hash route). */
function parseInvite(text: string): string {
  const t = text.trim();
  const m = /[?&#]join=([^&#\s]+)/.exec(t);
  return m ? decodeURIComponent(m[1]) : t;
}

/** `?join=<code>` from the address (kept for the session: Jellyfin's router rewrites URLs). */
function readInvite(): string | undefined {
  const m = /[?&]join=([^&#]+)/.exec(location.search) ?? /[?&]join=([^&]+)/.exec(location.hash);
  try {
    if (m) {
      const code = decodeURIComponent(m[1]);
      sessionStorage.setItem(INVITE_KEY, code);
      return code;
    }
    return sessionStorage.getItem(INVITE_KEY) ?? undefined;
  } catch {
    return m ? decodeURIComponent(m[1]) : undefined;
  }
}

function clearInvite(): void {
  try {
    sessionStorage.removeItem(INVITE_KEY);
  } catch {
    // nothing kept
  }
}

function start(): void {
  if (window.lockstepJellyfin) return;
  window.lockstepJellyfin = new LockstepJellyfin();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
else start();
