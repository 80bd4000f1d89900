// The dashboard's entry point: a tiny hash router (#/ and #/vassal/NAME: only files under web/ exist on the
// server, so routes live after the #), one shared poll of /api/vassals every second that every page reads,
// and the header (emperor summary, connection state, token button).

import { $, h, replace, setText } from './dom.js';
import { every, store } from './shared.js';
import { get, onConnection } from './api.js';
import * as fmt from './format.js';
import { setupTokenDialog } from './dialogs.js';
import { mountOverview } from './overview.js';
import { mountVassal } from './vassal.js';

// --- polls feeding the shared store ---------------------------------------------------------------------------
async function pollVassals() {
  try {
    const body = await get('/api/vassals');
    store.vassals = Array.isArray(body && body.vassals) ? body.vassals : [];
    store.error = null;
  } catch (e) {
    store.error = e;
  }
  store.emit();
  renderSummary();
}

async function pollEmperor() {
  try { store.emperor = await get('/api/emperor'); } catch { store.emperor = null; }
  store.emit(); // pages that show emperor facts (the empty state names its directory) redraw at once
  renderSummary();
}

// --- header --------------------------------------------------------------------------------------------------
function renderSummary() {
  const el = $('#emperor-summary');
  const vs = store.vassals;
  if (!vs) return;
  const byState = {};
  for (const v of vs) byState[v.state] = (byState[v.state] || 0) + 1;
  // The sum over the 1 s vassal poll is fresher than /api/emperor's totals (polled every 5 s), which are the
  // fallback; totals.rps is {"1s": .., "1m": ..} like a vassal's rps.
  const t = store.emperor?.totals?.rps;
  const rpsTotal = sumRps(vs) ?? (t && typeof t === 'object' ? t['1s'] : t);
  const items = [h('span', { class: 'sum-item' }, h('strong', null, String(vs.length)), vs.length === 1 ? ' vassal' : ' vassals')];
  for (const st of ['running', 'starting', 'reloading', 'throttled', 'error', 'stopping', 'stopped']) {
    if (byState[st]) items.push(h('span', { class: 'sum-item', dataset: { state: st } }, h('span', { class: 'dot', 'aria-hidden': 'true' }), `${byState[st]} ${st}`));
  }
  items.push(h('span', { class: 'sum-item' }, h('strong', null, rpsTotal == null ? `${fmt.DASH} req/s` : fmt.rps(rpsTotal))));
  if (store.emperor?.version) items.push(h('span', { class: 'sum-item muted' }, `v${store.emperor.version}`));
  replace(el, items);
}

/** Total req/s over vassals, or null if no vassal reports it (an emperor without the stats fields). */
function sumRps(vs) {
  const known = vs.map((v) => v.rps?.['1s']).filter((x) => typeof x === 'number');
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}

function setupConnection() {
  const el = $('#conn');
  onConnection((up) => {
    el.dataset.state = up ? 'up' : 'down';
    setText(el.querySelector('.conn-text'), up ? 'live' : 'emperor unreachable, retrying…');
  });
}

// --- router ----------------------------------------------------------------------------------------------------
let current = null;

function route() {
  const main = $('#main');
  if (current) current();
  current = null;
  main.replaceChildren();
  const m = /^#\/vassal\/(.+)$/.exec(location.hash);
  let name = null;
  if (m) { try { name = decodeURIComponent(m[1]); } catch { name = null; } }
  current = name ? mountVassal(main, name) : mountOverview(main);
  window.scrollTo(0, 0);
}

function boot() {
  setupConnection();
  const refreshToken = setupTokenDialog();
  document.addEventListener('liege:token-changed', () => refreshToken());
  window.addEventListener('hashchange', () => { route(); $('#main').focus({ preventScroll: true }); });
  route();
  every(1000, pollVassals);
  every(5000, pollEmperor);
}

boot();
