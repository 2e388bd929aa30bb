/**
 * lockstep in the browser, as a library (`dist/lockstep.mjs`): the session client, the video
 * binding, the overlay, the protocol types, and the clock, drift and follower machinery.
 *
 * ```js
 * import { LockstepClient, VideoSync, mountOverlay } from './lockstep.mjs';
 * const client = new LockstepClient({ relayUrl: 'https://relay.example', name: 'Ada' });
 * await client.connect();
 * await client.joinRoom('invite-code');
 * const sync = new VideoSync(client, document.querySelector('video'));
 * mountOverlay(document.querySelector('#panel'), client, sync, {});
 * ```
 */
export {
  CLIENT_NAME,
  type ChatEntry,
  type ClientEvents,
  type ClientOptions,
  type ConnectionPhase,
  type ConnectionState,
  LockstepClient,
  LockstepError,
  type PlayerReport,
  type TimelineEvent,
  describeAction,
  formatTime,
  nowUs,
} from './client';
export { VideoSync, type VideoSyncEvents, type VideoSyncOptions } from './video';
export {
  type OverlayHandle,
  type OverlayOptions,
  REACTIONS,
  Toasts,
  connectionText,
  injectStyles,
  mountConnectionBadge,
  mountOverlay,
} from './ui';
export * from './protocol';
export { type ServerTime, isOlderThan, positionAt } from './timeline';
export { type ClockConfig, type ClockEstimate, ClockSample, ClockSync, defaultClockConfig } from './clock';
export { type Correction, type DriftConfig, DriftController, defaultDriftConfig } from './drift';
export { Follower, type PlayerCommand, type Sample } from './follower';
export { Emitter } from './events';
export { type RelayConfig, hasWebTransport } from './transport';
