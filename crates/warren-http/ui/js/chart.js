// A small SVG time-series chart: the last `span` seconds of a few series,
// polled by the page and pushed here. No library.
import { fmtNum, fmtRate } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
export const COLORS = ['#e8710a', '#1a73e8', '#188038', '#a142f4', '#d93025', '#12b5cb', '#f9ab00', '#5f6368'];

export class TimeChart {
  constructor({ series, rate = false, format, span = 120, height = 180, id }) {
    this.series = series.map((s, i) => ({ color: COLORS[i % COLORS.length], ...s }));
    this.rate = rate;
    this.fmt = format || (rate ? fmtRate : fmtNum);
    this.span = span * 1000;
    this.height = height;
    this.points = []; // [t, [values]]
    this.el = document.createElement('div');
    this.el.className = 'chart';
    if (id) this.el.id = id;
    this.svg = document.createElementNS(NS, 'svg');
    this.svg.setAttribute('class', 'chart-svg');
    this.svg.setAttribute('role', 'img');
    this.svg.setAttribute('aria-label', `Chart: ${this.series.map((s) => s.label).join(', ')}`);
    this.legend = document.createElement('div');
    this.legend.className = 'legend';
    this.el.append(this.svg, this.legend);
    this.note = null;
  }

  push(values, t = Date.now()) {
    this.points.push([t, values]);
    while (this.points.length > 2 && this.points[0][0] < t - this.span) this.points.shift();
    this.draw();
  }

  setNote(text) { this.note = text; this.draw(); }

  draw() {
    const W = Math.max(this.el.clientWidth || 600, 300);
    const H = this.height;
    const L = 56, R = 10, T = 10, B = 22;
    this.svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.svg.setAttribute('width', W);
    this.svg.setAttribute('height', H);
    const now = this.points.length ? this.points[this.points.length - 1][0] : Date.now();
    // A young chart spans what it has (at least 30 s), growing to `span`.
    const first = this.points.length ? this.points[0][0] : now;
    const span = Math.min(this.span, Math.max(30000, Math.ceil((now - first) / 30000) * 30000));
    const t0 = now - span;
    let max = 0;
    for (const [, vs] of this.points) for (const v of vs) if (typeof v === 'number' && v > max) max = v;
    max = niceMax(max);
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    const fmt = this.fmt;
    let out = '';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      out += `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>`;
      out += `<text class="axis" x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`;
    }
    const step = span <= 30000 ? 10 : 30;
    for (let s = 0; s <= span / 1000; s += step) {
      const tx = x(now - s * 1000);
      out += `<text class="axis" x="${tx}" y="${H - 6}" text-anchor="middle">${s ? `-${s}s` : 'now'}</text>`;
    }
    this.series.forEach((s, i) => {
      const pts = this.points.filter(([, vs]) => typeof vs[i] === 'number').map(([t, vs]) => `${x(t).toFixed(1)},${y(vs[i]).toFixed(1)}`);
      if (pts.length > 1) {
        out += `<polyline class="area" fill="${s.color}" points="${x(this.points.find(([, vs]) => typeof vs[i] === 'number')[0])},${y(0)} ${pts.join(' ')} ${pts[pts.length - 1].split(',')[0]},${y(0)}"/>`;
        out += `<polyline class="line" stroke="${s.color}" points="${pts.join(' ')}"/>`;
      }
    });
    if (this.note) out += `<text class="note" x="${(L + W - R) / 2}" y="${H / 2}" text-anchor="middle">${this.note}</text>`;
    this.svg.innerHTML = out;
    const last = this.points.length ? this.points[this.points.length - 1][1] : [];
    this.legend.innerHTML = this.series.map((s, i) =>
      `<span class="item"><i style="background:${s.color}"></i>${s.label} <b>${typeof last[i] === 'number' ? fmt(last[i]) : '–'}</b></span>`).join('');
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// Rates from successive totals, for brokers that report totals but no rates.
export class Deriv {
  constructor() { this.last = null; }
  next(values, t = Date.now()) {
    const prev = this.last;
    this.last = [t, values];
    if (!prev) return values.map(() => undefined);
    const dt = (t - prev[0]) / 1000;
    return values.map((v, i) => (typeof v === 'number' && typeof prev[1][i] === 'number' && dt > 0 ? Math.max(0, (v - prev[1][i]) / dt) : undefined));
  }
}
