// @ts-check
// Registration keys (admins): create one (its secret shown once), rotate with a grace period, revoke or
// activate, and a link to each key's usage.
/** @import { Key } from '../types.js' */
import { createKey, listKeys, rotateKey, setKeyActive } from '../api.js';
import { openDialog, secretBox } from '../dialogs.js';
import { h, link } from '../dom.js';
import { dayStart, fmtDate, mono, text, timeText } from '../format.js';
import { load, pageHeader, reload } from '../page.js';
import { alertBox, busy, button, field, table } from '../ui.js';
import { keyStatus, versionStatus } from './key-badges.js';

/** @param {HTMLElement} page */
export async function keysPage(page) {
  const name = h('input', {
    name: 'name',
    required: true,
    maxlength: '64',
    pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}',
    autocomplete: 'off',
    placeholder: 'site-paris',
  });
  const tag = h('input', { name: 'tag', autocomplete: 'off' });
  const maxDevices = h('input', { name: 'maxDevices', type: 'number', min: '0', step: '1', value: '0' });
  const expires = h('input', { name: 'expiresAt', type: 'date' });
  const comment = h('input', { name: 'comment', maxlength: '1000', autocomplete: 'off' });
  const errors = h('div');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create key');
  const form = h(
    'form',
    {
      class: 'create-form',
      onsubmit: (e) => {
        e.preventDefault();
        void busy(submit, errors, async () => {
          const out = await createKey({
            name: name.value.trim(),
            tag: tag.value.trim() || undefined,
            maxDevices: Number(maxDevices.value || 0),
            expiresAt: dayStart(expires.value, true),
            comment: comment.value.trim() || undefined,
          });
          reload(
            secretBox(
              `Registration key "${out.key.name}" created`,
              [{ label: 'Secret', value: out.secret }],
              'Give it to agents as the HTTP Basic password (--password); the user name is free text.',
            ),
          );
        });
      },
    },
    h(
      'div',
      { class: 'filter-grid' },
      field('Name', name, 'letters, digits, . _ -'),
      field('Tag', tag, 'assigned to its devices'),
      field('Max devices', maxDevices, '0 = unlimited'),
      field('Expires', expires, 'end of that day; empty = never'),
      field('Comment', comment),
    ),
    errors,
    h('div', { class: 'actions' }, submit),
  );
  page.append(
    pageHeader('Registration keys'),
    h('details', { class: 'card create' }, h('summary', null, 'Create a registration key'), form),
  );

  await load(page, async () => {
    const keys = await listKeys();
    const rowErrors = h('div');
    page.append(
      rowErrors,
      table(
        [
          { label: 'Name', cell: (k) => link(['keys', k.name], k.name, { class: 'strong' }) },
          { label: 'Status', cell: keyStatus },
          { label: 'Tag', cell: (k) => text(k.tag) },
          { label: 'Devices', class: 'num', cell: (k) => `${k.devicesUsed} / ${k.maxDevices || '∞'}` },
          { label: 'Expires', class: 'col-date', cell: (k) => fmtDate(k.expiresAt) },
          {
            label: 'Versions',
            cell: (k) =>
              h(
                'ul',
                { class: 'versions' },
                [...k.versions]
                  .reverse()
                  .map((v) =>
                    h(
                      'li',
                      null,
                      h('span', { class: 'version' }, `v${v.version}`),
                      ' ',
                      mono(v.secret),
                      ' ',
                      versionStatus(v),
                    ),
                  ),
              ),
          },
          {
            label: 'Created',
            cell: (k) =>
              h('span', null, fmtDate(k.createdAt), h('br'), h('span', { class: 'muted small' }, k.createdBy)),
          },
          { label: 'Comment', cell: (k) => text(k.comment) },
          {
            label: 'Actions',
            class: 'col-actions',
            cell: (k) =>
              h(
                'div',
                { class: 'actions nowrap' },
                link(['keys', k.name], 'Usage', { class: 'btn btn-small' }),
                button('Rotate…', () => rotateDialog(k), 'btn-small', { 'data-action': `rotate-${k.name}` }),
                k.active
                  ? button('Revoke', () => confirmKeyActive(k, false), 'btn-small btn-danger-outline', {
                      'data-action': `revoke-${k.name}`,
                    })
                  : button('Activate', () => confirmKeyActive(k, true), 'btn-small', {
                      'data-action': `activate-${k.name}`,
                    }),
              ),
          },
        ],
        keys,
        'No registration key yet.',
      ),
    );
  });
}

/** @param {Key} k */
function rotateDialog(k) {
  const grace = h('input', { name: 'grace', value: '7d', required: true, autocomplete: 'off', id: 'grace' });
  openDialog({
    title: `Rotate key "${k.name}"`,
    content: [
      h(
        'p',
        null,
        'A new version is created now; its secret is shown once. Older versions keep working for the grace period.',
      ),
      field('Grace period', grace, 'e.g. 12h, 7d; 0 cuts older versions off at once (a leaked key)'),
    ],
    confirmLabel: 'Rotate',
    onConfirm: async () => {
      const out = await rotateKey(k.name, grace.value.trim());
      // Each older version keeps its own cut-off: one already closing sooner (an earlier rotation with a
      // shorter grace) is not moved by this rotation's grace.
      const older = out.key.versions
        .filter((v) => v.version !== out.version && v.expiresAt && Date.parse(v.expiresAt) > Date.now() - 60_000)
        .sort((a, b) => b.version - a.version)
        .map((v) => `version ${v.version} at ${timeText(new Date(/** @type {string} */ (v.expiresAt)))}`);
      reload(
        secretBox(
          `Key "${k.name}" rotated: version ${out.version}`,
          [{ label: 'New secret', value: out.secret }],
          `${older.length ? `Older versions stop working: ${older.join('; ')}` : 'No older version is open'}. Follow who still uses them on the key's usage page.`,
        ),
      );
    },
  });
}

/**
 * @param {Key} k
 * @param {boolean} active
 */
function confirmKeyActive(k, active) {
  openDialog({
    title: `${active ? 'Activate' : 'Revoke'} key "${k.name}"?`,
    content: h(
      'p',
      null,
      active
        ? 'Every version that has not expired works again.'
        : 'Every version of this key stops working at once. Agents using it are refused until the key is activated again.',
    ),
    confirmLabel: active ? 'Activate' : 'Revoke',
    danger: !active,
    onConfirm: async () => {
      await setKeyActive(k.name, active);
      reload(alertBox('success', `Key "${k.name}" ${active ? 'activated' : 'revoked'}.`));
    },
  });
}
