// Talking to the emperor. Every URL here is a path on the page's own origin ("/api/..."), and fetch runs with
// mode "same-origin": the dashboard cannot be pointed at another server (the CSP's connect-src 'self' says the
// same). Errors carry the API's own message ({"error": "..."}) so the page can show it verbatim.

const TOKEN_KEY = 'liege.apiToken';

export const token = {
  get() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; } },
  set(value) { try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* storage disabled */ } },
  clear() { try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ } },
};

export class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0: the emperor could not be reached
    this.path = path;
  }
}

// --- connection state and the server's clock ---------------------------------------------------------------
// Uptimes and "x s ago" are computed against the emperor's clock (from the Date header), so a browser on
// another machine with a skewed clock still shows true numbers.
let skewMs = 0;
const listeners = new Set();
let online = null;

export function onConnection(fn) { listeners.add(fn); if (online !== null) fn(online); }
function setOnline(value, why) {
  if (online === value) return;
  online = value;
  for (const fn of listeners) fn(value, why);
}

/** Now on the emperor's clock, in unix seconds (fractional). */
export function serverNow() { return (Date.now() + skewMs) / 1000; }

function noteDate(res) {
  const d = Date.parse(res.headers.get('date') || '');
  if (!Number.isNaN(d)) {
    const skew = d - Date.now();
    // The header has 1 s resolution: ignore differences that are only that.
    skewMs = Math.abs(skew) > 1500 ? skew : 0;
  }
}

export const enc = encodeURIComponent;
export const vassalPath = (name, rest = '') => `/api/vassals/${enc(name)}${rest}`;

async function call(method, path, headers = {}) {
  if (!path.startsWith('/') || path.startsWith('//')) throw new Error(`not a same-origin path: ${path}`);
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { Accept: 'application/json', ...headers },
      mode: 'same-origin',
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    setOnline(false, e.message);
    throw new ApiError(0, 'the emperor is not reachable', path);
  }
  setOnline(true);
  noteDate(res);
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const message = body && typeof body.error === 'string' ? body.error : `HTTP ${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message, path);
  }
  return body;
}

// Reads send the kept token too: an emperor whose API listens beyond loopback asks for it on reads as well.
// (EventSource cannot send headers; the log tail then falls back to polling.)
const auth = () => (token.get() ? { Authorization: `Bearer ${token.get()}` } : {});
export const get = (path) => call('GET', path, auth());

/** POST /api/vassals/NAME/ACTION with the token (none if empty: the API then answers 401, which we show). */
export function control(name, action, tok) {
  const headers = tok ? { Authorization: `Bearer ${tok}` } : {};
  return call('POST', vassalPath(name, `/${action}`), headers);
}

// --- per-second history, kept between pages ------------------------------------------------------------------
// The first call fetches the whole window; later calls fetch only the last few seconds and merge by time, so a
// 1 s refresh of 15-minute sparklines costs a few hundred bytes per vassal, not 900 points.

const KEEP_S = 3600;

class History {
  constructor(name) {
    this.name = name;
    this.points = new Map(); // unix second -> point
    this.covered = 0; // how many seconds back the cache is complete
    this.fetchedAt = 0; // server time of the last fetch
    this.available = null; // false once the emperor answered 404 (an older API without /history)
    this.retryAt = 0;
  }

  async refresh(windowS) {
    const now = serverNow();
    if (this.available === false && now < this.retryAt) return this;
    let seconds = windowS;
    if (this.covered >= windowS && this.fetchedAt) {
      seconds = Math.min(windowS, Math.ceil(now - this.fetchedAt) + 3);
    }
    seconds = Math.max(1, Math.min(KEEP_S, seconds));
    try {
      const body = await get(vassalPath(this.name, `/history?seconds=${seconds}`));
      this.available = true;
      const points = Array.isArray(body && body.points) ? body.points : [];
      for (const p of points) if (typeof p.time === 'number') this.points.set(p.time, p);
      this.covered = Math.max(this.covered, seconds);
      this.fetchedAt = now;
      const oldest = now - KEEP_S;
      for (const t of this.points.keys()) if (t < oldest) this.points.delete(t);
    } catch (e) {
      if (e.status === 404) { this.available = false; this.retryAt = now + 10; } else throw e;
    }
    return this;
  }

  /** Points of the last windowS seconds, oldest first. */
  series(windowS) {
    const from = serverNow() - windowS;
    return [...this.points.values()].filter((p) => p.time >= from).sort((a, b) => a.time - b.time);
  }
}

const histories = new Map();
export function history(name) {
  if (!histories.has(name)) histories.set(name, new History(name));
  return histories.get(name);
}
