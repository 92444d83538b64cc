// agent-gate console: one vanilla module, no dependencies. It signs in with an operator token (kept in this
// tab's sessionStorage) and calls the admin API (/api/v1) with it; the API enforces every role.
// Safety rule: everything shown is built with createElement/textContent (the h() helper below), never with
// innerHTML — device names, serials and the like come from untrusted agents.

const TOKEN_KEY = 'agent-gate.operator-token';
const STATES = ['quarantined', 'conflict', 'approved', 'rejected'];
const PAGE_SIZES = [25, 50, 100, 200];
const AUDIT_ACTIONS = [
  'device.approve',
  'device.reject',
  'device.undo',
  'key.create',
  'key.rotate',
  'key.revoke',
  'key.activate',
  'client.create',
  'client.revoke',
  'operator.create',
  'operator.revoke',
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

/** { token, name, role } once signed in. */
let session = null;
/** A node shown at the top of the next rendered page (a result, or a secret shown once). */
let flash = null;

// ---- DOM ------------------------------------------------------------------------------------------------

/** Creates an element. Attribute names are always literals from this file; values and children are data. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const props = [];
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value' || k === 'checked' || k === 'indeterminate') props.push([k, v]);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity))
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  for (const [k, v] of props) el[k] = v; // after the children, so a <select> finds its option
  return el;
}

/** A link to a console route; parts are encoded, so data can never make it a javascript: URL. */
function link(parts, text, attrs = {}) {
  return h('a', { ...attrs, href: `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}` }, text);
}

const pad = (n) => String(n).padStart(2, '0');

function fmtDate(value) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return h('time', { datetime: d.toISOString(), title: d.toString() }, text);
}

function fmtBytes(n) {
  if (typeof n !== 'number') return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function text(v) {
  if (v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0))
    return h('span', { class: 'muted' }, '—');
  return Array.isArray(v) ? v.join(', ') : String(v);
}

const mono = (v) => (v === null || v === undefined || v === '' ? text(v) : h('span', { class: 'mono' }, String(v)));

function badge(label, kind = label) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z-]/g, '')}` }, label);
}

function alertBox(kind, ...content) {
  return h(
    'div',
    { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status', tabindex: '-1' },
    content,
  );
}

function errorBox(err) {
  const status = err && err.status ? ` (HTTP ${err.status})` : '';
  const what = err && err.status === 403 ? 'Not allowed: ' : err && err.status === 404 ? 'Not found: ' : 'Error: ';
  return alertBox(
    'error',
    h('strong', null, what),
    err && err.message ? err.message : String(err),
    h('span', { class: 'muted' }, status),
  );
}

/** A table from column definitions { label, cell(row), class? }. */
function table(columns, rows, empty, rowClass) {
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

/** A <dl> of [label, value] pairs. */
function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
  );
}

function field(label, input, hint) {
  return h(
    'label',
    { class: 'field' },
    h('span', { class: 'field-label' }, label),
    input,
    hint ? h('span', { class: 'hint' }, hint) : null,
  );
}

function button(label, onclick, kind = '', attrs = {}) {
  return h('button', { type: 'button', class: `btn ${kind}`.trim(), onclick, ...attrs }, label);
}

/** Runs an action with its button disabled; the error (if any) goes into `slot`, never lost. */
async function busy(btn, slot, fn) {
  btn.disabled = true;
  slot?.replaceChildren();
  try {
    await fn();
  } catch (err) {
    if (err && err.signedOut) return;
    if (slot) {
      slot.replaceChildren(errorBox(err));
      slot.firstChild.focus();
    } else throw err;
  } finally {
    btn.disabled = false;
  }
}

function section(title, ...content) {
  return h('section', { class: 'card' }, h('h2', null, title), content);
}

/** A modal <dialog>: Escape or Cancel closes it; the confirm button runs onConfirm, errors stay inside. */
function openDialog({ title, content, confirmLabel, danger, onConfirm }) {
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

/** A secret shown once, with copy buttons and a warning; it stays until dismissed. */
function secretBox(title, items, note) {
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
        onfocus: (e) => e.target.select(),
      });
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

// ---- API ------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  if (!session) throw new ApiError(401, 'Not signed in');
  const headers = { Accept: 'application/json', Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the gateway: ${err.message}`);
  }
  const raw = await res.text();
  let data = null;
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message =
      data && typeof data.message === 'string' ? data.message : `${res.status} ${res.statusText || 'error'}`;
    const err = new ApiError(res.status, message);
    if (res.status === 401 && session.name) {
      signOut(`You were signed out: ${message}. The token is no longer valid.`);
      err.signedOut = true;
    }
    throw err;
  }
  if (raw && data === null) throw new ApiError(res.status, 'The gateway did not answer with JSON');
  return data;
}

