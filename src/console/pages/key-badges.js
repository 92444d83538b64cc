// @ts-check
// The status badges of registration keys and of their versions (the keys list and a key's usage page).
/** @import { Key, KeyVersion } from '../types.js' */
import { h } from '../dom.js';
import { fmtDate } from '../format.js';
import { badge } from '../ui.js';

/** @param {Key} k */
export function keyStatus(k) {
  if (!k.active) return badge('revoked');
  if (k.expiresAt && new Date(k.expiresAt) <= new Date()) return badge('expired');
  return badge('active');
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
