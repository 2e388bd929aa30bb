/**
 * The lockstep wire protocol, version 1 (docs/PROTOCOL.md is normative): message shapes,
 * MessagePack/JSON encoding, control-stream framing and the limits a client must respect.
 *
 * Messages are plain objects tagged by `type`, exactly as on the wire, so there is no mapping
 * layer to drift from the spec. Decoding never throws past this module: a relay message that
 * does not decode is dropped (PROTOCOL.md §3.3: "a client that cannot decode a relay message
 * drops it").
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import type { Timeline } from './timeline';

export type { Timeline } from './timeline';

export const PROTOCOL_VERSION = 1;
/** Largest datagram payload a sender may emit (bytes). */
export const MAX_DATAGRAM_PAYLOAD = 1100;
/** Largest frame a client may send (bytes). */
export const MAX_CLIENT_FRAME = 16384;
/** Largest frame a client accepts from the relay (bytes). */
export const MAX_RELAY_FRAME = 1048576;
export const MIN_RATE = 0.25;
export const MAX_RATE = 4.0;
export const MAX_CHAT_CHARS = 500;
export const MAX_NAME_CHARS = 64;

export type Role = 'host' | 'cohost' | 'member';
export type TransportKind = 'webtransport' | 'websocket';
export type PolicyMode = 'host' | 'democratic';
export type ResyncTarget = 'median' | 'slowest';
export type TimelineReason =
  | 'play'
  | 'pause'
  | 'seek'
  | 'rate'
  | 'resync'
  | 'ready'
  | 'buffering'
  | 'media'
  | 'repeat';
export type LeaveReason = 'left' | 'disconnected' | 'kicked';
export type CloseReason = 'closed' | 'expired' | 'shutdown';
export type HostChangeReason = 'transferred' | 'host_left';
export type Outcome = 'passed' | 'rejected' | 'expired' | 'superseded' | 'withdrawn';

export interface Media {
  url?: string;
  title: string;
  duration?: number;
  item_id?: string;
}

export interface Member {
  id: number;
  name: string;
  role: Role;
  transport: TransportKind;
  ready: boolean;
  buffering: boolean;
  waited_for: boolean;
}

export interface RoomOptions {
  public: boolean;
  locked: boolean;
  everyone_controls: boolean;
  pause_without_vote: boolean;
  quorum_percent: number;
  min_voters: number;
  proposal_timeout_ms: number;
  ready_timeout_ms: number;
  buffering_pauses_room: boolean;
  resync_target: ResyncTarget;
  host_grace_ms: number;
}

/** The defaults of PROTOCOL.md §7.5. */
export function defaultRoomOptions(): RoomOptions {
  return {
    public: false,
    locked: false,
    everyone_controls: false,
    pause_without_vote: true,
    quorum_percent: 50,
    min_voters: 1,
    proposal_timeout_ms: 30000,
    ready_timeout_ms: 5000,
    buffering_pauses_room: false,
    resync_target: 'median',
    host_grace_ms: 30000,
  };
}

export interface RoomInfo {
  id: string;
  name: string;
  invite?: string;
  mode: PolicyMode;
  host?: number;
  has_password: boolean;
  capacity: number;
  media?: Media;
  options: RoomOptions;
}

export interface RoomSummary {
  id: string;
  name: string;
  members: number;
  capacity: number;
  mode: PolicyMode;
  has_password: boolean;
  media_title?: string;
}

export type Action =
  | { kind: 'play' }
  | { kind: 'pause' }
  | { kind: 'seek'; position: number }
  | { kind: 'set_rate'; rate: number }
  | { kind: 'resync' }
  | { kind: 'set_mode'; mode: PolicyMode }
  | { kind: 'kick'; member: number }
  | { kind: 'transfer_host'; to: number }
  | { kind: 'set_media'; media: Media };

export interface Proposal {
  id: number;
  proposer: number;
  action: Action;
  deadline: number;
  yes: number;
  no: number;
  needed: number;
}

export interface SessionLimits {
  max_frame: number;
  max_datagram: number;
  ping_interval_ms: number;
}

export interface MemberStat {
  member: number;
  rtt_us: number;
  offset_us: number;
  offset_error_us: number;
  drift_us: number;
}

export type ErrorCode = string;

