// @ts-check
// Modal dialogs (confirm an action, errors stay inside) and the box that shows a new secret once.
/** @import { Child } from './dom.js' */
import { h } from './dom.js';
import { busy, button } from './ui.js';

/**
 * A modal <dialog>: Escape or Cancel closes it; the confirm button runs onConfirm, errors stay inside.
 * @param {object} o
 * @param {string} o.title
 * @param {Child} o.content
 * @param {string} o.confirmLabel
 * @param {boolean} [o.danger]
 * @param {() => Promise<void>} o.onConfirm
 */
export function openDialog({ title, content, confirmLabel, danger, onConfirm }) {
  const errors = h('div');
  const ok = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}` }, confirmLabel);
  const dlg = h('dialog', { class: 'dialog', 'aria-label': title });
  const form = h(
    'form',
    {
      onsubmit: (e) => {
        e.preventDefault();
        void busy(ok, errors, async () => {
          await onConfirm();
          dlg.close();
        });
      },
    },
    h('h2', null, title),
    content,
    errors,
    h(
      'div',
      { class: 'actions actions-end' },
      button('Cancel', () => dlg.close()),
      ok,
    ),
  );
  dlg.append(form);
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  (form.querySelector('input') ?? ok).focus();
}

/**
 * A secret shown once, with copy buttons and a warning; it stays until dismissed.
 * @param {string} title
 * @param {{ label: string, value: string }[]} items
 * @param {string} [note]
 */
export function secretBox(title, items, note) {
  /** @type {HTMLElement} */
  const box = h(
    'section',
    { class: 'secret', role: 'alert', tabindex: '-1' },
    h('h2', null, title),
    h(
      'p',
      { class: 'secret-warning' },
      h('strong', null, 'Shown once. '),
      'Copy it now and store it safely: the gateway keeps only a hash and can never show it again.',
    ),
    items.map(({ label, value }) => {
      const input = h('input', {
        type: 'text',
        readonly: true,
        class: 'mono',
        value,
        'data-secret': label,
        'aria-label': label,
        spellcheck: 'false',
        onfocus: (e) => {
          if (e.target instanceof HTMLInputElement) e.target.select();
        },
      });
      /** @type {HTMLButtonElement} */
      const copy = button('Copy', async () => {
        let ok = false;
        try {
          await navigator.clipboard.writeText(value);
          ok = true;
        } catch {
          input.focus();
          input.select();
          try {
            ok = document.execCommand('copy');
          } catch {
            ok = false;
          }
        }
        copy.textContent = ok ? 'Copied' : 'Press Ctrl+C';
        setTimeout(() => {
          copy.textContent = 'Copy';
        }, 2500);
      });
      return h(
        'div',
        { class: 'secret-row' },
        h('span', { class: 'field-label' }, label),
        h('div', { class: 'secret-value' }, input, copy),
      );
    }),
    note ? h('p', null, note) : null,
    h(
      'div',
      { class: 'actions' },
      button('I have stored it — hide', () => box.remove(), 'btn-primary'),
    ),
  );
  return box;
}
