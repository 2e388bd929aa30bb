/**
 * A lockstep session in the browser: connects (WebTransport, or the WebSocket fallback),
 * says hello, keeps the clock in sync, tracks the room, and reconnects with the resume token
 * when the connection drops. The video binding (`video.ts`) and the UI sit on top.
 */
import { ClockSync, defaultClockConfig } from './clock';
import { Emitter } from './events';
import {
  type Action,
  type ClientMessage,
  type Media,
  type Member,
  type MemberStat,
  type PolicyMode,
  type Proposal,
  type RelayMessage,
  type RelayMessageOf,
  type Role,
  type RoomInfo,
  type RoomOptions,
  type RoomSummary,
  type Timeline,
  type TransportKind,
  PROTOCOL_VERSION,
} from './protocol';
import {
  type RelayConfig,
  type Transport,
  type TransportHandlers,
  hasWebTransport,
  openWebSocket,
  openWebTransport,
} from './transport';

export const CLIENT_NAME = 'lockstep-web/0.1.0';

/** The local monotonic clock, microseconds (what clock sync measures against). */
export function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

export interface ClientOptions {
  /** The relay's HTTP base URL (page, `/api/config`); default: the page's origin. */
  relayUrl?: string;
  /** `auto` tries WebTransport and falls back to WebSocket; the others force one. */
  transport?: 'auto' | TransportKind;
  /** Display name for anonymous relays. */
  name?: string;
  /** A JWT, or a function fetching a fresh one (called before every connection). */
  token?: string | (() => Promise<string>);
  /** Overrides `/api/config`'s WebTransport URL (and hashes). */
  webTransportUrl?: string;
  certificateHashes?: { algorithm: string; value: string }[];
  /** Overrides `/api/config`'s WebSocket URL. */
  webSocketUrl?: string;
  /**
   * A resume token kept from an earlier page (e.g. in `sessionStorage`): a reload comes back
   * as the same member, with its role and room, within the relay's resume window.
   */
  resumeToken?: string;
  /** How long WebTransport gets to connect before the WebSocket is tried, ms. */
  webTransportTimeoutMs?: number;
  /** A connection from which nothing arrives for this long is dead, ms. */
  silenceTimeoutMs?: number;
  /** How long a request waits for its answer, ms. */
  requestTimeoutMs?: number;
  /** Where diagnostics go (default: console.info). */
  log?: (message: string) => void;
}

export type ConnectionPhase = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'refused' | 'closed';

export interface ConnectionState {
  phase: ConnectionPhase;
  transport?: TransportKind;
  /** Why the last connection failed or ended, for people. */
  detail?: string;
  /** Reconnection attempts since the last good connection. */
  attempt: number;
}

/** A request the relay refused. */
export class LockstepError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LockstepError';
  }
}

export interface ChatEntry {
  from: number;
  name: string;
  text: string;
  at: number;
}

/** A timeline from the relay; `reset` when it is a new base (joining, resuming). */
export interface TimelineEvent {
  timeline: Timeline;
  reset: boolean;
  reason?: string;
  by?: number;
}

export interface ClientEvents extends Record<string, unknown> {
  connection: ConnectionState;
  /** The room, its members or proposals changed (or the client left it: `room` undefined). */
  room: LockstepClient;
  timeline: TimelineEvent;
  proposal: Proposal;
  decision: RelayMessageOf<'decision'>;
  chat: ChatEntry;
  reaction: RelayMessageOf<'reaction'>;
  memberStats: MemberStat[];
  /** Something for the user: a refused request, being kicked, the room closing. */
  notice: { level: 'info' | 'error'; text: string; code?: string };
  message: RelayMessage;
}

