// The overview (#/): one card per vassal with its state, the numbers that say whether it is healthy, and a
// 15-minute sparkline of req/s. Cards are built once and then only their text changes, so focus, selection and
// screen readers are not disturbed by the 1 s refresh.

import { h, s, replace, setText } from './dom.js';
import { enc, history, serverNow } from './api.js';
import * as fmt from './format.js';
import { sparkline } from './chart.js';
import { every, store, statePill } from './shared.js';

const SPARK_S = 900;

/** 5xx share of the last minute, from the per-second history; null when there is no history. */
export function errorRate(points) {
  const recent = points.filter((p) => p.time >= serverNow() - 60);
  if (!recent.length) return null;
  const req = recent.reduce((a, p) => a + (p.requests || 0), 0);
  const err = recent.reduce((a, p) => a + (p.errors || 0), 0);
  return { req, err };
}

export function uptime(v) {
  if (v.state !== 'running' || v.started_at == null) return null;
  return serverNow() - v.started_at;
}

export function busyWorkers(v) {
  const ws = Array.isArray(v.workers) ? v.workers : [];
  return { busy: ws.filter((w) => w.status === 'busy').length, total: ws.filter((w) => w.status !== 'cheap').length };
}

/** One metric of a card: a label and a value node that later updates only change. */
function metric(label, key) {
  const dd = h('dd', { class: 'metric-value', dataset: { metric: key } }, fmt.DASH);
  return { node: h('div', { class: 'metric' }, h('dt', null, label), dd), dd };
}

/** A long error (a traceback) cut to what a card has room for: its first line and its last (the exception). */
function summarize(text) {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.length <= 2 ? lines.join('\n') : `${lines[0]}\n…\n${lines[lines.length - 1]}`;
}

function buildCard(name) {
  const href = `#/vassal/${enc(name)}`;
  const m = {
    rps: metric('req/s', 'rps'), p50: metric('p50', 'p50'), p99: metric('p99', 'p99'), err: metric('5xx · 1 min', 'errors'),
  };
  const refs = {
    pill: h('span', { class: 'pill-slot' }),
    error: h('p', { class: 'card-error', hidden: true }),
    spark: s('svg', { class: 'spark', role: 'img', 'aria-label': 'req/s over the last 15 minutes' }),
    sparkMax: h('span', { class: 'spark-max' }),
    workers: h('span'), rss: h('span'), up: h('span'),
  };
  const card = h('article', { class: 'card', dataset: { vassal: name } },
    h('header', { class: 'card-head' },
      h('h2', { class: 'card-title' }, h('a', { href, class: 'vassal-link' }, name)),
      refs.pill),
    refs.error,
    h('dl', { class: 'metrics' }, Object.values(m).map((x) => x.node)),
    h('div', { class: 'spark-wrap' }, refs.spark,
      h('div', { class: 'spark-legend' }, h('span', null, 'req/s · 15 min'), refs.sparkMax)),
    h('footer', { class: 'card-foot' },
      h('span', { class: 'foot-item', title: 'busy / total workers' }, h('span', { class: 'foot-label' }, 'workers '), refs.workers),
      h('span', { class: 'foot-item', title: 'resident memory of master and workers' }, h('span', { class: 'foot-label' }, 'RSS '), refs.rss),
      h('span', { class: 'foot-item' }, h('span', { class: 'foot-label' }, 'up '), refs.up)));
  // The whole card is a click target for the mouse; keyboard users have the link in its title.
  card.addEventListener('click', (e) => {
    if (e.target.closest('a, button') || window.getSelection().toString()) return;
    location.hash = href;
  });
  return { card, m, refs, state: null };
}

