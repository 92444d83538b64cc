// @ts-check
// The console's routes (#/devices, #/devices/<id>, #/keys, #/keys/<name>, #/clients, #/policies, #/outbox,
// #/security, #/audit, #/operators), the navigation and "who" bar they share, and signing out. Each page
// fills itself in as its data arrives.
/** @import { Child } from './dom.js' */
import { isSignedOut } from './api.js';
import { byId, h, link } from './dom.js';
import { clearFlash, pageHeader, takeFlash } from './page.js';
import { auditPage } from './pages/audit.js';
import { clientsPage } from './pages/clients.js';
import { devicePage } from './pages/device.js';
import { keyUsagePage } from './pages/key-usage.js';
import { keysPage } from './pages/keys.js';
import { queuePage } from './pages/queue.js';
import { renderSignIn } from './pages/sign-in.js';
import { clearSession, getSession, hasRole } from './session.js';
import { alertBox, badge, button, errorBox } from './ui.js';
import { timeZoneLabel } from './format.js';
import { securityPage } from './pages/security.js';
import { policiesPage } from './pages/policies.js';
import { outboxPage } from './pages/outbox.js';
import { operatorsPage } from './pages/operators.js';

/**
 * A section of the console: its navigation label, the least role it is for (a name from the server's
 * roles, GET /api/v1/meta), and how it renders. Operators below that role neither see it in the navigation
 * nor get its page.
 * @typedef {object} Route
 * @property {string} label
 * @property {string} role
 * @property {(page: HTMLElement, parts: string[], params: URLSearchParams) => Promise<void>} render
 */

/** @type {Record<string, Route>} */
const ROUTES = {
  devices: {
    label: 'Quarantine queue',
    role: 'reviewer',
    render: (page, parts, params) => (parts[1] ? devicePage(page, parts[1]) : queuePage(page, params)),
  },
  keys: {
    label: 'Registration keys',
    role: 'admin',
    render: (page, parts) => (parts[1] ? keyUsagePage(page, parts[1]) : keysPage(page)),
  },
  clients: { label: 'Clients', role: 'admin', render: (page) => clientsPage(page) },
  policies: { label: 'Policies', role: 'admin', render: (page) => policiesPage(page) },
  outbox: { label: 'Outbox', role: 'admin', render: (page, _parts, params) => outboxPage(page, params) },
  security: {
    label: 'Security events',
    role: 'admin',
    render: (page, _parts, params) => securityPage(page, params),
  },
  audit: { label: 'Audit log', role: 'admin', render: (page, _parts, params) => auditPage(page, params) },
  operators: { label: 'Operators', role: 'admin', render: (page) => operatorsPage(page) },
};

/** @param {string} [current] the section shown */
function renderChrome(current) {
  const nav = byId('nav');
  const who = byId('who');
  const s = getSession();
  nav.hidden = !s;
  who.hidden = !s;
  if (!s) return;
  nav.replaceChildren(
    ...Object.entries(ROUTES)
      .filter(([, r]) => hasRole(r.role))
      .map(([path, r]) => link([path], r.label, { 'aria-current': path === current ? 'page' : undefined })),
  );
  who.replaceChildren(
    h(
      'span',
      { class: 'muted small', id: 'time-zone', title: 'every time in the console is shown in this zone' },
      `Times: ${timeZoneLabel()}`,
    ),
    h('span', { class: 'who-name', title: `signed in as ${s.name}` }, s.name.replace(/^operator:/, '')),
    badge(s.role, 'role'),
    button('Sign out', () => signOut('Signed out.'), 'btn-ghost', { id: 'sign-out' }),
  );
}

/** @param {Child} [notice] */
export function showSignIn(notice) {
  renderChrome();
  renderSignIn(notice);
}

/**
 * Forgets the token and shows the sign-in form, with why.
 * @param {string} [message]
 */
export function signOut(message) {
  clearSession();
  clearFlash();
  for (const d of document.querySelectorAll('dialog')) d.remove();
  showSignIn(message ? alertBox(message.startsWith('You were') ? 'error' : 'info', message) : null);
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  /** @type {string[]} */
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  return { parts, params: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
}

/** Renders the page the hash names; the page fills itself in as its data arrives. */
export function route() {
  const s = getSession();
  if (!s) return showSignIn();
  const { parts, params } = parseHash();
  const page = h('div', { class: 'page' });
  const name = parts[0] ?? 'devices';
  renderChrome(name);
  byId('main').replaceChildren(page);
  const r = Object.hasOwn(ROUTES, name) ? ROUTES[name] : undefined;
  if (!r) {
    location.hash = '#/devices';
    return;
  }
  if (!hasRole(r.role)) {
    page.append(
      pageHeader('Not allowed'),
      alertBox(
        'error',
        h('strong', null, 'Not allowed: '),
        `${r.label}: this needs the ${r.role} role, and you are signed in as ${s.role}.`,
      ),
    );
    return;
  }
  r.render(page, parts, params)
    .catch((err) => {
      if (!isSignedOut(err)) page.append(errorBox(err));
    })
    .finally(() => {
      // A page that failed before its header still shows the result it was given.
      const node = getSession() ? takeFlash() : null;
      if (node) page.prepend(node);
    });
}
