// @ts-check
// Who is signed in, in this tab: the operator token (kept in sessionStorage until sign-out or until the tab
// closes), the operator's name and role (GET /api/v1/me) and the lists the server knows (GET /api/v1/meta).
/** @import { Meta } from './types.js' */

const TOKEN_KEY = 'agent-gate.operator-token';

/**
 * @typedef {object} Session
 * @property {string} token
 * @property {string} name
 * @property {string} role
 * @property {Meta} meta
 */

/** @type {Session | null} */
let current = null;

/** The signed-in operator, or null. */
export function getSession() {
  return current;
}

/** The signed-in operator; only for code that runs once signed in. */
export function session() {
  if (!current) throw new Error('Not signed in');
  return current;
}

/** @param {Session} s */
export function setSession(s) {
  current = s;
  sessionStorage.setItem(TOKEN_KEY, s.token);
}

/** Forgets the operator and the token. */
export function clearSession() {
  current = null;
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token this tab signed in with before a reload, if any. */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/**
 * Whether the signed-in operator has at least `role`. Roles rank in the order GET /api/v1/meta lists them
 * (least powerful first); a role the server does not know never matches. The API enforces roles anyway:
 * this only decides what the console offers.
 * @param {string} role
 */
export function hasRole(role) {
  if (!current) return false;
  const have = current.meta.roles.indexOf(current.role);
  const need = current.meta.roles.indexOf(role);
  return have >= 0 && need >= 0 && have >= need;
}
