// The vassal page (#/vassal/NAME): its numbers, charts of the last minutes (from /history), the worker table,
// the event timeline, the live log tail (Server-Sent Events, with a filter and a pause) and the actions.

import { h, replace, replaceIfChanged, setText } from './dom.js';
import { get, vassalPath, history, serverNow } from './api.js';
import * as fmt from './format.js';
import { TimeChart } from './chart.js';
import { every, store, statePill, ACTIONS, runAction } from './shared.js';
import { uptime, busyWorkers } from './overview.js';

const WINDOWS = [[300, '5 min'], [900, '15 min'], [3600, '1 h']];
const LOG_KEEP = 1000;
const LOG_FLUSH_MS = 100; // the log tail draws new lines at most this often

function section(title, id, ...children) {
  return h('section', { class: 'panel', 'aria-labelledby': id },
    h('div', { class: 'panel-head' }, h('h2', { id }, title)), ...children);
}

/** A stat tile: label, big value, small detail line. */
function tile(label) {
  const value = h('div', { class: 'tile-value' }, fmt.DASH);
  const detail = h('div', { class: 'tile-detail' });
  return { node: h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, label), value, detail), value, detail };
}

// --- the log tail ------------------------------------------------------------------------------------------------
class LogTail {
  constructor(name) {
    this.name = name;
    this.lines = []; // kept lines, oldest first (at most LOG_KEEP)
    this.maxSeq = -1;
    this.pending = []; // lines received and not yet drawn
    this.flushTimer = null;
    this.paused = false;
    this.unseen = 0;
    this.filter = '';
    this.source = null;
    this.stopPoll = null;

    this.list = h('ol', { class: 'log', 'aria-label': 'Log lines, newest last', tabindex: '0' });
    this.filterInput = h('input', {
      type: 'search', id: 'log-filter', placeholder: 'Filter lines…', autocomplete: 'off', spellcheck: 'false',
    });
    this.pauseBtn = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'false', id: 'log-pause' }, 'Pause');
    this.count = h('span', { class: 'log-count', role: 'status' });
    this.mode = h('span', { class: 'log-mode' });
    this.filterInput.addEventListener('input', () => { this.filter = this.filterInput.value.trim().toLowerCase(); this.renderAll(); });
    this.pauseBtn.addEventListener('click', () => this.setPaused(!this.paused));
    this.node = h('div', { class: 'logtail' },
      h('div', { class: 'toolbar' },
        h('label', { for: 'log-filter', class: 'visually-hidden' }, 'Filter log lines'),
        this.filterInput, this.pauseBtn, this.count, this.mode),
      this.list);
  }

  async start() {
    try {
      const body = await get(vassalPath(this.name, '/logs?tail=500'));
      this.add(body.lines || []);
    } catch (e) {
      setText(this.mode, `cannot read logs: ${e.message}`);
    }
    this.connect();
  }

  /** Live lines over SSE; an emperor without /logs/stream gets polled once a second instead. */
  connect() {
    if (!('EventSource' in window)) { this.poll(); return; }
    const since = this.maxSeq >= 0 ? `?since=${this.maxSeq}` : '';
    const es = new EventSource(vassalPath(this.name, `/logs/stream${since}`));
    this.source = es;
    es.onopen = () => setText(this.mode, 'live');
    es.onmessage = (e) => {
      try { this.add([JSON.parse(e.data)]); } catch { /* not a log line */ }
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) { // refused (e.g. 404): fall back to polling
        es.close();
        this.source = null;
        this.poll();
      } else setText(this.mode, 'reconnecting…');
    };
  }

  poll() {
    setText(this.mode, 'polling');
    this.stopPoll = every(1000, async () => {
      const body = await get(vassalPath(this.name, '/logs?tail=200'));
      this.add(body.lines || []);
    });
  }

  stop() {
    if (this.source) this.source.close();
    if (this.stopPoll) this.stopPoll();
    if (this.flushTimer != null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  /**
   * Takes lines in (from the first read, SSE or polling) and draws them at most ten times a second. Under load a
   * vassal logs hundreds of lines a second, one SSE message each; drawing each as it came meant one forced layout
   * of a thousand-line list per line, enough to stall a renderer on a busy machine for many seconds.
   */
  add(lines) {
    const fresh = lines.filter((l) => typeof l.seq !== 'number' || l.seq > this.maxSeq);
    if (!fresh.length) return;
    for (const l of fresh) if (typeof l.seq === 'number') this.maxSeq = Math.max(this.maxSeq, l.seq);
    this.pending.push(...fresh);
    if (this.pending.length > LOG_KEEP) this.pending.splice(0, this.pending.length - LOG_KEEP);
    if (this.flushTimer == null) this.flushTimer = setTimeout(() => this.flush(), LOG_FLUSH_MS);
  }

  /** Draws the lines that came since the last flush: one fragment, one scroll, one count. */
  flush() {
    this.flushTimer = null;
    const fresh = this.pending;
    this.pending = [];
    if (!fresh.length) return;
    this.lines.push(...fresh);
    const dropped = this.lines.length - LOG_KEEP;
    if (dropped > 0) this.lines.splice(0, dropped);
    if (this.paused) {
      this.unseen += fresh.length;
      this.updateCount();
      return;
    }
    const stick = this.atBottom();
    const frag = document.createDocumentFragment();
    for (const l of fresh) if (this.matches(l)) frag.appendChild(this.lineNode(l));
    this.list.appendChild(frag);
    let excess = this.list.childElementCount - LOG_KEEP;
    while (excess-- > 0) this.list.firstElementChild.remove();
    this.updateCount();
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  matches(l) { return !this.filter || String(l.text).toLowerCase().includes(this.filter); }

  atBottom() { return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40; }

  /** One line; the text is split around filter matches into text nodes and <mark>s, never parsed. */
  lineNode(l) {
    const text = String(l.text ?? '');
    const parts = [];
    if (this.filter) {
      const low = text.toLowerCase();
      let i = 0;
      for (let j = low.indexOf(this.filter); j >= 0 && parts.length < 200; j = low.indexOf(this.filter, i)) {
        parts.push(text.slice(i, j), h('mark', null, text.slice(j, j + this.filter.length)));
        i = j + this.filter.length;
      }
      parts.push(text.slice(i));
    } else parts.push(text);
    return h('li', { class: 'logline', dataset: { stream: l.stream || '' } },
      h('span', { class: 'log-time', title: fmt.dateTime(l.time) }, fmt.clock(l.time, true)),
      h('span', { class: 'log-stream' }, l.stream === 'emperor' ? 'emperor' : l.pid != null ? `${l.stream} ${l.pid}` : l.stream || ''),
      h('span', { class: 'log-text' }, parts));
  }

  renderAll() {
    replace(this.list, this.lines.filter((l) => this.matches(l)).map((l) => this.lineNode(l)));
    this.list.scrollTop = this.list.scrollHeight;
    this.updateCount();
  }

  setPaused(p) {
    this.paused = p;
    this.pauseBtn.setAttribute('aria-pressed', String(p));
    setText(this.pauseBtn, p ? 'Resume' : 'Pause');
    if (!p) { this.unseen = 0; this.renderAll(); }
    this.updateCount();
  }

  updateCount() {
    const shown = this.list.childElementCount;
    let t = this.filter ? `${shown} of ${this.lines.length} lines match` : `${this.lines.length} lines`;
    if (this.paused) t += this.unseen ? ` · paused, ${this.unseen} new` : ' · paused';
    setText(this.count, t);
  }
}

// --- the page ------------------------------------------------------------------------------------------------------
export function mountVassal(main, name) {
  document.title = `${name} · liege`;
  const stops = [];

  // Header: breadcrumb, name, state, actions, errors.
  const pill = h('span', { class: 'pill-slot' });
  const meta = h('p', { class: 'vassal-meta' });
  const lastError = h('div', { class: 'last-error', hidden: true, role: 'note' });
  const alert = h('div', { class: 'alert', role: 'alert', id: 'action-error', hidden: true });
  const buttons = ACTIONS.map((a) => {
    const b = h('button', { type: 'button', class: ['btn', a.danger && 'btn-danger-outline'], dataset: { action: a.id } }, a.label);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await runAction(name, a, alert); } finally { b.disabled = false; update(); }
    });
    return b;
  });
  const notFound = h('div', { class: 'notice', hidden: true });

  // Stat tiles.
  const t = {
    rps: tile('Requests per second'), lat: tile('Latency (last minute)'), req: tile('Requests'),
    err: tile('Errors'), workers: tile('Workers'), rss: tile('Memory (RSS)'), up: tile('Uptime'), rel: tile('Reloads'),
  };

  // Charts.
  let windowS = 900;
  const chartBox = (title) => h('figure', { class: 'chart-box' },
    h('figcaption', null, h('span', { class: 'chart-title' }, title), h('span', { class: 'chart-readout' })),
    h('div', { class: 'chart-body' }));
  const boxes = { rps: chartBox('Requests (req/s)'), p99: chartBox('p99 latency (ms)'), err: chartBox('5xx errors (per s)') };
  const histNote = h('p', { class: 'muted', hidden: true }, 'This emperor does not serve /history, so there is nothing to chart.');
  const winButtons = WINDOWS.map(([sec, label]) => {
    const b = h('button', { type: 'button', class: 'btn btn-small seg', 'aria-pressed': String(sec === windowS) }, label);
    b.addEventListener('click', () => {
      windowS = sec;
      for (const x of winButtons) x.setAttribute('aria-pressed', String(x === b));
      refreshHistory();
    });
    return b;
  });

  const workersBody = h('tbody');
  // Side processes (attach-daemon*): shown only when the vassal has some.
  const daemonsBody = h('tbody');
  const daemonsSection = section('Daemons', 'daemons-title', h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'daemons-title' },
    h('table', { class: 'table' },
      h('thead', null, h('tr', null, ['Command', 'Kind', 'PID', 'State', 'Starts', 'Last exit']
        .map((c) => h('th', { scope: 'col' }, c)))),
      daemonsBody)));
  const eventsList = h('ol', { class: 'timeline' });
  const info = h('dl', { class: 'info' });
  const logs = new LogTail(name);

  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'All vassals'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', { 'aria-current': 'page' }, name)),
    h('div', { class: 'vassal-head' },
      h('div', { class: 'vassal-title' }, h('h1', null, name), pill, meta),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, buttons)),
    alert, lastError, notFound,
    h('div', { class: 'tiles' }, Object.values(t).map((x) => x.node)),
    h('section', { class: 'panel', 'aria-labelledby': 'charts-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'charts-title' }, 'Traffic'),
        h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' }, winButtons)),
      histNote,
      h('div', { class: 'charts' }, Object.values(boxes))),
    section('Workers', 'workers-title', h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'workers-title' },
      h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['#', 'PID', 'Status', 'Requests', 'Exceptions', 'RSS', 'Avg time', 'Spawned', 'Respawns', 'Last respawn cause']
          .map((c) => h('th', { scope: 'col' }, c)))),
        workersBody))),
    daemonsSection,
    h('div', { class: 'two-col' },
      section('Events', 'events-title', eventsList),
      section('Sockets and files', 'info-title', info)),
    section('Log', 'log-title', logs.node));

  const charts = {
    rps: new TimeChart(boxes.rps, { label: 'Requests per second', format: (v) => fmt.rps(v), value: (p) => p.requests, cls: 'c-rps' }),
    p99: new TimeChart(boxes.p99, { label: 'p99 latency', format: (v) => fmt.ms(v), value: (p) => p.p99_ms, kind: 'line', cls: 'c-lat' }),
    err: new TimeChart(boxes.err, { label: 'Errors per second', format: (v) => (v == null ? fmt.DASH : `${fmt.compact(v)}/s`), value: (p) => p.errors, kind: 'bars', cls: 'c-err' }),
  };

  let v = null;
  function update() {
    if (!store.vassals) return;
    v = store.vassals.find((x) => x.name === name) || null;
    notFound.hidden = Boolean(v);
    if (!v) {
      replaceIfChanged(notFound, 'missing', () => ['No vassal named ', h('code', null, name), ' (yet). It appears here as soon as the emperor deploys it. ', h('a', { href: '#/' }, 'All vassals')]);
      for (const b of buttons) b.disabled = true;
      return;
    }
    replaceIfChanged(pill, v.state, () => statePill(v.state));
    const upS = uptime(v);
    setText(meta, [v.pid != null ? `master pid ${v.pid}` : 'no process', upS != null ? `up ${fmt.duration(upS)}` : null]
      .filter(Boolean).join(' · '));
    for (const b of buttons) {
      const a = ACTIONS.find((x) => x.id === b.dataset.action);
      b.disabled = !a.when(v.state);
    }
    // Last error: always shown when there is one (with its time), highlighted when the vassal is not running.
    let err = v.last_error || '';
    if (v.state === 'throttled' && typeof v.retry_at === 'number') {
      err = `${err ? `${err} · ` : ''}next try in ${fmt.duration(Math.ceil(v.retry_at - serverNow()))}`;
    }
    lastError.hidden = !err;
    lastError.classList.toggle('is-current', v.state !== 'running');
    replaceIfChanged(lastError, `${v.state === 'running'}|${v.last_error_at}|${err}`, () => [
      h('strong', null, v.state === 'running' ? 'Last error' : 'Error'),
      v.last_error_at ? h('span', { class: 'muted', title: fmt.dateTime(v.last_error_at) }, ` (at ${fmt.clock(v.last_error_at)})`) : null,
      ': ', err]);

    setText(t.rps.value, fmt.rps(v.rps?.['1s']));
    setText(t.rps.detail, `1 min avg ${fmt.rps(v.rps?.['1m'])}`);
    setText(t.lat.value, `p99 ${fmt.ms(v.latency_ms?.p99)}`);
    setText(t.lat.detail, `p50 ${fmt.ms(v.latency_ms?.p50)} · p90 ${fmt.ms(v.latency_ms?.p90)} · max ${fmt.ms(v.latency_ms?.max)}`);
    setText(t.req.value, fmt.num(v.requests));
    const st = v.status || {};
    setText(t.req.detail, v.status ? `2xx ${fmt.num(st['2xx'])} · 3xx ${fmt.num(st['3xx'])} · 4xx ${fmt.num(st['4xx'])}` : `sent ${fmt.bytes(v.bytes_sent)}`);
    setText(t.err.value, v.status ? `${fmt.num(st['5xx'])} 5xx` : fmt.DASH);
    const total = v.status ? Object.values(st).reduce((a, b) => a + (b || 0), 0) : null;
    setText(t.err.detail, [v.status ? `${fmt.percent(st['5xx'], total)} of requests` : null,
      v.exceptions != null ? `${fmt.num(v.exceptions)} exceptions` : null,
      v.harakiri_count != null ? `${fmt.num(v.harakiri_count)} harakiri` : null].filter(Boolean).join(' · '));
    const { busy, total: wt } = busyWorkers(v);
    setText(t.workers.value, `${busy}/${wt} busy`);
    const wr = v.worker_respawns ? Object.entries(v.worker_respawns).map(([k, n]) => `${n} ${k}`).join(', ') : '';
    setText(t.workers.detail, wr ? `respawns: ${wr}` : 'no worker respawns');
    setText(t.rss.value, fmt.bytes(v.rss_bytes));
    setText(t.rss.detail, 'master and workers');
    setText(t.up.value, fmt.duration(upS));
    setText(t.up.detail, v.started_at ? `since ${fmt.dateTime(v.started_at)}` : '');
    setText(t.rel.value, fmt.num(v.reloads));
    setText(t.rel.detail, `${fmt.num(v.respawns)} restarts after a crash`);

    const now = serverNow();
    replace(workersBody, (v.workers || []).map((w) => h('tr', { dataset: { pid: w.pid } },
      h('td', null, String(w.id)),
      h('td', { class: 'mono' }, String(w.pid)),
      h('td', null, h('span', { class: 'wstatus', dataset: { status: w.status } }, w.status),
        // What a busy worker is doing right now, and for how long (a stuck request stands out).
        w.current_request && h('div', { class: 'current-request mono muted', title: w.current_request.line },
          `${w.current_request.line} · ${fmt.ms(w.current_request.running_ms)}`)),
      h('td', { class: 'num' }, fmt.num(w.requests)),
      h('td', { class: 'num' }, fmt.num(w.exceptions)),
      h('td', { class: 'num' }, fmt.bytes(w.rss_bytes)),
      h('td', { class: 'num' }, fmt.ms(w.avg_rt_ms)),
      h('td', { title: fmt.dateTime(w.last_spawn) }, fmt.ago(w.last_spawn, now)),
      h('td', { class: 'num' }, w.respawn_count == null ? fmt.DASH : fmt.num(Math.max(0, w.respawn_count - 1))),
      h('td', null, w.respawn_cause || (w.respawn_count === 1 ? 'never respawned' : fmt.DASH)))));
    if (!(v.workers || []).length) workersBody.append(h('tr', null, h('td', { colspan: '10', class: 'muted' }, 'No workers (the vassal is not serving).')));

    const ds = Array.isArray(v.daemons) ? v.daemons : [];
    daemonsSection.hidden = ds.length === 0;
    replace(daemonsBody, ds.map((d) => h('tr', null,
      h('td', { class: 'mono', title: d.command }, d.command),
      h('td', null, d.kind),
      h('td', { class: 'mono' }, d.pid == null ? fmt.DASH : String(d.pid)),
      h('td', null, d.running ? 'running' : (d.next_start_in_s != null ? `restarting in ${fmt.duration(Math.ceil(d.next_start_in_s))}` : 'not running')),
      h('td', { class: 'num' }, fmt.num(d.starts)),
      h('td', null, d.last_exit || fmt.DASH))));

    const infoKey = JSON.stringify([v.sockets, v.config, v.log_file, v.last_exit, Math.round(now - (v.last_heartbeat || 0))]);
    replaceIfChanged(info, infoKey, () => [
      h('dt', null, 'Sockets'),
      h('dd', null, (v.sockets || []).length
        ? h('ul', { class: 'plain' }, v.sockets.map((sk) => h('li', null, h('span', { class: 'tag' }, sk.proto), ' ', h('code', null, sk.address), sk.auto ? h('span', { class: 'muted' }, ' (auto port)') : null)))
        : fmt.DASH),
      h('dt', null, 'Config'), h('dd', null, h('code', { class: 'path' }, v.config || fmt.DASH)),
      h('dt', null, 'Log file'), h('dd', null, h('code', { class: 'path' }, v.log_file || fmt.DASH)),
      h('dt', null, 'Last exit'), h('dd', null, v.last_exit || fmt.DASH),
      h('dt', null, 'Heartbeat'), h('dd', null, v.last_heartbeat ? fmt.ago(v.last_heartbeat, now) : fmt.DASH)]);
  }
  stops.push(store.subscribe(update));

  // Events, every 2 s; re-rendered only when something new arrived.
  let lastEventsKey = '';
  stops.push(every(2000, async () => {
    const body = await get(vassalPath(name, '/events'));
    const events = (body.events || []).slice(-200).reverse();
    const key = `${events.length}:${events[0]?.time}`;
    if (key === lastEventsKey) return;
    lastEventsKey = key;
    replace(eventsList, events.length ? events.map((e) => h('li', { class: 'event', dataset: { kind: e.kind } },
      h('time', { class: 'event-time', title: fmt.dateTime(e.time) }, fmt.clock(e.time)),
      h('span', { class: 'tag event-kind' }, e.kind),
      h('span', { class: 'event-msg' }, e.message))) : h('li', { class: 'muted' }, 'No events yet.'));
  }));

  // Charts from /history, every 2 s.
  const hist = history(name);
  async function refreshHistory() {
    try { await hist.refresh(windowS); } catch { /* shown by the connection indicator */ }
    histNote.hidden = hist.available !== false;
    const points = hist.available === false ? [] : hist.series(windowS);
    for (const c of Object.values(charts)) c.draw(points, windowS);
  }
  stops.push(every(2000, refreshHistory));

  logs.start();
  stops.push(() => logs.stop());
  return () => stops.forEach((f) => f());
}
