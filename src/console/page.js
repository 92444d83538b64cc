// @ts-check
// What every page shares: its header, the flash (a result or a secret shown once at the top of the next
// rendered page), its loading line, and moving to another page or rendering this one again.
/** @import { Child } from './dom.js' */
import { isSignedOut } from './api.js';
import { h } from './dom.js';
import { errorBox } from './ui.js';

/** @type {HTMLElement | null} */
let flash = null;
/** Renders the page the hash names (the router's, set at start). */
let render = () => {};

/** @param {() => void} fn */
export function setRenderer(fn) {
  render = fn;
}

/** Renders the current page again. */
export function refresh() {
  render();
}

/**
 * Moves to a console route; renders it again if it is the current one.
 * @param {string} hash
 */
export function goto(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

/**
 * Re-renders the current page, with `node` on top.
 * @param {HTMLElement} [node]
 */
export function reload(node) {
  flash = node ?? null;
  render();
}

export function clearFlash() {
  flash = null;
}

/** The pending result or secret (or null), focused once shown (for screen readers and keyboards). */
export function takeFlash() {
  const node = flash;
  flash = null;
  if (node) setTimeout(() => node.focus(), 0);
  return node;
}

/**
 * The page title, followed by the pending result or secret (if any).
 * @param {Child} title
 * @param {...Child} extra
 */
export function pageHeader(title, ...extra) {
  const out = document.createDocumentFragment();
  out.append(h('div', { class: 'page-header' }, h('h1', null, title), extra));
  const node = takeFlash();
  if (node) out.append(node);
  return out;
}

/**
 * Shows a loading line, then the page's content (or its error).
 * @param {HTMLElement} page
 * @param {() => Promise<void>} fn
 */
export async function load(page, fn) {
  const loading = h('p', { class: 'muted loading' }, 'Loading…');
  page.append(loading);
  try {
    await fn();
  } catch (err) {
    if (isSignedOut(err)) return;
    page.append(errorBox(err));
  } finally {
    loading.remove();
  }
}
