/**
 * Small hand-written SVG charts for quantization reports: a weight histogram before and after
 * zero-centering with the quantization grid, and AP50 against bits per weight.
 */

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number): string =>
  Number.isInteger(v) || Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);

interface Frame {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  /** Data → pixel. */
  px: (v: number) => number;
  py: (v: number) => number;
}

function frame(w: number, h: number, xmin: number, xmax: number, ymin: number, ymax: number, m = { l: 56, r: 16, t: 28, b: 40 }): Frame {
  const x0 = m.l;
  const x1 = w - m.r;
  const y0 = h - m.b;
  const y1 = m.t;
  const sx = (x1 - x0) / (xmax - xmin || 1);
  const sy = (y0 - y1) / (ymax - ymin || 1);
  return { x0, x1, y0, y1, px: (v) => x0 + (v - xmin) * sx, py: (v) => y0 - (v - ymin) * sy };
}

function axes(f: Frame, xticks: number[], yticks: number[], xlabel: string, ylabel: string): string {
  const parts = [`<line x1="${f.x0}" y1="${f.y0}" x2="${f.x1}" y2="${f.y0}" stroke="#333"/>`, `<line x1="${f.x0}" y1="${f.y0}" x2="${f.x0}" y2="${f.y1}" stroke="#333"/>`];
  for (const t of xticks) {
    const x = f.px(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${f.y0}" x2="${x}" y2="${f.y0 + 4}" stroke="#333"/><text x="${x}" y="${f.y0 + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of yticks) {
    const y = f.py(t).toFixed(1);
    parts.push(`<line x1="${f.x0 - 4}" y1="${y}" x2="${f.x0}" y2="${y}" stroke="#333"/><text x="${f.x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${(f.x0 + f.x1) / 2}" y="${f.y0 + 32}" text-anchor="middle">${esc(xlabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(f.y0 + f.y1) / 2}) rotate(-90)" text-anchor="middle">${esc(ylabel)}</text>`);
  return parts.join('');
}

function ticks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= step0) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function svg(w: number, h: number, title: string, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">` +
    `<rect width="${w}" height="${h}" fill="white"/><text x="${w / 2}" y="16" text-anchor="middle" font-size="13">${esc(title)}</text>${body}</svg>\n`
  );
}

function histogram(values: ArrayLike<number>, lo: number, hi: number, bins: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  const s = bins / (hi - lo || 1);
  for (let i = 0; i < values.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor((values[i] - lo) * s)));
    counts[b]++;
  }
  return counts;
}

export interface WeightHistogramInput {
  title: string;
  /** The weights (as the integer layer sees them, input scaling included). */
  weights: ArrayLike<number>;
  /** The value zero-centering subtracts. */
  mu: number;
  /** Grid steps 2^-fw of the plain format (weights as they are) and of the zero-centered one. */
  stepPlain: number;
  stepCentered: number;
  wbits: number;
}

/**
 * Two panels: the weights as they are with the grid of the plain Nw-bit format, and after
 * subtracting mu with the zero-centered grid (grid lines drawn when there are at most 64 levels,
 * else only the two ends of the range).
 */
export function weightHistogramSvg(inp: WeightHistogramInput): string {
  const W = 760;
  const H = 300;
  const n = inp.weights.length;
  const centered = new Float64Array(n);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = inp.weights[i];
    centered[i] = v - inp.mu;
    lo = Math.min(lo, v, centered[i]);
    hi = Math.max(hi, v, centered[i]);
  }
  const bins = Math.max(20, Math.min(100, Math.round(Math.sqrt(n) * 2)));
  const qmax = 2 ** (inp.wbits - 1) - 1;
  const panels: string[] = [];
  const sets: [string, ArrayLike<number>, number][] = [
    ['as they are, plain grid', inp.weights, inp.stepPlain],
    [`minus mu = ${fmt(inp.mu)}, zero-centered grid`, centered, inp.stepCentered],
  ];
  sets.forEach(([label, vals, step], k) => {
    const counts = histogram(vals, lo, hi, bins);
    const cmax = Math.max(...counts, 1);
    const f = frame(W / 2, H, lo, hi, 0, cmax, { l: 50, r: 12, t: 40, b: 40 });
    const bw = (f.x1 - f.x0) / bins;
    const bars = counts
      .map((c, b) => `<rect x="${(f.x0 + b * bw).toFixed(1)}" y="${f.py(c).toFixed(1)}" width="${Math.max(0.5, bw - 0.5).toFixed(1)}" height="${(f.y0 - f.py(c)).toFixed(1)}" fill="#4a78b5"/>`)
      .join('');
    const grid: string[] = [];
    const line = (v: number, dash: string) =>
      `<line x1="${f.px(v).toFixed(1)}" y1="${f.y1}" x2="${f.px(v).toFixed(1)}" y2="${f.y0}" stroke="#d55" stroke-width="0.6"${dash} opacity="0.7"/>`;
    if (2 * qmax + 1 <= 64) {
      for (let q = -qmax; q <= qmax; q++) if (q * step >= lo && q * step <= hi) grid.push(line(q * step, ''));
    } else {
      for (const v of [-qmax * step, qmax * step]) if (v >= lo && v <= hi) grid.push(line(v, ' stroke-dasharray="3 2"'));
    }
    const cap = `<text x="${(f.x0 + f.x1) / 2}" y="${f.y1 - 8}" text-anchor="middle">${esc(label)} (step ${fmt(step)})</text>`;
    panels.push(`<g transform="translate(${k * (W / 2)} 0)">${bars}${grid.join('')}${axes(f, ticks(lo, hi, 4), ticks(0, cmax, 4), 'weight', 'count')}${cap}</g>`);
  });
  return svg(W, H, inp.title, panels.join(''));
}

export interface Series {
  label: string;
  points: { x: number; y: number }[];
  dashed?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

/** Lines of (bits per weight, AP50) per series, plus horizontal reference lines (e.g. float). */
export function lineChartSvg(title: string, xlabel: string, ylabel: string, series: Series[], refs: { label: string; y: number }[] = []): string {
  const W = 720;
  const H = 420;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = [...series.flatMap((s) => s.points.map((p) => p.y)), ...refs.map((r) => r.y), 0];
  const xmin = Math.min(...xs);
  const xmax = Math.max(...xs);
  const ymax = Math.max(...ys) * 1.08;
  const f = frame(W - 170, H, xmin - 0.25, xmax + 0.25, 0, ymax);
  const parts: string[] = [axes(f, ticks(xmin, xmax, Math.min(10, xmax - xmin || 1)), ticks(0, ymax, 6), xlabel, ylabel)];
  refs.forEach((r) => {
    const y = f.py(r.y).toFixed(1);
    parts.push(`<line x1="${f.x0}" y1="${y}" x2="${f.x1}" y2="${y}" stroke="#777" stroke-dasharray="6 3"/><text x="${f.x1 - 4}" y="${Number(y) - 4}" text-anchor="end" fill="#555">${esc(r.label)}</text>`);
  });
  series.forEach((s, k) => {
    const c = COLORS[k % COLORS.length];
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${f.px(p.x).toFixed(1)} ${f.py(p.y).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    for (const p of pts) parts.push(`<circle cx="${f.px(p.x).toFixed(1)}" cy="${f.py(p.y).toFixed(1)}" r="3" fill="${c}"/>`);
    const ly = 40 + k * 18;
    parts.push(`<line x1="${W - 160}" y1="${ly}" x2="${W - 136}" y2="${ly}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/><text x="${W - 130}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  return svg(W, H, title, parts.join(''));
}
