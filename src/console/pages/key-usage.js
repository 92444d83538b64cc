// @ts-check
// A registration key's usage (admins): which devices are still on an older version after a rotation, and
// for each version which deviceids and addresses used it, how often and when last.
/** @import { KeyUsageRow } from '../types.js' */
import { keyUsage, rowRef } from '../api.js';
import { h, link } from '../dom.js';
import { fmtDate, mono, text } from '../format.js';
import { load, pageHeader } from '../page.js';
import { alertBox, section, table } from '../ui.js';
import { keyStatus, versionStatus } from './key-badges.js';

/** @param {KeyUsageRow} u */
const deviceCell = (u) =>
  u.deviceId
    ? link(['devices', rowRef(u.deviceId)], u.deviceid ?? String(u.deviceId), { class: 'mono' })
    : mono(u.deviceid);

/**
 * @param {HTMLElement} page
 * @param {string} name
 */
export async function keyUsagePage(page, name) {
  page.append(h('a', { href: '#/keys', class: 'back' }, '← Registration keys'));
  await load(page, async () => {
    const { key, usage } = await keyUsage(name);
    page.append(pageHeader(`Key "${key.name}"`, keyStatus(key)));
    const latest = Math.max(0, ...key.versions.map((v) => v.version));
    // Per device (or address when the deviceid is unknown): the newest version it has used.
    /** @type {Map<string, KeyUsageRow>} */
    const byDevice = new Map();
    for (const u of usage) {
      const id = u.deviceid ?? `addr:${u.remoteAddr ?? '?'}`;
      const cur = byDevice.get(id);
      if (
        !cur ||
        u.version > cur.version ||
        (u.version === cur.version && new Date(u.lastUsed) > new Date(cur.lastUsed))
      )
        byDevice.set(id, u);
    }
    const behind = [...byDevice.values()].filter((u) => u.version < latest);
    page.append(
      section(
        'Still on an older version',
        latest <= 1
          ? h('p', { class: 'muted' }, 'This key has a single version.')
          : behind.length === 0
            ? alertBox('success', `Every device that used this key has used version ${latest}.`)
            : [
                h(
                  'p',
                  null,
                  `${behind.length} device${behind.length === 1 ? ' has' : 's have'} not used version ${latest} yet:`,
                ),
                table(
                  [
                    { label: 'Deviceid', cell: deviceCell },
                    { label: 'Address', cell: (u) => mono(u.remoteAddr) },
                    { label: 'Newest version used', cell: (u) => `v${u.version}` },
                    { label: 'Last used', class: 'col-date', cell: (u) => fmtDate(u.lastUsed) },
                    {
                      label: 'That version closes',
                      class: 'col-date',
                      cell: (u) => (u.expiresAt ? fmtDate(u.expiresAt) : text(null)),
                    },
                  ],
                  behind,
                  '',
                  () => 'is-behind',
                ),
              ],
      ),
    );
    for (const v of [...key.versions].sort((a, b) => b.version - a.version)) {
      const rows = usage.filter((u) => u.version === v.version);
      page.append(
        h(
          'section',
          { class: 'card' },
          h('h2', null, `Version ${v.version} `, mono(v.secret), ' ', versionStatus(v)),
          h(
            'p',
            { class: 'muted' },
            'Created ',
            fmtDate(v.createdAt),
            v.expiresAt ? [' · stops at ', fmtDate(v.expiresAt)] : '',
          ),
          table(
            [
              { label: 'Deviceid', cell: deviceCell },
              { label: 'Address', cell: (u) => mono(u.remoteAddr) },
              { label: 'Requests', class: 'num', cell: (u) => String(u.requests) },
              { label: 'Last used', class: 'col-date', cell: (u) => fmtDate(u.lastUsed) },
            ],
            rows,
            'No request with this version yet.',
          ),
        ),
      );
    }
  });
}
