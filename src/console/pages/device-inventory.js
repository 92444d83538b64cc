// @ts-check
// What a device page adds for the analyst: its look-alikes, what changed since its previous inventory (or,
// in conflict, against the approved one), and the inventory itself — collapsible sections with counts and
// a software filter.
/** @import { DeviceChanges, DeviceDetail, DeviceInventory, InventorySection, ListChange } from '../types.js' */
import { getChanges, getInventory, rowRef } from '../api.js';
import { h, link } from '../dom.js';
import { fmtDate, text } from '../format.js';
import { badge, errorBox, section, table } from '../ui.js';

/**
 * Devices that share a serial, UUID, MAC or name with this one.
 * @param {DeviceDetail} d
 */
export function lookalikesPanel(d) {
  const dups = d.duplicates ?? [];
  if (dups.length === 0) return null;
  return h(
    'section',
    { class: 'card lookalikes', id: 'lookalikes', 'aria-label': 'Look-alikes' },
    h('h2', null, `Look-alikes (${dups.length})`),
    h(
      'p',
      { class: 'muted' },
      'Other devices with the same serial, UUID, MAC or name (values vendors ship to every machine are ignored, as GLPI ignores them).',
    ),
    table(
      [
        { label: 'Device', cell: (x) => link(['devices', rowRef(x.id)], x.name || x.deviceid) },
        { label: 'Deviceid', cell: (x) => h('span', { class: 'mono' }, x.deviceid) },
        { label: 'State', cell: (x) => badge(x.state) },
        {
          label: 'Same',
          cell: (x) =>
            h(
              'span',
              { class: 'chips' },
              x.shared.map((s) => h('span', { class: 'chip chip-warn' }, s)),
            ),
        },
      ],
      dups,
      '',
    ),
  );
}

/** @param {unknown} v */
const cellText = (v) => (v === null || v === undefined || v === '' ? text(null) : String(v));

/**
 * @param {string} title
 * @param {ListChange} c
 * @param {string[]} fields
 */
function listChange(title, c, fields) {
  const n = c.added.length + c.removed.length + c.changed.length;
  if (n === 0) return null;
  /** @type {{ what: string, key: string, detail: string }[]} */
  const rows = [
    ...c.added.map((o) => ({
      what: 'added',
      key: fields
        .map((f) => o[f])
        .filter(Boolean)
        .join(' · '),
      detail: '',
    })),
    ...c.removed.map((o) => ({
      what: 'removed',
      key: fields
        .map((f) => o[f])
        .filter(Boolean)
        .join(' · '),
      detail: '',
    })),
    ...c.changed.map((x) => ({
      what: 'changed',
      key: x.key,
      detail: x.fields.map((f) => `${f.field}: ${f.before ?? '—'} → ${f.after ?? '—'}`).join('; '),
    })),
  ];
  return h(
    'div',
    { class: 'change-group' },
    h('h3', null, `${title} (${n})`),
    table(
      [
        {
          label: '',
          cell: (r) => badge(r.what, r.what === 'added' ? 'approved' : r.what === 'removed' ? 'rejected' : 'conflict'),
        },
        { label: 'Entry', cell: (r) => h('span', { class: 'mono' }, r.key) },
        { label: 'Change', cell: (r) => cellText(r.detail) },
      ],
      rows,
      '',
    ),
  );
}

/** @param {DeviceChanges} c */
function changesContent(c) {
  if (!c.from || !c.to || !c.changes)
    return h('p', { class: 'muted' }, 'Only one full inventory so far: nothing to compare yet.');
  const x = c.changes;
  const sw = x.software;
  const intro = h(
    'p',
    { class: 'muted' },
    c.basis === 'reference' ? 'The approved inventory of ' : 'The inventory of ',
    fmtDate(c.from.receivedAt),
    c.basis === 'reference' ? ' against the one that arrived ' : ' against the latest, ',
    fmtDate(c.to.receivedAt),
    '.',
  );
  const swRows = [
    ...sw.upgraded.map((s) => ({
      what: 'upgraded',
      name: s.name,
      version: `${s.from ?? '—'} → ${s.to ?? '—'}`,
      publisher: s.publisher,
    })),
    ...sw.added.map((s) => ({ what: 'added', name: s.name, version: s.version, publisher: s.publisher })),
    ...sw.removed.map((s) => ({ what: 'removed', name: s.name, version: s.version, publisher: s.publisher })),
  ];
  const nothing =
    x.identity.length + x.macs.added.length + x.macs.removed.length + swRows.length === 0 &&
    [x.interfaces, x.disks, x.volumes].every((l) => l.added.length + l.removed.length + l.changed.length === 0);
  return [
    intro,
    nothing ? h('p', { class: 'no-change' }, 'Nothing a reviewer checks has changed.') : null,
    x.identity.length
      ? h(
          'div',
          { class: 'change-group' },
          h('h3', null, `Identity (${x.identity.length})`),
          table(
            [
              { label: 'Field', cell: (r) => r.field },
              { label: 'Before', cell: (r) => h('del', { class: 'mono' }, cellText(r.before)) },
              { label: 'After', cell: (r) => h('ins', { class: 'mono' }, cellText(r.after)) },
            ],
            x.identity,
            '',
          ),
        )
      : null,
    x.macs.added.length || x.macs.removed.length
      ? h(
          'div',
          { class: 'change-group' },
          h('h3', null, 'MACs'),
          h(
            'p',
            { class: 'mono' },
            x.macs.added.map((m) => h('ins', null, `+ ${m} `)),
            x.macs.removed.map((m) => h('del', null, `− ${m} `)),
          ),
        )
      : null,
    listChange('Network interfaces', x.interfaces, ['description', 'mac', 'ipaddress']),
    listChange('Disks', x.disks, ['name', 'model', 'serial', 'disksize']),
    listChange('Volumes', x.volumes, ['letter', 'volumn', 'filesystem', 'total']),
    swRows.length
      ? h(
          'div',
          { class: 'change-group', id: 'software-changes' },
          h(
            'h3',
            null,
            `Software (${sw.added.length} added, ${sw.removed.length} removed, ${sw.upgraded.length} upgraded)`,
          ),
          table(
            [
              {
                label: '',
                cell: (r) =>
                  badge(r.what, r.what === 'added' ? 'approved' : r.what === 'removed' ? 'rejected' : 'conflict'),
              },
              { label: 'Name', cell: (r) => cellText(r.name) },
              { label: 'Version', class: 'mono', cell: (r) => cellText(r.version) },
              { label: 'Publisher', cell: (r) => cellText(r.publisher) },
            ],
            swRows,
            '',
          ),
        )
      : null,
  ];
}

