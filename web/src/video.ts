/**
 * Holds an `HTMLVideoElement` on the room's timeline, and turns what the viewer does to the
 * element into room commands.
 *
 * The element is both the player we correct and the remote the viewer uses, so every event it
 * fires is either the echo of something we did (ignored) or a user action (sent to the room).
 * We tell them apart by remembering what we asked for. Buffering (`waiting`) is reported to
 * the room, never mistaken for a pause.
 */
import { type LockstepClient, nowUs } from './client';
import { defaultDriftConfig, type DriftConfig } from './drift';
import { Emitter } from './events';
import { Follower, type PlayerCommand, type Sample } from './follower';
import type { Timeline } from './protocol';
import { positionAt } from './timeline';

export interface VideoSyncOptions {
  /** Load the room's media URL into the element (off when the host app loads media itself). */
  loadMedia?: boolean;
  /** Drift control settings (the SDK's defaults otherwise). */
  drift?: Partial<DriftConfig>;
  /** How often the control loop runs, ms. */
  stepMs?: number;
}

export interface VideoSyncEvents extends Record<string, unknown> {
  /** The browser refused to start playback without a user gesture. */
  autoplayBlocked: undefined;
  /** A new point of this viewer's drift history. */
  sample: { tMs: number; driftMs: number };
}

/** Drift history kept for the plot, ms. */
const HISTORY_MS = 60_000;
/** Most history points (one per HISTORY_STEP_MS). */
const HISTORY_STEP_MS = 250;
/**
 * How near a seek's landing must be to where we sent the element for it to count as our own
 * (s). Chromium may land a little off the requested time; a viewer's seek within a quarter
 * second of ours, within the echo window, is not worth telling apart.
 */
const SEEK_ECHO_TOLERANCE_S = 0.25;
/** How long we wait for the element to echo a change we made, ms. */
const ECHO_WINDOW_MS = 3000;
/** How often readiness is re-sent while the room's view of it differs from the element, ms. */
const READY_RESEND_MS = 1000;
/** How long a change of the element's state may wait for its event, ms. */
const UNSEEN_CHANGE_MS = 500;
/** How far back the envelope of `currentTime` readings reaches, µs. */
const ENVELOPE_WINDOW_US = 400_000;
/** After a user's command, corrections wait this long for the room's answer, ms. */
const USER_COMMAND_HOLD_MS = 1500;

export class VideoSync extends Emitter<VideoSyncEvents> {
  readonly follower: Follower;
  readonly driftHistory: { tMs: number; driftMs: number }[] = [];
  /** The element refused play() without a gesture; we wait for `resumePlayback`. */
  autoplayBlocked = false;

  private readonly options: Required<Pick<VideoSyncOptions, 'loadMedia' | 'stepMs'>>;
  private timer?: ReturnType<typeof setInterval>;
  private wakeTimer?: ReturnType<typeof setTimeout>;
  private unsubscribe: (() => void)[] = [];
  private expectPaused?: { paused: boolean; until: number };
  private expectSeek?: { position: number; until: number };
  private ourRate = 1;
  /**
   * The element's paused state and rate as we last left or saw them. A difference means the
   * viewer changed the element and its event is still queued: until it is handled, a
   * correction would undo the viewer's action and then mistake its event for our own echo.
   */
  private seenPaused = true;
  private seenRate = 1;
  private unseenSince?: number;
  private userHoldUntil = 0;
  private buffering = false;
  private readySent?: boolean;
  private readyReportedAt = -Infinity;
  private loadedUrl?: string;
  private lastSample?: Sample;
  private lastHistoryAt = 0;
  private frameCallback?: number;
  /** Media time of the last frame shown, with the local time it was shown at (µs). */
  lastFrame?: { mediaTime: number; shownAtUs: number };

