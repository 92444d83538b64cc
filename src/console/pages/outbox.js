// @ts-check
// The GLPI forwarding outbox (admins): what waits to be sent, what was delivered, and the dead letters GLPI
// refused past UPSTREAM_MAX_ATTEMPTS — filtered by state and device; a dead (or waiting) item can be retried
// (due now, with fresh attempts) or dropped (never sent; the inventory itself stays). Both are audited.
/** @import { OutboxItem } from '../types.js' */
import { deviceRef, dropOutbox, listOutbox, qs, retryOutbox } from '../api.js';
import { openDialog } from '../dialogs.js';
import { h, link } from '../dom.js';
import { fmtBytes, fmtDate, text } from '../format.js';
import { goto, load, pageHeader, refresh, reload } from '../page.js';
import { alertBox, badge, busy, button, field, table } from '../ui.js';

/** The outbox's states (GET /api/v1/outbox?state= refuses any other). */
const STATES = ['pending', 'in_flight', 'delivered', 'dead'];
const LIMIT = 200;

/** @param {OutboxItem} o */
function lastAnswer(o) {
  if (o.lastStatus === null && !o.lastError) return text(null);
  return h(
    'span',
    { class: 'outbox-answer' },
    o.lastError ? h('span', null, o.lastError) : `HTTP ${o.lastStatus}`,
    o.lastResponse
      ? h('span', { class: 'mono small muted ellipsis', title: o.lastResponse }, ` ${o.lastResponse.slice(0, 120)}`)
      : null,
  );
}

/**
 * @param {HTMLElement} page
 * @param {URLSearchParams} params
 */
export async function outboxPage(page, params) {
  const f = {
    state: STATES.includes(params.get('state') ?? '') ? String(params.get('state')) : '',
    deviceid: params.get('deviceid') ?? '',
  };
  const stateSelect = h(
    'select',
    { name: 'state', id: 'outbox-state', value: f.state },
    h('option', { value: '' }, 'any state'),
    STATES.map((s) => h('option', { value: s }, s === 'dead' ? 'dead (refused)' : s)),
  );
  const deviceid = h('input', {
    name: 'deviceid',
    id: 'outbox-deviceid',
    value: f.deviceid,
    autocomplete: 'off',
    placeholder: 'exact deviceid',
  });
  /** @param {Record<string, string>} o */
  const hash = (o) => `#/outbox${qs(o)}`;
  const form = h(
    'form',
    {
      class: 'filters card',
      'aria-label': 'Filter the outbox',
      onsubmit: (e) => {
        e.preventDefault();
        goto(hash({ state: stateSelect.value, deviceid: deviceid.value.trim() }));
      },
    },
    h('div', { class: 'filter-grid' }, field('State', stateSelect), field('Device', deviceid)),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
      button('Reset', () => goto('#/outbox')),
      button('Refresh', () => refresh()),
    ),
  );
  page.append(
    pageHeader('Forwarding outbox'),
    h(
      'p',
      { class: 'muted' },
      'Inventories of approved devices on their way to GLPI, newest first. A dead letter is one GLPI refused on every attempt: retry it once the cause is fixed, or drop it.',
    ),
    form,
  );

  await load(page, async () => {
    const items = await listOutbox({ state: f.state, deviceid: f.deviceid, limit: LIMIT });
    const rowErrors = h('div');
    /**
     * @param {OutboxItem} o
     * @param {HTMLButtonElement} btn
     */
    const retry = (o, btn) =>
      busy(btn, rowErrors, async () => {
        const out = await retryOutbox(o.id);
        reload(alertBox('success', `Outbox item ${o.id} (${o.deviceid}) is due again: ${out.state}, attempts reset.`));
      });
    page.append(
      rowErrors,
      table(
        [
          { label: 'Item', class: 'num', cell: (o) => String(o.id) },
          {
            label: 'Device',
            cell: (o) => link(['devices', deviceRef(o.deviceid)], o.deviceid, { class: 'mono' }),
          },
          { label: 'What', cell: (o) => `${o.kind}${o.partial ? ' (partial)' : ''}` },
          { label: 'Size', class: 'num', cell: (o) => fmtBytes(o.bytes) },
          { label: 'State', cell: (o) => badge(o.state.replace('_', ' '), `outbox-${o.state.replace('_', '-')}`) },
          { label: 'Attempts', class: 'num', cell: (o) => String(o.attempts) },
          { label: 'Last answer', cell: lastAnswer },
          {
            label: 'Next attempt',
            class: 'col-date',
            cell: (o) => fmtDate(o.state === 'pending' ? o.nextAttemptAt : null),
          },
          { label: 'Created', class: 'col-date', cell: (o) => fmtDate(o.createdAt) },
          { label: 'Delivered', class: 'col-date', cell: (o) => fmtDate(o.deliveredAt) },
          {
            label: 'Actions',
            class: 'col-actions',
            cell: (o) => {
              if (o.state !== 'dead' && o.state !== 'pending') return text(null);
              /** @type {HTMLButtonElement} */
              const r = button('Retry', () => retry(o, r), 'btn-small', { 'data-action': `retry-${o.id}` });
              return h(
                'div',
                { class: 'actions nowrap' },
                r,
                button('Drop…', () => confirmDrop(o), 'btn-small btn-danger-outline', {
                  'data-action': `drop-${o.id}`,
                }),
              );
            },
          },
        ],
        items,
        f.state || f.deviceid ? 'No outbox item matches these filters.' : 'The outbox is empty.',
        (o) => `outbox-item outbox-${o.state.replace('_', '-')}`,
      ),
    );
    if (items.length >= LIMIT)
      page.append(
        h('p', { class: 'muted small' }, `The newest ${LIMIT} items are shown: filter by state or device for others.`),
      );
  });
}

/** @param {OutboxItem} o */
function confirmDrop(o) {
  openDialog({
    title: `Drop outbox item ${o.id}?`,
    content: h(
      'p',
      null,
      `The ${o.kind}${o.partial ? ' (partial)' : ''} of ${o.deviceid} will never be sent to GLPI. The inventory stays stored here; a later inventory of the device is forwarded as usual. This cannot be undone.`,
    ),
    confirmLabel: 'Drop',
    danger: true,
    onConfirm: async () => {
      await dropOutbox(o.id);
      reload(alertBox('success', `Outbox item ${o.id} (${o.deviceid}) dropped: it will not be sent.`));
    },
  });
}
