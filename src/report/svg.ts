/**
 * Small inline-SVG charts for the release report: no library, no script, nothing fetched when the
 * page is viewed. Every function is pure (data → SVG string) and escapes every text it writes.
 */
import { escapeHtml, formatNumber } from './format';

export interface Series {
  name: string;
  color: string;
  points: Array<{ x: number; y: number; label?: string }>;
  /** Dashed line (e.g. a threshold). */
  dashed?: boolean;
}

const W = 640;
const H = 260;
const PAD = { left: 64, right: 16, top: 16, bottom: 40 };

function extent(values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function ticks([lo, hi]: [number, number], n = 5): number[] {
  const step = (hi - lo) / (n - 1);
  return Array.from({ length: n }, (_, i) => lo + i * step);
}

function frame(title: string, body: string, xLabel: string, yLabel: string, yTicks: string, xTicks: string, legend: string): string {
  return (
    `<svg class="chart" role="img" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">` +
    `<title>${escapeHtml(title)}</title>` +
    `<rect x="${PAD.left}" y="${PAD.top}" width="${W - PAD.left - PAD.right}" height="${H - PAD.top - PAD.bottom}" fill="#fafafa" stroke="#ccc"/>` +
    yTicks +
    xTicks +
    body +
    `<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">${escapeHtml(xLabel)}</text>` +
    `<text x="14" y="${(PAD.top + H - PAD.bottom) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${(PAD.top + H - PAD.bottom) / 2})">${escapeHtml(yLabel)}</text>` +
    legend +
    `</svg>`
  );
}

function legendOf(series: Array<{ name: string; color: string }>): string {
  let x = PAD.left + 8;
  return series
    .map((s) => {
      const at = x;
      x += 28 + s.name.length * 6.5; // about 6.5 px per character at 11 px
      return { s, x: at };
    })
    .map(({ s, x }) => {
      return `<rect x="${x}" y="${PAD.top + 6}" width="10" height="10" fill="${s.color}"/><text x="${x + 14}" y="${PAD.top + 15}" font-size="11">${escapeHtml(s.name)}</text>`;
    })
    .join('');
}

/** Lines with markers over a numeric x axis; `xFormat` writes the x ticks (e.g. dates). */
export function lineChart(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; xFormat?: (x: number) => string; xTicks?: number[] }): string {
  const all = opts.series.flatMap((s) => s.points);
  const [x0, x1] = extent(all.map((p) => p.x));
  const [y0, y1] = extent(all.map((p) => p.y));
  const sx = (x: number) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y: number) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const xf = opts.xFormat ?? formatNumber;
  const yTicks = ticks([y0, y1])
    .map((t) => `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#eee"/><text x="${PAD.left - 4}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" font-size="10">${escapeHtml(formatNumber(t))}</text>`)
    .join('');
  const xTicks = (opts.xTicks ?? ticks([x0, x1], 4))
    .map((t) => `<text x="${sx(t).toFixed(1)}" y="${H - PAD.bottom + 14}" text-anchor="middle" font-size="10">${escapeHtml(xf(t))}</text>`)
    .join('');
  const body = opts.series
    .map((s) => {
      const pts = s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
      const marks =
        s.points.length <= 60
          ? s.points.map((p) => `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3" fill="${s.color}"><title>${escapeHtml(`${s.name}: ${p.label ?? formatNumber(p.y)}`)}</title></circle>`).join('')
          : '';
      return `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>${marks}`;
    })
    .join('');
  return frame(opts.title, body, opts.xLabel, opts.yLabel, yTicks, xTicks, legendOf(opts.series));
}

export interface IntervalRow {
  label: string;
  /** Points with optional [lo, hi] whiskers, one per series. */
  marks: Array<{ name: string; color: string; value: number; ci?: [number, number] }>;
}