  constructor(
    readonly client: LockstepClient,
    readonly video: HTMLVideoElement,
    options: VideoSyncOptions = {},
  ) {
    super();
    this.options = { loadMedia: options.loadMedia ?? true, stepMs: options.stepMs ?? 50 };
    this.follower = new Follower({ ...defaultDriftConfig(), ...options.drift });
    this.ourRate = video.playbackRate;
    this.seenPaused = video.paused;
    this.seenRate = video.playbackRate;

    this.unsubscribe.push(
      client.on('timeline', (e) => {
        this.follower.onTimeline(e.timeline, e.reset);
        if (e.by === client.you) this.userHoldUntil = 0;
        this.scheduleWake();
        this.step();
      }),
      client.on('room', () => this.onRoom()),
    );
    if (client.timeline) this.follower.onTimeline(client.timeline, true);
    client.playerReport = () => this.report();

    const on = <K extends keyof HTMLMediaElementEventMap>(type: K, fn: () => void) => {
      video.addEventListener(type, fn);
      this.unsubscribe.push(() => video.removeEventListener(type, fn));
    };
    on('play', () => this.onPausedChange());
    on('pause', () => this.onPausedChange());
    on('seeking', () => this.onSeeking());
    on('seeked', () => this.onSeeked());
    on('ratechange', () => this.onRateChange());
    for (const type of ['play', 'pause', 'seeking', 'seeked', 'ratechange', 'waiting'] as const) {
      on(type, () => this.discontinuity());
    }
    on('waiting', () => this.onWaiting());
    on('stalled', () => this.onWaiting());
    on('playing', () => this.onPlaying());
    on('canplay', () => this.onCanPlay());
    on('emptied', () => this.setReady(false));

    this.timer = setInterval(() => this.step(), this.options.stepMs);
    this.watchFrames();
    this.onRoom();
  }

  /** This viewer's latest drift, ms (positive: ahead of the room). */
  get driftMs(): number | undefined {
    return this.lastSample ? this.follower.driftUs() / 1000 : undefined;
  }

  /**
   * How far the frame on screen is from the room (ms, positive: ahead), from
   * `requestVideoFrameCallback`: the media time of the frame actually presented, against the
   * timeline at the moment it was presented. A frame lasts 1/fps, so this moves in frame-sized
   * steps around `driftMs`; it is what the viewer sees, where `driftMs` is what is controlled.
   */
  get frameDriftMs(): number | undefined {
    const f = this.lastFrame;
    const timeline = this.follower.timeline();
    if (!f || !timeline || this.video.paused || nowUs() - f.shownAtUs > 500_000) return undefined;
    const at = this.client.clock.serverTime(f.shownAtUs);
    if (at === undefined) return undefined;
    return (f.mediaTime - positionAt(timeline, at)) * 1000;
  }

  get corrections(): { seeks: number; rateChanges: number } {
    const [seeks, rateChanges] = this.follower.corrections();
    return { seeks, rateChanges };
  }

  /** Starts playback from a user gesture, after the browser blocked autoplay. */
  async resumePlayback(): Promise<void> {
    this.autoplayBlocked = false;
    try {
      await this.video.play();
    } catch {
      this.autoplayBlocked = true;
      this.emit('autoplayBlocked', undefined);
      return;
    }
    this.step();
  }

  destroy(): void {
    clearInterval(this.timer);
    clearTimeout(this.wakeTimer);
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    if (this.frameCallback !== undefined && 'cancelVideoFrameCallback' in this.video) {
      this.video.cancelVideoFrameCallback(this.frameCallback);
    }
    if (this.client.playerReport) this.client.playerReport = undefined;
  }

  // --- The room -------------------------------------------------------------------------

  private onRoom(): void {
    const room = this.client.room;
    if (!room) {
      this.follower.clear();
      return;
    }
    const url = room.media?.url;
    if (this.options.loadMedia && url && url !== this.loadedUrl) {
      this.loadedUrl = url;
      this.setReady(false);
      this.video.src = url;
      this.video.load();
    } else {
      // The room's view of our readiness can differ from the element's: a new room, new
      // media (the relay marks everyone not ready), a resumed session. Tell it again, but at
      // most once a second while our last report is still on its way.
      const ready = this.video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA;
      const now = performance.now();
      if (this.client.me?.ready !== ready && now - this.readyReportedAt > READY_RESEND_MS) {
        this.readySent = undefined;
        this.setReady(ready);
      }
    }
  }

  private setReady(ready: boolean): void {
    if (this.readySent === ready || !this.client.room) return;
    this.readySent = ready;
    this.readyReportedAt = performance.now();
    this.client.ready(ready);
  }

  /** Wakes the loop when a scheduled timeline takes effect, so a play starts on time. */
  private scheduleWake(): void {
    clearTimeout(this.wakeTimer);
    const at = this.follower.nextChangeLocal(this.client.clock);
    if (at === undefined) return;
    const delayMs = (at - nowUs()) / 1000;
    if (delayMs > 0 && delayMs < 60_000) {
      this.wakeTimer = setTimeout(() => this.step(), delayMs);
    }
  }