const qs = (o) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
};

// ---- session and routing --------------------------------------------------------------------------------

async function signIn(token) {
  session = { token, name: '', role: 'reviewer' };
  try {
    const me = await api('GET', '/me').catch((err) => {
      throw err.status === 401 ? new ApiError(401, 'This token was not accepted: it is unknown or revoked.') : err;
    });
    // /me names the operator but not the role: an admin-only read tells (403 = reviewer).
    let role = 'admin';
    try {
      await api('GET', '/audit?limit=1');
    } catch (err) {
      if (err.status !== 403) throw err;
      role = 'reviewer';
    }
    session = { token, name: me.name, role };
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch (err) {
    session = null;
    throw err;
  }
}

function signOut(message) {
  session = null;
  flash = null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const d of document.querySelectorAll('dialog')) d.remove();
  renderSignIn(message ? alertBox(message.startsWith('You were') ? 'error' : 'info', message) : null);
}

function renderChrome(current) {
  const signedIn = !!session;
  nav.hidden = !signedIn;
  who.hidden = !signedIn;
  if (!signedIn) return;
  const items = [
    ['devices', 'Quarantine queue', 'reviewer'],
    ['keys', 'Registration keys', 'admin'],
    ['clients', 'Clients', 'admin'],
    ['audit', 'Audit log', 'admin'],
  ];
  nav.replaceChildren(
    ...items
      .filter(([, , role]) => role === 'reviewer' || session.role === 'admin')
      .map(([path, label]) => link([path], label, { 'aria-current': path === current ? 'page' : undefined })),
  );
  who.replaceChildren(
    h('span', { class: 'who-name', title: `signed in as ${session.name}` }, session.name.replace(/^operator:/, '')),
    badge(session.role, 'role'),
    button('Sign out', () => signOut('Signed out.'), 'btn-ghost', { id: 'sign-out' }),
  );
}

function renderSignIn(notice) {
  renderChrome();
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
          route();
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
  main.replaceChildren(form);
  input.focus();
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  return { parts, params: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
}

/** Renders the page the hash names; the page fills itself in as its data arrives. */
function route() {
  if (!session) return renderSignIn();
  const { parts, params } = parseHash();
  const page = h('div', { class: 'page' });
  renderChrome(parts[0] ?? 'devices');
  main.replaceChildren(page);
  const pages = {
    devices: () => (parts[1] ? devicePage(page, parts[1]) : queuePage(page, params)),
    keys: () => (parts[1] ? keyUsagePage(page, parts[1]) : keysPage(page)),
    clients: () => clientsPage(page),
    audit: () => auditPage(page, params),
  };
  const render = pages[parts[0] ?? 'devices'];
  if (!render) {
    location.hash = '#/devices';
    return;
  }
  Promise.resolve(render())
    .catch((err) => {
      if (!err?.signedOut) page.append(errorBox(err));
    })
    .finally(() => {
      // A page that failed before its header still shows the result it was given.
      if (flash && session) page.prepend(takeFlash());
    });
}

/** The pending result or secret, focused once shown (for screen readers and keyboards). */
function takeFlash() {
  const node = flash;
  flash = null;
  setTimeout(() => node.focus?.(), 0);
  return node;
}

/** Re-renders the current page, with `node` on top. */
function reload(node) {
  flash = node ?? null;
  route();
}

/** Shows a loading line, then the page's content (or its error). */
async function load(page, fn) {
  const loading = h('p', { class: 'muted loading' }, 'Loading…');
  page.append(loading);
  try {
    await fn();
  } catch (err) {
    if (err?.signedOut) return;
    page.append(errorBox(err));
  } finally {
    loading.remove();
  }
}

/** The page title, followed by the pending result or secret (if any). */
function pageHeader(title, ...extra) {
  const out = document.createDocumentFragment();
  out.append(h('div', { class: 'page-header' }, h('h1', null, title), extra));
  if (flash) out.append(takeFlash());
  return out;
}

// ---- quarantine queue -----------------------------------------------------------------------------------

function queueFilter(params) {
  const size = Number(params.get('size'));
  const offset = Number(params.get('offset'));
  return {
    state: params.get('state') ?? 'quarantined',
    tag: params.get('tag') ?? '',
    key: params.get('key') ?? '',
    subnet: params.get('subnet') ?? '',
    q: params.get('q') ?? '',
    from: params.get('from') ?? '',
    to: params.get('to') ?? '',
    size: PAGE_SIZES.includes(size) ? size : 50,
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
}

function queueHash(f) {
  const p = new URLSearchParams();
  for (const k of ['state', 'tag', 'key', 'subnet', 'q', 'from', 'to'])
    if (f[k] && !(k === 'state' && f[k] === 'quarantined')) p.set(k, f[k]);
  if (f.size !== 50) p.set('size', String(f.size));
  if (f.offset) p.set('offset', String(f.offset));
  const s = p.toString();
  return `#/devices${s ? `?${s}` : ''}`;
}

function goto(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** A date input (YYYY-MM-DD, local) as an ISO instant: its start, or the start of the next day. */
function dayStart(value, nextDay) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m) return undefined;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + (nextDay ? 1 : 0)).toISOString();
}

