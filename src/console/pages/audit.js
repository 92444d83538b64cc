// @ts-check
// The audit log (admins): who did what, filtered by actor, action (offered from the actions the server
// knows) and time, paged newest first; each change as a readable before → after list of the fields that
// changed, not two JSON blobs.
/** @import { AuditEntry } from '../types.js' */
import { deviceRef, listAudit, qs } from '../api.js';
import { h, link } from '../dom.js';
import { dayStart, fmtDate, mono, text } from '../format.js';
import { goto, load, pageHeader } from '../page.js';
import { session } from '../session.js';
import { button, field, table } from '../ui.js';

const LIMITS = [50, 100, 500, 1000];

/**
 * A JSON value as `path → scalar` pairs (`versions[1].expiresAt`), arrays of scalars kept as one line.
 * @param {unknown} v
 * @param {string} prefix
 * @param {Map<string, string>} out
 */
function flatten(v, prefix, out) {
  if (v === null || v === undefined || typeof v !== 'object') {
    if (prefix) out.set(prefix, v === undefined ? '' : v === null ? '—' : String(v));
    return out;
  }
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
    out.set(prefix, v.length ? v.join(', ') : '—');
    return out;
  }
  for (const [k, x] of Object.entries(v))
    flatten(x, prefix ? (Array.isArray(v) ? `${prefix}[${k}]` : `${prefix}.${k}`) : k, out);
  return out;
}

/**
 * What changed, field by field: `field: before → after` (only the fields that differ).
 * @param {unknown} before
 * @param {unknown} after
 * @returns {{ field: string, before: string | null, after: string | null }[]}
 */
export function auditDiff(before, after) {
  const b = flatten(before, '', new Map());
  const a = flatten(after, '', new Map());
  /** @type {{ field: string, before: string | null, after: string | null }[]} */
  const rows = [];
  for (const k of new Set([...b.keys(), ...a.keys()])) {
    const x = b.get(k) ?? null;
    const y = a.get(k) ?? null;
    if (x !== y) rows.push({ field: k, before: x, after: y });
  }
  return rows;
}

/** @param {AuditEntry} e */
function change(e) {
  if (e.before == null && e.after == null) return text(null);
  const rows = auditDiff(e.before, e.after);
  if (rows.length === 0) return h('span', { class: 'muted' }, 'no field changed');
  return h(
    'ul',
    { class: 'audit-diff' },
    rows.map((r) =>
      h(
        'li',
        null,
        h('span', { class: 'mono diff-field' }, r.field),
        ': ',
        r.before === null ? h('span', { class: 'muted' }, '(none)') : h('del', { class: 'mono' }, r.before),
        ' → ',
        r.after === null ? h('span', { class: 'muted' }, '(none)') : h('ins', { class: 'mono' }, r.after),
      ),
    ),
  );
}

/**
 * @param {HTMLElement} page
 * @param {URLSearchParams} params
 */
export async function auditPage(page, params) {
  const action = params.get('action') ?? '';
  const actor = params.get('actor') ?? '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const before = params.get('before') ?? '';
  const limit = LIMITS.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 100;
  const actionInput = h('input', {
    name: 'action',
    value: action,
    list: 'audit-actions',
    autocomplete: 'off',
    placeholder: 'any action',
  });
  const actorInput = h('input', {
    name: 'actor',
    id: 'audit-actor',
    value: actor,
    autocomplete: 'off',
    placeholder: 'anyone',
  });
  const fromInput = h('input', { name: 'from', type: 'date', value: from });
  const toInput = h('input', { name: 'to', type: 'date', value: to });
  const limitSelect = h(
    'select',
    { name: 'limit', value: String(limit) },
    LIMITS.map((n) => h('option', { value: String(n) }, `${n} per page`)),
  );
  /** @param {Record<string, string>} o */
  const hash = (o) => `#/audit${qs(o)}`;
  const current = { action, actor, from, to, limit: limit === 100 ? '' : String(limit) };
  const form = h(
    'form',
    {
      class: 'filters card',
      onsubmit: (e) => {
        e.preventDefault();
        goto(
          hash({
            action: actionInput.value.trim(),
            actor: actorInput.value.trim(),
            from: fromInput.value,
            to: toInput.value,
            limit: limitSelect.value === '100' ? '' : limitSelect.value,
          }),
        );
      },
    },
    h(
      'datalist',
      { id: 'audit-actions' },
      session().meta.auditActions.map((a) => h('option', { value: a })),
    ),
    h(
      'div',
      { class: 'filter-grid filter-grid-4' },
      field('Action', actionInput),
      field('Actor', actorInput),
      h('div', { class: 'date-range' }, field('From', fromInput), field('to (inclusive)', toInput)),
      field('Entries', limitSelect),
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
      button('Reset', () => goto('#/audit')),
    ),
  );
  page.append(pageHeader('Audit log'), form);
  await load(page, async () => {
    const rows = await listAudit({
      action,
      actor,
      since: dayStart(from, false),
      until: dayStart(to, true),
      before: /^\d+$/.test(before) ? Number(before) : undefined,
      limit: Math.min(1000, limit + 1),
    });
    const more = rows.length > limit;
    const shown = rows.slice(0, limit);
    const last = shown[shown.length - 1];
    page.append(
      table(
        [
          { label: 'When', class: 'col-date', cell: (e) => fmtDate(e.at) },
          { label: 'Actor', cell: (e) => mono(e.actor) },
          { label: 'Action', cell: (e) => h('code', null, e.action) },
          {
            label: 'Target',
            cell: (e) =>
              e.targetType === 'device' && e.targetId
                ? link(['devices', deviceRef(e.targetId)], e.targetId, { class: 'mono' })
                : text([e.targetType, e.targetId].filter(Boolean).join(' ')),
          },
          { label: 'Reason', cell: (e) => text(e.reason) },
          { label: 'Address', cell: (e) => mono(e.remoteAddr) },
          { label: 'Change (before → after)', cell: change },
        ],
        shown,
        action || actor || from || to ? 'No entry matches these filters.' : 'The audit log is empty.',
      ),
      h(
        'nav',
        { class: 'pager', 'aria-label': 'Pages' },
        before ? h('a', { class: 'btn', href: hash(current) }, '↑ Newest') : null,
        more && last
          ? h('a', { class: 'btn', rel: 'next', href: hash({ ...current, before: String(last.id) }) }, 'Older →')
          : null,
      ),
    );
  });
}