  // --- Measuring ------------------------------------------------------------------------

  private watchFrames(): void {
    if (!('requestVideoFrameCallback' in this.video)) return;
    const onFrame = (now: DOMHighResTimeStamp, meta: VideoFrameCallbackMetadata) => {
      this.lastFrame = {
        mediaTime: meta.mediaTime,
        shownAtUs: Math.round((meta.expectedDisplayTime ?? now) * 1000),
      };
      this.frameCallback = this.video.requestVideoFrameCallback(onFrame);
    };
    this.frameCallback = this.video.requestVideoFrameCallback(onFrame);
  }

  /**
   * Where the element is now. `currentTime` is the pipeline's media clock (driven by audio),
   * read at the same instant as the local clock, which is what the room's timeline describes.
   *
   * At rate 1 Chromium reports it to a tenth of a millisecond. At any other rate it
   * interpolates too slowly between audio clock updates (every ~160 ms) and then jumps
   * forward: a sawtooth about 10 ms deep whose upper edge is the true clock. So the sample is
   * the upper envelope of the readings since the last discontinuity (seek, rate change, play,
   * pause), each extrapolated to now, over a short window.
   */
  private sample(): Sample {
    const v = this.video;
    const atLocal = nowUs();
    const raw = { position: v.currentTime, atLocal, rate: v.playbackRate };
    if (v.paused || v.seeking) {
      this.readings.length = 0;
      return { position: raw.position, atLocal, paused: v.paused, rate: raw.rate };
    }
    this.readings.push(raw);
    while (this.readings.length > 0 && this.readings[0].atLocal < atLocal - ENVELOPE_WINDOW_US) {
      this.readings.shift();
    }
    let position = raw.position;
    for (const r of this.readings) {
      position = Math.max(position, r.position + ((atLocal - r.atLocal) / 1e6) * r.rate);
    }
    return { position, atLocal, paused: false, rate: raw.rate };
  }

  /** Readings since the last discontinuity (for the envelope). */
  private readonly readings: { position: number; atLocal: number; rate: number }[] = [];

  /** The element's clock jumped (seek, rate, play, pause): older readings no longer apply. */
  private discontinuity(): void {
    this.readings.length = 0;
  }

  private report(): { driftUs: number; position?: number; atLocalUs?: number } | undefined {
    const s = this.lastSample;
    if (!s) return undefined;
    return { driftUs: this.follower.driftUs(), position: s.position, atLocalUs: s.atLocal };
  }

  // --- The control loop -----------------------------------------------------------------

  private step(): void {
    if (!this.client.room || this.video.readyState < HTMLMediaElement.HAVE_METADATA) return;
    if (this.buffering && this.video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA) this.onPlaying();
    if (this.video.seeking || this.buffering) return;
    if (this.video.paused !== this.seenPaused || this.video.playbackRate !== this.seenRate) {
      // The viewer's change is on its way as an event; let that handler see it first (but
      // not forever: an element that never fires it is taken as it is after a while).
      const now = performance.now();
      this.unseenSince ??= now;
      if (now - this.unseenSince < UNSEEN_CHANGE_MS) return;
      this.seenPaused = this.video.paused;
      this.seenRate = this.video.playbackRate;
    }
    this.unseenSince = undefined;
    const held = performance.now() < this.userHoldUntil;
    const sample = this.sample();
    const commands = this.follower.step(this.client.clock, sample);
    this.lastSample = sample;
    this.recordHistory(sample);
    if (held) return;
    for (const c of commands) this.apply(c);
    this.scheduleWake();
  }

  private recordHistory(sample: Sample): void {
    const timeline = this.follower.timeline();
    const t = performance.now();
    if (!timeline || timeline.paused || sample.paused || t - this.lastHistoryAt < HISTORY_STEP_MS) return;
    this.lastHistoryAt = t;
    const point = { tMs: t, driftMs: this.follower.driftUs() / 1000 };
    this.driftHistory.push(point);
    while (this.driftHistory.length > 0 && this.driftHistory[0].tMs < t - HISTORY_MS) this.driftHistory.shift();
    this.emit('sample', point);
  }