interface Pending {
  resolve(message: RelayMessage): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Most requests outstanding at once; more are refused locally (a bounded queue). */
const MAX_PENDING = 64;
/** Chat lines kept for the UI. */
const MAX_CHAT = 200;
/** Reconnection backoff, ms: doubling from the first to the last, with jitter. */
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
/** How often the client's timers run, ms: pings are due on the clock's schedule. */
const TICK_MS = 25;
/** How often `stats` go to the relay while in a room, ms. */
const STATS_INTERVAL_MS = 1000;

/** What the video binding reports for `stats`. */
export interface PlayerReport {
  driftUs: number;
  position?: number;
  atLocalUs?: number;
}

export class LockstepClient extends Emitter<ClientEvents> {
  readonly options: Required<
    Pick<ClientOptions, 'transport' | 'webTransportTimeoutMs' | 'silenceTimeoutMs' | 'requestTimeoutMs'>
  > &
    ClientOptions;
  readonly clock = new ClockSync(defaultClockConfig());
  connection: ConnectionState = { phase: 'idle', attempt: 0 };
  /** The member id, name and resume token of the session. */
  you?: number;
  name?: string;
  room?: RoomInfo;
  /** Members this client knows of: everyone, or in a room of more than 100, some of them. */
  readonly members = new Map<number, Member>();
  /** The room's size as the relay last told it, in rooms too big to list whole. */
  private memberCount?: number;
  readonly proposals = new Map<number, Proposal>();
  readonly memberStats = new Map<number, MemberStat>();
  readonly chatLog: ChatEntry[] = [];
  /** The newest timeline of the current room. */
  timeline?: Timeline;
  /** Pluggable source of this player's figures for `stats` (set by the video binding). */
  playerReport?: () => PlayerReport | undefined;

  private transport?: Transport;
  private resumeToken?: string;
  private roomPassword?: string;
  private pending = new Map<number, Pending>();
  private nextReq = 1;
  private lastReceived = 0;
  private lastStats = 0;
  private ticker?: ReturnType<typeof setInterval>;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  /** The last connection reached a relay that ended it before the welcome. */
  private turnedAway = false;
  private closedByUser = false;
  private config?: RelayConfig;

  constructor(options: ClientOptions = {}) {
    super();
    this.options = {
      transport: 'auto',
      webTransportTimeoutMs: 3000,
      silenceTimeoutMs: 6000,
      requestTimeoutMs: 10000,
      ...options,
    };
    this.resumeToken = options.resumeToken;
  }

  /** The token that resumes this session after a drop or a reload (PROTOCOL.md §4). */
  get sessionResumeToken(): string | undefined {
    return this.resumeToken;
  }

  private log(message: string): void {
    (this.options.log ?? ((m: string) => console.info(`lockstep: ${m}`)))(message);
  }

  private setConnection(state: Partial<ConnectionState>): void {
    this.connection = { ...this.connection, ...state };
    this.emit('connection', this.connection);
  }

  /** The relay's HTTP base URL. */
  get relayUrl(): string {
    return (this.options.relayUrl ?? location.origin).replace(/\/+$/, '');
  }

  /** Connects (and keeps reconnecting after drops until `close`). Resolves once welcomed. */
  async connect(): Promise<void> {
    this.closedByUser = false;
    this.startTicker();
    await this.connectOnce();
  }

  /** Closes for good: no reconnection. */
  close(): void {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.transport?.close('closed by the user');
    this.transport = undefined;
    this.failPending(new LockstepError('disconnected', 'the client closed'));
    this.setConnection({ phase: 'closed', transport: undefined });
  }

  /** Drops the current connection as a network failure would (the client reconnects). */
  dropConnection(reason = 'dropped'): void {
    this.transport?.close(reason);
  }

  private async fetchConfig(): Promise<RelayConfig> {
    const response = await fetch(`${this.relayUrl}/api/config`, { cache: 'no-store' });
    if (!response.ok) throw new Error(`/api/config answered ${response.status}`);
    return (await response.json()) as RelayConfig;
  }

  private async token(): Promise<string | undefined> {
    const t = this.options.token;
    if (typeof t === 'function') return await t();
    return t;
  }

