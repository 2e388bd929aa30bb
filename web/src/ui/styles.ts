/**
 * The overlay's styles, injected once as one `<style>`. Every class starts with `ls-` and every
 * rule sits under `.ls-theme`, so nothing leaks into (or is easily overridden by) a host page
 * such as jellyfin-web.
 */

const CSS = `
.ls-theme {
  --ls-bg: #0d1015;
  --ls-panel: rgba(19, 23, 30, 0.96);
  --ls-surface: #1a1f28;
  --ls-surface-2: #222937;
  --ls-border: #2c3441;
  --ls-text: #e9edf3;
  --ls-muted: #a2adbd;
  --ls-faint: #6f7b8c;
  --ls-accent: #7aa2ff;
  --ls-accent-strong: #5b86f5;
  --ls-accent-text: #0b1020;
  --ls-ok: #3ecf8e;
  --ls-warn: #f5b94a;
  --ls-bad: #ff6b6b;
  --ls-radius: 10px;
  --ls-radius-sm: 7px;
  --ls-focus: 0 0 0 2px #0d1015, 0 0 0 4px #9ab8ff;
  color: var(--ls-text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  -webkit-font-smoothing: antialiased;
  text-align: left;
  letter-spacing: normal;
}
.ls-theme *, .ls-theme *::before, .ls-theme *::after { box-sizing: border-box; }
.ls-theme [hidden] { display: none !important; }
.ls-theme h1, .ls-theme h2, .ls-theme h3, .ls-theme p { margin: 0; padding: 0; }
.ls-theme h1 { font-size: 22px; font-weight: 700; line-height: 1.2; letter-spacing: -0.01em; }
.ls-theme h2 { font-size: 17px; font-weight: 650; line-height: 1.25; }
.ls-theme h3 {
  font-size: 11.5px; font-weight: 650; text-transform: uppercase; letter-spacing: 0.07em;
  color: var(--ls-muted);
}
.ls-theme a { color: var(--ls-accent); }
.ls-offscreen { position: fixed; left: -9999px; top: 0; opacity: 0; }
.ls-sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.ls-muted { color: var(--ls-muted); }
.ls-small { font-size: 12.5px; }

/* --- Controls ------------------------------------------------------------------------ */
.ls-theme .ls-btn {
  display: inline-flex; align-items: center; justify-content: center; gap: 6px;
  min-height: 34px; margin: 0; padding: 6px 12px;
  font: inherit; font-weight: 600; font-size: 13.5px; line-height: 1.2;
  color: var(--ls-text); background: var(--ls-surface-2);
  border: 1px solid var(--ls-border); border-radius: var(--ls-radius-sm);
  cursor: pointer; white-space: nowrap; text-decoration: none;
  transition: background-color .12s, border-color .12s, color .12s, transform .06s;
}
.ls-theme .ls-btn:hover { background: #2b3342; border-color: #3a4456; }
.ls-theme .ls-btn:active { transform: translateY(1px); }
.ls-theme .ls-btn:disabled { opacity: .5; cursor: default; transform: none; }
.ls-theme .ls-btn:focus-visible, .ls-theme .ls-input:focus-visible, .ls-theme .ls-switch:focus-visible,
.ls-theme .ls-seg button:focus-visible, .ls-theme .ls-react:focus-visible, .ls-theme summary:focus-visible {
  outline: none; box-shadow: var(--ls-focus);
}
.ls-theme .ls-btn-primary { background: var(--ls-accent); border-color: var(--ls-accent); color: var(--ls-accent-text); }
.ls-theme .ls-btn-primary:hover { background: #93b4ff; border-color: #93b4ff; }
.ls-theme .ls-btn-danger { color: #ffb3b3; border-color: #5a2f35; background: #2a1a1f; }
.ls-theme .ls-btn-danger:hover { background: #3a2027; border-color: #7a3a44; }
.ls-theme .ls-btn-ghost { background: transparent; border-color: transparent; color: var(--ls-muted); }
.ls-theme .ls-btn-ghost:hover { background: var(--ls-surface-2); color: var(--ls-text); border-color: var(--ls-border); }
.ls-theme .ls-btn-sm { min-height: 28px; padding: 3px 9px; font-size: 12.5px; }
.ls-theme .ls-btn-xs { min-height: 26px; padding: 2px 8px; font-size: 12px; border-radius: 6px; }
.ls-theme .ls-btn-lg { min-height: 44px; padding: 10px 18px; font-size: 15px; }
.ls-theme .ls-btn-block { width: 100%; }

.ls-theme .ls-input {
  display: block; width: 100%; min-width: 0; height: 36px; margin: 0; padding: 6px 10px;
  font: inherit; font-size: 14px; color: var(--ls-text);
  background: var(--ls-bg); border: 1px solid var(--ls-border); border-radius: var(--ls-radius-sm);
  box-shadow: none; appearance: none; -webkit-appearance: none;
}
.ls-theme select.ls-input {
  padding-right: 28px; cursor: pointer;
  background-image: linear-gradient(45deg, transparent 50%, var(--ls-muted) 50%), linear-gradient(135deg, var(--ls-muted) 50%, transparent 50%);
  background-position: calc(100% - 15px) 15px, calc(100% - 10px) 15px;
  background-size: 5px 5px; background-repeat: no-repeat;
}
.ls-theme .ls-input::placeholder { color: var(--ls-faint); }
.ls-theme .ls-input:hover { border-color: #3a4456; }
.ls-theme .ls-input:focus { border-color: var(--ls-accent); }
.ls-theme .ls-input[readonly] { color: var(--ls-muted); background: var(--ls-surface); }
.ls-theme .ls-input.ls-invalid { border-color: var(--ls-bad); }
.ls-theme .ls-field { display: flex; flex-direction: column; gap: 5px; min-width: 0; }
.ls-theme .ls-field > span, .ls-theme .ls-label { font-size: 12.5px; font-weight: 600; color: var(--ls-muted); }
.ls-theme .ls-row { display: flex; gap: 8px; align-items: center; min-width: 0; }
.ls-theme .ls-row > .ls-input { flex: 1 1 auto; }
.ls-theme .ls-wrap { flex-wrap: wrap; }
.ls-theme .ls-grow { flex: 1 1 auto; min-width: 0; }

.ls-theme .ls-check { display: flex; align-items: center; gap: 9px; cursor: pointer; font-size: 13.5px; }
.ls-theme .ls-check input[type=checkbox] { width: 16px; height: 16px; margin: 0; accent-color: var(--ls-accent); cursor: pointer; }

/* A switch is a real checkbox (role=switch), so it is clickable and focusable as itself. */
.ls-theme .ls-switch {
  appearance: none; -webkit-appearance: none; position: relative; flex: none;
  width: 36px; height: 20px; margin: 0; border-radius: 999px; cursor: pointer;
  background: #3a4252; border: 1px solid #485164; transition: background-color .15s, border-color .15s;
}
.ls-theme .ls-switch::after {
  content: ""; position: absolute; top: 2px; left: 2px; width: 14px; height: 14px;
  border-radius: 50%; background: #d7dde7; transition: transform .15s;
}
.ls-theme .ls-switch:checked { background: var(--ls-accent-strong); border-color: var(--ls-accent); }
.ls-theme .ls-switch:checked::after { transform: translateX(16px); background: #fff; }
.ls-theme .ls-switch:disabled { opacity: .5; cursor: default; }
.ls-theme .ls-setting { display: flex; align-items: center; justify-content: space-between; gap: 12px; min-height: 30px; }
.ls-theme .ls-setting label { cursor: pointer; }
.ls-theme .ls-setting small { display: block; color: var(--ls-faint); font-size: 12px; }

/* Segmented control. */
.ls-theme .ls-seg {
  display: inline-flex; padding: 3px; gap: 3px; border-radius: var(--ls-radius-sm);
  background: var(--ls-bg); border: 1px solid var(--ls-border);
}
.ls-theme .ls-seg button {
  margin: 0; padding: 4px 12px; min-height: 28px; font: inherit; font-size: 13px; font-weight: 600;
  color: var(--ls-muted); background: transparent; border: 0; border-radius: 5px; cursor: pointer;
}
.ls-theme .ls-seg button:hover { color: var(--ls-text); }
.ls-theme .ls-seg button[aria-pressed=true] { background: var(--ls-surface-2); color: var(--ls-text); box-shadow: 0 1px 2px rgba(0,0,0,.4), inset 0 0 0 1px #3a4456; }
.ls-theme .ls-seg button:disabled { cursor: default; }

/* --- Badges ---------------------------------------------------------------------------- */
.ls-theme .ls-badge {
  display: inline-flex; align-items: center; gap: 6px; padding: 2px 8px; min-height: 22px;
  border-radius: 999px; font-size: 12px; font-weight: 600; line-height: 1.2; white-space: nowrap;
  background: var(--ls-surface-2); color: var(--ls-muted); border: 1px solid var(--ls-border);
}
.ls-theme .ls-role { text-transform: capitalize; }
.ls-theme .ls-role[data-role=host] { color: #ffd78a; background: #33290f; border-color: #5c4a1c; }
.ls-theme .ls-role[data-role=cohost] { color: #b6ccff; background: #1b2440; border-color: #2f3f6b; }
.ls-theme .ls-mode[data-mode=democratic] { color: #b8f0d6; background: #12302a; border-color: #1f5246; }
.ls-theme .ls-conn { max-width: 100%; overflow: hidden; text-overflow: ellipsis; }
.ls-theme .ls-conn::before { content: ""; flex: none; width: 8px; height: 8px; border-radius: 50%; background: var(--ls-faint); }
.ls-theme .ls-conn[data-phase=connected] { color: #aef0cf; border-color: #1f5a43; background: #10291f; }
.ls-theme .ls-conn[data-phase=connected]::before { background: var(--ls-ok); box-shadow: 0 0 0 3px rgba(62,207,142,.18); }
.ls-theme .ls-conn[data-phase=connecting]::before, .ls-theme .ls-conn[data-phase=reconnecting]::before { background: var(--ls-warn); animation: ls-pulse 1s ease-in-out infinite; }
.ls-theme .ls-conn[data-phase=reconnecting] { color: #ffd992; border-color: #5c4a1c; background: #2c2310; }
.ls-theme .ls-conn[data-phase=refused], .ls-theme .ls-conn[data-phase=closed] { color: #ffb3b3; border-color: #5a2f35; background: #2a1a1f; }
.ls-theme .ls-conn[data-phase=refused]::before, .ls-theme .ls-conn[data-phase=closed]::before { background: var(--ls-bad); }
@keyframes ls-pulse { 50% { opacity: .3; } }

/* --- Overlay panel --------------------------------------------------------------------- */
.ls-overlay {
  display: flex; flex-direction: column; gap: 12px; width: 100%; min-width: 0;
  padding: 14px; background: var(--ls-panel); border: 1px solid var(--ls-border);
  border-radius: 14px; box-shadow: 0 10px 30px rgba(0,0,0,.35);
}
.ls-overlay.ls-compact { gap: 10px; padding: 12px; border-radius: 0; border: 0; box-shadow: none; background: transparent; }
.ls-overlay .ls-section {
  display: flex; flex-direction: column; gap: 10px; min-width: 0;
  padding: 12px; background: var(--ls-surface); border: 1px solid var(--ls-border); border-radius: var(--ls-radius);
}
.ls-overlay .ls-section-head { display: flex; align-items: center; justify-content: space-between; gap: 8px; min-width: 0; }
.ls-overlay .ls-head { display: flex; flex-direction: column; gap: 8px; min-width: 0; }
.ls-overlay .ls-head-top { display: flex; align-items: center; justify-content: space-between; gap: 8px; flex-wrap: wrap; }
.ls-overlay .ls-title { font-size: 18px; font-weight: 700; line-height: 1.25; overflow-wrap: anywhere; }
.ls-overlay .ls-chips { display: flex; gap: 6px; flex-wrap: wrap; align-items: center; }
.ls-overlay .ls-media-title { font-weight: 600; overflow-wrap: anywhere; }
.ls-overlay .ls-status { display: flex; align-items: center; gap: 8px; font-variant-numeric: tabular-nums; color: var(--ls-text); flex-wrap: wrap; }
.ls-overlay .ls-status-icon { display: inline-flex; width: 22px; height: 22px; align-items: center; justify-content: center; border-radius: 50%; background: var(--ls-surface-2); font-size: 10px; }
.ls-overlay .ls-status[data-state=playing] .ls-status-icon { background: #13402c; color: var(--ls-ok); }
.ls-overlay .ls-hint { font-size: 12.5px; color: var(--ls-muted); padding: 6px 10px; border-radius: var(--ls-radius-sm); background: var(--ls-bg); border: 1px dashed var(--ls-border); }

/* Invite. */
.ls-overlay .ls-invite .ls-input { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }

/* Participants. */
.ls-overlay .ls-members { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 2px; }
.ls-overlay .ls-member { display: grid; grid-template-columns: 32px 1fr; column-gap: 10px; row-gap: 6px; padding: 8px; border-radius: var(--ls-radius-sm); min-width: 0; }
.ls-overlay .ls-member:hover { background: rgba(255,255,255,.03); }
.ls-overlay .ls-member[data-you] { background: rgba(122,162,255,.07); }
.ls-overlay .ls-avatar {
  position: relative; width: 32px; height: 32px; border-radius: 50%; display: flex; align-items: center; justify-content: center;
  font-weight: 700; font-size: 14px; color: #0b0e13; grid-row: span 2;
}
.ls-overlay .ls-avatar::after {
  content: ""; position: absolute; right: -1px; bottom: -1px; width: 10px; height: 10px; border-radius: 50%;
  border: 2px solid var(--ls-surface); background: var(--ls-faint);
}
.ls-overlay .ls-avatar[data-state=ready]::after { background: var(--ls-ok); }
.ls-overlay .ls-avatar[data-state=buffering]::after { background: var(--ls-warn); }
.ls-overlay .ls-member-main { display: flex; align-items: center; gap: 6px; min-width: 0; flex-wrap: wrap; }
.ls-overlay .ls-member-name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 100%; }
.ls-overlay .ls-you { color: var(--ls-muted); font-size: 12.5px; }
.ls-overlay .ls-member-meta { display: flex; gap: 10px; flex-wrap: wrap; font-size: 12px; color: var(--ls-muted); font-variant-numeric: tabular-nums; align-items: center; }
.ls-overlay .ls-meta { display: inline-flex; gap: 4px; align-items: center; white-space: nowrap; }
.ls-overlay .ls-meta b { font-weight: 600; color: var(--ls-text); }
.ls-overlay .ls-tag { font-size: 10.5px; font-weight: 700; letter-spacing: .04em; padding: 1px 5px; border-radius: 4px; background: var(--ls-surface-2); color: var(--ls-muted); border: 1px solid var(--ls-border); }
.ls-overlay .ls-tag[data-transport=webtransport] { color: #b8f0d6; border-color: #1f5246; }
.ls-overlay [data-quality=good] { color: var(--ls-ok); }
.ls-overlay [data-quality=fair] { color: var(--ls-warn); }
.ls-overlay [data-quality=poor] { color: var(--ls-bad); }
.ls-overlay .ls-state[data-state=buffering] { color: var(--ls-warn); }
.ls-overlay .ls-state[data-state=ready] { color: var(--ls-ok); }
.ls-overlay .ls-member-actions { grid-column: 2; display: flex; gap: 6px; flex-wrap: wrap; }
.ls-overlay .ls-confirm { display: inline-flex; gap: 6px; align-items: center; font-size: 12.5px; font-weight: 600; color: #ffb3b3; }

/* Proposals. */
.ls-overlay .ls-proposal {
  display: flex; flex-direction: column; gap: 8px; padding: 12px; border-radius: var(--ls-radius);
  background: linear-gradient(180deg, #1c2640, #18202f); border: 1px solid #34467a;
  animation: ls-in .25s ease-out;
}
.ls-overlay .ls-proposal-title { font-weight: 600; overflow-wrap: anywhere; }
.ls-overlay .ls-proposal-action { color: #c9d8ff; }
.ls-overlay .ls-proposal-meta { display: flex; justify-content: space-between; gap: 8px; font-size: 12.5px; color: var(--ls-muted); font-variant-numeric: tabular-nums; flex-wrap: wrap; }
.ls-overlay .ls-bar { position: relative; height: 6px; border-radius: 3px; background: #2a3347; overflow: hidden; }
.ls-overlay .ls-bar > span { position: absolute; top: 0; bottom: 0; left: 0; background: var(--ls-ok); border-radius: 3px; transition: width .2s; }
.ls-overlay .ls-bar > i { position: absolute; top: -2px; bottom: -2px; width: 2px; background: #e9edf3; }
.ls-overlay .ls-countdown { font-weight: 600; color: var(--ls-text); }

/* Sync plot. */
.ls-overlay .ls-plot-wrap { position: relative; }
.ls-overlay .ls-plot { display: block; width: 100%; max-width: 100%; height: 60px; border-radius: 6px; background: var(--ls-bg); }
.ls-overlay .ls-plot-scale { position: absolute; top: 3px; left: 6px; font-size: 10.5px; color: var(--ls-faint); font-variant-numeric: tabular-nums; pointer-events: none; }
.ls-overlay .ls-drift-value { font-weight: 700; font-variant-numeric: tabular-nums; }
.ls-overlay .ls-drift-value[data-quality=good] { color: var(--ls-ok); }

/* Chat. */
.ls-overlay .ls-chat-log {
  display: flex; flex-direction: column; gap: 6px; min-height: 80px; max-height: 220px; overflow-y: auto;
  padding: 8px; border-radius: var(--ls-radius-sm); background: var(--ls-bg); border: 1px solid var(--ls-border);
  overscroll-behavior: contain;
}
.ls-overlay.ls-compact .ls-chat-log { max-height: 180px; }
.ls-overlay .ls-chat-empty { color: var(--ls-faint); font-size: 12.5px; margin: auto; text-align: center; }
.ls-overlay .ls-chat-line { overflow-wrap: anywhere; font-size: 13.5px; line-height: 1.4; }
.ls-overlay .ls-chat-name { font-weight: 700; margin-right: 6px; }
.ls-overlay .ls-chat-line[data-mine] .ls-chat-name::after { content: " (you)"; font-weight: 500; color: var(--ls-faint); }
.ls-overlay .ls-reactions { display: flex; gap: 4px; flex-wrap: wrap; }
.ls-theme .ls-react {
  margin: 0; width: 38px; height: 34px; font-size: 18px; line-height: 1; padding: 0; cursor: pointer;
  background: var(--ls-surface-2); border: 1px solid var(--ls-border); border-radius: var(--ls-radius-sm);
  transition: transform .08s, background-color .12s;
}
.ls-theme .ls-react:hover { background: #2b3342; transform: translateY(-1px); }
.ls-theme .ls-react:active { transform: scale(.94); }
.ls-overlay .ls-count { font-size: 11.5px; color: var(--ls-faint); font-variant-numeric: tabular-nums; }
.ls-overlay .ls-count[data-over] { color: var(--ls-bad); }

.ls-overlay .ls-controls-grid { display: flex; flex-direction: column; gap: 10px; }
.ls-overlay .ls-divider { height: 1px; background: var(--ls-border); margin: 2px 0; }

/* --- Over the video: reactions and the autoplay prompt ----------------------------------- */
.ls-layer { position: fixed; z-index: 2147482000; pointer-events: none; overflow: hidden; contain: layout paint; }
.ls-float {
  position: absolute; bottom: 12%; display: flex; flex-direction: column; align-items: center; gap: 2px;
  font-size: 40px; line-height: 1; animation: ls-float 2.6s cubic-bezier(.2,.6,.3,1) forwards;
  filter: drop-shadow(0 2px 6px rgba(0,0,0,.5)); will-change: transform, opacity;
}
.ls-float small {
  font-size: 11px; font-weight: 600; padding: 1px 6px; border-radius: 999px; color: #fff;
  background: rgba(0,0,0,.55); max-width: 120px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
}
@keyframes ls-float {
  0% { transform: translateY(20px) scale(.6); opacity: 0; }
  12% { transform: translateY(0) scale(1.1); opacity: 1; }
  70% { opacity: 1; }
  100% { transform: translateY(-220px) scale(1); opacity: 0; }
}
.ls-layer .ls-autoplay {
  position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  background: rgba(5, 7, 10, .55); pointer-events: auto;
}
.ls-layer .ls-autoplay .ls-btn { min-height: 52px; padding: 12px 22px; font-size: 16px; border-radius: 999px; box-shadow: 0 8px 30px rgba(0,0,0,.5); }

/* --- Toasts ------------------------------------------------------------------------------ */
.ls-toasts {
  position: fixed; z-index: 2147483000; top: 14px; left: 50%; transform: translateX(-50%);
  display: flex; flex-direction: column; gap: 8px; align-items: center;
  width: min(440px, calc(100vw - 24px)); pointer-events: none;
}
.ls-toast {
  display: flex; align-items: flex-start; gap: 10px; width: 100%; padding: 10px 12px;
  background: #1d2330; color: var(--ls-text); border: 1px solid var(--ls-border); border-left: 4px solid var(--ls-accent);
  border-radius: var(--ls-radius); box-shadow: 0 10px 30px rgba(0,0,0,.45); pointer-events: auto;
  animation: ls-in .2s ease-out; font-size: 13.5px; overflow-wrap: anywhere;
}
.ls-toast[data-level=error] { border-left-color: var(--ls-bad); }
.ls-toast[data-level=success] { border-left-color: var(--ls-ok); }
.ls-toast > span { flex: 1 1 auto; padding-top: 2px; }
.ls-toast[data-leaving] { opacity: 0; transform: translateY(-6px); transition: opacity .25s, transform .25s; }
@keyframes ls-in { from { opacity: 0; transform: translateY(-6px); } to { opacity: 1; transform: none; } }

@media (prefers-reduced-motion: reduce) {
  .ls-theme *, .ls-float, .ls-toast { animation-duration: .01s !important; transition: none !important; }
}
`;

/** Adds the styles to the document once. */
export function injectStyles(doc: Document = document): void {
  if (doc.getElementById('lockstep-styles')) return;
  const style = doc.createElement('style');
  style.id = 'lockstep-styles';
  style.textContent = CSS;
  (doc.head ?? doc.documentElement).appendChild(style);
}

/** Adds extra CSS (the demo page's and the Jellyfin button's) once, under its own id. */
export function injectExtraStyles(id: string, css: string, doc: Document = document): void {
  if (doc.getElementById(id)) return;
  const style = doc.createElement('style');
  style.id = id;
  style.textContent = css;
  (doc.head ?? doc.documentElement).appendChild(style);
}