function updateCard(c, v) {
  if (c.state !== v.state) {
    replace(c.refs.pill, statePill(v.state));
    c.card.dataset.state = v.state;
    c.state = v.state;
  }
  // The last error, when the vassal is not running (a running vassal that had a hiccup shows it on its page).
  let err = v.state !== 'running' && v.last_error ? v.last_error : '';
  if (v.state === 'throttled' && typeof v.retry_at === 'number') {
    const wait = Math.max(0, Math.ceil(v.retry_at - serverNow()));
    err = `${err ? `${err} · ` : ''}next try in ${fmt.duration(wait)}`;
  }
  c.refs.error.hidden = !err;
  setText(c.refs.error, summarize(err));
  c.refs.error.title = err; // the whole text (a traceback) on hover; the vassal page shows it in full

  setText(c.m.rps.dd, fmt.rps(v.rps?.['1s']));
  setText(c.m.p50.dd, fmt.ms(v.latency_ms?.p50));
  setText(c.m.p99.dd, fmt.ms(v.latency_ms?.p99));
  const { busy, total } = busyWorkers(v);
  setText(c.refs.workers, Array.isArray(v.workers) ? `${busy}/${total} busy` : fmt.DASH);
  setText(c.refs.rss, fmt.bytes(v.rss_bytes));
  setText(c.refs.up, fmt.duration(uptime(v)));
}

function updateSpark(c, name) {
  const hist = history(name);
  if (hist.available === false) {
    setText(c.refs.sparkMax, 'no history');
    setText(c.m.err.dd, fmt.DASH);
    return;
  }
  const points = hist.series(SPARK_S);
  const max = sparkline(c.refs.spark, points, { windowS: SPARK_S });
  setText(c.refs.sparkMax, points.length ? `peak ${fmt.rps(max)}` : '');
  const rate = errorRate(points);
  setText(c.m.err.dd, rate ? fmt.percent(rate.err, rate.req) : fmt.DASH);
  c.m.err.dd.classList.toggle('is-bad', Boolean(rate && rate.err > 0));
}

function emptyState() {
  const dir = store.emperor?.dir;
  return h('section', { class: 'empty', 'aria-labelledby': 'empty-title' },
    h('h2', { id: 'empty-title' }, 'No vassals yet'),
    h('p', null, 'Deploy an app by dropping an ', h('code', null, '.ini'), ' file into ',
      dir ? h('code', { class: 'path' }, dir) : 'the directory this emperor watches (the DIR of liege emperor DIR)',
      '. It is serving within a second and appears here.'),
    h('pre', { class: 'snippet' }, h('code', null,
      `# ${dir ? `${dir.replace(/\/$/, '')}/` : ''}hello.ini\n[uwsgi]\nwsgi-file = /srv/hello/app.py\nprocesses = 2\n; no socket: an http port is assigned and shown here`)),
    h('p', { class: 'muted' }, 'Touch the file to reload the app, delete it to stop it.'));
}

export function mountOverview(main) {
  document.title = 'Vassals · liege';
  const grid = h('div', { class: 'cards' });
  const status = h('p', { class: 'page-status', role: 'status' });
  const empty = h('div');
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Vassals'), status),
    grid, empty);
  const cards = new Map();

  const render = () => {
    if (store.error && !store.vassals) { setText(status, `Cannot read /api/vassals: ${store.error.message}`); return; }
    setText(status, store.error ? `Not updating: ${store.error.message}` : '');
    const vs = store.vassals || [];
    const names = new Set(vs.map((v) => v.name));
    for (const [name, c] of cards) if (!names.has(name)) { c.card.remove(); cards.delete(name); }
    vs.forEach((v, i) => {
      let c = cards.get(v.name);
      if (!c) { c = buildCard(v.name); cards.set(v.name, c); updateSpark(c, v.name); }
      if (grid.children[i] !== c.card) grid.insertBefore(c.card, grid.children[i] || null);
      updateCard(c, v);
    });
    // The empty state, rebuilt when the emperor's directory becomes known (from /api/emperor).
    const key = vs.length ? '' : `empty:${store.emperor?.dir || ''}`;
    if (empty.dataset.key !== key) {
      empty.dataset.key = key;
      replace(empty, key ? emptyState() : null);
    }
  };
  const unsubscribe = store.subscribe(render);

  // Sparklines and error rates from the per-second history, every 2 s (incremental fetches).
  const stopHistory = every(2000, async () => {
    for (const [name, c] of cards) {
      try { await history(name).refresh(SPARK_S); } catch { /* the connection indicator says it */ }
      updateSpark(c, name);
    }
  });
  return () => { unsubscribe(); stopHistory(); };
}