/** The filter text the bulk API understands, or why this filter cannot be expressed in it. */
function filterText(f) {
  if (f.from || f.to)
    return {
      problem:
        'The first-seen range cannot be part of a filter action (the API filter has no such key): clear it, or select devices on this page instead.',
    };
  const parts = [];
  for (const k of ['state', 'tag', 'key', 'subnet', 'q']) {
    const v = k === 'state' && f.state === 'any' ? '' : f[k].trim();
    if (!v) continue;
    if (v.includes(','))
      return {
        problem: `The ${k} value contains a comma, which the filter syntax cannot carry: select devices on this page instead.`,
      };
    parts.push(`${k}=${v}`);
  }
  if (parts.length === 0) return { problem: 'Set at least one filter: an empty filter would match every device.' };
  return { text: parts.join(',') };
}

function summarize(decision, results) {
  const changed = results.filter((r) => r.changed);
  const released = changed.reduce((n, r) => n + (r.releasedSubmissions ?? 0), 0);
  const done = decision === 'approve' ? 'approved' : 'rejected';
  let msg = `${changed.length} device${changed.length === 1 ? '' : 's'} ${done}`;
  if (results.length > changed.length) msg += `, ${results.length - changed.length} already ${done}`;
  if (released)
    msg += `; ${released} held submission${released === 1 ? '' : 's'} ${decision === 'approve' ? 'released' : 'rejected'}`;
  return `${msg}.`;
}

