// @ts-check
// The small components every page uses: buttons, form fields, cards, tables, fact lists, badges, messages,
// and busy(), which runs an action with its button disabled and shows its error.
/** @import { Attrs, Child } from './dom.js' */
import { isSignedOut } from './api.js';
import { h } from './dom.js';

/**
 * @param {Child} label
 * @param {(e: MouseEvent) => unknown} onclick
 * @param {string} [kind] extra classes, e.g. btn-primary
 * @param {Attrs} [attrs]
 */
export function button(label, onclick, kind = '', attrs = {}) {
  return h('button', { type: 'button', class: `btn ${kind}`.trim(), onclick, ...attrs }, label);
}

/**
 * A labelled form control, with an optional hint under it.
 * @param {Child} label
 * @param {Child} input
 * @param {Child} [hint]
 */
export function field(label, input, hint) {
  return h(
    'label',
    { class: 'field' },
    h('span', { class: 'field-label' }, label),
    input,
    hint ? h('span', { class: 'hint' }, hint) : null,
  );
}

/**
 * A card with a heading.
 * @param {Child} title
 * @param {...Child} content
 */
export function section(title, ...content) {
  return h('section', { class: 'card' }, h('h2', null, title), content);
}

/**
 * @template T
 * @typedef {object} Column
 * @property {Child} label
 * @property {(row: T) => Child} cell
 * @property {string} [class]
 */

/**
 * A table from column definitions.
 * @template T
 * @param {readonly Column<T>[]} columns
 * @param {readonly T[]} rows
 * @param {Child} empty shown (in one cell) when there is no row
 * @param {(row: T) => string | undefined} [rowClass]
 */
export function table(columns, rows, empty, rowClass) {
  const head = h(
    'thead',
    null,
    h(
      'tr',
      null,
      columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)),
    ),
  );
  const body = h(
    'tbody',
    null,
    rows.length === 0
      ? h('tr', null, h('td', { class: 'empty', colspan: String(columns.length) }, empty))
      : rows.map((r) =>
          h(
            'tr',
            { class: rowClass ? rowClass(r) : undefined },
            columns.map((c) => h('td', { class: c.class }, c.cell(r))),
          ),
        ),
  );
  return h('div', { class: 'table-wrap' }, h('table', null, head, body));
}

/**
 * A <dl> of [label, value] pairs.
 * @param {readonly [string, Child][]} pairs
 */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
  );
}

/**
 * A badge; its colour comes from `kind` (a state, an outcome…).
 * @param {string} label
 * @param {string} [kind]
 */
export function badge(label, kind = label) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z-]/g, '')}` }, label);
}

/**
 * A message: error (role alert), or success / info (role status). Focusable, so it can be focused once shown.
 * @param {'error' | 'success' | 'info'} kind
 * @param {...Child} content
 */
export function alertBox(kind, ...content) {
  return h(
    'div',
    { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status', tabindex: '-1' },
    content,
  );
}

/**
 * An error as a message: what kind (not allowed, not found…), the text, and the HTTP status if any.
 * @param {unknown} err
 */
export function errorBox(err) {
  const status =
    typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number' ? err.status : 0;
  const what = status === 403 ? 'Not allowed: ' : status === 404 ? 'Not found: ' : 'Error: ';
  return alertBox(
    'error',
    h('strong', null, what),
    err instanceof Error && err.message ? err.message : String(err),
    h('span', { class: 'muted' }, status ? ` (HTTP ${status})` : ''),
  );
}

/**
 * Runs an action with its button disabled; the error (if any) goes into `slot`, never lost.
 * @param {HTMLButtonElement} btn
 * @param {HTMLElement | null} slot without one, the error is thrown on
 * @param {() => Promise<unknown>} fn
 */
export async function busy(btn, slot, fn) {
  btn.disabled = true;
  slot?.replaceChildren();
  try {
    await fn();
  } catch (err) {
    if (isSignedOut(err)) return;
    if (slot) {
      const box = errorBox(err);
      slot.replaceChildren(box);
      box.focus();
    } else throw err;
  } finally {
    btn.disabled = false;
  }
}
