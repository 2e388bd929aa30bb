/** The room overlay and its parts, shared by the demo page and the Jellyfin injection. */
export {
  type OverlayHandle,
  type OverlayOptions,
  REACTIONS,
  connectionText,
  mountConnectionBadge,
  mountOverlay,
  titleFromUrl,
} from './overlay';
export { Toasts, type ToastLevel } from './toasts';
export { injectStyles } from './styles';
export { explainError } from './errors';
