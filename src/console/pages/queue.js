// @ts-check
// The quarantine queue: devices filtered (state, tag, key, subnet, text, first seen) and paged, decided by
// selection or by filter (a dry run shows the matching count first, then the confirmation decides).
/** @import { Decision, Device } from '../types.js' */
/** @import { Attrs } from '../dom.js' */
/** @import { Column } from '../ui.js' */
import { decide, decideFilter, getStatus, listDevices, previewFilter, rowRef } from '../api.js';
import { h, link } from '../dom.js';
import { dayStart, fmtDate, mono, summarize, text, timeText } from '../format.js';
import { goto, load, pageHeader, refresh, reload } from '../page.js';
import { session } from '../session.js';
import { alertBox, badge, busy, button, field, table } from '../ui.js';

const PAGE_SIZES = [25, 50, 100, 200];

/** @param {Device} d */
const agentText = (d) =>
  d.agent?.product ? `${d.agent.product}${d.agent.version ? ` ${d.agent.version}` : ''}` : (d.agentVersion ?? '');

/** @param {Device} d */
function credentialText(d) {
  const c = d.credential;
  if (!c) return '';
  if (c.keyName) return `key ${c.keyName}${c.keyVersion ? ` v${c.keyVersion}` : ''}`;
  if (c.clientId) return `client ${c.clientId}${c.authType === 'client:bearer' ? ' (OAuth)' : ''}`;
  if (c.certFingerprint) return `certificate ${c.certSubject ?? c.certFingerprint.slice(0, 16)}`;
  return c.authType ?? '';
}

/** @param {Device} d */
const proxyText = (d) => (d.proxyChain ?? []).join(' → ');

/**
 * The columns the server sorts by, across pages (GET /api/v1/devices?sort=&dir=); times go newest first
 * unless asked otherwise, the rest A to Z. Credential and proxy come from each device's latest request and
 * are not sortable.
 */
const SORTS = ['state', 'name', 'deviceid', 'serial', 'agent', 'address', 'os', 'firstSeen', 'lastSeen'];
/** @param {string} key */
const defaultDir = (key) => /** @type {'asc' | 'desc'} */ (key === 'lastSeen' || key === 'firstSeen' ? 'desc' : 'asc');

/** @param {string} state */
function queueTitle(state) {
  if (state === 'quarantined') return 'Quarantine queue';
  if (state === 'any') return 'All devices';
  return `Devices: ${state}`;
}

/**
 * The queue's filter, as the hash carries it (`state` may be 'any').
 * @typedef {object} QueueFilter
 * @property {string} state
 * @property {string} tag
 * @property {string} key
 * @property {string} subnet
 * @property {string} q
 * @property {string} from YYYY-MM-DD
 * @property {string} to YYYY-MM-DD, inclusive
 * @property {number} size
 * @property {number} offset
 * @property {string} sort a column of SORTS, or '' for the server's default order (last seen, newest first)
 * @property {'asc' | 'desc'} dir
 */

/** @typedef {'state' | 'tag' | 'key' | 'subnet' | 'q' | 'from' | 'to'} TextKey */

/**
 * @param {URLSearchParams} params
 * @returns {QueueFilter}
 */
function queueFilter(params) {
  const size = Number(params.get('size'));
  const offset = Number(params.get('offset'));
  const sort = SORTS.includes(params.get('sort') ?? '') ? String(params.get('sort')) : '';
  const dir = params.get('dir');
  return {
    state: params.get('state') ?? 'quarantined',
    tag: params.get('tag') ?? '',
    key: params.get('key') ?? '',
    subnet: params.get('subnet') ?? '',
    q: params.get('q') ?? '',
    from: params.get('from') ?? '',
    to: params.get('to') ?? '',
    size: PAGE_SIZES.includes(size) ? size : 50,
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
    sort,
    dir: dir === 'desc' || dir === 'asc' ? dir : defaultDir(sort || 'lastSeen'),
  };
}

/** @param {QueueFilter} f */
function queueHash(f) {
  const p = new URLSearchParams();
  for (const k of /** @type {const} */ (['state', 'tag', 'key', 'subnet', 'q', 'from', 'to']))
    if (f[k] && !(k === 'state' && f[k] === 'quarantined')) p.set(k, f[k]);
  if (f.size !== 50) p.set('size', String(f.size));
  if (f.offset) p.set('offset', String(f.offset));
  if (f.sort) p.set('sort', f.sort);
  if (f.sort) p.set('dir', f.dir);
  const s = p.toString();
  return `#/devices${s ? `?${s}` : ''}`;
}