/** Messages a client sends. */
export type ClientMessage =
  | {
      type: 'hello';
      version: number;
      client: string;
      features: string[];
      token?: string;
      name?: string;
      resume?: string;
    }
  | {
      type: 'create_room';
      req?: number;
      name: string;
      password?: string;
      media?: Media;
      mode?: PolicyMode;
      options?: RoomOptions;
    }
  | { type: 'join_room'; req?: number; room: string; password?: string }
  | { type: 'leave_room'; req?: number }
  | { type: 'list_rooms'; req?: number }
  | { type: 'set_media'; req?: number; media: Media }
  | { type: 'set_room_options'; req?: number; options: RoomOptions }
  | { type: 'set_password'; req?: number; password?: string }
  | { type: 'kick'; req?: number; member: number; reason?: string }
  | { type: 'play'; req?: number }
  | { type: 'pause'; req?: number }
  | { type: 'seek'; req?: number; position: number }
  | { type: 'set_rate'; req?: number; rate: number }
  | { type: 'resync'; req?: number }
  | { type: 'ready'; req?: number; ready: boolean; wait_for_me: boolean }
  | { type: 'buffering_start'; req?: number; position: number }
  | { type: 'buffering_end'; req?: number; position: number }
  | { type: 'set_mode'; req?: number; mode: PolicyMode }
  | { type: 'transfer_host'; req?: number; to: number }
  | { type: 'set_role'; req?: number; member: number; role: Role }
  | { type: 'vote'; req?: number; proposal: number; yes: boolean }
  | { type: 'chat'; req?: number; text: string }
  | { type: 'react'; req?: number; reaction: string }
  | { type: 'ping'; seq: number; t0: number }
  | {
      type: 'stats';
      rtt_us: number;
      offset_us: number;
      offset_error_us: number;
      drift_us: number;
      position?: number;
      at?: number;
    };

/** Client messages that carry a `req` (requests the relay answers). */
export type ClientRequest = Extract<ClientMessage, { req?: number }>;

/** Messages the relay sends. */
export type RelayMessage =
  | {
      type: 'welcome';
      version: number;
      you: number;
      name: string;
      resume_token: string;
      resumed: boolean;
      server_time: number;
      features: string[];
      limits: SessionLimits;
    }
  | { type: 'error'; req?: number; code: ErrorCode; message: string; fatal: boolean }
  | { type: 'ack'; req: number; proposal?: number }
  | { type: 'going_away'; reason: string; reconnect_after_ms: number; room?: string }
  | { type: 'room_list'; req?: number; rooms: RoomSummary[] }
  | {
      type: 'room_state';
      req?: number;
      room: RoomInfo;
      you: number;
      members: Member[];
      timeline: Timeline;
      proposals: Proposal[];
      /** The room's size when `members` lists only some (rooms of more than 100). */
      member_count?: number;
    }
  | { type: 'room_updated'; room: RoomInfo }
  | { type: 'participants'; room: string; members: Member[]; member_count?: number }
  | { type: 'member_left'; room: string; member: number; reason: LeaveReason; message?: string }
  | { type: 'room_closed'; room: string; reason: CloseReason }
  | { type: 'state_update'; room: string; timeline: Timeline; reason: TimelineReason; by?: number }
  | { type: 'mode_changed'; room: string; mode: PolicyMode; by?: number }
  | {
      type: 'host_changed';
      room: string;
      host?: number;
      previous?: number;
      reason: HostChangeReason;
    }
  | { type: 'proposal'; room: string; proposal: Proposal }
  | { type: 'decision'; room: string; proposal: number; outcome: Outcome; action: Action }
  | { type: 'chat_message'; room: string; from: number; name: string; text: string; at: number }
  | { type: 'reaction'; room: string; from: number; reaction: string; at: number }
  | { type: 'pong'; seq: number; t0: number; t1: number; t2: number }
  | { type: 'member_stats'; room: string; members: MemberStat[] };

export type RelayMessageOf<T extends RelayMessage['type']> = Extract<RelayMessage, { type: T }>;

/** Datagram-class message types (PROTOCOL.md §2.3). */
const DATAGRAM_TYPES = new Set(['state_update', 'ping', 'pong', 'stats', 'member_stats']);

/** Whether a message type travels as a datagram on WebTransport. */
export function isDatagramClass(type: string): boolean {
  return DATAGRAM_TYPES.has(type);
}

const RELAY_TYPES = new Set<string>([
  'welcome',
  'error',
  'ack',
  'going_away',
  'room_list',
  'room_state',
  'room_updated',
  'participants',
  'member_left',
  'room_closed',
  'state_update',
  'mode_changed',
  'host_changed',
  'proposal',
  'decision',
  'chat_message',
  'reaction',
  'pong',
  'member_stats',
]);

// `ignoreUndefined`: an absent optional field is omitted, never sent as nil (fields with a
// default do not accept nil, PROTOCOL.md §3).
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({ maxStrLength: MAX_RELAY_FRAME, maxArrayLength: 100000 });

/** MessagePack for one message. */
export function encodeMessage(message: ClientMessage): Uint8Array<ArrayBuffer> {
  return new Uint8Array(encoder.encode(message));
}

/** JSON for one message (text WebSocket messages). */
export function encodeJson(message: ClientMessage): string {
  return JSON.stringify(message);
}

/** Why a relay message was dropped. */
export class DecodeError extends Error {}

/**
 * One relay message from MessagePack bytes or JSON text, or a `DecodeError`. Unknown message
 * types decode to `undefined` (ignored, §3.3). Checks shape only as far as the client relies
 * on it: a map with a string `type`, and for the messages that drive playback, their numbers.
 */