/** Horizontal dot-and-whisker chart: one row per metric, one mark per series (confidence intervals). */
export function intervalChart(opts: { title: string; xLabel: string; rows: IntervalRow[] }): string {
  const rowH = 44;
  const h = PAD.top + PAD.bottom + rowH * Math.max(1, opts.rows.length);
  const left = 150;
  const vals = opts.rows.flatMap((r) => r.marks.flatMap((m) => [m.value, ...(m.ci ?? [])]));
  const [x0, x1] = extent(vals);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - PAD.right);
  const grid = ticks([x0, x1])
    .map((t) => `<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${PAD.top}" y2="${h - PAD.bottom}" stroke="#eee"/><text x="${sx(t).toFixed(1)}" y="${h - PAD.bottom + 14}" text-anchor="middle" font-size="10">${escapeHtml(formatNumber(t))}</text>`)
    .join('');
  const rows = opts.rows
    .map((r, i) => {
      const cy = PAD.top + rowH * i + rowH / 2;
      const label = `<text x="${left - 8}" y="${cy + 4}" text-anchor="end" font-size="12">${escapeHtml(r.label)}</text>`;
      const marks = r.marks
        .map((m, j) => {
          const y = cy + (j - (r.marks.length - 1) / 2) * 12;
          const tip = `<title>${escapeHtml(`${r.label} ${m.name}: ${formatNumber(m.value)}${m.ci ? ` (95% CI ${formatNumber(m.ci[0])} to ${formatNumber(m.ci[1])})` : ''}`)}</title>`;
          const whisker = m.ci ? `<line x1="${sx(m.ci[0]).toFixed(1)}" x2="${sx(m.ci[1]).toFixed(1)}" y1="${y}" y2="${y}" stroke="${m.color}" stroke-width="2"/>` : '';
          return `${whisker}<circle cx="${sx(m.value).toFixed(1)}" cy="${y}" r="4" fill="${m.color}">${tip}</circle>`;
        })
        .join('');
      return label + marks;
    })
    .join('');
  const names = [...new Map(opts.rows.flatMap((r) => r.marks.map((m) => [m.name, m.color] as const))).entries()].map(([name, color]) => ({ name, color }));
  const legend = names.map((s, i) => `<rect x="${left + i * 150}" y="4" width="10" height="10" fill="${s.color}"/><text x="${left + 14 + i * 150}" y="13" font-size="11">${escapeHtml(s.name)}</text>`).join('');
  return (
    `<svg class="chart" role="img" viewBox="0 0 ${W} ${h}" width="${W}" height="${h}" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(opts.title)}</title>` +
    grid +
    rows +
    legend +
    `<text x="${(left + W - PAD.right) / 2}" y="${h - 6}" text-anchor="middle" font-size="12">${escapeHtml(opts.xLabel)}</text></svg>`
  );
}

/** Vertical bars, each labelled with its formatted value. */
export function barChart(opts: { title: string; yLabel: string; bars: Array<{ label: string; value: number; color: string; text: string }> }): string {
  const max = Math.max(...opts.bars.map((b) => b.value), 1);
  const innerW = W - PAD.left - PAD.right;
  const bw = innerW / (opts.bars.length * 2);
  const sy = (v: number) => ((H - PAD.top - PAD.bottom - 16) * v) / max;
  const bars = opts.bars
    .map((b, i) => {
      const x = PAD.left + bw / 2 + i * bw * 2;
      const h = sy(b.value);
      const y = H - PAD.bottom - h;
      return (
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${b.color}"><title>${escapeHtml(`${b.label}: ${b.text}`)}</title></rect>` +
        `<text x="${(x + bw / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="12">${escapeHtml(b.text)}</text>` +
        `<text x="${(x + bw / 2).toFixed(1)}" y="${H - PAD.bottom + 14}" text-anchor="middle" font-size="11">${escapeHtml(b.label)}</text>`
      );
    })
    .join('');
  return frame(opts.title, bars, '', opts.yLabel, '', '', '');
}
