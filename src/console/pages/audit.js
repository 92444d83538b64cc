// @ts-check
// The audit log (admins): who did what, filtered by action (offered from the actions the server knows)
// and by how many entries, with each change's before and after.
/** @import { AuditEntry } from '../types.js' */
import { listAudit, qs } from '../api.js';
import { h, link } from '../dom.js';
import { fmtDate, mono, text } from '../format.js';
import { goto, load, pageHeader } from '../page.js';
import { session } from '../session.js';
import { button, field, table } from '../ui.js';

const LIMITS = [50, 100, 500, 1000];

/** @param {AuditEntry} e */
function change(e) {
  if (e.before == null && e.after == null) return text(null);
  return h(
    'details',
    { class: 'change' },
    h('summary', null, 'details'),
    e.before != null
      ? [h('div', { class: 'small muted' }, 'before'), h('pre', null, JSON.stringify(e.before, null, 2))]
      : null,
    e.after != null
      ? [h('div', { class: 'small muted' }, 'after'), h('pre', null, JSON.stringify(e.after, null, 2))]
      : null,
  );
}

/**
 * @param {HTMLElement} page
 * @param {URLSearchParams} params
 */
export async function auditPage(page, params) {
  const action = params.get('action') ?? '';
  const limit = LIMITS.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 100;
  const actionInput = h('input', {
    name: 'action',
    value: action,
    list: 'audit-actions',
    autocomplete: 'off',
    placeholder: 'any action',
  });
  const limitSelect = h(
    'select',
    { name: 'limit', value: String(limit) },
    LIMITS.map((n) => h('option', { value: String(n) }, `last ${n}`)),
  );
  const form = h(
    'form',
    {
      class: 'filters card',
      onsubmit: (e) => {
        e.preventDefault();
        goto(
          `#/audit${qs({ action: actionInput.value.trim(), limit: limitSelect.value === '100' ? '' : limitSelect.value })}`,
        );
      },
    },
    h(
      'datalist',
      { id: 'audit-actions' },
      session().meta.auditActions.map((a) => h('option', { value: a })),
    ),
    h('div', { class: 'filter-grid' }, field('Action', actionInput), field('Entries', limitSelect)),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
      button('Reset', () => goto('#/audit')),
    ),
  );
  page.append(pageHeader('Audit log'), form);
  await load(page, async () => {
    const rows = await listAudit({ action, limit });
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
                ? link(['devices', e.targetId], e.targetId, { class: 'mono' })
                : text([e.targetType, e.targetId].filter(Boolean).join(' ')),
          },
          { label: 'Reason', cell: (e) => text(e.reason) },
          { label: 'Address', cell: (e) => mono(e.remoteAddr) },
          { label: 'Change', cell: change },
        ],
        rows,
        action ? `No "${action}" entry.` : 'The audit log is empty.',
      ),
    );
  });
}
