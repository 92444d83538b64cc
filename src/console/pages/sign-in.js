// @ts-check
// The sign-in form: an operator token, kept in this tab (sessionStorage) until sign-out or until the tab
// closes, and sent only to this gateway.
/** @import { Child } from '../dom.js' */
import { signIn } from '../auth.js';
import { byId, h } from '../dom.js';
import { refresh } from '../page.js';
import { busy, field } from '../ui.js';

/** @param {Child} [notice] a message above the form (why the operator was signed out, for one) */
export function renderSignIn(notice) {
  const input = h('input', {
    type: 'password',
    name: 'token',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'ago_…',
    id: 'token',
  });
  const errors = h('div');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin card',
      onsubmit: (e) => {
        e.preventDefault();
        void busy(submit, errors, async () => {
          await signIn(input.value.trim());
          refresh();
        });
      },
    },
    h('h1', null, 'Sign in'),
    h(
      'p',
      { class: 'muted' },
      'Use your operator token. It stays in this browser tab (sessionStorage) until you sign out or close the tab, and is sent only to this gateway.',
    ),
    notice,
    errors,
    field('Operator token', input),
    h('div', { class: 'actions' }, submit),
  );
  byId('main').replaceChildren(form);
  input.focus();
}