async function queuePage(page, params) {
  const f = queueFilter(params);
  const input = (name, attrs = {}) => h('input', { name, value: f[name], type: 'text', autocomplete: 'off', ...attrs });
  const stateSelect = h(
    'select',
    { name: 'state', value: f.state },
    [...STATES, 'any'].map((s) => h('option', { value: s }, s === 'any' ? 'any state' : s)),
  );
  const sizeSelect = h(
    'select',
    { name: 'size', value: String(f.size) },
    PAGE_SIZES.map((n) => h('option', { value: String(n) }, `${n} per page`)),
  );
  const form = h(
    'form',
    {
      class: 'filters card',
      'aria-label': 'Filter devices',
      onsubmit: (e) => {
        e.preventDefault();
        const data = new FormData(form);
        const next = { ...Object.fromEntries(data.entries()), size: Number(data.get('size')), offset: 0 };
        for (const k of ['tag', 'key', 'subnet', 'q']) next[k] = String(next[k] ?? '').trim();
        goto(queueHash(next));
      },
    },
    h(
      'div',
      { class: 'filter-grid filter-grid-4' },
      field('State', stateSelect),
      h(
        'div',
        { class: 'span-2' },
        field('Search', input('q', { type: 'search', placeholder: 'name, serial, UUID, MAC or deviceid contains…' })),
      ),
      field('Page size', sizeSelect),
      field('Tag', input('tag')),
      field('Registration key', input('key')),
      field('Subnet', input('subnet', { placeholder: '10.1.0.0/16' })),
      h(
        'div',
        { class: 'date-range' },
        field('First seen from', input('from', { type: 'date' })),
        field('to (inclusive)', input('to', { type: 'date' })),
      ),
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply filters'),
      button('Reset', () => goto('#/devices')),
      button('Refresh', () => route()),
    ),
  );
  page.append(pageHeader('Quarantine queue'), form);

  const query = {
    state: f.state === 'any' ? undefined : f.state,
    tag: f.tag,
    key: f.key,
    subnet: f.subnet,
    q: f.q,
    firstSeenFrom: dayStart(f.from, false),
    firstSeenTo: dayStart(f.to, true),
    limit: f.size + 1,
    offset: f.offset,
  };
  await load(page, async () => {
    const rows = await api('GET', `/devices${qs(query)}`);
    const more = rows.length > f.size;
    const devices = rows.slice(0, f.size);
    const selected = new Set();

    // Decisions: on the selected rows, or on everything the filter matches (after a dry run).
    const reason = h('input', {
      type: 'text',
      name: 'reason',
      maxlength: '1000',
      autocomplete: 'off',
      placeholder: 'why (kept in the history and the audit log)',
      id: 'reason',
    });
    const results = h('div', { class: 'results' });
    const countLabel = h('span', { class: 'selected-count' }, 'No device selected');
    const approveSel = button('Approve selected', () => decideSelected('approve', approveSel), 'btn-approve', {
      disabled: true,
    });
    const rejectSel = button('Reject selected', () => decideSelected('reject', rejectSel), 'btn-danger', {
      disabled: true,
    });
    const checks = [];
    const all = h('input', {
      type: 'checkbox',
      'aria-label': 'Select every device on this page',
      onchange: () => {
        for (const c of checks) {
          c.checked = all.checked;
          c.dispatchEvent(new Event('change'));
        }
      },
    });
    const updateSelection = () => {
      countLabel.textContent = selected.size ? `${selected.size} selected` : 'No device selected';
      approveSel.disabled = rejectSel.disabled = selected.size === 0;
      all.checked = selected.size > 0 && selected.size === devices.length;
      all.indeterminate = selected.size > 0 && selected.size < devices.length;
    };
    async function decideSelected(decision, btn) {
      await busy(btn, results, async () => {
        const out = await api('POST', `/devices/${decision}`, {
          ids: [...selected],
          reason: reason.value.trim() || undefined,
        });
        reload(alertBox('success', summarize(decision, out.results)));
      });
    }

    const ft = filterText(f);
    const confirmSlot = h('div');
    const dryRun = (decision, btn) =>
      busy(btn, results, async () => {
        confirmSlot.replaceChildren();
        const out = await api('POST', `/devices/${decision}`, { filter: ft.text });
        const verb = decision === 'approve' ? 'Approve' : 'Reject';
        if (out.count === 0) {
          confirmSlot.replaceChildren(alertBox('info', `No device matches ${ft.text}.`));
          return;
        }
        const confirm = button(
          `${verb} ${out.count} device${out.count === 1 ? '' : 's'}`,
          () =>
            busy(confirm, results, async () => {
              const done = await api('POST', `/devices/${decision}`, {
                filter: ft.text,
                confirmCount: out.count,
                reason: reason.value.trim() || undefined,
              });
              reload(alertBox('success', summarize(decision, done.results)));
            }),
          decision === 'approve' ? 'btn-approve' : 'btn-danger',
          { id: 'confirm-filter' },
        );
        const names = out.devices
          .slice(0, 12)
          .map((d) => h('li', null, link(['devices', d.id], d.name || d.deviceid), ' ', badge(d.state)));
        confirmSlot.replaceChildren(
          h(
            'div',
            { class: 'confirm', role: 'group', 'aria-label': 'Confirm the filter action' },
            h(
              'p',
              null,
              h('strong', { class: 'match-count' }, String(out.count)),
              ` device${out.count === 1 ? '' : 's'} match `,
              h('code', null, ft.text),
              '. ',
              `${verb} all of them${reason.value.trim() ? ' with the reason above' : ''}?`,
            ),
            h(
              'ul',
              { class: 'match-list' },
              names,
              out.count > names.length ? h('li', { class: 'muted' }, `… and ${out.count - names.length} more`) : null,
            ),
            h(
              'div',
              { class: 'actions' },
              confirm,
              button('Cancel', () => confirmSlot.replaceChildren()),
            ),
          ),
        );
        confirm.focus();
      });
    const approveAll = button('Approve all matching…', () => dryRun('approve', approveAll), '', { disabled: !ft.text });
    const rejectAll = button('Reject all matching…', () => dryRun('reject', rejectAll), '', { disabled: !ft.text });

    const bulk = h(
      'section',
      { class: 'card bulk', 'aria-label': 'Decide' },
      field('Reason', reason),
      h(
        'div',
        { class: 'bulk-rows' },
        h(
          'div',
          { class: 'bulk-row' },
          h('span', { class: 'bulk-label' }, 'Selection'),
          countLabel,
          approveSel,
          rejectSel,
        ),
        h(
          'div',
          { class: 'bulk-row' },
          h('span', { class: 'bulk-label' }, 'Filter'),
          ft.text
            ? h('code', { class: 'filter-text' }, ft.text)
            : h('span', { class: 'muted filter-problem' }, ft.problem),
          approveAll,
          rejectAll,
        ),
      ),
      confirmSlot,
      results,
    );

    const columns = [
      {
        label: all,
        class: 'col-check',
        cell: (d) => {
          const c = h('input', {
            type: 'checkbox',
            'aria-label': `Select ${d.name || d.deviceid}`,
            'data-id': String(d.id),
            onchange: () => {
              if (c.checked) selected.add(d.id);
              else selected.delete(d.id);
              c.closest('tr')?.classList.toggle('is-selected', c.checked);
              updateSelection();
            },
          });
          checks.push(c);
          return c;
        },
      },
      { label: 'State', cell: (d) => badge(d.state) },
      {
        label: 'Name',
        class: 'col-name',
        cell: (d) => link(['devices', d.id], d.name || '(no name)', { class: 'device-link' }),
      },
      {
        label: 'Deviceid',
        class: 'col-deviceid',
        cell: (d) => h('span', { class: 'mono ellipsis', title: d.deviceid }, d.deviceid),
      },
      { label: 'Serial', cell: (d) => mono(d.serial) },
      { label: 'Tag', cell: (d) => text(d.tag) },
      { label: 'Address', cell: (d) => mono(d.lastRemoteAddr) },
      { label: 'OS', class: 'col-os', cell: (d) => text(d.os) },
      { label: 'First seen', class: 'col-date', cell: (d) => fmtDate(d.firstSeen) },
      { label: 'Last seen', class: 'col-date', cell: (d) => fmtDate(d.lastSeen) },
    ];
    const first = devices.length ? f.offset + 1 : 0;
    const pager = h(
      'nav',
      { class: 'pager', 'aria-label': 'Pages' },
      h(
        'span',
        { class: 'muted' },
        devices.length
          ? `Devices ${first}–${f.offset + devices.length}${more ? '' : ` of ${f.offset + devices.length}`}`
          : 'No device',
      ),
      f.offset > 0
        ? h(
            'a',
            { class: 'btn', rel: 'prev', href: queueHash({ ...f, offset: Math.max(0, f.offset - f.size) }) },
            '← Previous',
          )
        : null,
      more
        ? h('a', { class: 'btn', rel: 'next', href: queueHash({ ...f, offset: f.offset + f.size }) }, 'Next →')
        : null,
    );
    page.append(bulk, table(columns, devices, 'No device matches these filters.'), pager);
  });
}

