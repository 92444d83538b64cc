// @ts-check
// Agent client credentials (admins): create one (its id and secret shown once, optionally bound to a
// device) and revoke one.
import { createClient, listClients, revokeClient } from '../api.js';
import { openDialog, secretBox } from '../dialogs.js';
import { h } from '../dom.js';
import { fmtDate, mono, text } from '../format.js';
import { load, pageHeader, reload } from '../page.js';
import { alertBox, badge, busy, button, field, table } from '../ui.js';

/** @param {HTMLElement} page */
export async function clientsPage(page) {
  const name = h('input', {
    name: 'name',
    required: true,
    maxlength: '64',
    autocomplete: 'off',
    placeholder: 'pc-0042',
  });
  const device = h('input', { name: 'device', autocomplete: 'off', placeholder: 'deviceid, or id:N (optional)' });
  const comment = h('input', { name: 'comment', maxlength: '1000', autocomplete: 'off' });
  const errors = h('div');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create client');
  const form = h(
    'form',
    {
      class: 'create-form',
      onsubmit: (e) => {
        e.preventDefault();
        void busy(submit, errors, async () => {
          const out = await createClient({
            name: name.value.trim(),
            device: device.value.trim() || undefined,
            comment: comment.value.trim() || undefined,
          });
          reload(
            secretBox(
              `Client "${out.name}" created`,
              [
                { label: 'Client id', value: out.clientId },
                { label: 'Client secret', value: out.clientSecret },
              ],
              'GLPI Agent ≥ 1.10: --oauth-client-id / --oauth-client-secret; any agent: --user <client id> --password <client secret>.',
            ),
          );
        });
      },
    },
    h(
      'div',
      { class: 'filter-grid' },
      field('Name', name),
      field('Bind to device', device, 'other deviceids are refused'),
      field('Comment', comment),
    ),
    errors,
    h('div', { class: 'actions' }, submit),
  );
  page.append(
    pageHeader('Clients'),
    h('details', { class: 'card create' }, h('summary', null, 'Create a client credential'), form),
  );

  await load(page, async () => {
    const clients = await listClients();
    page.append(
      table(
        [
          { label: 'Client id', cell: (c) => mono(c.clientId) },
          { label: 'Name', cell: (c) => h('span', { class: 'strong' }, c.name) },
          { label: 'Status', cell: (c) => (c.revokedAt ? badge('revoked') : badge('active')) },
          { label: 'Secret', cell: (c) => mono(c.secret) },
          { label: 'Bound device', cell: (c) => mono(c.deviceid) },
          { label: 'Comment', cell: (c) => text(c.comment) },
          {
            label: 'Created',
            cell: (c) =>
              h('span', null, fmtDate(c.createdAt), h('br'), h('span', { class: 'muted small' }, c.createdBy)),
          },
          { label: 'Last used', class: 'col-date', cell: (c) => fmtDate(c.lastUsedAt) },
          {
            label: 'Actions',
            class: 'col-actions',
            cell: (c) =>
              c.revokedAt
                ? h('span', { class: 'muted small' }, 'revoked ', fmtDate(c.revokedAt))
                : button(
                    'Revoke',
                    () =>
                      openDialog({
                        title: `Revoke client "${c.name}"?`,
                        content: h(
                          'p',
                          null,
                          'Its secret and every bearer token it holds stop working at once. This cannot be undone: create a new client instead.',
                        ),
                        confirmLabel: 'Revoke',
                        danger: true,
                        onConfirm: async () => {
                          await revokeClient(c.clientId);
                          reload(alertBox('success', `Client "${c.name}" revoked.`));
                        },
                      }),
                    'btn-small btn-danger-outline',
                  ),
          },
        ],
        clients,
        'No client yet.',
      ),
    );
  });
}
