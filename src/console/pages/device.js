// @ts-check
// A device page: decide (approve / reject with a reason, undo the last decision), a conflict's two
// fingerprints side by side, identity, inventory summary, history, sources, submissions, recent requests.
/** @import { ConflictDetails, Decision, DeviceDetail } from '../types.js' */
import { decide as decideDevices, getDevice, rebindDevice, rowRef, undoDecision } from '../api.js';
import { h, link } from '../dom.js';
import { fmtBytes, fmtDate, mono, summarize, text } from '../format.js';
import { load, pageHeader, reload } from '../page.js';
import { alertBox, badge, busy, button, facts, field, section, table } from '../ui.js';
import { changesPanel, inventoryPanel, lookalikesPanel } from './device-inventory.js';

/**
 * @param {HTMLElement} page
 * @param {string} ref `id:N` or a deviceid (see rowRef)
 */
export async function devicePage(page, ref) {
  const back = h('a', { href: '#/devices', class: 'back' }, '← Quarantine queue');
  page.append(back);
  await load(page, async () => {
    const d = await getDevice(ref);
    page.append(
      pageHeader(d.name || d.deviceid, badge(d.state), h('span', { class: 'mono muted subtitle' }, d.deviceid)),
    );

    // Decide: approve / reject with a reason, or undo the last decision.
    const reason = h('input', {
      type: 'text',
      name: 'reason',
      maxlength: '1000',
      autocomplete: 'off',
      placeholder: 'why (kept in the history and the audit log)',
      id: 'device-reason',
    });
    const results = h('div');
    /**
     * @param {Decision} decision
     * @param {HTMLButtonElement} btn
     */
    const decide = (decision, btn) =>
      busy(btn, results, async () => {
        const out = await decideDevices(decision, { ids: [d.id], reason: reason.value.trim() || undefined });
        reload(alertBox('success', summarize(decision, out.results)));
      });
    const last = d.history[d.history.length - 1];
    /** @type {HTMLButtonElement} */
    const approve = button('Approve', () => decide('approve', approve), 'btn-approve', {
      id: 'approve',
      disabled: d.state === 'approved',
    });
    /** @type {HTMLButtonElement} */
    const reject = button('Reject', () => decide('reject', reject), 'btn-danger', {
      id: 'reject',
      disabled: d.state === 'rejected',
    });
    const from = last && last.actor !== 'system' ? last.from : null;
    /** @type {HTMLButtonElement | null} */
    const undo = from
      ? button(
          `Undo: back to ${from}`,
          () =>
            undo &&
            busy(undo, results, async () => {
              const out = await undoDecision(d.id);
              reload(alertBox('success', `Decision undone: the device is ${out?.to ?? from} again.`));
            }),
          '',
          { id: 'undo', title: 'Within 15 minutes of the decision' },
        )
      : null;
    page.append(
      h(
        'section',
        { class: 'card decide', 'aria-label': 'Decide' },
        h(
          'div',
          { class: 'decide-row' },
          field('Reason', reason),
          h('div', { class: 'actions' }, approve, reject, undo),
        ),
        d.stateReason ? h('p', { class: 'muted' }, 'Current state reason: ', d.stateReason) : null,
        results,
      ),
    );

    if (d.state === 'conflict' && d.conflictDetails) page.append(conflictPanel(d, d.conflictDetails));
    page.append(rebindPanel(d));

    const inv = d.inventory;
    page.append(
      h(
        'div',
        { class: 'grid-2' },
        section(
          'Identity',
          facts([
            ['Device id', mono(d.id)],
            ['Deviceid', mono(d.deviceid)],
            ['Name', text(d.name)],
            ['Serial', mono(d.serial)],
            ['UUID', mono(d.uuid)],
            ['MSN', mono(d.msn)],
            ['Asset tag', text(d.assetTag)],
            ['Manufacturer', text(d.manufacturer)],
            ['Model', text(d.model)],
            ['MACs', mono(d.macs?.length ? d.macs.join(', ') : null)],
            ['IPs', mono(d.ips?.length ? d.ips.join(', ') : null)],
            ['Tag (its key’s or client’s, sent to GLPI)', text(d.tag)],
            [
              'Claimed tag',
              d.claimedTag
                ? h(
                    'span',
                    { id: 'claimed-tag' },
                    text(d.claimedTag),
                    d.claimedTagMismatch
                      ? h('span', { class: 'badge badge-differs', id: 'tag-mismatch' }, 'differs from its tag')
                      : null,
                    h('span', { class: 'muted' }, ' sent by the agent, not verified'),
                  )
                : text(null),
            ],
            [
              'Through proxies',
              d.proxies?.length
                ? h('span', { id: 'proxies' }, d.proxies.map((p) => p.proxyChain.join(' → ')).join('; '))
                : text(null),
            ],
            [
              'Registered with',
              d.keyName
                ? h('span', null, 'key ', link(['keys', d.keyName], d.keyName))
                : d.clientId
                  ? h('span', null, 'client ', mono(d.clientId))
                  : text(null),
            ],
            ['Agent', text([d.agentId, d.agentVersion].filter(Boolean).join(' · '))],
            ['First seen', fmtDate(d.firstSeen)],
            ['Last seen', fmtDate(d.lastSeen)],
            ['Last address', mono(d.lastRemoteAddr)],
            ['Last inventory', fmtDate(d.lastInventoryAt)],
          ]),
        ),
        section(
          'Inventory summary',
          inv
            ? facts([
                ['Operating system', text(inv.os)],
                ['Manufacturer', text(inv.manufacturer)],
                ['Model', text(inv.model)],
                ['Serial', mono(inv.serial)],
                ['UUID', mono(inv.uuid)],
                ['Memory', inv.memoryMb ? `${inv.memoryMb} MB` : text(null)],
                ['Software', inv.pending ? 'being prepared…' : String(inv.softwareCount)],
                ['Network interfaces', inv.pending ? 'being prepared…' : String(inv.networkCount)],
                [
                  'Sections',
                  inv.sections?.length
                    ? h(
                        'span',
                        { class: 'chips' },
                        inv.sections.map((s) => h('span', { class: 'chip' }, s)),
                      )
                    : text(null),
                ],
              ])
            : h('p', { class: 'muted' }, 'No inventory received yet.'),
        ),
      ),
    );

    page.append(lookalikesPanel(d) ?? '', changesPanel(d.id), inventoryPanel(d.id));

    page.append(
      section(
        'History',
        table(
          [
            { label: 'When', class: 'col-date', cell: (t) => fmtDate(t.at) },
            {
              label: 'Change',
              cell: (t) =>
                h(
                  'span',
                  { class: 'transition' },
                  t.from ? badge(t.from) : h('span', { class: 'muted' }, 'new'),
                  ' → ',
                  badge(t.to),
                ),
            },
            { label: 'By', cell: (t) => mono(t.actor) },
            { label: 'Reason', cell: (t) => text(t.reason) },
          ],
          d.history,
          'No transition recorded.',
        ),
      ),
    );

    page.append(
      h(
        'div',
        { class: 'grid-2' },
        section(
          'Sources',
          table(
            [
              { label: 'Address', cell: (s) => mono(s.remoteAddr) },
              { label: 'Requests', class: 'num', cell: (s) => String(s.requests) },
              { label: 'Last seen', class: 'col-date', cell: (s) => fmtDate(s.lastSeen) },
            ],
            d.sources,
            'No source address recorded.',
          ),
        ),
        section(
          'Submissions',
          table(
            [
              { label: 'State', cell: (s) => badge(s.state) },
              { label: 'Kind', cell: (s) => text(s.kind) },
              { label: 'Count', class: 'num', cell: (s) => String(s.n) },
              { label: 'Size', class: 'num', cell: (s) => fmtBytes(s.bytes) },
            ],
            d.submissions,
            'No inventory submitted.',
          ),
        ),
      ),
    );

    page.append(
      section(
        'Recent registrations',
        table(
          [
            { label: 'Received', class: 'col-date', cell: (r) => fmtDate(r.receivedAt) },
            {
              label: 'Kind',
              cell: (r) => text([r.kind, r.format, r.partial ? 'partial' : ''].filter(Boolean).join(' · ')),
            },
            { label: 'Outcome', cell: (r) => badge(r.outcome, `outcome-${r.outcome}`) },
            { label: 'Status', class: 'num', cell: (r) => String(r.status) },
            {
              label: 'Credential',
              cell: (r) =>
                text(
                  [r.authType, r.keyName ? `${r.keyName} v${r.keyVersion ?? '?'}` : null, r.clientId]
                    .filter(Boolean)
                    .join(' · '),
                ),
            },
            { label: 'Address', cell: (r) => mono(r.remoteAddr) },
            { label: 'Agent', class: 'col-os', cell: (r) => text(r.userAgent) },
            { label: 'Message', cell: (r) => text(r.message) },
          ],
          d.registrations,
          'No request recorded.',
        ),
      ),
    );
  });
}