  private async openTransport(): Promise<Transport> {
    const handlers = {
      onMessage: (m: RelayMessage) => this.onMessage(m),
      onClose: (reason: string) => this.onTransportClosed(reason),
      onDropped: (error: string) => this.log(`dropped a relay message: ${error}`),
    };
    let config: RelayConfig | undefined;
    let reachable = true;
    try {
      config = await this.fetchConfig();
      this.config = config;
    } catch (e) {
      config = this.config;
      reachable = false;
      this.log(`cannot read ${this.relayUrl}/api/config (${(e as Error).message})`);
    }
    const wsUrl =
      this.options.webSocketUrl ??
      config?.websocket.url ??
      `${this.relayUrl.replace(/^http/, 'ws')}/ws`;
    const wtUrl = this.options.webTransportUrl ?? config?.webtransport?.url;
    const hashes = this.options.certificateHashes ?? config?.webtransport?.certificate_hashes ?? [];
    const pinned = Boolean(this.options.webSocketUrl || this.options.webTransportUrl);
    if (this.turnedAway && !pinned) {
      // The relay reached last time could not place the session (cut off from the relays
      // that hold it): the others it listed come first.
      for (const other of config?.relays ?? []) {
        try {
          const transport = await this.openAt(other.webtransport?.url, other.websocket.url, other.webtransport?.certificate_hashes ?? [], handlers);
          this.log(`connected to another relay of the room (${other.id})`);
          return transport;
        } catch (err) {
          this.log(`relay ${other.id} cannot be reached (${(err as Error).message})`);
        }
      }
    }
    try {
      return await this.openAt(wtUrl, wsUrl, hashes, handlers);
    } catch (e) {
      // The relay is gone: its rooms move to the other relays it listed, where the resume
      // token finds them. (Not when the page pinned its own URLs.)
      const others = reachable || pinned ? [] : config?.relays ?? [];
      for (const other of others) {
        try {
          const transport = await this.openAt(other.webtransport?.url, other.websocket.url, other.webtransport?.certificate_hashes ?? [], handlers);
          this.log(`connected to another relay of the room (${other.id})`);
          return transport;
        } catch (err) {
          this.log(`relay ${other.id} cannot be reached either (${(err as Error).message})`);
        }
      }
      throw e;
    }
  }

  /** Opens a transport to one relay: WebTransport when asked and possible, else WebSocket. */
  private async openAt(
    wtUrl: string | undefined,
    wsUrl: string,
    hashes: { algorithm: string; value: string }[],
    handlers: TransportHandlers,
  ): Promise<Transport> {
    const mode = this.options.transport;
    if (mode !== 'websocket' && wtUrl && hasWebTransport()) {
      try {
        return await openWebTransport(wtUrl, hashes, this.options.webTransportTimeoutMs, handlers);
      } catch (e) {
        if (mode === 'webtransport') throw e;
        this.log(`WebTransport failed (${(e as Error).message}); falling back to WebSocket`);
      }
    } else if (mode === 'webtransport') {
      throw new Error(hasWebTransport() ? 'the relay publishes no WebTransport URL' : 'this browser has no WebTransport');
    } else if (mode === 'auto') {
      this.log(hasWebTransport() ? 'no WebTransport URL published; using WebSocket' : 'no WebTransport in this browser; using WebSocket');
    }
    return await openWebSocket(wsUrl, 5000, handlers);
  }

