/**
 * The room overlay: connection, room, people, votes, chat, reactions and this viewer's sync,
 * in one panel. Used by the demo page (beside the video) and the Jellyfin injection (compact,
 * in a side panel). Plain DOM; every text from the network goes in through `textContent`.
 */
import { type ConnectionState, type LockstepClient, describeAction, formatTime, nowUs } from '../client';
import type { Member, MemberStat, Outcome, PolicyMode, Proposal, RoomInfo } from '../protocol';
import { MAX_CHAT_CHARS, charCount } from '../protocol';
import { positionAt } from '../timeline';
import type { VideoSync } from '../video';
import { copyText, formatSignedMs, h, hueOf, initialOf, setAttr, setText, show } from './dom';
import { explainError } from './errors';
import { VideoLayer } from './layer';
import { drawDriftPlot, driftQuality } from './plot';
import { injectStyles } from './styles';
import { Toasts } from './toasts';

export interface OverlayOptions {
  /** Tighter layout for a side panel (Jellyfin). */
  compact?: boolean;
  /** The page invite links point at (`?join=<code>` is appended); default: this page. */
  inviteBaseUrl?: string;
  /** The video to float reactions and the autoplay prompt over (default: the sync's). */
  video?: HTMLVideoElement;
  /** Offer the "change media" form (URL and title); default: not in compact mode. */
  mediaControls?: boolean;
  /** Where toasts go (default: a fresh container in `document.body`). */
  toasts?: Toasts;
}

export interface OverlayHandle {
  destroy(): void;
}

/** The reactions offered as buttons. */
export const REACTIONS = ['👍', '😂', '😮', '❤️', '👏', '🍿'];

/** How often the live parts (position, countdowns, plot) redraw, ms. */
const REDRAW_MS = 250;

const OUTCOME_TEXT: Record<Outcome, string> = {
  passed: 'Passed',
  rejected: 'Rejected',
  expired: 'Expired',
  superseded: 'Superseded',
  withdrawn: 'Withdrawn',
};

/** The connection badge's text for people (and tests: it names the transport when connected). */
export function connectionText(c: ConnectionState): string {
  switch (c.phase) {
    case 'idle':
      return 'Not connected';
    case 'connecting':
      return 'Connecting…';
    case 'connected':
      return c.transport === 'webtransport' ? 'WebTransport' : 'WebSocket';
    case 'reconnecting':
      return `Reconnecting… (attempt ${Math.max(1, c.attempt)})`;
    case 'refused':
      return `Refused: ${c.detail ?? 'the relay refused the connection'}`;
    case 'closed':
      return 'Disconnected';
  }
}

/** A live connection badge (`data-test="connection"`). */
export function mountConnectionBadge(client: LockstepClient): { el: HTMLElement; destroy(): void } {
  injectStyles();
  const label = h('span', { class: 'ls-sr' });
  const text = h('span');
  const el = h('span', { class: 'ls-badge ls-conn', 'data-test': 'connection', role: 'status' }, label, text);
  const update = (c: ConnectionState) => {
    setText(label, c.phase === 'connected' ? 'Connected over ' : '');
    setText(text, connectionText(c));
    setAttr(el, 'data-phase', c.phase);
    setAttr(el, 'data-transport', c.transport);
    setAttr(el, 'title', c.detail ? `${connectionText(c)} — ${c.detail}` : connectionText(c));
  };
  update(client.connection);
  const off = client.on('connection', update);
  return { el, destroy: off };
}

/** Runs a request, turning a refusal into a toast; resolves to its result or undefined. */
type Runner = <T>(request: () => Promise<T>, done?: (result: T) => void) => void;

interface MemberRow {
  el: HTMLLIElement;
  avatar: HTMLElement;
  name: HTMLElement;
  you: HTMLElement;
  role: HTMLElement;
  transport: HTMLElement;
  rtt: HTMLElement;
  drift: HTMLElement;
  state: HTMLElement;
  actions: HTMLElement;
  cohost: HTMLButtonElement;
  makeHost: HTMLButtonElement;
  kick: HTMLButtonElement;
  confirm: HTMLElement;
}

interface ProposalCard {
  el: HTMLElement;
  title: HTMLElement;
  action: HTMLElement;
  tally: HTMLElement;
  bar: HTMLElement;
  countdown: HTMLElement;
  buttons: HTMLElement;
  yes: HTMLButtonElement;
  no: HTMLButtonElement;
  note: HTMLElement;
  proposal: Proposal;
}