  private apply(command: PlayerCommand): void {
    const v = this.video;
    const until = performance.now() + ECHO_WINDOW_MS;
    switch (command.kind) {
      case 'setPaused':
        if (command.paused === v.paused) return;
        this.expectPaused = { paused: command.paused, until };
        this.seenPaused = command.paused;
        if (command.paused) {
          v.pause();
        } else if (!this.autoplayBlocked) {
          v.play().catch((e: Error) => {
            if (e.name === 'NotAllowedError') {
              this.autoplayBlocked = true;
              this.emit('autoplayBlocked', undefined);
            }
          });
        }
        break;
      case 'seek': {
        const duration = Number.isFinite(v.duration) ? v.duration : Infinity;
        const position = Math.max(0, Math.min(command.position, duration));
        this.expectSeek = { position, until };
        v.currentTime = position;
        break;
      }
      case 'setRate':
        this.ourRate = command.rate;
        v.playbackRate = command.rate;
        this.seenRate = v.playbackRate;
        break;
    }
  }

  // --- The element's events: echoes or the viewer's actions -----------------------------

  private onPausedChange(): void {
    this.seenPaused = this.video.paused;
    const e = this.expectPaused;
    if (e && performance.now() < e.until && e.paused === this.video.paused) {
      this.expectPaused = undefined;
      return;
    }
    const timeline = this.follower.timeline();
    // The element already agrees with the room (e.g. it ended and stopped): nothing to send.
    if (!timeline || timeline.paused === this.video.paused) return;
    if (!this.video.paused && this.autoplayBlocked) this.autoplayBlocked = false;
    if (this.video.ended || !this.viewerCanAct()) return;
    this.userCommand(this.video.paused ? this.client.pause() : this.client.play());
  }

  private onSeeking(): void {
    const e = this.expectSeek;
    if (e && performance.now() < e.until && Math.abs(this.video.currentTime - e.position) < SEEK_ECHO_TOLERANCE_S) {
      return;
    }
    this.expectSeek = undefined;
    // The viewer moved the playhead: hold corrections until the room answers.
    this.userHoldUntil = performance.now() + USER_COMMAND_HOLD_MS;
  }

  private onSeeked(): void {
    const e = this.expectSeek;
    if (e && Math.abs(this.video.currentTime - e.position) < SEEK_ECHO_TOLERANCE_S) {
      this.expectSeek = undefined;
      this.follower.seekLanded(this.client.clock, nowUs());
      return;
    }
    if (!this.viewerCanAct()) return;
    this.userCommand(this.client.seek(this.video.currentTime));
  }

  private onRateChange(): void {
    this.seenRate = this.video.playbackRate;
    if (Math.abs(this.video.playbackRate - this.ourRate) < 1e-9) return;
    const timeline = this.follower.timeline();
    if (timeline && Math.abs(timeline.rate - this.video.playbackRate) < 1e-9) return;
    this.ourRate = this.video.playbackRate;
    if (!this.viewerCanAct()) return;
    this.userCommand(this.client.setRate(this.video.playbackRate));
  }

  private onWaiting(): void {
    const timeline: Timeline | undefined = this.follower.timeline();
    if (this.buffering || !timeline || timeline.paused || this.video.paused) return;
    this.buffering = true;
    this.client.bufferingStart(this.video.currentTime);
  }

  private onPlaying(): void {
    if (!this.buffering) return;
    this.buffering = false;
    this.client.bufferingEnd(this.video.currentTime);
  }

  private onCanPlay(): void {
    this.setReady(true);
    if (this.buffering) this.onPlaying();
    this.step();
  }

  /**
   * Whether an event can be the viewer's doing. An element taken out of the page (the host
   * app closing its player or switching items) pauses itself on the way out; that is not a
   * viewer pausing the room. Neither is an element that lost its media.
   */
  private viewerCanAct(): boolean {
    const v = this.video;
    return v.isConnected && v.networkState !== HTMLMediaElement.NETWORK_EMPTY && v.error === null;
  }

  /** A viewer's action went to the room: wait for its answer before correcting again. */
  private userCommand(request: Promise<number | undefined>): void {
    this.userHoldUntil = performance.now() + USER_COMMAND_HOLD_MS;
    request.then(
      (proposal) => {
        if (proposal !== undefined) {
          // It went to a vote: the room keeps playing as it was meanwhile.
          this.userHoldUntil = 0;
          this.client.notify('info', 'Your request went to a vote');
        }
      },
      (e: Error & { code?: string }) => {
        this.userHoldUntil = 0;
        const text =
          e.code === 'forbidden' ? 'The host controls playback' : `The room did not take that: ${e.message}`;
        this.client.notify('error', text, e.code);
        this.step();
      },
    );
  }
}