  private async connectOnce(): Promise<void> {
    if (this.closedByUser) return;
    const reconnecting = this.connection.phase === 'reconnecting';
    this.setConnection({ phase: reconnecting ? 'reconnecting' : 'connecting', transport: undefined });
    let transport: Transport;
    let token: string | undefined;
    try {
      token = await this.token();
      transport = await this.openTransport();
    } catch (e) {
      this.setConnection({ detail: (e as Error).message });
      this.scheduleReconnect();
      throw e;
    }
    if (this.closedByUser) {
      transport.close('closed by the user');
      return;
    }
    this.transport = transport;
    this.lastReceived = performance.now();
    const welcome = this.waitFor('welcome', this.options.requestTimeoutMs);
    transport.send({
      type: 'hello',
      version: PROTOCOL_VERSION,
      client: CLIENT_NAME,
      features: [],
      token,
      name: this.options.name,
      resume: this.resumeToken,
    });
    let w: RelayMessageOf<'welcome'>;
    try {
      w = await welcome;
    } catch (e) {
      const err = e as Error;
      if (err instanceof LockstepError && ['auth_required', 'auth_failed', 'unsupported_version'].includes(err.code)) {
        // Retrying the same credentials is pointless (docs/AUTH.md); a token function gets one
        // more chance with a fresh token.
        if (typeof this.options.token === 'function' && err.code === 'auth_failed' && this.connection.attempt === 0) {
          this.setConnection({ attempt: 1 });
          transport.close('retrying with a fresh token');
          return;
        }
        this.closedByUser = true;
        transport.close('refused');
        this.setConnection({ phase: 'refused', detail: `${err.code}: ${err.message}` });
        throw err;
      }
      // Reached, but not welcomed: next time the other relays come first.
      this.turnedAway = true;
      transport.close(err.message);
      throw err;
    }
    this.turnedAway = false;
    const wasInRoom = this.room;
    this.you = w.you;
    this.name = w.name;
    this.resumeToken = w.resume_token;
    if (!w.resumed) {
      // Maybe another relay (or a restarted one): another clock.
      this.clock.reset(nowUs());
    }
    this.clock.setIntervalUs(w.limits.ping_interval_ms * 1000);
    this.setConnection({ phase: 'connected', transport: transport.kind, detail: undefined, attempt: 0 });
    this.log(`connected over ${transport.kind}${w.resumed ? ' (resumed)' : ''} as member ${w.you}`);
    if (!w.resumed && wasInRoom) {
      // The resume window passed or the relay restarted: join the room again, as a new member.
      this.clearRoom();
      this.joinRoom(wasInRoom.id, this.roomPassword).catch((e: Error) =>
        this.emit('notice', { level: 'error', text: `could not rejoin the room: ${e.message}` }),
      );
    }
  }

  private onTransportClosed(reason: string): void {
    this.transport = undefined;
    this.failPending(new LockstepError('disconnected', `connection lost: ${reason}`));
    if (this.closedByUser) return;
    this.log(`connection lost: ${reason}`);
    this.setConnection({ phase: 'reconnecting', transport: undefined, detail: reason });
    this.scheduleReconnect();
  }

  private scheduleReconnect(delayMs?: number): void {
    if (this.closedByUser) return;
    clearTimeout(this.reconnectTimer);
    const attempt = this.connection.attempt;
    const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    const delay = delayMs ?? base * (0.75 + Math.random() * 0.5);
    this.connection.attempt = attempt + 1;
    this.reconnectTimer = setTimeout(() => {
      if (this.transport || this.closedByUser) return;
      this.connectOnce().catch(() => undefined);
    }, delay);
  }

  private failPending(error: Error): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.pending.clear();
    for (const w of this.waiters) w.reject(error);
    this.waiters.clear();
  }

  private waiters = new Set<{ type: string; resolve(m: RelayMessage): void; reject(e: Error): void }>();

