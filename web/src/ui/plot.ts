/** The live plot of this viewer's drift over the last minute. */

export interface DriftSample {
  tMs: number;
  driftMs: number;
}

/** The plotted window, ms. */
export const PLOT_WINDOW_MS = 60_000;

/** The smallest "nice" bound ≥ `v` (1, 2, 5 × 10^n), at least 2 ms. */
export function niceBound(v: number): number {
  const x = Math.max(2, Math.abs(v));
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** How good a drift is, for colours. */
export function driftQuality(ms: number): 'good' | 'fair' | 'poor' {
  const a = Math.abs(ms);
  return a <= 40 ? 'good' : a <= 150 ? 'fair' : 'poor';
}

const COLOURS = { good: '#3ecf8e', fair: '#f5b94a', poor: '#ff6b6b' };

/**
 * Draws `samples` (tMs = performance.now()) ending at `nowMs` into the canvas, sized to its
 * CSS box times devicePixelRatio. Returns the symmetric bound used, ms.
 */
export function drawDriftPlot(canvas: HTMLCanvasElement, samples: readonly DriftSample[], nowMs: number): number {
  const dpr = Math.max(1, Math.min(4, window.devicePixelRatio || 1));
  const cssW = canvas.clientWidth || 240;
  const cssH = canvas.clientHeight || 60;
  const w = Math.round(cssW * dpr);
  const hgt = Math.round(cssH * dpr);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== hgt) canvas.height = hgt;
  const ctx = canvas.getContext('2d');
  if (!ctx) return 0;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);

  const start = nowMs - PLOT_WINDOW_MS;
  let maxAbs = 0;
  for (const s of samples) if (s.tMs >= start && Number.isFinite(s.driftMs)) maxAbs = Math.max(maxAbs, Math.abs(s.driftMs));
  const bound = niceBound(maxAbs);
  const pad = 5;
  const mid = cssH / 2;
  const x = (t: number) => ((t - start) / PLOT_WINDOW_MS) * cssW;
  const y = (d: number) => mid - (Math.max(-bound, Math.min(bound, d)) / bound) * (mid - pad);

  // Grid: the zero line, and faint lines at ±bound and every 15 s.
  ctx.lineWidth = 1;
  ctx.strokeStyle = 'rgba(255,255,255,0.06)';
  ctx.beginPath();
  for (let s = 15_000; s < PLOT_WINDOW_MS; s += 15_000) {
    const gx = Math.round(x(nowMs - s)) + 0.5;
    ctx.moveTo(gx, 0);
    ctx.lineTo(gx, cssH);
  }
  ctx.moveTo(0, Math.round(y(bound)) + 0.5);
  ctx.lineTo(cssW, Math.round(y(bound)) + 0.5);
  ctx.moveTo(0, Math.round(y(-bound)) + 0.5);
  ctx.lineTo(cssW, Math.round(y(-bound)) + 0.5);
  ctx.stroke();
  ctx.strokeStyle = 'rgba(255,255,255,0.28)';
  ctx.setLineDash([3, 3]);
  ctx.beginPath();
  ctx.moveTo(0, Math.round(mid) + 0.5);
  ctx.lineTo(cssW, Math.round(mid) + 0.5);
  ctx.stroke();
  ctx.setLineDash([]);

  const visible = samples.filter((s) => s.tMs >= start - 1000 && Number.isFinite(s.driftMs));
  if (visible.length === 0) return bound;
  const last = visible[visible.length - 1];
  const colour = COLOURS[driftQuality(last.driftMs)];

  // Area under the curve, then the curve.
  ctx.beginPath();
  ctx.moveTo(x(visible[0].tMs), mid);
  for (const s of visible) ctx.lineTo(x(s.tMs), y(s.driftMs));
  ctx.lineTo(x(last.tMs), mid);
  ctx.closePath();
  ctx.fillStyle = 'rgba(122,162,255,0.12)';
  ctx.fill();

  ctx.beginPath();
  visible.forEach((s, i) => (i === 0 ? ctx.moveTo(x(s.tMs), y(s.driftMs)) : ctx.lineTo(x(s.tMs), y(s.driftMs))));
  ctx.strokeStyle = '#7aa2ff';
  ctx.lineWidth = 1.5;
  ctx.lineJoin = 'round';
  ctx.stroke();

  ctx.beginPath();
  ctx.arc(Math.min(cssW - 3, x(last.tMs)), y(last.driftMs), 3, 0, Math.PI * 2);
  ctx.fillStyle = colour;
  ctx.fill();
  return bound;
}
