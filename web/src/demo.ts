/**
 * The demo page the relay serves at `/`: a lobby (name, create a room, join by invite) and the
 * room view (the video with the overlay beside it, or below it on narrow screens).
 *
 * URL parameters: `?join=<code>` joins that room (at once when a name is known), `?name=`,
 * `?transport=auto|webtransport|websocket`, `?relay=<http base>`, `?ws=<WebSocket URL>`.
 * For tests, `window.lockstep` is `{ client, sync, video }`, kept current.
 */
import { LockstepClient, LockstepError } from './client';
import type { Media, PolicyMode, TransportKind } from './protocol';
import { h, show } from './ui/dom';
import { modeSelect, roomPasswordInput } from './ui/fields';
import { explainError as explain } from './ui/errors';
import { mountConnectionBadge, mountOverlay, titleFromUrl } from './ui/overlay';
import { injectExtraStyles, injectStyles } from './ui/styles';
import { Toasts } from './ui/toasts';
import { VideoSync } from './video';

declare global {
  interface Window {
    lockstep?: { client: LockstepClient; sync: VideoSync | undefined; video: HTMLVideoElement };
  }
}

const NAME_KEY = 'lockstep.name';
const TEST_CLIP_TITLE = 'Test clip';

const PAGE_CSS = `
html, body { margin: 0; padding: 0; min-height: 100%; background: #0b0e13; }
body { overflow-x: hidden; }
.ls-app { min-height: 100vh; display: flex; flex-direction: column; background:
  radial-gradient(1200px 600px at 80% -10%, rgba(91,134,245,.16), transparent 60%),
  radial-gradient(900px 500px at -10% 110%, rgba(62,207,142,.08), transparent 60%), #0b0e13; }
.ls-app .ls-topbar { display: flex; align-items: center; justify-content: space-between; gap: 12px;
  padding: 12px 20px; border-bottom: 1px solid rgba(255,255,255,.06); background: rgba(11,14,19,.7);
  backdrop-filter: blur(8px); position: sticky; top: 0; z-index: 10; min-width: 0; }
.ls-app .ls-brand { display: flex; align-items: center; gap: 10px; font-weight: 750; font-size: 17px; letter-spacing: -.01em; min-width: 0; }
.ls-app .ls-logo { width: 28px; height: 28px; border-radius: 8px; flex: none; display: grid; place-items: center;
  background: linear-gradient(135deg, #7aa2ff, #3ecf8e); color: #0b1020; font-size: 14px; font-weight: 800; }
.ls-app .ls-brand-room { font-weight: 600; color: var(--ls-muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ls-app .ls-topbar-right { display: flex; align-items: center; gap: 10px; min-width: 0; }
.ls-app main { flex: 1 1 auto; width: 100%; min-width: 0; display: flex; flex-direction: column; }
.ls-app main > * { flex: 1 1 auto; width: 100%; }

.ls-lobby { max-width: 980px; margin: 0 auto; padding: 40px 20px 60px; display: flex; flex-direction: column; gap: 22px; }
.ls-lobby .ls-hero { display: flex; flex-direction: column; gap: 8px; }
.ls-lobby .ls-hero h1 { font-size: 34px; letter-spacing: -.02em; }
.ls-lobby .ls-hero p { color: var(--ls-muted); font-size: 16px; max-width: 40em; }
.ls-lobby .ls-cards { display: grid; grid-template-columns: 1.25fr 1fr; gap: 18px; align-items: start; }
.ls-lobby .ls-card { display: flex; flex-direction: column; gap: 14px; padding: 20px; min-width: 0;
  background: rgba(26,31,40,.85); border: 1px solid var(--ls-border); border-radius: 14px; box-shadow: 0 10px 30px rgba(0,0,0,.25); }
.ls-lobby .ls-card-head { display: flex; flex-direction: column; gap: 4px; }
.ls-lobby .ls-card-head p { color: var(--ls-muted); font-size: 13.5px; }
.ls-lobby .ls-two { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.ls-lobby .ls-name-card { flex-direction: row; align-items: flex-end; gap: 16px; }
.ls-lobby .ls-name-card .ls-field { flex: 1 1 auto; max-width: 360px; }
.ls-lobby .ls-media-choice { display: flex; flex-direction: column; gap: 10px; padding: 12px; border-radius: 10px;
  background: var(--ls-bg); border: 1px solid var(--ls-border); }
.ls-lobby .ls-media-choice[data-test-clip] .ls-media-own { opacity: .55; }
.ls-lobby .ls-error { color: #ffb3b3; font-size: 13.5px; padding: 8px 12px; border-radius: 8px; background: #2a1a1f; border: 1px solid #5a2f35; }
.ls-lobby .ls-prompt { color: #cfe0ff; font-size: 13.5px; padding: 8px 12px; border-radius: 8px; background: #1b2440; border: 1px solid #2f3f6b; }
.ls-lobby .ls-cards.ls-invited .ls-join-card { order: -1; }
@media (min-width: 901px) { .ls-lobby .ls-cards.ls-invited { grid-template-columns: 1fr 1.25fr; } }
.ls-lobby .ls-card.ls-highlight { border-color: #4a66b8; box-shadow: 0 0 0 3px rgba(122,162,255,.18), 0 10px 30px rgba(0,0,0,.25); }
.ls-lobby .ls-foot { color: var(--ls-faint); font-size: 12.5px; }

.ls-roomview { display: grid; grid-template-columns: minmax(0, 1fr) 390px; gap: 18px; padding: 18px 20px; align-items: start;
  max-width: 1680px; margin: 0 auto; }
.ls-roomview .ls-stage { min-width: 0; display: flex; flex-direction: column; gap: 10px; }
.ls-roomview video { display: block; width: 100%; aspect-ratio: 16 / 9; max-height: calc(100vh - 110px); background: #000;
  border-radius: 14px; box-shadow: 0 20px 50px rgba(0,0,0,.5); outline: none; }
.ls-roomview .ls-side { min-width: 0; }
.ls-roomview .ls-stage-hint { color: var(--ls-faint); font-size: 12.5px; padding: 0 4px; }
/* Wide screens: the page stays put, the panel scrolls on its own. */
@media (min-width: 901px) {
  .ls-app.ls-in-room { height: 100vh; min-height: 0; overflow: hidden; }
  .ls-app.ls-in-room main { min-height: 0; overflow: hidden; }
  .ls-app.ls-in-room .ls-roomview { height: 100%; }
  .ls-app.ls-in-room .ls-side { max-height: 100%; overflow-y: auto; overscroll-behavior: contain; border-radius: 14px;
    scrollbar-width: thin; scrollbar-color: #2c3441 transparent; }
}

@media (max-width: 900px) {
  .ls-roomview { grid-template-columns: minmax(0, 1fr); padding: 0 0 24px; gap: 12px; }
  .ls-roomview .ls-stage { position: static; }
  .ls-roomview video { border-radius: 0; box-shadow: none; max-height: 60vh; }
  .ls-roomview .ls-side { padding: 0 10px; }
  .ls-roomview .ls-stage-hint { padding: 0 12px; }
  /* The video stays in view while the panel scrolls under it. */
  .ls-app.ls-in-room .ls-topbar { position: static; }
  .ls-roomview .ls-stage { position: sticky; top: 0; z-index: 5; background: #000; }
  .ls-roomview .ls-stage-hint { display: none; }
  .ls-roomview .ls-side .ls-overlay { padding: 2px 0 0; border: 0; background: transparent; box-shadow: none; }
  .ls-lobby .ls-cards { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 560px) {
  .ls-app .ls-topbar { padding: 10px 12px; }
  .ls-app .ls-brand-tag { display: none; }
  .ls-lobby { padding: 24px 12px 40px; gap: 16px; }
  .ls-lobby .ls-hero h1 { font-size: 26px; }
  .ls-lobby .ls-hero p { font-size: 14.5px; }
  .ls-lobby .ls-card { padding: 16px; }
  .ls-lobby .ls-two { grid-template-columns: minmax(0, 1fr); }
  .ls-lobby .ls-name-card { flex-direction: column; align-items: stretch; }
  .ls-lobby .ls-name-card .ls-field { max-width: none; }
}
`;