  private waitFor<T extends RelayMessage['type']>(type: T, timeoutMs: number): Promise<RelayMessageOf<T>> {
    return new Promise((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: RelayMessage) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(m as RelayMessageOf<T>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(e);
        },
      };
      const timer = setTimeout(() => waiter.reject(new LockstepError('timeout', `no ${type} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private startTicker(): void {
    if (this.ticker) return;
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  private tick(): void {
    const transport = this.transport;
    if (!transport || this.connection.phase !== 'connected') return;
    const now = performance.now();
    if (now - this.lastReceived > this.options.silenceTimeoutMs) {
      transport.close(`nothing from the relay for ${this.options.silenceTimeoutMs} ms`);
      return;
    }
    const ping = this.clock.pollPing(nowUs());
    if (ping) transport.send({ type: 'ping', seq: ping.seq, t0: ping.t0 });
    if (this.room && now - this.lastStats >= STATS_INTERVAL_MS) {
      this.lastStats = now;
      this.sendStats();
    }
  }

  private sendStats(): void {
    const estimate = this.clock.estimate();
    if (!estimate || !this.transport) return;
    const report = this.playerReport?.();
    const clamp = (v: number) => Math.max(-(2 ** 53 - 1), Math.min(2 ** 53 - 1, Math.round(v)));
    const message: ClientMessage = {
      type: 'stats',
      rtt_us: Math.min(0xffffffff, Math.round(estimate.bestRttUs)),
      offset_us: clamp(estimate.offsetUs),
      offset_error_us: Math.min(0xffffffff, Math.round(estimate.errorBoundUs)),
      drift_us: clamp(report?.driftUs ?? 0),
    };
    if (report?.position !== undefined && report.atLocalUs !== undefined) {
      const at = this.clock.serverTime(report.atLocalUs);
      if (at !== undefined && report.position >= 0 && report.position <= 1e7) {
        message.position = report.position;
        message.at = at;
      }
    }
    this.transport.send(message);
  }

  /** Sends a message that needs no answer (silently dropped while disconnected). */
  send(message: ClientMessage): void {
    this.transport?.send(message);
  }

  /** Sends a request and resolves with its answer (`room_state`, `room_list` or `ack`). */
  request<T extends RelayMessage = RelayMessage>(message: ClientMessage & { req?: number }): Promise<T> {
    const transport = this.transport;
    if (!transport || this.connection.phase !== 'connected') {
      return Promise.reject(new LockstepError('disconnected', 'not connected to the relay'));
    }
    if (this.pending.size >= MAX_PENDING) {
      return Promise.reject(new LockstepError('busy', 'too many requests outstanding'));
    }
    const req = this.nextReq;
    this.nextReq = this.nextReq >= 0xffffffff ? 1 : this.nextReq + 1;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new LockstepError('timeout', `${message.type} got no answer`));
      }, this.options.requestTimeoutMs);
      this.pending.set(req, { resolve: resolve as (m: RelayMessage) => void, reject, timer });
      transport.send({ ...message, req } as ClientMessage);
    });
  }

  private settle(req: number | undefined, message: RelayMessage): boolean {
    if (req === undefined) return false;
    const p = this.pending.get(req);
    if (!p) return false;
    this.pending.delete(req);
    clearTimeout(p.timer);
    if (message.type === 'error') p.reject(new LockstepError(message.code, message.message));
    else p.resolve(message);
    return true;
  }

  private onMessage(m: RelayMessage): void {
    this.lastReceived = performance.now();
    for (const w of [...this.waiters]) {
      if (w.type === m.type) w.resolve(m);
      else if (m.type === 'error' && m.fatal) w.reject(new LockstepError(m.code, m.message));
    }
    const inRoom = (room: string) => this.room?.id === room;
    switch (m.type) {
      case 'pong':
        this.clock.onPong(m, nowUs());
        break;
      case 'error':
        if (!this.settle(m.req, m)) {
          this.emit('notice', { level: 'error', text: m.message, code: m.code });
        }
        if (m.fatal) this.log(`fatal error from the relay: ${m.code}: ${m.message}`);
        break;
      case 'ack':
      case 'room_list':
        this.settle(m.req, m);
        break;
      case 'room_state':
        this.room = m.room;
        this.members.clear();
        for (const member of m.members) this.members.set(member.id, member);
        this.memberCount = m.member_count;
        this.proposals.clear();
        for (const p of m.proposals) this.proposals.set(p.id, p);
        this.memberStats.clear();
        this.you = m.you;
        this.timeline = m.timeline;
        this.settle(m.req, m);
        this.emit('timeline', { timeline: m.timeline, reset: true });
        this.emit('room', this);
        break;
      case 'room_updated':
        if (this.room && this.room.id === m.room.id) {
          // `invite` comes only to the host and co-hosts; keep what we had otherwise.
          this.room = m.room;
          this.emit('room', this);
        }
        break;
      case 'participants':
        if (!inRoom(m.room)) break;
        for (const member of m.members) this.members.set(member.id, member);
        if (m.member_count !== undefined) this.memberCount = m.member_count;
        this.emit('room', this);
        break;
      case 'member_left':
        if (!inRoom(m.room)) break;
        if (m.member === this.you) {
          const text = m.reason === 'kicked' ? `You were removed from the room${m.message ? `: ${m.message}` : ''}` : 'You left the room';
          this.clearRoom();
          this.emit('notice', { level: m.reason === 'kicked' ? 'error' : 'info', text });
        } else {
          this.members.delete(m.member);
          this.memberStats.delete(m.member);
          if (this.memberCount !== undefined) this.memberCount -= 1;
          this.emit('room', this);
        }
        break;
      case 'room_closed':
        if (!inRoom(m.room)) break;
        this.clearRoom();
        this.emit('notice', { level: 'info', text: `The room was closed (${m.reason})` });
        break;
      case 'state_update':
        if (!inRoom(m.room)) break;
        if (!this.timeline || this.timeline.seq < m.timeline.seq) {
          this.timeline = m.timeline;
          this.emit('timeline', { timeline: m.timeline, reset: false, reason: m.reason, by: m.by });
        }
        break;
      case 'mode_changed':
        if (this.room && inRoom(m.room)) {
          this.room = { ...this.room, mode: m.mode };
          this.emit('room', this);
        }
        break;
      case 'host_changed':
        if (this.room && inRoom(m.room)) {
          this.room = { ...this.room, host: m.host };
          this.emit('room', this);
        }
        break;
      case 'proposal':
        if (!inRoom(m.room)) break;
        this.proposals.set(m.proposal.id, m.proposal);
        this.emit('proposal', m.proposal);
        this.emit('room', this);
        break;
      case 'decision':
        if (!inRoom(m.room)) break;
        this.proposals.delete(m.proposal);
        this.emit('decision', m);
        this.emit('room', this);
        break;
      case 'chat_message':
        if (!inRoom(m.room)) break;
        this.chatLog.push({ from: m.from, name: m.name, text: m.text, at: m.at });
        if (this.chatLog.length > MAX_CHAT) this.chatLog.splice(0, this.chatLog.length - MAX_CHAT);
        this.emit('chat', { from: m.from, name: m.name, text: m.text, at: m.at });
        break;
      case 'reaction':
        if (inRoom(m.room)) this.emit('reaction', m);
        break;
      case 'member_stats':
        if (!inRoom(m.room)) break;
        for (const s of m.members) this.memberStats.set(s.member, s);
        this.emit('memberStats', m.members);
        break;
      case 'going_away':
        this.log(`relay going away: ${m.reason}`);
        this.transport?.close(`relay going away: ${m.reason}`);
        this.scheduleReconnect(Math.max(0, m.reconnect_after_ms));
        break;
      default:
        break;
    }
    this.emit('message', m);
  }

  /** How many members the room has (more than `members` holds in a room too big to list). */
  get memberTotal(): number {
    return Math.max(this.memberCount ?? 0, this.members.size);
  }

  private clearRoom(): void {
    this.room = undefined;
    this.timeline = undefined;
    this.members.clear();
    this.memberCount = undefined;
    this.proposals.clear();
    this.memberStats.clear();
    this.chatLog.length = 0;
    this.emit('room', this);
  }

  /** Shows something to the user through the `notice` event. */
  notify(level: 'info' | 'error', text: string, code?: string): void {
    this.emit('notice', { level, text, code });
  }

  // --- Requests -------------------------------------------------------------------------

  /** My member entry in the current room. */
  get me(): Member | undefined {
    return this.you === undefined ? undefined : this.members.get(this.you);
  }

  /** Whether this member may send playback commands directly (host mode rules, §6.4). */
  get canControl(): boolean {
    const room = this.room;
    const me = this.me;
    if (!room || !me) return false;
    if (room.mode === 'democratic') return true;
    return me.role === 'host' || me.role === 'cohost' || room.options.everyone_controls;
  }

  /** Whether this member administers the room (host). */
  get isHost(): boolean {
    return this.room?.host !== undefined && this.room.host === this.you;
  }

  async createRoom(args: {
    name: string;
    media?: Media;
    mode?: PolicyMode;
    password?: string;
    options?: RoomOptions;
  }): Promise<RoomInfo> {
    const reply = await this.request<RelayMessageOf<'room_state'>>({ type: 'create_room', ...args });
    this.roomPassword = args.password;
    return reply.room;
  }

  async joinRoom(room: string, password?: string): Promise<RoomInfo> {
    const reply = await this.request<RelayMessageOf<'room_state'>>({ type: 'join_room', room, password });
    this.roomPassword = password;
    return reply.room;
  }

  async leaveRoom(): Promise<void> {
    await this.request({ type: 'leave_room' });
    this.clearRoom();
  }

  async listRooms(): Promise<RoomSummary[]> {
    return (await this.request<RelayMessageOf<'room_list'>>({ type: 'list_rooms' })).rooms;
  }

  /** Returns the proposal id when the command went to a vote. */
  private async command(message: ClientMessage): Promise<number | undefined> {
    const ack = await this.request<RelayMessageOf<'ack'>>(message);
    return ack.proposal;
  }

  play(): Promise<number | undefined> {
    return this.command({ type: 'play' });
  }
  pause(): Promise<number | undefined> {
    return this.command({ type: 'pause' });
  }
  seek(position: number): Promise<number | undefined> {
    return this.command({ type: 'seek', position: Math.max(0, Math.min(1e7, position)) });
  }
  setRate(rate: number): Promise<number | undefined> {
    return this.command({ type: 'set_rate', rate: Math.max(0.25, Math.min(4, rate)) });
  }
  resync(): Promise<number | undefined> {
    return this.command({ type: 'resync' });
  }
  setMode(mode: PolicyMode): Promise<number | undefined> {
    return this.command({ type: 'set_mode', mode });
  }
  transferHost(to: number): Promise<number | undefined> {
    return this.command({ type: 'transfer_host', to });
  }
  kick(member: number, reason?: string): Promise<number | undefined> {
    return this.command({ type: 'kick', member, reason });
  }
  setMedia(media: Media): Promise<number | undefined> {
    return this.command({ type: 'set_media', media });
  }
  async setRole(member: number, role: Exclude<Role, 'host'>): Promise<void> {
    await this.command({ type: 'set_role', member, role });
  }
  async setOptions(options: RoomOptions): Promise<void> {
    await this.command({ type: 'set_room_options', options });
  }
  /** Changes one setting, keeping the others (the relay replaces all of them). */
  async updateOptions(change: Partial<RoomOptions>): Promise<void> {
    if (!this.room) throw new LockstepError('not_in_room', 'not in a room');
    await this.setOptions({ ...this.room.options, ...change });
  }
  async setPassword(password?: string): Promise<void> {
    await this.command({ type: 'set_password', password: password || undefined });
    this.roomPassword = password || undefined;
  }
  async vote(proposal: number, yes: boolean): Promise<void> {
    await this.command({ type: 'vote', proposal, yes });
  }
  async chat(text: string): Promise<void> {
    await this.command({ type: 'chat', text });
  }
  async react(reaction: string): Promise<void> {
    await this.command({ type: 'react', reaction });
  }
  /** Player readiness (no answer needed). */
  ready(ready: boolean, waitForMe = true): void {
    if (this.room) this.send({ type: 'ready', ready, wait_for_me: waitForMe });
  }
  bufferingStart(position: number): void {
    if (this.room) this.send({ type: 'buffering_start', position: Math.max(0, Math.min(1e7, position)) });
  }
  bufferingEnd(position: number): void {
    if (this.room) this.send({ type: 'buffering_end', position: Math.max(0, Math.min(1e7, position)) });
  }
}

/** People-readable text for an action (vote prompts, decisions). */
export function describeAction(action: Action, nameOf: (id: number) => string): string {
  switch (action.kind) {
    case 'play':
      return 'play';
    case 'pause':
      return 'pause';
    case 'seek':
      return `seek to ${formatTime(action.position)}`;
    case 'set_rate':
      return `play at ${action.rate}×`;
    case 'resync':
      return 'resync everyone';
    case 'set_mode':
      return `switch to ${action.mode} mode`;
    case 'kick':
      return `remove ${nameOf(action.member)}`;
    case 'transfer_host':
      return `make ${nameOf(action.to)} the host`;
    case 'set_media':
      return `watch “${action.media.title}”`;
  }
}

/** `h:mm:ss` or `m:ss`. */
export function formatTime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
