// What the pages share: the poll helper, the store of the latest API answers, states, actions and toasts.

import { $, h } from './dom.js';
import { control, token } from './api.js';
import { confirmAction } from './dialogs.js';

/** Runs fn now and then every ms after it finished (never overlapping); slower while the tab is hidden. */
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { /* shown by the caller or the connection indicator */ }
    if (!stopped) timer = setTimeout(tick, document.hidden ? Math.max(ms, 5000) : ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// The latest /api/vassals and /api/emperor answers (app.js polls them; pages subscribe).
export const store = {
  vassals: null, // array, or null before the first answer
  emperor: null, // /api/emperor, or null if unavailable
  error: null, // the last ApiError of the vassal poll
  subs: new Set(),
  subscribe(fn) { this.subs.add(fn); if (this.vassals || this.error) fn(this); return () => this.subs.delete(fn); },
  emit() { for (const fn of this.subs) fn(this); },
};

// --- toasts (success notes; errors stay on the page they belong to) -------------------------------------------
export function toast(message, tone = 'good') {
  const el = h('div', { class: `toast toast-${tone}` }, message);
  $('#toasts').appendChild(el);
  setTimeout(() => el.remove(), 5000);
}

// --- states ----------------------------------------------------------------------------------------------------
// Tone drives the colour (CSS [data-tone]); the state's name is always shown as text too, never colour alone.
export const STATE_TONE = {
  running: 'good', starting: 'info', reloading: 'info', throttled: 'warn', error: 'bad', stopping: 'muted', stopped: 'muted',
};

export function statePill(state) {
  return h('span', { class: 'pill', dataset: { tone: STATE_TONE[state] || 'muted' } },
    h('span', { class: 'dot', 'aria-hidden': 'true' }), state || 'unknown');
}

// --- control actions -----------------------------------------------------------------------------------------
// `when` only decides which buttons are enabled for the current state; the API stays the judge.
export const ACTIONS = [
  {
    id: 'reload', label: 'Reload', when: (st) => st !== 'stopped' && st !== 'stopping',
    body: (n) => `A new version of ${n} starts on the same sockets and takes over once it serves; the old one finishes its requests.`,
  },
  {
    id: 'chain-reload', label: 'Chain reload', when: (st) => st === 'running',
    body: (n) => `The workers of ${n} are replaced one at a time, so it never stops serving; the chain stops at the first worker that fails.`,
  },
  {
    id: 'stop', label: 'Stop', danger: true, when: (st) => st !== 'stopped' && st !== 'stopping',
    body: (n) => `${n} stops gracefully (requests in flight finish) and stays listed as stopped until you start it again.`,
  },
  {
    id: 'start', label: 'Start', when: (st) => st === 'stopped',
    body: (n) => `${n} starts again from its .ini file.`,
  },
  {
    id: 'retry', label: 'Retry now', when: (st) => st === 'throttled' || st === 'error',
    body: (n) => `The crash-loop backoff of ${n} is forgotten and it starts now.`,
  },
];

/**
 * Confirms, then sends the control call. Errors from the API (401 without the right token, 404, 409, or the
 * emperor being unreachable) are written into `alertEl` (role="alert"), word for word.
 */
export async function runAction(name, action, alertEl) {
  const { ok, token: tok } = await confirmAction({
    title: `${action.label} ${name}?`,
    body: action.body(name),
    confirmLabel: action.label,
    danger: Boolean(action.danger),
  });
  if (!ok) return false;
  alertEl.hidden = true;
  alertEl.replaceChildren();
  try {
    await control(name, action.id, tok);
    toast(`${action.label}: accepted for ${name}. Its state and events show the progress.`);
    return true;
  } catch (e) {
    const parts = [h('strong', null, `${action.label} failed`), ` (HTTP ${e.status || 'no answer'}): `, h('span', { class: 'api-error' }, e.message)];
    if (e.status === 401) {
      if (tok) token.clear();
      parts.push(tok ? ' The token was refused and forgotten; enter it again with the next action.' : ' Enter the API token to control vassals.');
    }
    const close = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': 'Dismiss' }, '×');
    close.addEventListener('click', () => { alertEl.hidden = true; });
    alertEl.append(h('p', null, parts), close);
    alertEl.hidden = false;
    document.dispatchEvent(new CustomEvent('liege:token-changed'));
    return false;
  }
}