// ---- device page ----------------------------------------------------------------------------------------

async function devicePage(page, ref) {
  const back = h('a', { href: '#/devices', class: 'back' }, '← Quarantine queue');
  page.append(back);
  await load(page, async () => {
    const d = await api('GET', `/devices/${encodeURIComponent(ref)}`);
    page.append(
      pageHeader(d.name || d.deviceid, badge(d.state), h('span', { class: 'mono muted subtitle' }, d.deviceid)),
    );

    // Decide: approve / reject with a reason, or undo the last decision.
    const reason = h('input', {
      type: 'text',
      name: 'reason',
      maxlength: '1000',
      autocomplete: 'off',
      placeholder: 'why (kept in the history and the audit log)',
      id: 'device-reason',
    });
    const results = h('div');
    const decide = (decision, btn) =>
      busy(btn, results, async () => {
        const out = await api('POST', `/devices/${decision}`, {
          ids: [d.id],
          reason: reason.value.trim() || undefined,
        });
        reload(alertBox('success', summarize(decision, out.results)));
      });
    const last = d.history[d.history.length - 1];
    const approve = button('Approve', () => decide('approve', approve), 'btn-approve', {
      id: 'approve',
      disabled: d.state === 'approved',
    });
    const reject = button('Reject', () => decide('reject', reject), 'btn-danger', {
      id: 'reject',
      disabled: d.state === 'rejected',
    });
    const undo =
      last && last.actor !== 'system' && last.from
        ? button(
            `Undo: back to ${last.from}`,
            () =>
              busy(undo, results, async () => {
                const out = await api('POST', `/devices/${encodeURIComponent(d.id)}/undo`);
                reload(alertBox('success', `Decision undone: the device is ${out?.to ?? last.from} again.`));
              }),
            '',
            { id: 'undo', title: 'Within 15 minutes of the decision' },
          )
        : null;
    page.append(
      h(
        'section',
        { class: 'card decide', 'aria-label': 'Decide' },
        h(
          'div',
          { class: 'decide-row' },
          field('Reason', reason),
          h('div', { class: 'actions' }, approve, reject, undo),
        ),
        d.stateReason ? h('p', { class: 'muted' }, 'Current state reason: ', d.stateReason) : null,
        results,
      ),
    );

    if (d.state === 'conflict' && d.conflictDetails) page.append(conflictPanel(d));

    const inv = d.inventory;
    page.append(
      h(
        'div',
        { class: 'grid-2' },
        section(
          'Identity',
          facts([
            ['Device id', mono(d.id)],
            ['Deviceid', mono(d.deviceid)],
            ['Name', text(d.name)],
            ['Serial', mono(d.serial)],
            ['UUID', mono(d.uuid)],
            ['MSN', mono(d.msn)],
            ['Asset tag', text(d.assetTag)],
            ['Manufacturer', text(d.manufacturer)],
            ['Model', text(d.model)],
            ['MACs', mono(d.macs?.length ? d.macs.join(', ') : null)],
            ['IPs', mono(d.ips?.length ? d.ips.join(', ') : null)],
            ['Tag', text(d.tag)],
            ['Assigned tag', text(d.assignedTag)],
            [
              'Registered with',
              d.keyName
                ? h('span', null, 'key ', link(['keys', d.keyName], d.keyName))
                : d.clientId
                  ? h('span', null, 'client ', mono(d.clientId))
                  : text(null),
            ],
            ['Agent', text([d.agentId, d.agentVersion].filter(Boolean).join(' · '))],
            ['First seen', fmtDate(d.firstSeen)],
            ['Last seen', fmtDate(d.lastSeen)],
            ['Last address', mono(d.lastRemoteAddr)],
            ['Last inventory', fmtDate(d.lastInventoryAt)],
          ]),
        ),
        section(
          'Inventory summary',
          inv
            ? facts([
                ['Operating system', text(inv.os)],
                ['Manufacturer', text(inv.manufacturer)],
                ['Model', text(inv.model)],
                ['Serial', mono(inv.serial)],
                ['UUID', mono(inv.uuid)],
                ['Memory', inv.memoryMb ? `${inv.memoryMb} MB` : text(null)],
                ['Software', String(inv.softwareCount)],
                ['Network interfaces', String(inv.networkCount)],
                [
                  'Sections',
                  inv.sections?.length
                    ? h(
                        'span',
                        { class: 'chips' },
                        inv.sections.map((s) => h('span', { class: 'chip' }, s)),
                      )
                    : text(null),
                ],
              ])
            : h('p', { class: 'muted' }, 'No inventory received yet.'),
        ),
      ),
    );

    page.append(
      section(
        'History',
        table(
          [
            { label: 'When', class: 'col-date', cell: (t) => fmtDate(t.at) },
            {
              label: 'Change',
              cell: (t) =>
                h(
                  'span',
                  { class: 'transition' },
                  t.from ? badge(t.from) : h('span', { class: 'muted' }, 'new'),
                  ' → ',
                  badge(t.to),
                ),
            },
            { label: 'By', cell: (t) => mono(t.actor) },
            { label: 'Reason', cell: (t) => text(t.reason) },
          ],
          d.history,
          'No transition recorded.',
        ),
      ),
    );

    page.append(
      h(
        'div',
        { class: 'grid-2' },
        section(
          'Sources',
          table(
            [
              { label: 'Address', cell: (s) => mono(s.remoteAddr) },
              { label: 'Requests', class: 'num', cell: (s) => String(s.requests) },
              { label: 'Last seen', class: 'col-date', cell: (s) => fmtDate(s.lastSeen) },
            ],
            d.sources,
            'No source address recorded.',
          ),
        ),
        section(
          'Submissions',
          table(
            [
              { label: 'State', cell: (s) => badge(s.state) },
              { label: 'Kind', cell: (s) => text(s.kind) },
              { label: 'Count', class: 'num', cell: (s) => String(s.n) },
              { label: 'Size', class: 'num', cell: (s) => fmtBytes(s.bytes) },
            ],
            d.submissions,
            'No inventory submitted.',
          ),
        ),
      ),
    );

    page.append(
      section(
        'Recent registrations',
        table(
          [
            { label: 'Received', class: 'col-date', cell: (r) => fmtDate(r.receivedAt) },
            {
              label: 'Kind',
              cell: (r) => text([r.kind, r.format, r.partial ? 'partial' : ''].filter(Boolean).join(' · ')),
            },
            { label: 'Outcome', cell: (r) => badge(r.outcome, `outcome-${r.outcome}`) },
            { label: 'Status', class: 'num', cell: (r) => String(r.status) },
            {
              label: 'Credential',
              cell: (r) =>
                text(
                  [r.authType, r.keyName ? `${r.keyName} v${r.keyVersion ?? '?'}` : null, r.clientId]
                    .filter(Boolean)
                    .join(' · '),
                ),
            },
            { label: 'Address', cell: (r) => mono(r.remoteAddr) },
            { label: 'Agent', class: 'col-os', cell: (r) => text(r.userAgent) },
            { label: 'Message', cell: (r) => text(r.message) },
          ],
          d.registrations,
          'No request recorded.',
        ),
      ),
    );
  });
}