interface Params {
  join?: string;
  name?: string;
  transport: 'auto' | TransportKind;
  relay?: string;
  /** Overrides the WebSocket URL (`?ws=`; tests put a proxy there). */
  ws?: string;
  /** Overrides the WebTransport URL (`?wt=`; tests point it where nothing answers). */
  wt?: string;
}

function readParams(): Params {
  const q = new URLSearchParams(location.search);
  const t = q.get('transport');
  const transport = t === 'webtransport' || t === 'websocket' ? t : 'auto';
  return {
    join: q.get('join')?.trim() || undefined,
    name: q.get('name')?.trim() || undefined,
    transport,
    relay: q.get('relay')?.trim().replace(/\/+$/, '') || undefined,
    ws: q.get('ws')?.trim() || undefined,
    wt: q.get('wt')?.trim() || undefined,
  };
}

function storedName(): string {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

function storeName(name: string): void {
  try {
    if (name) localStorage.setItem(NAME_KEY, name);
    else localStorage.removeItem(NAME_KEY);
  } catch {
    // private mode: not remembered
  }
}

/** An invite code from what someone pasted: a code, or a link with `?join=`. */
export function parseJoinCode(input: string): string {
  const text = input.trim();
  if (!text) return '';
  try {
    if (/^[a-z]+:\/\//i.test(text) || text.includes('?')) {
      const url = new URL(text, location.href);
      const join = url.searchParams.get('join');
      if (join) return join.trim();
    }
  } catch {
    // not a URL: a code
  }
  return text;
}

class DemoApp {
  private params = readParams();
  private client!: LockstepClient;
  private clientOffs: (() => void)[] = [];
  private sync?: VideoSync;
  private overlay?: { destroy(): void };
  private badge?: { el: HTMLElement; destroy(): void };
  private readonly toasts: Toasts;
  private readonly video: HTMLVideoElement;
  private readonly root: HTMLElement;
  private readonly main: HTMLElement;
  private readonly topRight: HTMLElement;
  private readonly roomLabel: HTMLElement;
  private readonly leaveButton: HTMLButtonElement;
  private view: 'lobby' | 'room' | undefined;
  /** The code we last joined with (members other than hosts do not learn the invite). */
  private joinedWith?: string;

  // Lobby elements.
  private readonly nameInput: HTMLInputElement;
  private readonly roomName: HTMLInputElement;
  private readonly useTestClip: HTMLInputElement;
  private readonly mediaUrl: HTMLInputElement;
  private readonly mediaTitle: HTMLInputElement;
  private readonly createPassword: HTMLInputElement;
  private readonly createMode: HTMLSelectElement;
  private readonly createButton: HTMLButtonElement;
  private readonly createError: HTMLElement;
  private readonly joinCode: HTMLInputElement;
  private readonly joinPassword: HTMLInputElement;
  private readonly joinButton: HTMLButtonElement;
  private readonly joinError: HTMLElement;
  private readonly joinPrompt: HTMLElement;
  private readonly joinCard: HTMLElement;
  private readonly lobbyError: HTMLElement;
  private readonly lobby: HTMLElement;
  private readonly roomView: HTMLElement;
  private readonly side: HTMLElement;

  constructor(mount: HTMLElement) {
    injectStyles();
    injectExtraStyles('lockstep-demo-styles', PAGE_CSS);
    this.toasts = new Toasts();

    this.video = h('video', {
      controls: true,
      playsinline: true,
      preload: 'auto',
      'data-test': 'video',
      'aria-label': 'The room’s video',
    });
    this.video.playsInline = true;

    this.roomLabel = h('span', { class: 'ls-brand-room', 'data-test': 'topbar-room' });
    this.leaveButton = h('button', {
      class: 'ls-btn ls-btn-danger ls-btn-sm',
      type: 'button',
      'data-test': 'leave',
      text: 'Leave',
    });
    this.leaveButton.addEventListener('click', () => void this.leave());
    this.topRight = h('div', { class: 'ls-topbar-right' });
    const topbar = h(
      'header',
      { class: 'ls-topbar' },
      h(
        'div',
        { class: 'ls-brand' },
        h('span', { class: 'ls-logo', 'aria-hidden': 'true', text: '▶' }),
        h('span', { text: 'lockstep' }),
        this.roomLabel,
      ),
      this.topRight,
    );

    // --- Lobby ------------------------------------------------------------------------
    const field = (label: string, input: HTMLElement, extra?: HTMLElement) =>
      h('label', { class: 'ls-field' }, h('span', { text: label }), input, extra ?? null);
    this.nameInput = h('input', {
      class: 'ls-input',
      type: 'text',
      'data-test': 'name',
      placeholder: 'e.g. Ada',
      maxlength: '64',
      autocomplete: 'nickname',
      value: this.params.name ?? storedName(),
    });
    this.nameInput.addEventListener('change', () => storeName(this.nameInput.value.trim()));

    this.roomName = h('input', {
      class: 'ls-input',
      type: 'text',
      'data-test': 'room-name',
      placeholder: 'Movie night',
      maxlength: '64',
    });
    this.useTestClip = h('input', { type: 'checkbox', 'data-test': 'use-test-clip', checked: true });
    this.useTestClip.checked = true;
    this.mediaUrl = h('input', {
      class: 'ls-input',
      type: 'url',
      'data-test': 'media-url',
      placeholder: 'https://example.org/film.mp4',
      spellcheck: 'false',
    });
    this.mediaTitle = h('input', {
      class: 'ls-input',
      type: 'text',
      'data-test': 'media-title',
      placeholder: 'Title (optional)',
      maxlength: '256',
    });
    this.createPassword = roomPasswordInput();
    this.createMode = modeSelect();
    this.createButton = h('button', {
      class: 'ls-btn ls-btn-primary ls-btn-lg',
      type: 'submit',
      'data-test': 'create',
      text: 'Create room',
    });
    this.createError = h('p', { class: 'ls-error', 'data-test': 'create-error', role: 'alert' });
    const mediaChoice = h(
      'div',
      { class: 'ls-media-choice', 'data-test-clip': '' },
      h(
        'label',
        { class: 'ls-check' },
        this.useTestClip,
        h('span', {}, 'Use the built-in test clip'),
      ),
      h(
        'div',
        { class: 'ls-media-own ls-two' },
        field('…or a video URL', this.mediaUrl),
        field('Title', this.mediaTitle),
      ),
    );
    const syncChoice = () => {
      if (this.useTestClip.checked) mediaChoice.setAttribute('data-test-clip', '');
      else mediaChoice.removeAttribute('data-test-clip');
    };
    this.useTestClip.addEventListener('change', syncChoice);
    this.mediaUrl.addEventListener('input', () => {
      this.useTestClip.checked = this.mediaUrl.value.trim() === '';
      syncChoice();
    });
    const createForm = h(
      'form',
      { class: 'ls-card', 'data-test': 'create-form', novalidate: true },
      h(
        'div',
        { class: 'ls-card-head' },
        h('h2', { text: 'Create a room' }),
        h('p', { text: 'You become the host and get a link to share.' }),
      ),
      field('Room name', this.roomName),
      mediaChoice,
      h('div', { class: 'ls-two' }, field('Who decides', this.createMode), field('Password', this.createPassword)),
      this.createError,
      this.createButton,
    );
    createForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.create();
    });

    this.joinCode = h('input', {
      class: 'ls-input',
      type: 'text',
      'data-test': 'join-code',
      placeholder: 'Invite code or link',
      spellcheck: 'false',
      autocomplete: 'off',
      value: this.params.join ?? '',
    });
    this.joinPassword = h('input', {
      class: 'ls-input',
      type: 'password',
      'data-test': 'join-password',
      placeholder: 'Only if the room has one',
      autocomplete: 'current-password',
      maxlength: '128',
    });
    this.joinButton = h('button', {
      class: 'ls-btn ls-btn-primary ls-btn-lg',
      type: 'submit',
      'data-test': 'join',
      text: 'Join room',
    });
    this.joinError = h('p', { class: 'ls-error', 'data-test': 'join-error', role: 'alert' });
    this.joinPrompt = h('p', { class: 'ls-prompt', 'data-test': 'join-prompt' });
    this.joinCard = h(
      'form',
      { class: 'ls-card ls-join-card', 'data-test': 'join-form', novalidate: true },
      h(
        'div',
        { class: 'ls-card-head' },
        h('h2', { text: 'Join a room' }),
        h('p', { text: 'Paste the invite link or code someone shared.' }),
      ),
      this.joinPrompt,
      field('Invite', this.joinCode),
      field('Password', this.joinPassword),
      this.joinError,
      this.joinButton,
    );
    this.joinCard.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.join();
    });
    this.lobbyError = h('p', { class: 'ls-error', 'data-test': 'lobby-error', role: 'alert' });
    for (const el of [this.createError, this.joinError, this.joinPrompt, this.lobbyError]) show(el, false);

    this.lobby = h(
      'section',
      { class: 'ls-lobby', 'data-test': 'lobby' },
      h(
        'div',
        { class: 'ls-hero' },
        h('h1', { text: 'lockstep — watch together' }),
        h('p', {
          text: 'Watch the same film at the same moment, wherever everyone is: a shared timeline, millisecond clock sync, and a remote that the host holds or the room votes on.',
        }),
      ),
      this.lobbyError,
      h('div', { class: 'ls-card ls-name-card' }, field('Your name', this.nameInput), h('p', {
        class: 'ls-muted ls-small',
        text: 'Shown to the others in the room. Remembered on this device.',
      })),
      h('div', { class: `ls-cards${this.params.join ? ' ls-invited' : ''}` }, createForm, this.joinCard),
      h('p', { class: 'ls-foot', text: 'Tip: open the invite link in a second window to try it on your own.' }),
    );

    // --- Room view --------------------------------------------------------------------
    this.side = h('aside', { class: 'ls-side', 'aria-label': 'Room' });
    this.roomView = h(
      'section',
      { class: 'ls-roomview', 'data-test': 'room' },
      h(
        'div',
        { class: 'ls-stage' },
        this.video,
        h('p', {
          class: 'ls-stage-hint',
          'data-test': 'stage-hint',
          text: 'Play, pause, seek and speed on the video go to the whole room. If you fall behind, lockstep catches you up gently.',
        }),
      ),
      this.side,
    );

    this.main = h('main');
    this.root = h('div', { class: 'ls-theme ls-app' }, topbar, this.main);
    mount.replaceChildren(this.root);

    this.makeClient(this.params.name ?? (storedName() || undefined));
    // A closing tab says so at once (the relay then starts the host's grace period, or frees
    // the seat after its resume window) instead of leaving the relay to notice the silence.
    window.addEventListener('pagehide', (e) => {
      if (!e.persisted) this.client.close();
    });
    this.showLobby();
    this.startFromUrl();
  }

  private get relayBase(): string {
    return this.params.relay ?? location.origin;
  }

  private publish(): void {
    window.lockstep = { client: this.client, sync: this.sync, video: this.video };
  }

  /** A fresh client (a new name needs a new session: names are given at `hello`). */
  private makeClient(name: string | undefined): void {
    for (const off of this.clientOffs) off();
    this.clientOffs = [];
    this.client?.close();
    this.client = new LockstepClient({
      transport: this.params.transport,
      name,
      relayUrl: this.params.relay,
      webSocketUrl: this.params.ws,
      webTransportUrl: this.params.wt,
      // A reload comes back as the same member (role, room) within the resume window.
      resumeToken: storedResume(name),
    });
    this.clientOffs.push(
      this.client.on('room', () => this.route()),
      this.client.on('connection', (c) => {
        if (c.phase === 'refused') this.showLobbyError(`The relay refused the connection: ${c.detail ?? ''}`);
        else if (c.phase === 'connected') {
          show(this.lobbyError, false);
          storeResume(name, this.client.sessionResumeToken);
        }
      }),
      this.client.on('notice', (n) => {
        // In a room the overlay shows notices; in the lobby (e.g. after being kicked) we do.
        if (this.view !== 'room') this.toasts.show(n.text, n.level === 'error' ? 'error' : 'info');
      }),
    );
    if (this.view === 'lobby') this.mountBadge();
    this.publish();
    this.client.connect().catch(() => undefined);
  }

  /** Waits for the client to be connected (it reconnects on its own), or fails. */
  private connected(timeoutMs = 15000): Promise<void> {
    const client = this.client;
    if (client.connection.phase === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new LockstepError('timeout', 'could not reach the relay'));
      }, timeoutMs);
      const off = client.on('connection', (c) => {
        if (c.phase === 'connected') {
          clearTimeout(timer);
          off();
          resolve();
        } else if (c.phase === 'refused' || c.phase === 'closed') {
          clearTimeout(timer);
          off();
          reject(new LockstepError('refused', c.detail ?? 'the relay refused the connection'));
        }
      });
    });
  }

  /** The client, under the name in the lobby, connected. */
  private async readyClient(): Promise<LockstepClient> {
    const name = this.nameInput.value.trim();
    storeName(name);
    if ((this.client.options.name ?? '') !== name || this.client.connection.phase === 'refused') {
      this.makeClient(name || undefined);
    }
    await this.connected();
    return this.client;
  }

  private startFromUrl(): void {
    const code = this.params.join;
    if (!code) return;
    if (this.nameInput.value.trim()) {
      void this.join(code);
    } else {
      this.joinCard.classList.add('ls-highlight');
      this.joinPrompt.textContent = 'You were invited to a room. Enter your name above, then join.';
      show(this.joinPrompt, true);
      this.nameInput.focus();
    }
  }

  private setBusy(button: HTMLButtonElement, busy: boolean, label: string): void {
    button.disabled = busy;
    button.textContent = busy ? `${label}…` : label;
  }

  private showLobbyError(text: string): void {
    this.lobbyError.textContent = text;
    show(this.lobbyError, true);
  }

  private async create(): Promise<void> {
    show(this.createError, false);
    this.setBusy(this.createButton, true, 'Creating');
    try {
      let media: Media;
      if (this.useTestClip.checked || !this.mediaUrl.value.trim()) {
        media = { url: `${this.relayBase}/media/test-clip.webm`, title: TEST_CLIP_TITLE };
      } else {
        const url = this.mediaUrl.value.trim();
        media = { url, title: this.mediaTitle.value.trim() || titleFromUrl(url) };
      }
      const client = await this.readyClient();
      const room = await client.createRoom({
        name: this.roomName.value.trim() || 'Movie night',
        media,
        mode: this.createMode.value as PolicyMode,
        password: this.createPassword.value || undefined,
      });
      this.joinedWith = room.invite ?? room.id;
      this.createPassword.value = '';
      this.route();
    } catch (e) {
      this.createError.textContent = explain(e);
      show(this.createError, true);
    } finally {
      this.setBusy(this.createButton, false, 'Create room');
    }
  }

  private async join(codeArg?: string): Promise<void> {
    show(this.joinError, false);
    this.joinPassword.classList.remove('ls-invalid');
    const code = parseJoinCode(codeArg ?? this.joinCode.value);
    if (!code) {
      this.joinError.textContent = 'Paste an invite link or code first.';
      show(this.joinError, true);
      this.joinCode.focus();
      return;
    }
    if (this.joinCode.value !== code) this.joinCode.value = code;
    this.setBusy(this.joinButton, true, 'Joining');
    try {
      const client = await this.readyClient();
      try {
        await client.joinRoom(code, this.joinPassword.value || undefined);
      } catch (e) {
        // Resumed into a room already (a reload): that is where we are.
        if (!(e instanceof LockstepError && e.code === 'already_in_room' && client.room)) throw e;
      }
      this.joinedWith = code;
      this.joinPassword.value = '';
      show(this.joinPrompt, false);
      this.joinCard.classList.remove('ls-highlight');
      this.route();
    } catch (e) {
      const wrong = e instanceof LockstepError && e.code === 'wrong_password' && this.joinPassword.value !== '';
      this.joinError.textContent = wrong ? 'Wrong password. Check it and try again.' : explain(e);
      show(this.joinError, true);
      this.joinCard.classList.add('ls-highlight');
      if (e instanceof LockstepError && e.code === 'wrong_password') {
        this.joinPassword.classList.add('ls-invalid');
        this.joinPassword.focus();
      } else if (e instanceof LockstepError && e.code === 'room_not_found') {
        this.joinCode.focus();
      }
    } finally {
      this.setBusy(this.joinButton, false, 'Join room');
    }
  }

  private async leave(): Promise<void> {
    this.leaveButton.disabled = true;
    try {
      await this.client.leaveRoom();
    } catch (e) {
      // Not connected: drop the room locally anyway (the relay ends the session after its
      // resume window).
      if (this.client.room) this.toasts.show(`Could not leave cleanly: ${explain(e)}`, 'error');
    } finally {
      this.leaveButton.disabled = false;
      this.joinedWith = undefined;
      this.setUrlJoin(undefined);
      this.showLobby();
    }
  }

  /** Shows the room view when the client is in a room, the lobby otherwise. */
  private route(): void {
    if (this.client.room) {
      if (this.view !== 'room') this.showRoom();
      const room = this.client.room;
      this.roomLabel.textContent = `· ${room.name}`;
      document.title = `${room.name} · lockstep`;
      this.setUrlJoin(room.invite ?? this.joinedWith ?? room.id);
    } else if (this.view === 'room') {
      this.setUrlJoin(undefined);
      this.showLobby();
    }
  }

  private mountBadge(): void {
    this.badge?.destroy();
    this.badge?.el.remove();
    this.badge = mountConnectionBadge(this.client);
    this.topRight.replaceChildren(this.badge.el);
  }

  private showLobby(): void {
    this.teardownRoom();
    this.view = 'lobby';
    this.roomLabel.textContent = '';
    document.title = 'lockstep — watch together';
    this.mountBadge();
    this.main.replaceChildren(this.lobby);
    this.root.classList.remove('ls-in-room');
    this.publish();
  }

  private showRoom(): void {
    this.view = 'room';
    this.badge?.destroy();
    this.badge = undefined;
    this.topRight.replaceChildren(this.leaveButton);
    this.main.replaceChildren(this.roomView);
    this.root.classList.add('ls-in-room');
    this.sync = new VideoSync(this.client, this.video);
    this.overlay = mountOverlay(this.side, this.client, this.sync, {
      video: this.video,
      inviteBaseUrl: `${location.origin}${location.pathname}${
        this.params.relay ? `?relay=${encodeURIComponent(this.params.relay)}` : ''
      }`,
      toasts: this.toasts,
    });
    this.publish();
  }

  private teardownRoom(): void {
    this.overlay?.destroy();
    this.overlay = undefined;
    this.sync?.destroy();
    this.sync = undefined;
    if (this.video.getAttribute('src')) {
      this.video.pause();
      this.video.removeAttribute('src');
      this.video.load();
    }
  }

  /** Keeps `?join=` in the address so a reload rejoins (other parameters stay). */
  private setUrlJoin(code: string | undefined): void {
    const q = new URLSearchParams(location.search);
    if (code) q.set('join', code);
    else q.delete('join');
    const search = q.toString();
    const url = `${location.pathname}${search ? `?${search}` : ''}${location.hash}`;
    if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(null, '', url);
  }
}

function start(): void {
  const mount = document.getElementById('lockstep-app') ?? document.body.appendChild(document.createElement('div'));
  new DemoApp(mount);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
else start();

/** The resume token of this tab's last session under `name` (sessionStorage: per tab). */
function storedResume(name: string | undefined): string | undefined {
  try {
    const raw = sessionStorage.getItem('lockstep.resume');
    if (!raw) return undefined;
    const saved = JSON.parse(raw) as { name?: string; token?: string };
    return saved.name === (name ?? '') && typeof saved.token === 'string' ? saved.token : undefined;
  } catch {
    return undefined;
  }
}

function storeResume(name: string | undefined, token: string | undefined): void {
  try {
    if (token) sessionStorage.setItem('lockstep.resume', JSON.stringify({ name: name ?? '', token }));
  } catch {
    // storage unavailable (private mode): a reload joins as a new member
  }
}
