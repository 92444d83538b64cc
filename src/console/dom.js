// @ts-check
// Building the page. Safety rule: everything shown is built with createElement/textContent (h() below),
// never with innerHTML — device names, serials and the like come from untrusted agents.

/**
 * What h() accepts as children: nodes, text (numbers and booleans become text), nothing (null, undefined,
 * false are skipped), and arrays of these, nested as deep as needed.
 * @typedef {Node | string | number | boolean | null | undefined | Children} Child
 */

/**
 * A list of children (any array of them; written as an object type so that the alias may refer to itself).
 * @typedef {{ readonly [index: number]: Child, readonly length: number }} Children
 */

/**
 * Attributes: `on…` functions become listeners, `class` the class name, `value`/`checked`/`indeterminate`
 * properties (set after the children, so a <select> finds its option); anything else an attribute (true: an
 * empty one; undefined, null and false: none).
 * @typedef {object} HandlerAttrs
 * @property {string} [class]
 * @property {(e: MouseEvent) => unknown} [onclick]
 * @property {(e: SubmitEvent) => unknown} [onsubmit]
 * @property {(e: Event) => unknown} [onchange]
 * @property {(e: FocusEvent) => unknown} [onfocus]
 */

/** @typedef {HandlerAttrs & { [name: string]: unknown }} Attrs */

/**
 * @param {Element} el
 * @param {Children} children
 */
function appendAll(el, children) {
  for (let i = 0; i < children.length; i++) {
    const c = children[i];
    if (Array.isArray(c)) appendAll(el, c);
    else if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
}

/**
 * Creates an element. Attribute names are always literals in the console's code; values and children are data.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  /** @type {[string, unknown][]} */
  const props = [];
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function')
      el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    else if (k === 'class') el.className = String(v);
    else if (k === 'value' || k === 'checked' || k === 'indeterminate') props.push([k, v]);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  appendAll(el, children);
  const target = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (el));
  for (const [k, v] of props) target[k] = v; // after the children, so a <select> finds its option
  return el;
}

/**
 * A link to a console route; parts are encoded, so data can never make it a javascript: URL.
 * @param {readonly (string | number)[]} parts
 * @param {Child} text
 * @param {Attrs} [attrs]
 */
export function link(parts, text, attrs = {}) {
  return h('a', { ...attrs, href: `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}` }, text);
}

/**
 * An element of index.html that the console fills in.
 * @param {string} id
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el;
}
