// @ts-check
// Security events (admins): failed agent credentials and token requests, credentials used for a device they
// do not speak for — filtered by type (the types the server knows), address, credential and time, paged.
/** @import { SecurityEvent } from '../types.js' */
import { deviceRef, listSecurityEvents, qs } from '../api.js';
import { h, link } from '../dom.js';
import { dayStart, fmtDate, mono, text } from '../format.js';
import { goto, load, pageHeader } from '../page.js';
import { session } from '../session.js';
import { button, field, table } from '../ui.js';

const PAGE = 100;

/** @param {SecurityEvent} e */
function detailsText(e) {
  const d = e.details ?? {};
  const parts = Object.entries(d)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? h('span', { class: 'mono small' }, parts.join(' ')) : text(null);
}

/**
 * @param {HTMLElement} page
 * @param {URLSearchParams} params
 */
export async function securityPage(page, params) {
  const f = {
    type: params.get('type') ?? '',
    address: params.get('address') ?? '',
    key: params.get('key') ?? '',
    from: params.get('from') ?? '',
    to: params.get('to') ?? '',
    before: params.get('before') ?? '',
  };
  const types = session().meta.securityEventTypes ?? [];
  const typeSelect = h(
    'select',
    { name: 'type', value: f.type, id: 'se-type' },
    h('option', { value: '' }, 'any type'),
    types.map((t) => h('option', { value: t }, t)),
  );
  /**
   * @param {'address' | 'key' | 'from' | 'to'} name
   * @param {Record<string, string>} [attrs]
   */
  const input = (name, attrs = {}) =>
    h('input', { name, id: `se-${name}`, value: f[name], type: 'text', autocomplete: 'off', ...attrs });
  const address = input('address', { placeholder: '198.51.100.7 or 10.1.0.0/16' });
  const key = input('key', { placeholder: 'client id, key:NAME, fingerprint…' });
  const from = input('from', { type: 'date' });
  const to = input('to', { type: 'date' });
  /** @param {Record<string, string>} o */
  const hash = (o) => `#/security${qs(o)}`;
  const form = h(
    'form',
    {
      class: 'filters card',
      'aria-label': 'Filter security events',
      onsubmit: (e) => {
        e.preventDefault();
        goto(
          hash({
            type: typeSelect.value,
            address: address.value.trim(),
            key: key.value.trim(),
            from: from.value,
            to: to.value,
          }),
        );
      },
    },
    h(
      'div',
      { class: 'filter-grid filter-grid-4' },
      field('Type', typeSelect),
      field('Address', address),
      field('Credential', key),
      h('div', { class: 'date-range' }, field('From', from), field('to (inclusive)', to)),
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
      button('Reset', () => goto('#/security')),
    ),
  );
  page.append(pageHeader('Security events'), form);
  await load(page, async () => {
    const rows = await listSecurityEvents({
      type: f.type,
      address: f.address,
      key: f.key,
      since: dayStart(f.from, false),
      until: dayStart(f.to, true),
      before: /^\d+$/.test(f.before) ? Number(f.before) : undefined,
      limit: PAGE + 1,
    });
    const more = rows.length > PAGE;
    const shown = rows.slice(0, PAGE);
    const last = shown[shown.length - 1];
    const rest = { type: f.type, address: f.address, key: f.key, from: f.from, to: f.to };
    page.append(
      table(
        [
          { label: 'When', class: 'col-date', cell: (e) => fmtDate(e.at) },
          { label: 'Type', cell: (e) => h('code', null, e.kind) },
          {
            label: 'Address',
            cell: (e) =>
              e.remoteAddr
                ? h('a', { class: 'mono', href: hash({ ...rest, address: e.remoteAddr }) }, e.remoteAddr)
                : text(null),
          },
          { label: 'Credential', cell: (e) => mono(e.credential) },
          {
            label: 'Device',
            cell: (e) =>
              e.deviceid ? link(['devices', deviceRef(e.deviceid)], e.deviceid, { class: 'mono' }) : text(null),
          },
          { label: 'Details', cell: detailsText },
        ],
        shown,
        'No security event matches these filters.',
        () => 'security-event',
      ),
      h(
        'nav',
        { class: 'pager', 'aria-label': 'Pages' },
        h(
          'span',
          { class: 'muted' },
          `${shown.length} event${shown.length === 1 ? '' : 's'}${more ? ' (newest first)' : ''}`,
        ),
        f.before ? h('a', { class: 'btn', href: hash(rest) }, '↑ Newest') : null,
        more && last
          ? h('a', { class: 'btn', rel: 'next', href: hash({ ...rest, before: String(last.id) }) }, 'Older →')
          : null,
      ),
    );
  });
}