function conflictPanel(d) {
  const c = d.conflictDetails;
  const known = c.known ?? {};
  const incoming = c.incoming ?? {};
  const fieldsNamed = new Set(Array.isArray(c.fields) ? c.fields : []);
  const show = (v) => (Array.isArray(v) ? (v.length ? v.join(', ') : null) : v);
  const rows = ['deviceid', 'name', 'uuid', 'serial', 'macs'].map((k) => {
    const a = show(known[k]);
    const b = show(incoming[k]);
    return {
      k,
      a,
      b,
      same: String(a ?? '').toLowerCase() === String(b ?? '').toLowerCase(),
      named: fieldsNamed.has(k),
    };
  });
  const other = d.conflictWithDevice;
  return h(
    'section',
    { class: 'card conflict', 'aria-label': 'Conflict' },
    h('h2', null, 'Conflict: ', c.reason ?? 'identity clash'),
    h(
      'p',
      { class: 'muted' },
      'The fingerprint on record and the one that arrived, side by side; ',
      h('span', { class: 'flag' }, '●'),
      ' marks the field that caused the conflict. ',
      other && other.id !== d.id
        ? h(
            'span',
            null,
            'Known device: ',
            link(['devices', other.id], other.name || other.deviceid),
            ' ',
            badge(other.state),
            '.',
          )
        : null,
    ),
    table(
      [
        {
          label: 'Field',
          cell: (r) =>
            h(
              'span',
              null,
              r.k,
              r.named ? h('span', { class: 'flag', title: 'the field that caused the conflict' }, ' ●') : null,
            ),
        },
        { label: `Known${known.id ? ` (device ${known.id})` : ''}`, class: 'fp', cell: (r) => mono(r.a) },
        { label: 'Incoming', class: 'fp', cell: (r) => mono(r.b) },
        {
          label: '',
          cell: (r) =>
            r.a === null && r.b === null ? '' : r.same ? badge('same', 'same') : badge('differs', 'differs'),
        },
      ],
      rows,
      '',
      (r) => (r.named ? 'is-named' : !r.same ? 'is-different' : ''),
    ),
  );
}