/**
 * The filter text the bulk API understands, or why this filter cannot be expressed in it.
 * @param {QueueFilter} f
 * @returns {{ text: string, problem?: undefined } | { text?: undefined, problem: string }}
 */
function filterText(f) {
  if (f.from || f.to)
    return {
      problem:
        'The first-seen range cannot be part of a filter action (the API filter has no such key): clear it, or select devices on this page instead.',
    };
  const parts = [];
  for (const k of /** @type {const} */ (['state', 'tag', 'key', 'subnet', 'q'])) {
    const v = k === 'state' && f.state === 'any' ? '' : f[k].trim();
    if (!v) continue;
    if (v.includes(','))
      return {
        problem: `The ${k} value contains a comma, which the filter syntax cannot carry: select devices on this page instead.`,
      };
    parts.push(`${k}=${v}`);
  }
  if (parts.length === 0) return { problem: 'Set at least one filter: an empty filter would match every device.' };
  return { text: parts.join(',') };
}

/**
 * @param {HTMLElement} page
 * @param {URLSearchParams} params
 */
export async function queuePage(page, params) {
  const f = queueFilter(params);
  /**
   * @param {TextKey} name
   * @param {Attrs} [attrs]
   */
  const input = (name, attrs = {}) => h('input', { name, value: f[name], type: 'text', autocomplete: 'off', ...attrs });
  const stateSelect = h(
    'select',
    { name: 'state', value: f.state },
    [...session().meta.states, 'any'].map((s) => h('option', { value: s }, s === 'any' ? 'any state' : s)),
  );
  const sizeSelect = h(
    'select',
    { name: 'size', value: String(f.size) },
    PAGE_SIZES.map((n) => h('option', { value: String(n) }, `${n} per page`)),
  );
  /** @type {HTMLFormElement} */
  const form = h(
    'form',
    {
      class: 'filters card',
      'aria-label': 'Filter devices',
      onsubmit: (e) => {
        e.preventDefault();
        const data = new FormData(form);
        /** @param {string} k */
        const get = (k) => String(data.get(k) ?? '');
        goto(
          queueHash({
            state: get('state'),
            tag: get('tag').trim(),
            key: get('key').trim(),
            subnet: get('subnet').trim(),
            q: get('q').trim(),
            from: get('from'),
            to: get('to'),
            size: Number(data.get('size')),
            offset: 0,
            sort: f.sort,
            dir: f.dir,
          }),
        );
      },
    },
    h(
      'div',
      { class: 'filter-grid filter-grid-4' },
      field('State', stateSelect),
      h(
        'div',
        { class: 'span-2' },
        field('Search', input('q', { type: 'search', placeholder: 'name, serial, UUID, MAC or deviceid contains…' })),
      ),
      field('Page size', sizeSelect),
      field('Tag', input('tag')),
      field('Registration key', input('key')),
      field('Subnet', input('subnet', { placeholder: '10.1.0.0/16' })),
      h(
        'div',
        { class: 'date-range' },
        field('First seen from', input('from', { type: 'date' })),
        field('to (inclusive)', input('to', { type: 'date' })),
      ),
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply filters'),
      button('Reset', () => goto('#/devices')),
      button('Refresh', () => refresh()),
    ),
  );
  const title = queueTitle(f.state);
  document.title = `${title} · agent-gate console`;
  page.append(pageHeader(title), form);
  // One line while this gateway holds inventories for the database (its local spool); nothing otherwise.
  void getStatus()
    .then(({ spool }) => {
      if (spool && spool.messages > 0)
        form.before(
          alertBox(
            'info',
            `Spool: ${spool.messages} inventories (${Math.ceil(spool.bytes / 1024)} KB) received while the database was away, since ${spool.oldest ? timeText(new Date(spool.oldest)) : '?'}; recorded as soon as it answers.`,
          ),
        );
    })
    .catch(() => {});

  const query = {
    state: f.state === 'any' ? undefined : f.state,
    tag: f.tag,
    key: f.key,
    subnet: f.subnet,
    q: f.q,
    firstSeenFrom: dayStart(f.from, false),
    firstSeenTo: dayStart(f.to, true),
    limit: f.size + 1,
    offset: f.offset,
    sort: f.sort || undefined,
    dir: f.sort ? f.dir : undefined,
  };
  await load(page, async () => {
    const rows = await listDevices(query);
    const more = rows.length > f.size;
    const devices = rows.slice(0, f.size);
    /**
     * A column header that sorts every page by `key` (again: the other way), from the first page.
     * @param {string} label
     * @param {string} key
     */
    const sortable = (label, key) => {
      const active = (f.sort || 'lastSeen') === key;
      const current = f.sort ? f.dir : 'desc';
      /** @type {'asc' | 'desc'} */
      const dir = active ? (current === 'asc' ? 'desc' : 'asc') : defaultDir(key);
      return h(
        'a',
        {
          class: `sort${active ? ' sort-active' : ''}`,
          'data-sort': key,
          href: queueHash({ ...f, sort: key, dir, offset: 0 }),
          'aria-sort': active ? (current === 'asc' ? 'ascending' : 'descending') : undefined,
          title: 'sort every matching device (all pages)',
        },
        label,
        active ? (current === 'asc' ? ' ▲' : ' ▼') : '',
      );
    };
    /** @type {Set<number>} */
    const selected = new Set();

    // Decisions: on the selected rows, or on everything the filter matches (after a dry run).
    const reason = h('input', {
      type: 'text',
      name: 'reason',
      maxlength: '1000',
      autocomplete: 'off',
      placeholder: 'why (kept in the history and the audit log)',
      id: 'reason',
    });
    const results = h('div', { class: 'results' });
    const countLabel = h('span', { class: 'selected-count' }, 'No device selected');
    /** @type {HTMLButtonElement} */
    const approveSel = button('Approve selected', () => decideSelected('approve', approveSel), 'btn-approve', {
      disabled: true,
    });
    /** @type {HTMLButtonElement} */
    const rejectSel = button('Reject selected', () => decideSelected('reject', rejectSel), 'btn-danger', {
      disabled: true,
    });
    /** @type {HTMLInputElement[]} */
    const checks = [];
    /** @type {HTMLInputElement} */
    const all = h('input', {
      type: 'checkbox',
      'aria-label': 'Select every device on this page',
      onchange: () => {
        for (const c of checks) {
          c.checked = all.checked;
          c.dispatchEvent(new Event('change'));
        }
      },
    });
    const updateSelection = () => {
      countLabel.textContent = selected.size ? `${selected.size} selected` : 'No device selected';
      approveSel.disabled = rejectSel.disabled = selected.size === 0;
      all.checked = selected.size > 0 && selected.size === devices.length;
      all.indeterminate = selected.size > 0 && selected.size < devices.length;
    };
    /**
     * @param {Decision} decision
     * @param {HTMLButtonElement} btn
     */
    async function decideSelected(decision, btn) {
      await busy(btn, results, async () => {
        const out = await decide(decision, { ids: [...selected], reason: reason.value.trim() || undefined });
        reload(alertBox('success', summarize(decision, out.results)));
      });
    }

    const ft = filterText(f);
    const confirmSlot = h('div');
    /**
     * @param {Decision} decision
     * @param {HTMLButtonElement} btn
     * @param {string} filter
     */
    const dryRun = (decision, btn, filter) =>
      busy(btn, results, async () => {
        confirmSlot.replaceChildren();
        const out = await previewFilter(decision, filter);
        const verb = decision === 'approve' ? 'Approve' : 'Reject';
        if (out.count === 0) {
          confirmSlot.replaceChildren(alertBox('info', `No device matches ${filter}.`));
          return;
        }
        /** @type {HTMLButtonElement} */
        const confirm = button(
          `${verb} ${out.count} device${out.count === 1 ? '' : 's'}`,
          () =>
            busy(confirm, results, async () => {
              const done = await decideFilter(decision, {
                filter,
                confirmCount: out.count,
                reason: reason.value.trim() || undefined,
              });
              reload(alertBox('success', summarize(decision, done.results)));
            }),
          decision === 'approve' ? 'btn-approve' : 'btn-danger',
          { id: 'confirm-filter' },
        );
        const names = out.devices
          .slice(0, 12)
          .map((d) => h('li', null, link(['devices', rowRef(d.id)], d.name || d.deviceid), ' ', badge(d.state)));
        confirmSlot.replaceChildren(
          h(
            'div',
            { class: 'confirm', role: 'group', 'aria-label': 'Confirm the filter action' },
            h(
              'p',
              null,
              h('strong', { class: 'match-count' }, String(out.count)),
              ` device${out.count === 1 ? '' : 's'} match `,
              h('code', null, filter),
              '. ',
              `${verb} all of them${reason.value.trim() ? ' with the reason above' : ''}?`,
            ),
            h(
              'ul',
              { class: 'match-list' },
              names,
              out.count > names.length ? h('li', { class: 'muted' }, `… and ${out.count - names.length} more`) : null,
            ),
            h(
              'div',
              { class: 'actions' },
              confirm,
              button('Cancel', () => confirmSlot.replaceChildren()),
            ),
          ),
        );
        confirm.focus();
      });
    /** @type {HTMLButtonElement} */
    const approveAll = button('Approve all matching…', () => ft.text && dryRun('approve', approveAll, ft.text), '', {
      disabled: !ft.text,
    });
    /** @type {HTMLButtonElement} */
    const rejectAll = button('Reject all matching…', () => ft.text && dryRun('reject', rejectAll, ft.text), '', {
      disabled: !ft.text,
    });

    const bulk = h(
      'section',
      { class: 'card bulk', 'aria-label': 'Decide' },
      field('Reason', reason),
      h(
        'div',
        { class: 'bulk-rows' },
        h(
          'div',
          { class: 'bulk-row' },
          h('span', { class: 'bulk-label' }, 'Selection'),
          countLabel,
          approveSel,
          rejectSel,
        ),
        h(
          'div',
          { class: 'bulk-row' },
          h('span', { class: 'bulk-label' }, 'Filter'),
          ft.text
            ? h('code', { class: 'filter-text' }, ft.text)
            : h('span', { class: 'muted filter-problem' }, ft.problem),
          approveAll,
          rejectAll,
        ),
      ),
      confirmSlot,
      results,
    );

    /** @type {Column<Device>[]} */
    const columns = [
      {
        label: all,
        class: 'col-check',
        cell: (d) => {
          /** @type {HTMLInputElement} */
          const c = h('input', {
            type: 'checkbox',
            'aria-label': `Select ${d.name || d.deviceid}`,
            'data-id': String(d.id),
            onchange: () => {
              if (c.checked) selected.add(d.id);
              else selected.delete(d.id);
              c.closest('tr')?.classList.toggle('is-selected', c.checked);
              updateSelection();
            },
          });
          checks.push(c);
          return c;
        },
      },
      { label: sortable('State', 'state'), cell: (d) => badge(d.state) },
      {
        label: sortable('Name', 'name'),
        class: 'col-name',
        cell: (d) =>
          h(
            'span',
            null,
            link(['devices', rowRef(d.id)], d.name || '(no name)', { class: 'device-link' }),
            d.duplicates?.length
              ? h(
                  'span',
                  {
                    class: 'badge badge-lookalike',
                    title: d.duplicates.map((x) => `${x.name || x.deviceid} (same ${x.shared.join(', ')})`).join('\n'),
                  },
                  `${d.duplicates.length} look-alike${d.duplicates.length === 1 ? '' : 's'}`,
                )
              : null,
          ),
      },
      {
        label: sortable('Deviceid', 'deviceid'),
        class: 'col-deviceid',
        cell: (d) => h('span', { class: 'mono ellipsis', title: d.deviceid }, d.deviceid),
      },
      { label: sortable('Serial', 'serial'), cell: (d) => mono(d.serial) },
      { label: sortable('Agent', 'agent'), class: 'col-agent', cell: (d) => text(agentText(d)) },
      { label: 'Credential', cell: (d) => text(credentialText(d)) },
      { label: 'Proxy', cell: (d) => text(proxyText(d)) },
      { label: 'Tag', cell: (d) => text(d.tag) },
      { label: sortable('Address', 'address'), cell: (d) => mono(d.lastRemoteAddr) },
      { label: sortable('OS', 'os'), class: 'col-os', cell: (d) => text(d.os) },
      { label: sortable('First seen', 'firstSeen'), class: 'col-date', cell: (d) => fmtDate(d.firstSeen) },
      { label: sortable('Last seen', 'lastSeen'), class: 'col-date', cell: (d) => fmtDate(d.lastSeen) },
    ];
    const first = devices.length ? f.offset + 1 : 0;
    const pager = h(
      'nav',
      { class: 'pager', 'aria-label': 'Pages' },
      h(
        'span',
        { class: 'muted' },
        devices.length
          ? `Devices ${first}–${f.offset + devices.length}${more ? '' : ` of ${f.offset + devices.length}`}`
          : 'No device',
      ),
      f.offset > 0
        ? h(
            'a',
            { class: 'btn', rel: 'prev', href: queueHash({ ...f, offset: Math.max(0, f.offset - f.size) }) },
            '← Previous',
          )
        : null,
      more
        ? h('a', { class: 'btn', rel: 'next', href: queueHash({ ...f, offset: f.offset + f.size }) }, 'Next →')
        : null,
    );
    page.append(
      bulk,
      table(columns, devices, 'No device matches these filters.', (d) =>
        d.duplicates?.length ? 'has-lookalikes' : undefined,
      ),
      pager,
    );
  });
}
