// Charts as inline SVG, drawn from scratch (no library): a sparkline for the overview cards and a time-series
// chart with axes and a hover/focus read-out for the vassal page. Colours come from CSS classes, so both
// light and dark themes apply. Points are one per second; a missing second (no serving process) is a gap.

import { s, replace, setText } from './dom.js';
import { clock, compact } from './format.js';
import { serverNow } from './api.js';

/** Splits points into runs of consecutive seconds, so a gap in the data is a gap in the line. */
function runs(points, value, maxGap = 2) {
  const out = [];
  let cur = [];
  let last = null;
  for (const p of points) {
    const v = value(p);
    if (v == null || !Number.isFinite(v) || (last !== null && p.time - last > maxGap)) {
      if (cur.length) out.push(cur);
      cur = [];
    }
    if (v != null && Number.isFinite(v)) cur.push([p.time, v]);
    last = p.time;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** A round upper bound for an axis: 7 -> 10, 23 -> 25, 0.3 -> 0.5. */
export function niceMax(v, floor = 1) {
  const x = Math.max(v, floor);
  const mag = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= x) return m * mag;
  return 10 * mag;
}

function paths(rs, sx, sy, baseY, area) {
  let line = '';
  let fill = '';
  for (const run of rs) {
    // A lone point still deserves a visible mark: draw it one second wide.
    const pts = run.length === 1 ? [run[0], [run[0][0] + 1, run[0][1]]] : run;
    const d = pts.map(([t, v], i) => `${i ? 'L' : 'M'}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`).join('');
    line += d;
    if (area) fill += `${d}L${sx(pts[pts.length - 1][0]).toFixed(1)},${baseY}L${sx(pts[0][0]).toFixed(1)},${baseY}Z`;
  }
  return { line, fill };
}

/**
 * Draws a sparkline into an <svg> (fixed viewBox, stretched by CSS) of the last windowS seconds.
 * Returns the peak value of the window.
 */
export function sparkline(svg, points, { windowS = 900, value = (p) => p.requests } = {}) {
  const W = 300;
  const H = 48;
  const now = serverNow();
  const from = now - windowS;
  const rs = runs(points, value);
  const peak = Math.max(0, ...rs.flat().map(([, v]) => v));
  const max = Math.max(1, peak);
  const sx = (t) => ((t - from) / windowS) * W;
  const sy = (v) => H - 2 - (v / max) * (H - 6);
  const { line, fill } = paths(rs, sx, sy, H, true);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  replace(svg,
    s('path', { class: 'spark-fill', d: fill || 'M0,0' }),
    s('path', { class: 'spark-line', d: line || 'M0,0', 'vector-effect': 'non-scaling-stroke' }));
  return peak;
}

/**
 * A time-series chart with a y axis (0, half, max), time ticks and a read-out of the value under the pointer
 * (or, from the keyboard, of the point picked with the arrow keys while the chart has focus).
 *
 *   const c = new TimeChart(container, {label: 'Requests', format: v => `${v} req/s`, value: p => p.requests});
 *   c.draw(points, 900);
 */
export class TimeChart {
  constructor(container, { label, format, axis = compact, value, kind = 'area', cls = '', floor = 1 }) {
    this.format = format; // for the read-out: with the unit
    this.axis = axis; // for y-axis labels: short, the unit is in the chart's title
    this.value = value;
    this.kind = kind;
    this.floor = floor;
    this.label = label;
    this.points = [];
    this.windowS = 900;
    this.cursor = null; // index into points picked by keyboard or pointer
    this.readout = container.querySelector('.chart-readout');
    this.svg = s('svg', { class: `chart ${cls}`, role: 'img', tabindex: '0', 'aria-label': label });
    container.querySelector('.chart-body').appendChild(this.svg);
    this.svg.addEventListener('pointermove', (e) => this.pointAt(e));
    this.svg.addEventListener('pointerleave', () => { this.cursor = null; this.render(); });
    this.svg.addEventListener('blur', () => { this.cursor = null; this.render(); });
    this.svg.addEventListener('keydown', (e) => this.key(e));
    if ('ResizeObserver' in window) new ResizeObserver(() => this.render()).observe(this.svg);
  }

  draw(points, windowS) {
    this.points = points;
    this.windowS = windowS;
    if (this.cursor !== null && this.cursor >= points.length) this.cursor = points.length - 1;
    this.render();
  }

  geometry() {
    const W = Math.max(200, Math.round(this.svg.clientWidth || 600));
    const H = Math.max(100, Math.round(this.svg.clientHeight || 150));
    const pad = { l: 40, r: 10, t: 10, b: 22 };
    const now = serverNow();
    const from = now - this.windowS;
    const values = this.points.map(this.value).filter((v) => v != null && Number.isFinite(v));
    const max = niceMax(values.length ? Math.max(...values) : 0, this.floor);
    return {
      W, H, pad, from, now, max,
      sx: (t) => pad.l + ((t - from) / this.windowS) * (W - pad.l - pad.r),
      sy: (v) => H - pad.b - (v / max) * (H - pad.t - pad.b),
    };
  }

  render() {
    const g = this.geometry();
    const { W, H, pad, sx, sy, max } = g;
    this.svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const kids = [];
    // Horizontal grid and y labels.
    for (const f of [0, 0.5, 1]) {
      const y = sy(max * f);
      kids.push(s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
      kids.push(s('text', { class: 'axis', x: pad.l - 6, y: y + 4, 'text-anchor': 'end' }, this.axis(max * f)));
    }
    // Time ticks: every 5 min for 15 min / 1 h windows, every minute for 5 min.
    const step = this.windowS <= 300 ? 60 : this.windowS <= 900 ? 300 : 900;
    for (let back = 0; back <= this.windowS; back += step) {
      const x = sx(g.now - back);
      const label = back === 0 ? 'now' : `−${back >= 3600 ? `${back / 3600} h` : `${back / 60} min`}`;
      const anchor = back === 0 ? 'end' : back === this.windowS ? 'start' : 'middle';
      kids.push(s('text', { class: 'axis', x, y: H - 6, 'text-anchor': anchor }, label));
    }
    const rs = runs(this.points, this.value);
    const baseY = sy(0);
    if (this.kind === 'bars') {
      const bw = Math.max(1, (W - pad.l - pad.r) / this.windowS);
      for (const run of rs) {
        for (const [t, v] of run) {
          if (v <= 0) continue;
          kids.push(s('rect', { class: 'bar', x: sx(t), y: sy(v), width: bw, height: Math.max(1, baseY - sy(v)) }));
        }
      }
    } else {
      const { line, fill } = paths(rs, sx, sy, baseY, this.kind === 'area');
      if (fill) kids.push(s('path', { class: 'area', d: fill }));
      if (line) kids.push(s('path', { class: 'line', d: line }));
    }
    if (!rs.length) {
      kids.push(s('text', { class: 'axis empty', x: (W + pad.l) / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data in this window'));
    }
    // Cursor and read-out.
    const p = this.cursor !== null ? this.points[this.cursor] : null;
    if (p) {
      const x = sx(p.time);
      kids.push(s('line', { class: 'cursor', x1: x, x2: x, y1: pad.t, y2: H - pad.b }));
      const v = this.value(p);
      if (v != null) kids.push(s('circle', { class: 'cursor-dot', cx: x, cy: sy(v), r: 3.5 }));
      setText(this.readout, `${clock(p.time)} · ${this.format(v)}`);
    } else {
      const last = [...this.points].reverse().find((q) => this.value(q) != null);
      setText(this.readout, last ? `latest ${this.format(this.value(last))}` : '');
    }
    replace(this.svg, s('title', null, this.summary()), kids);
  }

  summary() {
    const values = this.points.map(this.value).filter((v) => v != null);
    if (!values.length) return `${this.label}: no data`;
    return `${this.label}: latest ${this.format(values[values.length - 1])}, max ${this.format(Math.max(...values))}`;
  }

  pointAt(e) {
    if (!this.points.length) return;
    const rect = this.svg.getBoundingClientRect();
    const g = this.geometry();
    const x = ((e.clientX - rect.left) / rect.width) * g.W;
    const t = g.from + ((x - g.pad.l) / (g.W - g.pad.l - g.pad.r)) * this.windowS;
    let best = 0;
    for (let i = 1; i < this.points.length; i += 1) {
      if (Math.abs(this.points[i].time - t) < Math.abs(this.points[best].time - t)) best = i;
    }
    this.cursor = best;
    this.render();
  }

  key(e) {
    if (!this.points.length) return;
    const n = this.points.length;
    const moves = { ArrowLeft: -1, ArrowRight: 1, PageUp: -60, PageDown: 60 };
    if (e.key in moves) {
      this.cursor = Math.min(n - 1, Math.max(0, (this.cursor ?? n - 1) + moves[e.key]));
    } else if (e.key === 'Home') this.cursor = 0;
    else if (e.key === 'End') this.cursor = n - 1;
    else if (e.key === 'Escape') this.cursor = null;
    else return;
    e.preventDefault();
    this.render();
  }
}