/**
 * The fingerprint on record and the one that arrived, side by side.
 * @param {DeviceDetail} d
 * @param {ConflictDetails} c
 */
function conflictPanel(d, c) {
  const known = c.known ?? {};
  const incoming = c.incoming ?? {};
  const fieldsNamed = new Set(Array.isArray(c.fields) ? c.fields : []);
  /** @param {unknown} v */
  const show = (v) => (Array.isArray(v) ? (v.length ? v.join(', ') : null) : v);
  const rows = ['deviceid', 'name', 'uuid', 'serial', 'macs'].map((k) => {
    const a = show(known[k]);
    const b = show(incoming[k]);
    return {
      k,
      a,
      b,
      same: String(a ?? '').toLowerCase() === String(b ?? '').toLowerCase(),
      named: fieldsNamed.has(k),
    };
  });
  const other = d.conflictWithDevice;
  return h(
    'section',
    { class: 'card conflict', 'aria-label': 'Conflict' },
    h('h2', null, 'Conflict: ', c.reason ?? 'identity clash'),
    h(
      'p',
      { class: 'muted' },
      'The fingerprint on record and the one that arrived, side by side; ',
      h('span', { class: 'flag' }, '●'),
      ' marks the field that caused the conflict. ',
      other && other.id !== d.id
        ? h(
            'span',
            null,
            'Known device: ',
            link(['devices', rowRef(other.id)], other.name || other.deviceid),
            ' ',
            badge(other.state),
            '.',
          )
        : null,
    ),
    table(
      [
        {
          label: 'Field',
          cell: (r) =>
            h(
              'span',
              null,
              r.k,
              r.named ? h('span', { class: 'flag', title: 'the field that caused the conflict' }, ' ●') : null,
            ),
        },
        { label: `Known${known.id ? ` (device ${known.id})` : ''}`, class: 'fp', cell: (r) => mono(r.a) },
        { label: 'Incoming', class: 'fp', cell: (r) => mono(r.b) },
        {
          label: '',
          cell: (r) =>
            r.a === null && r.b === null ? '' : r.same ? badge('same', 'same') : badge('differs', 'differs'),
        },
      ],
      rows,
      '',
      (r) => (r.named ? 'is-named' : !r.same ? 'is-different' : ''),
    ),
  );
}

