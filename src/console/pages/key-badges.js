// @ts-check
// The status badges of registration keys and of their versions (the keys list and a key's usage page).
/** @import { Key, KeyVersion } from '../types.js' */
import { h } from '../dom.js';
import { fmtDate } from '../format.js';
import { badge } from '../ui.js';

/** @param {Key} k */
export function keyStatus(k) {
  const status = !k.active
    ? badge('revoked')
    : k.expiresAt && new Date(k.expiresAt) <= new Date()
      ? badge('expired')
      : badge('active');
  if (!k.frozenAt) return status;
  // A spike of new deviceids (or an admin) froze the key: its new devices stay quarantined.
  const frozen = h(
    'span',
    { class: 'badge badge-closing', title: k.frozenReason ?? 'frozen for auto-approval' },
    'frozen ',
    fmtDate(k.frozenAt),
  );
  return h('span', null, status, ' ', frozen);
}

/** @param {KeyVersion} v */
export function versionStatus(v) {
  if (!v.valid) return badge('closed');
  if (v.expiresAt)
    return h(
      'span',
      { class: 'badge badge-closing', title: `stops working at ${new Date(v.expiresAt).toString()}` },
      'closes ',
      fmtDate(v.expiresAt),
    );
  return badge('current');
}
