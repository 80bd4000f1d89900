// Numbers with units. Every formatter answers "—" for null/undefined: a value the API could not measure (or a
// field an older emperor does not send) is shown as missing, never as 0.

export const DASH = '—';
const missing = (v) => v == null || (typeof v === 'number' && !Number.isFinite(v));

export function num(v, digits = 0) {
  if (missing(v)) return DASH;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** 0.4 -> "0.4", 41.3 -> "41", 1234 -> "1,234": more digits where they matter. */
export function compact(v) {
  if (missing(v)) return DASH;
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 10) return num(v, 1);
  return num(v, 0);
}

export function rps(v) { return missing(v) ? DASH : `${compact(v)} req/s`; }

export function ms(v) {
  if (missing(v)) return DASH;
  if (v >= 1000) return `${num(v / 1000, v >= 10000 ? 0 : 2)} s`;
  if (v < 1) return `${num(v, 2)} ms`;
  if (v < 10) return `${num(v, 1)} ms`;
  return `${num(v, 0)} ms`;
}

export function bytes(v) {
  if (missing(v)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = v;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
  return `${num(x, i === 0 ? 0 : x < 100 ? 1 : 0)} ${units[i]}`;
}

export function percent(part, whole) {
  if (missing(part) || missing(whole) || whole <= 0) return DASH;
  const p = (100 * part) / whole;
  if (p === 0) return '0 %';
  if (p < 0.1) return '<0.1 %';
  return `${num(p, p < 10 ? 1 : 0)} %`;
}

/** A duration in seconds: "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function duration(sec) {
  if (missing(sec)) return DASH;
  const s0 = Math.max(0, Math.floor(sec));
  if (s0 < 60) return `${s0} s`;
  const m = Math.floor(s0 / 60);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 24) return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
  const d = Math.floor(hrs / 24);
  return hrs % 24 ? `${d} d ${hrs % 24} h` : `${d} d`;
}

/** "12 s ago" for a past unix time (seconds), relative to `now` (seconds). */
export function ago(unix, now) {
  if (missing(unix)) return DASH;
  return `${duration(now - unix)} ago`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time of a unix time: "14:03:07", with milliseconds if asked. */
export function clock(unix, millis = false) {
  if (missing(unix)) return DASH;
  const d = new Date(unix * 1000);
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/** Full local date and time, for title attributes. */
export function dateTime(unix) {
  if (missing(unix)) return DASH;
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(unix)}`;
}