/**
 * Moving a device to another credential: an explicit, audited reviewer action (the device's state is not
 * changed; approve or reject it afterwards).
 * @param {DeviceDetail} d
 */
function rebindPanel(d) {
  const kind = h(
    'select',
    { name: 'rebind-kind', id: 'rebind-kind' },
    h('option', { value: 'key' }, 'registration key'),
    h('option', { value: 'client' }, 'client (agc_…)'),
  );
  const target = h('input', {
    type: 'text',
    name: 'rebind-target',
    id: 'rebind-target',
    maxlength: '256',
    autocomplete: 'off',
  });
  const results = h('div');
  /** @type {HTMLButtonElement} */
  const go = button(
    'Rebind',
    () =>
      busy(go, results, async () => {
        const value = target.value.trim();
        const out = await rebindDevice(d.id, kind.value === 'key' ? { key: value } : { client: value });
        reload(
          alertBox(
            'success',
            `${out.deviceid} is now pinned to ${out.key ? `key ${out.key}` : `client ${out.clientId}`}.`,
          ),
        );
      }),
    '',
    { id: 'rebind' },
  );
  return section(
    'Credential',
    h(
      'p',
      { class: 'muted' },
      'Only the credential a device is pinned to may speak for it. Rebind it when the device really moved.',
    ),
    h(
      'div',
      { class: 'decide-row' },
      field('Pin to', kind),
      field('Name or client id', target),
      h('div', { class: 'actions' }, go),
    ),
    results,
  );
}