export function decodeMessage(data: Uint8Array | string): RelayMessage | undefined {
  if (typeof data !== 'string' && data.byteLength > MAX_RELAY_FRAME) {
    throw new DecodeError(`message of ${data.byteLength} bytes exceeds ${MAX_RELAY_FRAME}`);
  }
  let value: unknown;
  try {
    value = typeof data === 'string' ? JSON.parse(data) : decoder.decode(data);
  } catch (e) {
    throw new DecodeError(`undecodable message: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DecodeError('a message must be a map');
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') throw new DecodeError('a message needs a string type');
  if (!RELAY_TYPES.has(type)) return undefined;
  const message = value as RelayMessage;
  validate(message);
  return message;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function checkTimeline(t: unknown): void {
  const tl = t as Timeline | undefined;
  if (
    typeof tl !== 'object' ||
    tl === null ||
    typeof tl.position !== 'number' ||
    !Number.isFinite(tl.position) ||
    tl.position < 0 ||
    typeof tl.rate !== 'number' ||
    !(tl.rate >= MIN_RATE && tl.rate <= MAX_RATE) ||
    typeof tl.paused !== 'boolean' ||
    !isTime(tl.at) ||
    !isTime(tl.seq)
  ) {
    throw new DecodeError('invalid timeline');
  }
}

/** `member_count`, when present, is a count at least as big as the list beside it. */
function checkMemberCount(m: { type: string; members: unknown[]; member_count?: number }): void {
  if (m.member_count === undefined || m.member_count === null) {
    m.member_count = undefined;
    return;
  }
  if (!isTime(m.member_count) || m.member_count < m.members.length) {
    throw new DecodeError(`invalid ${m.type}: member_count`);
  }
}

/** The checks whose failure would otherwise corrupt playback or throw later. */
function validate(m: RelayMessage): void {
  switch (m.type) {
    case 'state_update':
      checkTimeline(m.timeline);
      if (typeof m.room !== 'string') throw new DecodeError('state_update without room');
      break;
    case 'room_state':
      checkTimeline(m.timeline);
      if (typeof m.room !== 'object' || m.room === null || !Array.isArray(m.members)) {
        throw new DecodeError('invalid room_state');
      }
      if (!Array.isArray(m.proposals)) m.proposals = [];
      checkMemberCount(m);
      break;
    case 'pong':
      if (![m.t0, m.t1, m.t2].every(isTime) || !isTime(m.seq)) throw new DecodeError('invalid pong');
      break;
    case 'welcome':
      if (!isTime(m.you) || !isTime(m.server_time) || typeof m.resume_token !== 'string') {
        throw new DecodeError('invalid welcome');
      }
      if (!Array.isArray(m.features)) m.features = [];
      break;
    case 'participants':
      if (!Array.isArray(m.members)) throw new DecodeError(`invalid ${m.type}`);
      checkMemberCount(m);
      break;
    case 'member_stats':
      if (!Array.isArray(m.members)) throw new DecodeError(`invalid ${m.type}`);
      break;
    case 'error':
      if (typeof m.code !== 'string') throw new DecodeError('invalid error');
      m.fatal = m.fatal === true;
      break;
    default:
      break;
  }
}

/**
 * Control-stream framing (PROTOCOL.md §2.1): a 4-byte big-endian length, then the payload.
 * Accepts frames split across reads and several frames per read; an oversized frame is
 * skipped by its length, so the stream survives it.
 */
export class FrameReader {
  private buffer = new Uint8Array(0);
  private skip = 0;

  /** Feeds bytes; returns the complete payloads (and a count of skipped oversized frames). */
  push(chunk: Uint8Array): { frames: Uint8Array[]; skipped: number } {
    const frames: Uint8Array[] = [];
    let skipped = 0;
    let data = chunk;
    if (this.skip > 0) {
      const n = Math.min(this.skip, data.byteLength);
      this.skip -= n;
      data = data.subarray(n);
    }
    if (this.buffer.byteLength > 0) {
      const joined = new Uint8Array(this.buffer.byteLength + data.byteLength);
      joined.set(this.buffer);
      joined.set(data, this.buffer.byteLength);
      data = joined;
    }
    let offset = 0;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, data.byteLength - offset);
        this.skip -= n;
        offset += n;
        if (this.skip > 0) break;
      }
      if (data.byteLength - offset < 4) break;
      const view = new DataView(data.buffer, data.byteOffset + offset, 4);
      const length = view.getUint32(0, false);
      if (length === 0) {
        offset += 4;
        skipped += 1;
        continue;
      }
      if (length > MAX_RELAY_FRAME) {
        offset += 4;
        this.skip = length;
        skipped += 1;
        continue;
      }
      if (data.byteLength - offset - 4 < length) break;
      frames.push(data.slice(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    this.buffer = data.slice(offset);
    return { frames, skipped };
  }
}

/** One framed message for the control stream. */
export function frame(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4 + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength, false);
  out.set(payload, 4);
  return out;
}

/** Characters as the protocol counts them (Unicode scalar values, not UTF-16 units). */
export function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
}