// ---- registration keys ----------------------------------------------------------------------------------

function keyStatus(k) {
  if (!k.active) return badge('revoked');
  if (k.expiresAt && new Date(k.expiresAt) <= new Date()) return badge('expired');
  return badge('active');
}

function versionStatus(v) {
  if (!v.valid) return badge('closed');
  if (v.expiresAt)
    return h(
      'span',
      { class: 'badge badge-closing', title: `stops working at ${new Date(v.expiresAt).toString()}` },
      'closes ',
      fmtDate(v.expiresAt),
    );
  return badge('current');
}

async function keysPage(page) {
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
          const out = await api('POST', '/keys', {
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
    const keys = await api('GET', '/keys');
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
      const out = await api('POST', `/keys/${encodeURIComponent(k.name)}/rotate`, { grace: grace.value.trim() });
      const until = new Date(out.previousExpiresAt);
      reload(
        secretBox(
          `Key "${k.name}" rotated: version ${out.version}`,
          [{ label: 'New secret', value: out.secret }],
          `Older versions stop working at ${until.toLocaleString()}. Follow who still uses them on the key's usage page.`,
        ),
      );
    },
  });
}

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
      await api('POST', `/keys/${encodeURIComponent(k.name)}/${active ? 'activate' : 'revoke'}`);
      reload(alertBox('success', `Key "${k.name}" ${active ? 'activated' : 'revoked'}.`));
    },
  });
}

async function keyUsagePage(page, name) {
  page.append(h('a', { href: '#/keys', class: 'back' }, '← Registration keys'));
  await load(page, async () => {
    const { key, usage } = await api('GET', `/keys/${encodeURIComponent(name)}/usage`);
    page.append(pageHeader(`Key "${key.name}"`, keyStatus(key)));
    const latest = Math.max(0, ...key.versions.map((v) => v.version));
    // Per device (or address when the deviceid is unknown): the newest version it has used.
    const byDevice = new Map();
    for (const u of usage) {
      const id = u.deviceid ?? `addr:${u.remoteAddr ?? '?'}`;
      const cur = byDevice.get(id);
      if (
        !cur ||
        u.version > cur.version ||
        (u.version === cur.version && new Date(u.lastUsed) > new Date(cur.lastUsed))
      )
        byDevice.set(id, u);
    }
    const behind = [...byDevice.values()].filter((u) => u.version < latest);
    page.append(
      section(
        'Still on an older version',
        latest <= 1
          ? h('p', { class: 'muted' }, 'This key has a single version.')
          : behind.length === 0
            ? alertBox('success', `Every device that used this key has used version ${latest}.`)
            : [
                h(
                  'p',
                  null,
                  `${behind.length} device${behind.length === 1 ? ' has' : 's have'} not used version ${latest} yet:`,
                ),
                table(
                  [
                    {
                      label: 'Deviceid',
                      cell: (u) =>
                        u.deviceId
                          ? link(['devices', u.deviceId], u.deviceid ?? String(u.deviceId), { class: 'mono' })
                          : mono(u.deviceid),
                    },
                    { label: 'Address', cell: (u) => mono(u.remoteAddr) },
                    { label: 'Newest version used', cell: (u) => `v${u.version}` },
                    { label: 'Last used', class: 'col-date', cell: (u) => fmtDate(u.lastUsed) },
                    {
                      label: 'That version closes',
                      class: 'col-date',
                      cell: (u) => (u.expiresAt ? fmtDate(u.expiresAt) : text(null)),
                    },
                  ],
                  behind,
                  '',
                  () => 'is-behind',
                ),
              ],
      ),
    );
    for (const v of [...key.versions].sort((a, b) => b.version - a.version)) {
      const rows = usage.filter((u) => u.version === v.version);
      page.append(
        h(
          'section',
          { class: 'card' },
          h('h2', null, `Version ${v.version} `, mono(v.secret), ' ', versionStatus(v)),
          h(
            'p',
            { class: 'muted' },
            'Created ',
            fmtDate(v.createdAt),
            v.expiresAt ? [' · stops at ', fmtDate(v.expiresAt)] : '',
          ),
          table(
            [
              {
                label: 'Deviceid',
                cell: (u) =>
                  u.deviceId
                    ? link(['devices', u.deviceId], u.deviceid ?? String(u.deviceId), { class: 'mono' })
                    : mono(u.deviceid),
              },
              { label: 'Address', cell: (u) => mono(u.remoteAddr) },
              { label: 'Requests', class: 'num', cell: (u) => String(u.requests) },
              { label: 'Last used', class: 'col-date', cell: (u) => fmtDate(u.lastUsed) },
            ],
            rows,
            'No request with this version yet.',
          ),
        ),
      );
    }
  });
}