/**
 * The "Changes" panel; it fills itself in when the comparison arrives.
 * @param {number} id
 */
export function changesPanel(id) {
  const body = h('div', null, h('p', { class: 'muted' }, 'Comparing inventories…'));
  const panel = h('section', { class: 'card', id: 'changes', 'aria-label': 'Changes' }, h('h2', null, 'Changes'), body);
  getChanges(rowRef(id)).then(
    (c) => body.replaceChildren(...[changesContent(c)].flat().filter((n) => n !== null)),
    (err) => body.replaceChildren(errorBox(err)),
  );
  return panel;
}

/**
 * One section of the inventory, collapsible, with its count; lists as a table.
 * @param {InventorySection} s
 * @param {boolean} open
 */
function sectionBlock(s, open) {
  const columns =
    s.key === 'softwares' ? ['name', 'version', 'publisher'] : [...new Set(s.items.flatMap((i) => Object.keys(i)))];
  const single = s.items.length === 1 && s.key !== 'softwares';
  const content = single
    ? h(
        'dl',
        { class: 'facts' },
        Object.entries(s.items[0] ?? {}).map(([k, v]) => [h('dt', null, k), h('dd', null, cellText(v))]),
      )
    : table(
        columns
          .slice(0, 10)
          .map((c) => ({ label: c, cell: (/** @type {Record<string, unknown>} */ r) => cellText(r[c]) })),
        s.items,
        'Empty.',
      );
  /** @type {HTMLInputElement | null} */
  const filter =
    s.key === 'softwares'
      ? h('input', {
          type: 'search',
          id: 'software-filter',
          'aria-label': 'Filter software',
          placeholder: 'filter software: name, version or publisher',
          autocomplete: 'off',
        })
      : null;
  const shownCount = h('span', { class: 'muted small' });
  if (filter && content instanceof HTMLElement) {
    const trs = [...content.querySelectorAll('tbody tr')].filter((x) => x instanceof HTMLElement);
    filter.addEventListener('input', () => {
      const q = filter.value.trim().toLowerCase();
      let n = 0;
      for (const tr of trs) {
        const hit = !q || (tr.textContent ?? '').toLowerCase().includes(q);
        tr.hidden = !hit;
        if (hit) n++;
      }
      shownCount.textContent = q ? `${n} of ${s.items.length} shown` : '';
    });
  }
  return h(
    'details',
    { class: 'inv-section', 'data-section': s.key, open },
    h(
      'summary',
      null,
      h('span', { class: 'inv-title' }, s.title),
      ' ',
      h('span', { class: 'badge badge-count' }, String(s.count)),
      s.truncated ? h('span', { class: 'muted small' }, ` (first ${s.items.length} shown)`) : null,
    ),
    filter ? h('div', { class: 'inv-filter' }, filter, ' ', shownCount) : null,
    content,
  );
}

/** @param {DeviceInventory} inv */
function inventoryContent(inv) {
  if (inv.sections.length === 0) return [h('p', { class: 'muted' }, 'No inventory received yet.')];
  const src = inv.source;
  return [
    src
      ? h(
          'p',
          { class: 'muted' },
          src.state === 'held' ? 'Held for a decision: ' : 'Accepted: ',
          'full inventory of ',
          fmtDate(src.receivedAt),
          src.partialsMerged
            ? `, with ${src.partialsMerged} partial inventor${src.partialsMerged === 1 ? 'y' : 'ies'} merged since`
            : '',
          '.',
        )
      : null,
    ...inv.sections.map((s) => sectionBlock(s, ['hardware', 'bios', 'operatingsystem', 'softwares'].includes(s.key))),
  ];
}

/**
 * The inventory itself; it fills itself in when it arrives.
 * @param {number} id
 */
export function inventoryPanel(id) {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading the inventory…'));
  const panel = h(
    'section',
    { class: 'card', id: 'inventory', 'aria-label': 'Inventory' },
    h('h2', null, 'Inventory'),
    body,
  );
  getInventory(rowRef(id)).then(
    (inv) => body.replaceChildren(...inventoryContent(inv).filter((n) => n !== null)),
    (err) => body.replaceChildren(errorBox(err)),
  );
  return panel;
}
