// @ts-check
// How values are shown: dates, sizes, empty values, monospace identifiers, and what a decision did.
/** @import { Decision, DecisionResult } from './types.js' */
import { h } from './dom.js';

/** @param {number} n */
const pad = (n) => String(n).padStart(2, '0');

/**
 * The browser's time zone, as the console shows it once in the header: its name and its current offset.
 * @returns {string}
 */
export function timeZoneLabel() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  return `${zone} (UTC${utcOffset(new Date())})`;
}

/**
 * `+01:00` for a date in the browser's zone (the offset at that date: summer time counts).
 * @param {Date} d
 */
export function utcOffset(d) {
  const m = -d.getTimezoneOffset();
  const a = Math.abs(m);
  return `${m < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/**
 * The console's one time format: `YYYY-MM-DD HH:MM:SS` in the browser's zone, with its offset
 * (`2026-01-31 14:05:09 +01:00`), the ISO instant in `datetime` and the zone's name in the title.
 * @param {Date} d
 */
export function timeText(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${utcOffset(d)}`;
}

/**
 * A date in the console's one format, or a dash.
 * @param {string | null | undefined} value
 */
export function fmtDate(value) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return h('time', { datetime: d.toISOString(), title: `${d.toISOString()} · ${timeZoneLabel()}` }, timeText(d));
}

/** @param {unknown} n */
export function fmtBytes(n) {
  if (typeof n !== 'number') return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * A value as text; empty (null, '', []) as a dash.
 * @param {unknown} v
 */
export function text(v) {
  if (v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0))
    return h('span', { class: 'muted' }, '—');
  return Array.isArray(v) ? v.join(', ') : String(v);
}

/**
 * An identifier in monospace; empty as a dash.
 * @param {unknown} v
 */
export const mono = (v) =>
  v === null || v === undefined || v === '' ? text(v) : h('span', { class: 'mono' }, String(v));

/**
 * A date input (YYYY-MM-DD, local) as an ISO instant: its start, or the start of the next day.
 * @param {string} value
 * @param {boolean} nextDay
 */
export function dayStart(value, nextDay) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m) return undefined;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + (nextDay ? 1 : 0)).toISOString();
}

/**
 * What a decision did, in one sentence.
 * @param {Decision} decision
 * @param {DecisionResult[]} results
 */
export function summarize(decision, results) {
  const changed = results.filter((r) => r.changed);
  const released = changed.reduce((n, r) => n + (r.releasedSubmissions ?? 0), 0);
  const done = decision === 'approve' ? 'approved' : 'rejected';
  let msg = `${changed.length} device${changed.length === 1 ? '' : 's'} ${done}`;
  if (results.length > changed.length) msg += `, ${results.length - changed.length} already ${done}`;
  if (released)
    msg += `; ${released} held submission${released === 1 ? '' : 's'} ${decision === 'approve' ? 'released' : 'rejected'}`;
  return `${msg}.`;
}
