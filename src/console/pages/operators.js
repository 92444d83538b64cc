// @ts-check
// Operators (admins): who may use the console, the CLI's admin API calls and the API; create one (its token
// shown once) and revoke one. Revoking your own token signs you out.
/** @import { Operator } from '../types.js' */
import { createOperator, listOperators, revokeOperator } from '../api.js';
import { openDialog, secretBox } from '../dialogs.js';
import { h } from '../dom.js';
import { fmtDate, mono } from '../format.js';
import { load, pageHeader, reload } from '../page.js';
import { session } from '../session.js';
import { alertBox, badge, busy, button, field, table } from '../ui.js';

/** @param {HTMLElement} page */
export async function operatorsPage(page) {
  const name = h('input', {
    name: 'name',
    id: 'operator-name',
    required: true,
    maxlength: '64',
    pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}',
    autocomplete: 'off',
    placeholder: 'alice',
  });
  const roles = session().meta.roles;
  const role = h(
    'select',
    { name: 'role', id: 'operator-role', value: roles[0] ?? '' },
    roles.map((r) => h('option', { value: r }, r)),
  );
  const errors = h('div');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create operator');
  const form = h(
    'form',
    {
      class: 'create-form',
      onsubmit: (e) => {
        e.preventDefault();
        void busy(submit, errors, async () => {
          const out = await createOperator({ name: name.value.trim(), role: role.value });
          reload(
            secretBox(
              `Operator "${out.name}" created (${out.role})`,
              [{ label: 'Token', value: out.token }],
              'Give it to that person only: it signs in to the console and authorizes admin API calls (Authorization: Bearer …).',
            ),
          );
        });
      },
    },
    h(
      'div',
      { class: 'filter-grid' },
      field('Name', name, 'letters, digits, . _ -'),
      field('Role', role, 'reviewer: the queue and devices; admin: everything'),
    ),
    errors,
    h('div', { class: 'actions' }, submit),
  );
  page.append(
    pageHeader('Operators'),
    h('details', { class: 'card create' }, h('summary', null, 'Create an operator'), form),
  );

  await load(page, async () => {
    const operators = await listOperators();
    const me = session().name.replace(/^operator:/, '');
    page.append(
      table(
        [
          {
            label: 'Name',
            cell: (o) =>
              h(
                'span',
                null,
                h('span', { class: 'strong' }, o.name),
                o.name === me ? h('span', { class: 'muted small' }, ' (you)') : null,
              ),
          },
          { label: 'Role', cell: (o) => badge(o.role, `op-${o.role}`) },
          { label: 'Status', cell: (o) => (o.revokedAt ? badge('revoked') : badge('active')) },
          { label: 'Token', cell: (o) => mono(o.token) },
          {
            label: 'Created',
            cell: (o) =>
              h('span', null, fmtDate(o.createdAt), h('br'), h('span', { class: 'muted small' }, o.createdBy)),
          },
          { label: 'Last used', class: 'col-date', cell: (o) => fmtDate(o.lastUsedAt) },
          {
            label: 'Actions',
            class: 'col-actions',
            cell: (o) =>
              o.revokedAt
                ? h('span', { class: 'muted small' }, 'revoked ', fmtDate(o.revokedAt))
                : button('Revoke', () => confirmRevoke(o, o.name === me), 'btn-small btn-danger-outline', {
                    'data-action': `revoke-${o.name}`,
                  }),
          },
        ],
        operators,
        'No operator.',
        (o) => (o.revokedAt ? 'is-revoked' : undefined),
      ),
    );
  });
}

/**
 * @param {Operator} o
 * @param {boolean} self the operator signed in here
 */
function confirmRevoke(o, self) {
  openDialog({
    title: `Revoke operator "${o.name}"?`,
    content: [
      h(
        'p',
        null,
        'Its token stops working at once, in the console, the API and every tab signed in with it. This cannot be undone: create a new operator instead.',
      ),
      self
        ? alertBox('error', h('strong', null, 'This is you: '), 'you will be signed out as soon as it is revoked.')
        : null,
    ],
    confirmLabel: 'Revoke',
    danger: true,
    onConfirm: async () => {
      await revokeOperator(o.name);
      reload(alertBox('success', `Operator "${o.name}" revoked.`));
    },
  });
}