/** Mounts the overlay into `container`. */
export function mountOverlay(
  container: HTMLElement,
  client: LockstepClient,
  sync: VideoSync | undefined,
  opts: OverlayOptions = {},
): OverlayHandle {
  injectStyles();
  const compact = opts.compact ?? false;
  const mediaControls = opts.mediaControls ?? !compact;
  const offs: (() => void)[] = [];
  const ownToasts = !opts.toasts;
  const toasts = opts.toasts ?? new Toasts();
  const video = opts.video ?? sync?.video;

  const nameOf = (id: number): string =>
    id === client.you ? 'you' : (client.members.get(id)?.name ?? `member ${id}`);

  const run: Runner = (request, done) => {
    let p: Promise<unknown>;
    try {
      p = request();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (result) => done?.(result as never),
      (e: unknown) => toasts.show(explainError(e), 'error'),
    );
  };
  /** A command that may go to a vote: say so when it did. */
  const command = (request: () => Promise<number | undefined>, what: string) =>
    run(request, (proposal) => {
      if (proposal !== undefined) toasts.show(`Proposed: ${what} — the room votes`, 'info');
    });

  const root = h('div', {
    class: `ls-theme ls-overlay${compact ? ' ls-compact' : ''}`,
    'data-test': 'overlay',
    'aria-label': 'Watch together',
  });

  // --- Header -------------------------------------------------------------------------
  const badge = mountConnectionBadge(client);
  offs.push(badge.destroy);
  const modeChip = h('span', { class: 'ls-badge ls-mode', 'data-test': 'room-mode' });
  const title = h('div', { class: 'ls-title', 'data-test': 'room-title' });
  const roleChip = h('span', { class: 'ls-badge ls-role', 'data-test': 'role' });
  const lockChip = h('span', { class: 'ls-badge', 'data-test': 'locked-chip', text: 'Locked' });
  const passwordChip = h('span', { class: 'ls-badge', 'data-test': 'password-chip', text: 'Password' });
  const head = h(
    'header',
    { class: 'ls-head' },
    h('div', { class: 'ls-head-top' }, badge.el, modeChip),
    title,
    h('div', { class: 'ls-chips' }, h('span', { class: 'ls-muted ls-small', text: 'You are' }), roleChip, lockChip, passwordChip),
  );

  // --- Playback status ----------------------------------------------------------------
  const mediaTitle = h('div', { class: 'ls-media-title', 'data-test': 'media-title' });
  const statusIcon = h('span', { class: 'ls-status-icon', 'aria-hidden': 'true' });
  const statusText = h('span', { 'data-test': 'playback-position' });
  const rateChip = h('span', { class: 'ls-badge', 'data-test': 'playback-rate', title: 'Playback rate' });
  const status = h('div', { class: 'ls-status', 'data-test': 'playback-status' }, statusIcon, statusText, rateChip);
  const hint = h('div', { class: 'ls-hint', 'data-test': 'control-hint' });
  const panelJoin = h('button', {
    class: 'ls-btn ls-btn-primary ls-btn-block',
    type: 'button',
    'data-test': 'join-playback-panel',
    text: '▶ Click to join playback',
  });
  const playback = h(
    'section',
    { class: 'ls-section', 'data-test': 'playback', 'aria-label': 'Playback' },
    mediaTitle,
    status,
    hint,
    panelJoin,
  );
  show(panelJoin, false);

  // --- Proposals ----------------------------------------------------------------------
  const proposalsEl = h('div', {
    class: 'ls-controls-grid',
    'data-test': 'proposals',
    'aria-label': 'Votes',
    'aria-live': 'polite',
  });

  // --- Invite -------------------------------------------------------------------------
  const inviteInput = h('input', {
    class: 'ls-input',
    readonly: true,
    'data-test': 'invite-link',
    'aria-label': 'Invite link',
    spellcheck: 'false',
  });
  const copyButton = h('button', { class: 'ls-btn', type: 'button', 'data-test': 'copy-invite', text: 'Copy' });
  const inviteNote = h('p', { class: 'ls-small ls-muted' });
  const invite = h(
    'section',
    { class: 'ls-section ls-invite', 'data-test': 'invite' },
    h('h3', { text: 'Invite people' }),
    h('div', { class: 'ls-row' }, inviteInput, copyButton),
    inviteNote,
  );
  let copyTimer: ReturnType<typeof setTimeout> | undefined;
  copyButton.addEventListener('click', () => {
    void copyText(inviteInput.value, inviteInput).then((ok) => {
      copyButton.textContent = ok ? 'Copied' : 'Select & copy';
      clearTimeout(copyTimer);
      copyTimer = setTimeout(() => (copyButton.textContent = 'Copy'), 2000);
    });
  });
  inviteInput.addEventListener('focus', () => inviteInput.select());

  // --- Participants -------------------------------------------------------------------
  const peopleCount = h('span', { class: 'ls-badge', 'data-test': 'member-count' });
  const membersList = h('ul', { class: 'ls-members', 'data-test': 'participants', 'aria-label': 'People in the room' });
  const people = h(
    'section',
    { class: 'ls-section' },
    h('div', { class: 'ls-section-head' }, h('h3', { text: 'People' }), peopleCount),
    membersList,
  );
  const rows = new Map<number, MemberRow>();
  const pendingKick = new Map<number, ReturnType<typeof setTimeout>>();

  const makeRow = (id: number): MemberRow => {
    const btn = (test: string, text: string, cls = '') =>
      h('button', { class: `ls-btn ls-btn-xs ${cls}`, type: 'button', 'data-test': test, text });
    const row: MemberRow = {
      el: h('li', { class: 'ls-member', 'data-test': 'member', 'data-member-id': String(id) }),
      avatar: h('span', { class: 'ls-avatar', 'aria-hidden': 'true' }),
      name: h('span', { class: 'ls-member-name', 'data-test': 'member-name' }),
      you: h('span', { class: 'ls-you', 'data-test': 'member-you', text: '(you)' }),
      role: h('span', { class: 'ls-badge ls-role', 'data-test': 'member-role' }),
      transport: h('span', { class: 'ls-tag', 'data-test': 'member-transport' }),
      rtt: h('b', { 'data-test': 'member-rtt' }),
      drift: h('b', { 'data-test': 'member-drift' }),
      state: h('span', { class: 'ls-meta ls-state', 'data-test': 'member-status' }),
      actions: h('div', { class: 'ls-member-actions' }),
      cohost: btn('toggle-cohost', 'Make co-host'),
      makeHost: btn('make-host', 'Make host'),
      kick: btn('kick', 'Kick', 'ls-btn-danger'),
      confirm: h('span', { class: 'ls-confirm' }),
    };
    const yes = btn('kick-confirm', 'Yes, kick', 'ls-btn-danger');
    const no = btn('kick-cancel', 'No');
    row.confirm.append(h('span', { text: 'Kick?' }), yes, no);
    row.actions.append(row.cohost, row.makeHost, row.kick, row.confirm);
    row.el.append(
      row.avatar,
      h('div', { class: 'ls-member-main' }, row.name, row.you, row.role),
      h(
        'div',
        { class: 'ls-member-meta' },
        row.transport,
        h('span', { class: 'ls-meta', title: 'Round-trip time to the relay' }, 'RTT ', row.rtt),
        h('span', { class: 'ls-meta', title: 'How far their playback is from the room (positive: ahead)' }, 'drift ', row.drift),
        row.state,
      ),
      row.actions,
    );
    row.cohost.addEventListener('click', () => {
      const m = client.members.get(id);
      if (!m) return;
      const role = m.role === 'cohost' ? 'member' : 'cohost';
      run(() => client.setRole(id, role));
    });
    row.makeHost.addEventListener('click', () =>
      command(() => client.transferHost(id), `make ${nameOf(id)} the host`),
    );
    const cancelKick = () => {
      clearTimeout(pendingKick.get(id));
      pendingKick.delete(id);
      renderMembers();
    };
    row.kick.addEventListener('click', () => {
      pendingKick.set(id, setTimeout(cancelKick, 8000));
      renderMembers();
      no.focus();
    });
    no.addEventListener('click', cancelKick);
    yes.addEventListener('click', () => {
      const who = nameOf(id);
      cancelKick();
      command(() => client.kick(id), `remove ${who}`);
    });
    return row;
  };

  const updateRow = (row: MemberRow, m: Member, stat: MemberStat | undefined, room: RoomInfo) => {
    const isMe = m.id === client.you;
    const iAmHost = client.isHost;
    const myRole = client.me?.role;
    const democratic = room.mode === 'democratic';
    setText(row.name, m.name);
    setAttr(row.name, 'title', m.name);
    setText(row.avatar, initialOf(m.name));
    row.avatar.style.background = `hsl(${hueOf(m.id)} 65% 72%)`;
    show(row.you, isMe);
    setAttr(row.el, 'data-you', isMe ? '' : undefined);
    setAttr(row.el, 'data-role', m.role);
    setText(row.role, m.role);
    setAttr(row.role, 'data-role', m.role);
    setText(row.transport, m.transport === 'webtransport' ? 'WT' : 'WS');
    setAttr(row.transport, 'data-transport', m.transport);
    setAttr(row.transport, 'title', m.transport === 'webtransport' ? 'WebTransport' : 'WebSocket');
    if (stat) {
      const rttMs = stat.rtt_us / 1000;
      setText(row.rtt, `${rttMs < 10 ? rttMs.toFixed(1) : Math.round(rttMs)} ms`);
      setAttr(row.rtt, 'data-quality', rttMs <= 80 ? 'good' : rttMs <= 200 ? 'fair' : 'poor');
    } else {
      setText(row.rtt, '—');
      setAttr(row.rtt, 'data-quality', undefined);
    }
    const driftMs = stat ? stat.drift_us / 1000 : isMe ? sync?.driftMs : undefined;
    setText(row.drift, driftMs === undefined ? '—' : formatSignedMs(driftMs));
    setAttr(row.drift, 'data-quality', driftMs === undefined ? undefined : driftQuality(driftMs));
    const state = m.buffering ? 'buffering' : m.ready ? 'ready' : 'loading';
    setText(row.state, m.buffering ? 'Buffering' : m.ready ? 'Ready' : 'Loading');
    setAttr(row.state, 'data-state', state);
    setAttr(row.avatar, 'data-state', state);
    setAttr(row.el, 'data-state', state);

    const target = !isMe && m.role !== 'host';
    const canCohost = iAmHost && target;
    const canMakeHost = target && (iAmHost || democratic);
    const canKick = target && (iAmHost || democratic || myRole === 'cohost');
    const confirming = pendingKick.has(m.id) && canKick;
    setText(row.cohost, m.role === 'cohost' ? 'Make member' : 'Make co-host');
    setText(row.makeHost, iAmHost ? 'Make host' : 'Propose as host');
    setText(row.kick, iAmHost || myRole === 'cohost' ? 'Kick' : 'Propose kick');
    show(row.cohost, canCohost && !confirming);
    show(row.makeHost, canMakeHost && !confirming);
    show(row.kick, canKick && !confirming);
    show(row.confirm, confirming);
    show(row.actions, canCohost || canMakeHost || canKick);
  };

  const renderMembers = () => {
    const room = client.room;
    if (!room) return;
    const members = [...client.members.values()].sort(
      (a, b) =>
        Number(b.id === client.you) - Number(a.id === client.you) ||
        rank(a) - rank(b) ||
        a.name.localeCompare(b.name) ||
        a.id - b.id,
    );
    for (const [id, row] of rows) {
      if (!client.members.has(id)) {
        row.el.remove();
        rows.delete(id);
      }
    }
    let previous: Element | null = null;
    for (const m of members) {
      let row = rows.get(m.id);
      if (!row) {
        row = makeRow(m.id);
        rows.set(m.id, row);
      }
      updateRow(row, m, client.memberStats.get(m.id), room);
      const expected: Element | null = previous ? previous.nextElementSibling : membersList.firstElementChild;
      if (expected !== row.el) membersList.insertBefore(row.el, expected);
      previous = row.el;
    }
    const total = client.memberTotal;
    setText(peopleCount, room.capacity <= 100 ? `${total} / ${room.capacity}` : String(total));
    setAttr(
      peopleCount,
      'title',
      total > members.length
        ? `${total} of at most ${room.capacity}; ${members.length} listed`
        : `${total} of at most ${room.capacity}`,
    );
  };

  // --- Sync plot ----------------------------------------------------------------------
  const driftValue = h('span', { class: 'ls-drift-value', 'data-test': 'drift-value', text: '—' });
  const canvas = h('canvas', {
    class: 'ls-plot',
    'data-test': 'drift-plot',
    role: 'img',
    'aria-label': 'Your drift from the room over the last minute',
    width: '240',
    height: '60',
  });
  const scale = h('span', { class: 'ls-plot-scale', 'data-test': 'drift-scale', text: '±2 ms' });
  const correctionsText = h('p', { class: 'ls-small ls-muted', 'data-test': 'corrections' });
  const syncSection = h(
    'section',
    { class: 'ls-section', 'data-test': 'sync' },
    h('div', { class: 'ls-section-head' }, h('h3', { text: 'Your sync' }), driftValue),
    h('div', { class: 'ls-plot-wrap' }, canvas, scale),
    correctionsText,
  );
  show(syncSection, sync !== undefined);

  // --- Room controls ------------------------------------------------------------------
  const modeHost = h('button', { type: 'button', 'data-test': 'mode-host', text: 'Host decides' });
  const modeDemocratic = h('button', { type: 'button', 'data-test': 'mode-democratic', text: 'Democratic' });
  const modeSeg = h('div', { class: 'ls-seg', role: 'group', 'aria-label': 'Who decides' }, modeHost, modeDemocratic);
  const modeRow = h(
    'div',
    { class: 'ls-setting ls-wrap' },
    h('span', { class: 'ls-label', text: 'Who decides' }),
    modeSeg,
  );
  const resyncButton = h('button', {
    class: 'ls-btn',
    type: 'button',
    'data-test': 'resync',
    text: '⟲ Resync everyone',
  });
  const switchRow = (test: string, label: string, help: string) => {
    const id = `ls-${test}-${Math.random().toString(36).slice(2, 8)}`;
    const input = h('input', { type: 'checkbox', role: 'switch', class: 'ls-switch', id, 'data-test': test });
    const row = h(
      'div',
      { class: 'ls-setting' },
      h('label', { for: id }, label, h('small', { text: help })),
      input,
    );
    return { row, input };
  };
  const everyone = switchRow('everyone-controls', 'Everyone controls', 'Host mode: anyone may play, pause and seek');
  const lock = switchRow('lock', 'Lock the room', 'Nobody new can join');
  const passwordInput = h('input', {
    class: 'ls-input',
    type: 'password',
    'data-test': 'password-input',
    autocomplete: 'new-password',
    'aria-label': 'Room password',
    maxlength: '128',
  });
  const passwordSet = h('button', { class: 'ls-btn', type: 'button', 'data-test': 'password-set', text: 'Set' });
  const passwordClear = h('button', {
    class: 'ls-btn ls-btn-ghost',
    type: 'button',
    'data-test': 'password-clear',
    text: 'Remove',
  });
  const passwordState = h('small', { class: 'ls-muted ls-small', 'data-test': 'password-state' });
  const passwordBlock = h(
    'div',
    { class: 'ls-field' },
    h('span', {}, 'Password ', passwordState),
    h('div', { class: 'ls-row' }, passwordInput, passwordSet, passwordClear),
  );
  const mediaUrl = h('input', {
    class: 'ls-input',
    type: 'url',
    placeholder: 'https://…/film.mp4',
    'data-test': 'media-url-input',
    'aria-label': 'Media URL',
  });
  const mediaTitleInput = h('input', {
    class: 'ls-input',
    type: 'text',
    placeholder: 'Title',
    'data-test': 'media-title-input',
    'aria-label': 'Media title',
    maxlength: '256',
  });
  const mediaSet = h('button', { class: 'ls-btn', type: 'button', 'data-test': 'media-set', text: 'Change' });
  const mediaBlock = h(
    'div',
    { class: 'ls-field' },
    h('span', { text: 'Change what the room watches' }),
    mediaUrl,
    h('div', { class: 'ls-row' }, mediaTitleInput, mediaSet),
  );
  const adminBlock = h(
    'div',
    { class: 'ls-controls-grid' },
    h('div', { class: 'ls-divider' }),
    everyone.row,
    lock.row,
    passwordBlock,
  );
  const controls = h(
    'section',
    { class: 'ls-section', 'data-test': 'room-controls' },
    h('h3', { text: 'Room' }),
    modeRow,
    h('div', {}, resyncButton),
    adminBlock,
    mediaBlock,
  );

  const setMode = (mode: PolicyMode) => {
    if (client.room?.mode === mode) return;
    command(() => client.setMode(mode), `switch to ${mode} mode`);
  };
  modeHost.addEventListener('click', () => setMode('host'));
  modeDemocratic.addEventListener('click', () => setMode('democratic'));
  resyncButton.addEventListener('click', () => command(() => client.resync(), 'resync everyone'));
  const bindSwitch = (input: HTMLInputElement, key: 'everyone_controls' | 'locked') => {
    input.addEventListener('change', () => {
      const value = input.checked;
      input.disabled = true;
      client
        .updateOptions({ [key]: value })
        .catch((e: Error) => {
          toasts.show(explainError(e), 'error');
        })
        .finally(() => {
          input.disabled = false;
          renderRoom();
        });
    });
  };
  bindSwitch(everyone.input, 'everyone_controls');
  bindSwitch(lock.input, 'locked');
  const updatePasswordButtons = () => {
    passwordSet.disabled = passwordInput.value.length === 0;
  };
  passwordInput.addEventListener('input', updatePasswordButtons);
  const submitPassword = () => {
    const value = passwordInput.value;
    if (!value) return;
    run(
      () => client.setPassword(value),
      () => {
        passwordInput.value = '';
        updatePasswordButtons();
        toasts.show('Password set', 'success');
      },
    );
  };
  passwordSet.addEventListener('click', submitPassword);
  passwordInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') submitPassword();
  });
  passwordClear.addEventListener('click', () =>
    run(
      () => client.setPassword(undefined),
      () => toasts.show('Password removed', 'success'),
    ),
  );
  mediaSet.addEventListener('click', () => {
    const url = mediaUrl.value.trim();
    if (!url) {
      mediaUrl.focus();
      return;
    }
    const title = mediaTitleInput.value.trim() || titleFromUrl(url);
    command(() => client.setMedia({ url, title }), `watch “${title}”`);
  });

  // --- Chat and reactions -------------------------------------------------------------
  const chatLog = h('div', {
    class: 'ls-chat-log',
    'data-test': 'chat-log',
    role: 'log',
    'aria-live': 'polite',
    'aria-label': 'Chat',
    tabindex: '0',
  });
  const chatEmpty = h('div', { class: 'ls-chat-empty', text: 'No messages yet — say hi!' });
  const chatInput = h('input', {
    class: 'ls-input',
    type: 'text',
    placeholder: 'Say something…',
    'data-test': 'chat-input',
    'aria-label': 'Chat message',
    maxlength: String(MAX_CHAT_CHARS),
    autocomplete: 'off',
    enterkeyhint: 'send',
  });
  const chatSend = h('button', { class: 'ls-btn ls-btn-primary', type: 'button', 'data-test': 'chat-send', text: 'Send' });
  const chatCount = h('span', { class: 'ls-count', 'data-test': 'chat-count' });
  const reactions = h(
    'div',
    { class: 'ls-reactions', role: 'group', 'aria-label': 'Reactions' },
    ...REACTIONS.map((r) =>
      h('button', {
        class: 'ls-react',
        type: 'button',
        'data-test': 'react',
        'data-reaction': r,
        'aria-label': `React ${r}`,
        title: `React ${r}`,
        text: r,
        on: { click: () => run(() => client.react(r)) },
      }),
    ),
  );
  const chat = h(
    'section',
    { class: 'ls-section', 'data-test': 'chat' },
    h('div', { class: 'ls-section-head' }, h('h3', { text: 'Chat' }), chatCount),
    chatLog,
    reactions,
    h('div', { class: 'ls-row' }, chatInput, chatSend),
  );
  const updateChatInput = () => {
    const n = charCount(chatInput.value);
    chatSend.disabled = chatInput.value.trim().length === 0 || n > MAX_CHAT_CHARS;
    setText(chatCount, n > MAX_CHAT_CHARS - 100 ? `${n} / ${MAX_CHAT_CHARS}` : '');
    setAttr(chatCount, 'data-over', n > MAX_CHAT_CHARS ? '' : undefined);
  };
  const sendChat = () => {
    const text = chatInput.value.trim();
    if (!text || charCount(text) > MAX_CHAT_CHARS) return;
    chatInput.value = '';
    updateChatInput();
    client.chat(text).catch((e: Error) => {
      if (!chatInput.value) chatInput.value = text;
      updateChatInput();
      toasts.show(explainError(e), 'error');
    });
  };
  chatInput.addEventListener('input', updateChatInput);
  chatInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing && !e.shiftKey) {
      e.preventDefault();
      sendChat();
    }
  });
  chatSend.addEventListener('click', sendChat);
  updateChatInput();

  const chatLine = (entry: { from: number; name: string; text: string }) => {
    const name = h('span', { class: 'ls-chat-name', text: entry.name });
    name.style.color = `hsl(${hueOf(entry.from)} 75% 74%)`;
    return h(
      'div',
      {
        class: 'ls-chat-line',
        'data-test': 'chat-message',
        'data-from': String(entry.from),
        'data-mine': entry.from === client.you ? '' : undefined,
      },
      name,
      h('span', { class: 'ls-chat-text', text: entry.text }),
    );
  };
  let chatRoom: string | undefined;
  const renderChat = () => {
    chatLog.replaceChildren(...client.chatLog.map(chatLine));
    if (client.chatLog.length === 0) chatLog.append(chatEmpty);
    chatLog.scrollTop = chatLog.scrollHeight;
  };
  offs.push(
    client.on('chat', (entry) => {
      const nearBottom = chatLog.scrollHeight - chatLog.scrollTop - chatLog.clientHeight < 40;
      chatEmpty.remove();
      chatLog.append(chatLine(entry));
      while (chatLog.childElementCount > 200) chatLog.firstElementChild?.remove();
      if (nearBottom || entry.from === client.you) chatLog.scrollTop = chatLog.scrollHeight;
    }),
  );

  // --- Over the video -----------------------------------------------------------------
  const layer = new VideoLayer(video, root);
  const joinButton = h('button', {
    class: 'ls-btn ls-btn-primary',
    type: 'button',
    'data-test': 'join-playback',
    text: '▶ Click to join playback',
  });
  const autoplay = h('div', { class: 'ls-autoplay', 'data-test': 'autoplay-blocked' }, joinButton);
  const setAutoplayBlocked = (blocked: boolean) => {
    if (blocked && !autoplay.isConnected) layer.el.append(autoplay);
    if (!blocked) autoplay.remove();
    show(panelJoin, blocked && !video);
    layer.place();
  };
  const resume = () => {
    if (!sync) return;
    sync.resumePlayback().then(
      () => setAutoplayBlocked(sync.autoplayBlocked === true),
      (e: Error) => toasts.show(explainError(e), 'error'),
    );
  };
  joinButton.addEventListener('click', resume);
  panelJoin.addEventListener('click', resume);
  if (sync) {
    offs.push(sync.on('autoplayBlocked', () => setAutoplayBlocked(true)));
    if (sync.autoplayBlocked) setAutoplayBlocked(true);
  }
  if (video) {
    const onPlaying = () => setAutoplayBlocked(false);
    video.addEventListener('playing', onPlaying);
    offs.push(() => video.removeEventListener('playing', onPlaying));
  }
  offs.push(
    client.on('reaction', (m) => {
      const from = m.from === client.you ? 'You' : (client.members.get(m.from)?.name ?? '');
      layer.float(m.reaction, from);
    }),
  );

  // --- Proposals ----------------------------------------------------------------------
  const cards = new Map<number, ProposalCard>();
  const myVotes = new Map<number, boolean>();

  const makeCard = (p: Proposal): ProposalCard => {
    const yes = h('button', { class: 'ls-btn ls-btn-primary ls-btn-sm', type: 'button', 'data-test': 'vote-yes', text: 'Yes' });
    const no = h('button', { class: 'ls-btn ls-btn-sm', type: 'button', 'data-test': 'vote-no', text: 'No' });
    const card: ProposalCard = {
      el: h('div', { class: 'ls-proposal', 'data-test': 'proposal', 'data-proposal-id': String(p.id), role: 'group' }),
      title: h('div', { class: 'ls-small ls-muted', 'data-test': 'proposal-by' }),
      action: h('div', { class: 'ls-proposal-title ls-proposal-action', 'data-test': 'proposal-action' }),
      tally: h('span', { 'data-test': 'proposal-tally' }),
      bar: h('span'),
      countdown: h('span', { class: 'ls-countdown', 'data-test': 'proposal-countdown' }),
      buttons: h('div', { class: 'ls-row' }, yes, no),
      yes,
      no,
      note: h('span', { class: 'ls-small ls-muted', 'data-test': 'proposal-note' }),
      proposal: p,
    };
    const barEl = h('div', { class: 'ls-bar', 'aria-hidden': 'true' }, card.bar);
    card.el.append(
      card.title,
      card.action,
      barEl,
      h('div', { class: 'ls-proposal-meta' }, card.tally, card.countdown),
      h('div', { class: 'ls-row ls-wrap' }, card.buttons, card.note),
    );
    const vote = (choice: boolean) => {
      const id = card.proposal.id;
      myVotes.set(id, choice);
      renderProposals();
      client.vote(id, choice).catch((e: Error) => {
        myVotes.delete(id);
        renderProposals();
        toasts.show(explainError(e), 'error');
      });
    };
    yes.addEventListener('click', () => vote(true));
    no.addEventListener('click', () => vote(false));
    return card;
  };

  const renderProposals = () => {
    for (const [id, card] of cards) {
      if (!client.proposals.has(id)) {
        card.el.remove();
        cards.delete(id);
        myVotes.delete(id);
      }
    }
    for (const p of [...client.proposals.values()].sort((a, b) => a.id - b.id)) {
      let card = cards.get(p.id);
      if (!card) {
        card = makeCard(p);
        cards.set(p.id, card);
        proposalsEl.append(card.el);
      }
      card.proposal = p;
      const mine = p.proposer === client.you;
      setText(card.title, mine ? 'You propose' : `${nameOf(p.proposer)} proposes`);
      const actionText = capitalise(describeAction(p.action, nameOf));
      setText(card.action, actionText);
      setAttr(card.yes, 'aria-label', `Vote yes: ${actionText}`);
      setAttr(card.no, 'aria-label', `Vote no: ${actionText}`);
      setText(card.tally, `${p.yes} yes · ${p.no} no · ${p.needed} needed`);
      card.bar.style.width = `${Math.min(100, (p.yes / Math.max(1, p.needed)) * 100)}%`;
      const voted = myVotes.get(p.id);
      show(card.buttons, !mine && voted === undefined);
      setText(card.note, mine ? 'You proposed' : voted === undefined ? '' : `You voted ${voted ? 'yes' : 'no'}`);
    }
    show(proposalsEl, cards.size > 0);
    tickProposals();
  };

  const tickProposals = () => {
    const now = nowUs();
    for (const card of cards.values()) {
      const local = client.clock.localTime(card.proposal.deadline);
      if (local === undefined) {
        setText(card.countdown, '');
        continue;
      }
      const left = Math.max(0, Math.ceil((local - now) / 1e6));
      setText(card.countdown, `${left} s left`);
    }
  };

  offs.push(
    client.on('decision', (d) => {
      const text = `${OUTCOME_TEXT[d.outcome] ?? d.outcome}: ${describeAction(d.action, nameOf)}`;
      toasts.show(text, d.outcome === 'passed' ? 'success' : 'info');
    }),
    client.on('notice', (n) => {
      toasts.show(n.text, n.level === 'error' ? 'error' : 'info');
    }),
  );

  // --- The whole room -----------------------------------------------------------------
  const renderRoom = () => {
    const room = client.room;
    show(root, true);
    if (!room) {
      setText(title, 'Not in a room');
      show(playback, false);
      show(invite, false);
      show(people, false);
      show(controls, false);
      show(chat, false);
      show(proposalsEl, false);
      setText(roleChip, '');
      show(roleChip.parentElement as HTMLElement, false);
      show(modeChip, false);
      chatRoom = undefined;
      return;
    }
    for (const el of [playback, people, chat, modeChip, roleChip.parentElement as HTMLElement]) show(el, true);
    if (chatRoom !== room.id) {
      chatRoom = room.id;
      renderChat();
    }
    setText(title, room.name);
    setText(modeChip, room.mode === 'democratic' ? 'Democratic' : 'Host decides');
    setAttr(modeChip, 'data-mode', room.mode);
    const me = client.me;
    setText(roleChip, me?.role ?? 'member');
    setAttr(roleChip, 'data-role', me?.role ?? 'member');
    show(lockChip, room.options.locked);
    show(passwordChip, room.has_password);
    setText(mediaTitle, room.media?.title ?? 'No media chosen');

    // Invite: only the host and co-hosts get the code.
    if (room.invite) {
      const base = opts.inviteBaseUrl ?? `${location.origin}${location.pathname}`;
      const sep = base.includes('?') ? '&' : '?';
      const link = `${base}${sep}join=${encodeURIComponent(room.invite)}`;
      if (inviteInput.value !== link) inviteInput.value = link;
      setText(
        inviteNote,
        room.has_password ? 'People also need the room password to join.' : 'Anyone with this link can join.',
      );
    }
    show(invite, room.invite !== undefined);

    const iAmHost = client.isHost;
    const democratic = room.mode === 'democratic';
    setAttr(modeHost, 'aria-pressed', String(room.mode === 'host'));
    setAttr(modeDemocratic, 'aria-pressed', String(democratic));
    show(modeRow, iAmHost || democratic);
    show(resyncButton.parentElement as HTMLElement, client.canControl);
    resyncButton.textContent = democratic && !iAmHost ? '⟲ Propose a resync' : '⟲ Resync everyone';
    show(adminBlock, iAmHost);
    if (!everyone.input.disabled) everyone.input.checked = room.options.everyone_controls;
    if (!lock.input.disabled) lock.input.checked = room.options.locked;
    setText(passwordState, room.has_password ? '· set' : '· none');
    show(passwordClear, room.has_password);
    passwordInput.placeholder = room.has_password ? 'New password' : 'Set a password';
    updatePasswordButtons();
    const mayChangeMedia = mediaControls && (iAmHost || me?.role === 'cohost' || democratic);
    show(mediaBlock, mayChangeMedia);
    show(controls, iAmHost || democratic || client.canControl || mayChangeMedia);

    if (!client.canControl) setText(hint, 'The host controls playback');
    else if (democratic) setText(hint, 'Democratic room: play, seek and rate changes go to a vote');
    else setText(hint, '');
    show(hint, hint.textContent !== '');

    renderMembers();
    renderProposals();
    tickStatus();
  };

  // --- Live parts ---------------------------------------------------------------------
  const tickStatus = () => {
    const timeline = client.timeline;
    const room = client.room;
    if (!timeline || !room) {
      setText(statusText, 'Waiting for the room…');
      setAttr(status, 'data-state', undefined);
      show(rateChip, false);
      return;
    }
    const serverNow = client.clock.serverTime(nowUs());
    const position = serverNow === undefined ? timeline.position : positionAt(timeline, serverNow);
    const duration = room.media?.duration ?? (video && Number.isFinite(video.duration) ? video.duration : undefined);
    const at = duration ? `${formatTime(position)} / ${formatTime(duration)}` : formatTime(position);
    setText(statusIcon, timeline.paused ? '❚❚' : '▶');
    setText(statusText, timeline.paused ? `Paused at ${at}` : `Playing · ${at}`);
    setAttr(status, 'data-state', timeline.paused ? 'paused' : 'playing');
    setText(rateChip, `${Number(timeline.rate.toFixed(2))}×`);
    show(rateChip, true);
  };

  const tickSync = () => {
    if (!sync) return;
    const bound = drawDriftPlot(canvas, sync.driftHistory, performance.now());
    setText(scale, `±${bound} ms`);
    const d = sync.driftMs;
    const history = sync.driftHistory;
    const recent = history.length > 0 && performance.now() - history[history.length - 1].tMs < 2000;
    setText(driftValue, d === undefined ? '—' : formatSignedMs(d));
    setAttr(driftValue, 'data-quality', d === undefined ? undefined : driftQuality(d));
    const c = sync.corrections;
    const frameDrift = sync.frameDriftMs;
    setText(
      correctionsText,
      `${recent || d === undefined ? '' : 'Paused · '}${
        frameDrift === undefined ? '' : `frame on screen ${formatSignedMs(frameDrift)} · `
      }${c.seeks} seek${c.seeks === 1 ? '' : 's'} · ${c.rateChanges} rate change${
        c.rateChanges === 1 ? '' : 's'
      } to stay in sync`,
    );
  };

  let frame: number | undefined;
  let lastDraw = 0;
  const loop = (t: number) => {
    frame = requestAnimationFrame(loop);
    if (t - lastDraw < REDRAW_MS) return;
    lastDraw = t;
    tickStatus();
    tickProposals();
    tickSync();
    layer.place();
  };
  frame = requestAnimationFrame(loop);

  offs.push(
    client.on('room', renderRoom),
    client.on('timeline', tickStatus),
    client.on('memberStats', renderMembers),
  );

  root.append(head, playback, proposalsEl, invite, people, chat, syncSection, controls);
  container.appendChild(root);
  renderRoom();
  tickSync();

  return {
    destroy() {
      if (frame !== undefined) cancelAnimationFrame(frame);
      clearTimeout(copyTimer);
      for (const t of pendingKick.values()) clearTimeout(t);
      for (const off of offs) off();
      layer.destroy();
      if (ownToasts) toasts.destroy();
      root.remove();
    },
  };
}

function rank(m: Member): number {
  return m.role === 'host' ? 0 : m.role === 'cohost' ? 1 : 2;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A title from a URL's last path segment (`film.mp4` → `film`). */
export function titleFromUrl(url: string): string {
  try {
    const last = decodeURIComponent(new URL(url, location.href).pathname.split('/').pop() ?? '');
    return last.replace(/\.[a-z0-9]{2,5}$/i, '') || url;
  } catch {
    return url;
  }
}