// ---- clients --------------------------------------------------------------------------------------------

async function clientsPage(page) {
  const name = h('input', {
    name: 'name',
    required: true,
    maxlength: '64',
    autocomplete: 'off',
    placeholder: 'pc-0042',
  });
  const device = h('input', { name: 'device', autocomplete: 'off', placeholder: 'numeric id or deviceid (optional)' });
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
          const out = await api('POST', '/clients', {
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
    const clients = await api('GET', '/clients');
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
                          await api('POST', `/clients/${encodeURIComponent(c.clientId)}/revoke`);
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

// ---- audit log ------------------------------------------------------------------------------------------

async function auditPage(page, params) {
  const action = params.get('action') ?? '';
  const limit = [50, 100, 500, 1000].includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 100;
  const actionInput = h('input', {
    name: 'action',
    value: action,
    list: 'audit-actions',
    autocomplete: 'off',
    placeholder: 'any action',
  });
  const limitSelect = h(
    'select',
    { name: 'limit', value: String(limit) },
    [50, 100, 500, 1000].map((n) => h('option', { value: String(n) }, `last ${n}`)),
  );
  const form = h(
    'form',
    {
      class: 'filters card',
      onsubmit: (e) => {
        e.preventDefault();
        goto(
          `#/audit${qs({ action: actionInput.value.trim(), limit: limitSelect.value === '100' ? '' : limitSelect.value })}`,
        );
      },
    },
    h(
      'datalist',
      { id: 'audit-actions' },
      AUDIT_ACTIONS.map((a) => h('option', { value: a })),
    ),
    h('div', { class: 'filter-grid' }, field('Action', actionInput), field('Entries', limitSelect)),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
      button('Reset', () => goto('#/audit')),
    ),
  );
  page.append(pageHeader('Audit log'), form);
  await load(page, async () => {
    const rows = await api('GET', `/audit${qs({ action, limit })}`);
    const change = (e) => {
      if (e.before == null && e.after == null) return text(null);
      return h(
        'details',
        { class: 'change' },
        h('summary', null, 'details'),
        e.before != null
          ? [h('div', { class: 'small muted' }, 'before'), h('pre', null, JSON.stringify(e.before, null, 2))]
          : null,
        e.after != null
          ? [h('div', { class: 'small muted' }, 'after'), h('pre', null, JSON.stringify(e.after, null, 2))]
          : null,
      );
    };
    page.append(
      table(
        [
          { label: 'When', class: 'col-date', cell: (e) => fmtDate(e.at) },
          { label: 'Actor', cell: (e) => mono(e.actor) },
          { label: 'Action', cell: (e) => h('code', null, e.action) },
          {
            label: 'Target',
            cell: (e) =>
              e.targetType === 'device' && e.targetId
                ? link(['devices', e.targetId], e.targetId, { class: 'mono' })
                : text([e.targetType, e.targetId].filter(Boolean).join(' ')),
          },
          { label: 'Reason', cell: (e) => text(e.reason) },
          { label: 'Address', cell: (e) => mono(e.remoteAddr) },
          { label: 'Change', cell: change },
        ],
        rows,
        action ? `No "${action}" entry.` : 'The audit log is empty.',
      ),
    );
  });
}

// ---- start ----------------------------------------------------------------------------------------------

window.addEventListener('hashchange', () => route());

async function start() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return renderSignIn();
  try {
    await signIn(token);
    route();
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    renderSignIn(errorBox(err));
  }
}

void start();
