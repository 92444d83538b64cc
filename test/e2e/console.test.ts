/**
 * The web console in a real browser (Debian's headless Chromium, driven by playwright-core) against a real
 * gateway on a fresh schema: a reviewer signs in with an operator token and decides devices, an admin
 * creates and rotates a key (its secret is shown once), untrusted device names stay text, and the page
 * never talks to anything but the gateway (every other request is aborted and counted).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_DIR, CONSOLE_HEADERS, consoleFiles } from '../../src/http/console.js';
import { hashSecret } from '../../src/services/secrets.js';
import { startTestServer } from '../helpers/context.js';
import { loadScenario } from '../helpers/fixtures.js';
import { eventually } from '../helpers/eventually.js';
import { FakeGlpi } from '../helpers/fake-glpi.js';

const CHROMIUM = '/usr/bin/chromium';
/** The console's entry module (index.html loads it; it imports the others). */
const ENTRY = 'main.js';
const actor = { name: 'test:setup', remoteAddr: null };
const XSS = '<img src=x onerror=alert(1)>';

let gw: Awaited<ReturnType<typeof startTestServer>>;
let base = '';
/** A second gateway where agents need a credential: key usage per version is only recorded there. */
let gwAuth: Awaited<ReturnType<typeof startTestServer>>;
let baseAuth = '';
let browser: BrowserContext;
let profile = '';
/** The gateways of this file: the only addresses the browser may reach. */
const gateways: string[] = [];
/** Requests the browser tried to make anywhere but the gateway (all aborted). */
const elsewhere: string[] = [];
/** Script errors, console errors (CSP violations show up there) and dialogs (alert() = injected script). */
const problems: string[] = [];

beforeAll(async () => {
  // Fail every test of this file with the fix, not with Playwright's "executable doesn't exist".
  if (!fs.existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: these tests drive Debian's headless Chromium. Run: apt-get install chromium`,
    );
  [gw, gwAuth] = await Promise.all([
    startTestServer({ AGENT_AUTH: 'off' }),
    startTestServer({ AGENT_AUTH: 'required' }),
  ]);
  base = gw.server.url;
  baseAuth = gwAuth.server.url;
  gateways.push(base, baseAuth);
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-gate-chromium-'));
  // launchPersistentContext passes the fresh profile as --user-data-dir (Playwright refuses it in args).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Belt and braces: no name resolves, so nothing but 127.0.0.1 can be reached.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    viewport: { width: 1400, height: 900 },
    timeout: 30_000,
  });
  await browser.route('**/*', (route) => {
    const url = route.request().url();
    if (gateways.some((g) => url.startsWith(`${g}/`))) return route.continue();
    elsewhere.push(url);
    return route.abort();
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  await Promise.all([gw?.close(), gwAuth?.close()]);
});

function xmlMessage(deviceid: string, query: string, content = ''): Buffer {
  return zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?><REQUEST>${content ? `<CONTENT>${content}</CONTENT>` : ''}<DEVICEID>${deviceid}</DEVICEID><QUERY>${query}</QUERY></REQUEST>`,
  );
}

async function agent(
  deviceid: string,
  query: 'PROLOG' | 'INVENTORY',
  content = '',
  to: { url: string; key?: string } = { url: base },
): Promise<void> {
  const headers: Record<string, string> = { 'Content-Type': 'application/x-compress-zlib' };
  if (to.key) headers.Authorization = `Basic ${Buffer.from(`inventory:${to.key}`).toString('base64')}`;
  const res = await fetch(`${to.url}/`, {
    method: 'POST',
    headers,
    body: new Uint8Array(xmlMessage(deviceid, query, content)),
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A PROLOG then an inventory, as an agent's first run (without the PROLOG, the inventory creates the device). */
async function newDevice(
  deviceid: string,
  o: { name: string; serial?: string; uuid?: string; tag?: string; os?: string; prolog?: false },
): Promise<void> {
  if (o.prolog !== false) await agent(deviceid, 'PROLOG');
  const tag = o.tag ? `<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>${escapeXml(o.tag)}</KEYVALUE></ACCOUNTINFO>` : '';
  const osXml = o.os ? `<OPERATINGSYSTEM><FULL_NAME>${escapeXml(o.os)}</FULL_NAME></OPERATINGSYSTEM>` : '';
  await agent(
    deviceid,
    'INVENTORY',
    `${tag}<BIOS><SSN>${escapeXml(o.serial ?? '')}</SSN><SMANUFACTURER>Dell Inc.</SMANUFACTURER><SMODEL>OptiPlex 7090</SMODEL></BIOS><HARDWARE><NAME>${escapeXml(o.name)}</NAME>${o.uuid ? `<UUID>${o.uuid}</UUID>` : ''}<MEMORY>16384</MEMORY></HARDWARE>${osXml}`,
  );
}

async function state(deviceid: string): Promise<string | undefined> {
  const [row] = await gw.server.deps.db.sql<
    { state: string }[]
  >`select state from devices where deviceid = ${deviceid}`;
  return row?.state;
}

/** The lists the server knows, as the console gets them. */
async function meta(token: string, at = base): Promise<{ states: string[]; auditActions: string[]; roles: string[] }> {
  const res = await fetch(`${at}/api/v1/meta`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { states: string[]; auditActions: string[]; roles: string[] };
}

async function openPage(): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // The browser logs every 4xx answer as an error: the 401/403 the tests provoke on purpose are not problems.
    if (
      msg.type() === 'error' &&
      !/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())
    )
      problems.push(`console: ${msg.text()}`);
  });
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  return page;
}

async function signIn(page: Page, token: string, at = base): Promise<void> {
  await page.goto(`${at}/console`);
  await page.getByLabel('Operator token').fill(token);
  await page.getByLabel('Operator token').press('Enter'); // keyboard: Enter submits
  await page.locator('#sign-out').waitFor();
}

describe('the console files', () => {
  it('are served at /console with a strict policy, and nothing else under /console', async () => {
    const modules = consoleFiles().filter((f) => f.endsWith('.js'));
    expect(modules).toContain(ENTRY);
    for (const [p, type] of [
      ['/console', 'text/html'],
      ['/console/', 'text/html'],
      ['/console/style.css', 'text/css'],
      ...modules.map((m) => [`/console/${m}`, 'text/javascript'] as const),
    ] as const) {
      const res = await fetch(`${base}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      for (const [k, v] of Object.entries(CONSOLE_HEADERS)) expect(res.headers.get(k), `${p} ${k}`).toBe(v);
      await res.arrayBuffer();
    }
    expect(CONSOLE_HEADERS['Content-Security-Policy']).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    for (const p of ['/console/secret.txt', '/console/tsconfig.json']) {
      const other = await fetch(`${base}${p}`);
      expect(other.status, p).toBe(404);
      expect(other.headers.get('content-security-policy')).toBe(CONSOLE_HEADERS['Content-Security-Policy']);
      await other.arrayBuffer();
    }
    // The page loads its entry module as a module; the client code never builds markup from strings.
    const html = fs.readFileSync(path.join(CONSOLE_DIR, 'index.html'), 'utf8');
    expect(html).toContain(`<script type="module" src="/console/${ENTRY}"></script>`);
    for (const m of modules) {
      const js = fs.readFileSync(path.join(CONSOLE_DIR, m), 'utf8');
      expect(js, m).not.toMatch(/\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function/);
    }
  });
});

describe('a reviewer', () => {
  let token = '';
  beforeAll(async () => {
    token = (await gw.server.deps.admin.createOperator({ name: 'rita', role: 'reviewer' }, actor)).token;
    await newDevice('ws-0042-2025-01-06-09-12-44', {
      name: 'ws-0042',
      serial: 'SN0042',
      tag: 'paris',
      os: 'Debian GNU/Linux 12 (bookworm)',
      uuid: '4c4c4544-0042-3010-8052-b2c04f4e3432',
    });
    await newDevice('lab-printer-7-2025-01-06-09-20-01', {
      name: 'lab-printer-7',
      serial: 'SN0007',
      tag: 'lyon',
      os: 'Windows 11 Pro',
    });
    await newDevice('kiosk-lobby-2025-01-06-10-01-13', {
      name: 'kiosk-lobby',
      serial: 'SN0100',
      os: 'Ubuntu 24.04 LTS',
    });
    // Known hardware under a new deviceid: a conflict with both fingerprints.
    await newDevice('build-01-2025-01-05-08-00-00', {
      name: 'build-01',
      serial: 'SN-IMG-1',
      uuid: 'cccccccc-0000-0000-0000-000000000003',
      os: 'Debian GNU/Linux 12 (bookworm)',
    });
    await newDevice('build-01-2025-01-06-11-30-00', {
      name: 'build-01-clone',
      serial: 'SN-IMG-2',
      uuid: 'cccccccc-0000-0000-0000-000000000003',
      os: 'Debian GNU/Linux 12 (bookworm)',
      prolog: false,
    });
    expect(await state('build-01-2025-01-06-11-30-00')).toBe('conflict');
  });

  it('signs in, sees the quarantined device in the queue, and approves it with a reason', async () => {
    const deviceid = 'ws-0042-2025-01-06-09-12-44';
    expect(await state(deviceid)).toBe('quarantined');
    const page = await openPage();
    await signIn(page, token);
    // Reviewer: no admin pages in the navigation.
    await expect(page.locator('#nav').innerText()).resolves.toBe('Quarantine queue');
    await expect(page.locator('#who').innerText()).resolves.toContain('rita');
    const row = page.locator('tbody tr', { hasText: 'ws-0042' });
    await row.waitFor();
    expect(await page.locator('tbody tr').count()).toBe(4); // the conflict is not in the default (quarantined) list
    await row.locator('input[type=checkbox]').check();
    await expect(page.locator('.selected-count').innerText()).resolves.toBe('1 selected');
    await page.screenshot({ path: '/tmp/console-queue.png', fullPage: true });

    await row.getByRole('link', { name: 'ws-0042' }).click();
    await page.getByRole('heading', { level: 1, name: 'ws-0042' }).waitFor();
    await page.getByRole('heading', { name: 'History' }).waitFor();
    await page.screenshot({ path: '/tmp/console-device.png', fullPage: true });
    await page.locator('#device-reason').fill('known lab VM');
    await page.locator('#approve').click();
    await page.locator('.alert-success', { hasText: '1 device approved' }).waitFor();
    await page.locator('.page-header .badge', { hasText: 'approved' }).waitFor();

    expect(await state(deviceid)).toBe('approved');
    const transitions = await gw.server.deps.db.sql<{ actor: string; reason: string | null; to: string }[]>`
      select t.actor, t.reason, t.to_state as "to" from device_transitions t join devices d on d.id = t.device_id where d.deviceid = ${deviceid} order by t.id`;
    expect(transitions.at(-1)).toEqual({ actor: 'operator:rita', reason: 'known lab VM', to: 'approved' });

    // Undo is offered right after a decision, and works.
    await page.locator('#undo').click();
    await page.locator('.alert-success', { hasText: 'Decision undone' }).waitFor();
    expect(await state(deviceid)).toBe('quarantined');
    await page.locator('#device-reason').fill('known lab VM');
    await page.locator('#approve').click();
    await page.locator('.alert-success', { hasText: '1 device approved' }).waitFor();
    expect(await state(deviceid)).toBe('approved');
    await page.close();
  });

  it('rejects a selection, decides a filter after seeing its count, and sees both fingerprints of a conflict', async () => {
    const page = await openPage();
    await signIn(page, token);
    const printer = page.locator('tbody tr', { hasText: 'lab-printer-7' });
    await printer.locator('input[type=checkbox]').check();
    await page.locator('#reason').fill('not ours');
    await page.getByRole('button', { name: 'Reject selected' }).click();
    await page.locator('.alert-success', { hasText: '1 device rejected' }).waitFor();
    expect(await state('lab-printer-7-2025-01-06-09-20-01')).toBe('rejected');

    // Filter action: dry run first (count shown), then the confirmation decides.
    await page.getByLabel('Search').fill('kiosk');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('.filter-text', { hasText: 'state=quarantined,q=kiosk' }).waitFor();
    await page.getByRole('button', { name: 'Approve all matching…' }).click();
    await expect(page.locator('.match-count').innerText()).resolves.toBe('1');
    await page.screenshot({ path: '/tmp/console-filter-confirm.png', fullPage: true });
    expect(await state('kiosk-lobby-2025-01-06-10-01-13')).toBe('quarantined');
    await page.locator('#confirm-filter').click();
    await page.locator('.alert-success', { hasText: '1 device approved' }).waitFor();
    expect(await state('kiosk-lobby-2025-01-06-10-01-13')).toBe('approved');

    // A conflict: known vs incoming side by side.
    await page.getByLabel('State').selectOption('conflict');
    await page.getByLabel('Search').fill('');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('link', { name: 'build-01-clone' }).click();
    const conflict = page.locator('section.conflict');
    await conflict.waitFor();
    await expect(conflict.locator('thead').innerText()).resolves.toMatch(/KNOWN \(DEVICE \d+\)\s+INCOMING/i);
    const serialRow = conflict.locator('tbody tr', { hasText: 'serial' });
    await expect(serialRow.innerText()).resolves.toMatch(/SN-IMG-1\s+SN-IMG-2\s+differs/);
    await page.screenshot({ path: '/tmp/console-conflict.png', fullPage: true });

    // Admin pages: not rendered for a reviewer, who is told why.
    await page.goto(`${base}/console#/keys`);
    await page.locator('.alert-error', { hasText: 'this needs the admin role' }).waitFor();

    // Signing out forgets the token.
    await page.locator('#sign-out').click();
    await page.getByLabel('Operator token').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.close();
  });

  it('gets the states the server knows in the filter, does not see admin pages, and never calls an admin route', async () => {
    const known = await meta(token);
    const page = await openPage();
    const calls: string[] = [];
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.pathname.startsWith('/api/')) calls.push(`${r.method()} ${url.pathname}`);
    });
    await signIn(page, token);
    await expect(page.locator('#who .badge').innerText()).resolves.toBe('reviewer');
    // The role comes from GET /api/v1/me and the lists from GET /api/v1/meta: no probing of an admin route.
    expect(calls.slice(0, 2).sort()).toEqual(['GET /api/v1/me', 'GET /api/v1/meta']);
    await expect(
      page
        .getByLabel('State')
        .locator('option')
        .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)),
    ).resolves.toEqual([...known.states, 'any']);

    await expect(page.locator('#nav a').allInnerTexts()).resolves.toEqual(['Quarantine queue']);
    for (const hash of ['#/keys', '#/keys/default', '#/clients', '#/audit', '#/policies', '#/outbox', '#/operators']) {
      await page.goto(`${base}/console${hash}`);
      await page.getByRole('heading', { level: 1, name: 'Not allowed' }).waitFor();
      await expect(page.locator('main .alert-error').innerText()).resolves.toMatch(
        /this needs the admin role, and you are signed in as reviewer/,
      );
      expect(await page.locator('main form, main table, main details, main .secret').count(), hash).toBe(0);
      await expect(page.locator('#nav a').allInnerTexts()).resolves.toEqual(['Quarantine queue']);
    }
    expect(calls.filter((c) => !/^GET \/api\/v1\/(me|meta|devices|status)$/.test(c))).toEqual([]);
    await page.close();
  });

  it('sees the tag the agent claimed as unverified, and rebinds the device to a key (audited)', async () => {
    const deviceid = 'lab-printer-7-2025-01-06-09-20-01';
    await gw.server.deps.admin.createKey({ name: 'site-lyon', tag: 'lyon' }, actor);
    const page = await openPage();
    await signIn(page, token);
    await page.goto(`${base}/console#/devices/${deviceid}`);
    await page.getByRole('heading', { level: 1, name: 'lab-printer-7' }).waitFor();
    const claimed = page.locator('dt', { hasText: 'Claimed tag' }).locator('xpath=following-sibling::dd[1]');
    await expect(claimed.innerText()).resolves.toBe('lyon sent by the agent, not verified');
    await page.locator('#rebind-kind').selectOption('key');
    await page.locator('#rebind-target').fill('site-lyon');
    await page.locator('#rebind').click();
    await page.locator('.alert-success', { hasText: 'is now pinned to key site-lyon' }).waitFor();
    const [row] = await gw.server.deps.db.sql<{ pinned: boolean }[]>`
      select d.registered_key_id = k.id as pinned from devices d, registration_keys k
      where d.deviceid = ${deviceid} and k.name = 'site-lyon'`;
    expect(row?.pinned).toBe(true);
    const audit = await gw.server.deps.db.sql<{ actor: string }[]>`
      select actor from audit_log where action = 'device.rebind' and target_id = ${deviceid}`;
    expect(audit).toEqual([{ actor: 'operator:rita' }]);
    await page.close();
  });

  it('sees an agent-supplied name as text, never as markup', async () => {
    await newDevice('evil-2025-01-06-12-00-00', {
      name: XSS,
      serial: '"><script>alert(2)</script>',
      os: '<b>bold</b>',
    });
    const page = await openPage();
    await signIn(page, token);
    const row = page.locator('tbody tr', { hasText: XSS });
    await row.waitFor();
    await expect(row.getByRole('link', { name: XSS }).innerText()).resolves.toBe(XSS);
    await expect(row.innerText()).resolves.toContain('"><script>alert(2)</script>');
    await row.getByRole('link', { name: XSS }).click();
    await page.getByRole('heading', { name: 'Identity' }).waitFor(); // the device page, not the queue any more
    await expect(page.locator('h1').innerText()).resolves.toBe(XSS);
    expect(await page.locator('main img, main script, main b').count()).toBe(0);
    await page.waitForTimeout(200);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('sees a readable message for a bad token', async () => {
    const page = await openPage();
    await page.goto(`${base}/console`);
    await page.getByLabel('Operator token').fill('ago_not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.alert-error', { hasText: 'This token was not accepted' }).waitFor();
    await page.close();
  });
});

describe('an admin', () => {
  it('creates a key and sees its secret once, rotates it, follows its usage, creates a client and reads the audit log', async () => {
    const token = (await gwAuth.server.deps.admin.createOperator({ name: 'ada', role: 'admin' }, actor)).token;
    const page = await openPage();
    await signIn(page, token, baseAuth);
    await expect(page.locator('#nav a').allInnerTexts()).resolves.toEqual([
      'Quarantine queue',
      'Registration keys',
      'Clients',
      'Policies',
      'Outbox',
      'Security events',
      'Audit log',
      'Operators',
    ]);

    await page.getByRole('link', { name: 'Registration keys' }).click();
    await page.getByText('Create a registration key').click();
    await page.getByLabel('Name').fill('site-paris');
    await page.getByLabel('Tag').fill('paris');
    await page.getByRole('button', { name: 'Create key' }).click();
    const box = page.locator('.secret');
    await box.waitFor();
    await expect(box.innerText()).resolves.toContain('Shown once');
    const secret = await box.locator('input[data-secret="Secret"]').inputValue();
    expect(secret).toMatch(/^agk_[A-Za-z0-9_-]{43}$/);
    const [stored] = await gwAuth.server.deps.db.sql<
      { hash: Buffer }[]
    >`select v.secret_hash as hash from key_versions v join registration_keys k on k.id = v.key_id where k.name = 'site-paris'`;
    expect(Buffer.compare(stored!.hash, hashSecret(secret))).toBe(0);
    const keyRow = page.locator('tbody tr', { hasText: 'site-paris' });
    await expect(keyRow.innerText()).resolves.toContain(`${secret.slice(0, 10)}…`);
    await page.screenshot({ path: '/tmp/console-keys.png', fullPage: true });

    // Once: hidden on request, and absent after a reload (the session survives the reload).
    await box.getByRole('button', { name: /I have stored it/ }).click();
    expect(await page.content()).not.toContain(secret);
    await page.reload();
    await keyRow.waitFor();
    expect(await page.content()).not.toContain(secret);

    // Two agents register with version 1; after the rotation only one moves to version 2.
    await agent('pc-a-2025-01-06-08-00-00', 'PROLOG', '', { url: baseAuth, key: secret });
    await agent('pc-b-2025-01-06-08-00-00', 'PROLOG', '', { url: baseAuth, key: secret });

    await page.locator('[data-action="rotate-site-paris"]').click();
    await page.getByLabel('Grace period').fill('1h');
    await page.screenshot({ path: '/tmp/console-rotate-dialog.png' });
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate' }).click();
    const rotated = await page.locator('.secret input[data-secret="New secret"]').inputValue();
    expect(rotated).toMatch(/^agk_/);
    expect(rotated).not.toBe(secret);
    await expect(page.locator('.secret').innerText()).resolves.toMatch(
      /Older versions stop working: version 1 at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d/,
    );
    await agent('pc-a-2025-01-06-08-00-00', 'PROLOG', '', { url: baseAuth, key: rotated });

    await keyRow.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: /Version 2/ }).waitFor();
    await page.getByRole('heading', { name: /Version 1/ }).waitFor();
    const behind = page.locator('section', { has: page.getByRole('heading', { name: 'Still on an older version' }) });
    await expect(behind.locator('tbody').innerText()).resolves.toMatch(/^pc-b-2025-01-06-08-00-00\s+127\.0\.0\.1\s+v1/);
    expect(await behind.locator('tbody tr').count()).toBe(1);
    await page.screenshot({ path: '/tmp/console-key-usage.png', fullPage: true });

    await page.getByRole('link', { name: 'Clients' }).click();
    await page.getByText('Create a client credential').click();
    await page.getByLabel('Name').fill('pc-0042');
    await page.getByRole('button', { name: 'Create client' }).click();
    await expect(page.locator('.secret input[data-secret="Client id"]').inputValue()).resolves.toMatch(/^agc_/);
    await expect(page.locator('.secret input[data-secret="Client secret"]').inputValue()).resolves.toMatch(/^ags_/);

    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Action').fill('key.create');
    await page.getByRole('button', { name: 'Apply' }).click();
    // The filtered page replaces the unfiltered one (where site-paris also has its key.rotate row): wait for it.
    await expect
      .poll(() => page.locator('tbody tr td:nth-child(3)').allInnerTexts(), { timeout: 10_000 })
      .toEqual(['key.create', 'key.create']); // site-paris, and the bootstrap key "default"
    const audit = page.locator('tbody tr', { hasText: 'site-paris' });
    await expect(audit.innerText()).resolves.toContain('operator:ada');
    await page.screenshot({ path: '/tmp/console-audit.png', fullPage: true });
    await page.close();
  });

  it('gets every audit action the server knows (GET /api/v1/meta) in the audit filter', async () => {
    const token = (await gw.server.deps.admin.createOperator({ name: 'ava', role: 'admin' }, actor)).token;
    const known = await meta(token);
    // Among them, the actions the console's old hand-kept list lacked.
    expect(known.auditActions).toEqual(
      expect.arrayContaining([
        'submissions.purge',
        'key.freeze',
        'key.unfreeze',
        'policy.add',
        'policy.remove',
        'allowlist.import',
        'outbox.retry',
        'outbox.drop',
      ]),
    );
    const page = await openPage();
    await signIn(page, token);
    await expect(page.locator('#who .badge').innerText()).resolves.toBe('admin');
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    const offered = await page
      .locator('datalist#audit-actions option')
      .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(offered).toEqual(known.auditActions);
    // An action from the list filters the log (no key was frozen on this gateway).
    await page.getByLabel('Action').fill('key.freeze');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('td.empty', { hasText: 'No entry matches these filters.' }).waitFor();
    await page.close();
  });
});

/** The GLPI Agent 1.12 inventory as captured, with its deviceid (and optionally its content) changed. */
const glpiCapture = loadScenario('glpi-plain').find((r) => r.classified.kind === 'inventory')!;
const fusionCapture = loadScenario('fusioninventory-plain').find((r) => r.classified.kind === 'inventory')!;
type GlpiMessage = { deviceid: string; content: { softwares: Record<string, unknown>[] } & Record<string, unknown> };

async function postRaw(body: Buffer, to = base): Promise<number> {
  const res = await fetch(`${to}/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-compress-zlib' },
    body: new Uint8Array(body),
  });
  await res.arrayBuffer();
  return res.status;
}

function glpiInventory(deviceid: string, edit: (m: GlpiMessage) => void = () => {}): Buffer {
  const msg = JSON.parse(glpiCapture.decoded_text) as GlpiMessage;
  msg.deviceid = deviceid;
  edit(msg);
  return zlib.deflateSync(JSON.stringify(msg));
}

describe('an analyst', () => {
  let token = '';
  let vmId = 0;
  beforeAll(async () => {
    token = (await gw.server.deps.admin.createOperator({ name: 'ana', role: 'reviewer' }, actor)).token;
    expect(await postRaw(glpiInventory('vm-e2e-2026-01-01-00-00-01'))).toBe(200);
    const [row] = await gw.server.deps.db.sql<
      { id: number }[]
    >`select id from devices where deviceid = 'vm-e2e-2026-01-01-00-00-01'`;
    vmId = Number(row!.id);
  });

  it("reads a real agent's software on the device page, filters it, and folds sections", async () => {
    const page = await openPage();
    await signIn(page, token);
    await page.goto(`${base}/console#/devices/id:${vmId}`);
    const software = page.locator('#inventory details[data-section="softwares"]');
    await software.waitFor();
    const total = (JSON.parse(glpiCapture.decoded_text) as GlpiMessage).content.softwares.length;
    await expect(software.locator('summary .badge-count').innerText()).resolves.toBe(String(total));
    await page.getByLabel('Filter software').fill('adduser');
    const visible = software.locator('tbody tr:not([hidden])');
    await expect(visible.count()).resolves.toBe(1);
    await expect(visible.innerText()).resolves.toMatch(/^adduser\s+3\.134\s+Debian$/);
    // Sections fold: the hardware one is open, a rest section (local_users) closed until clicked.
    const users = page.locator('#inventory details[data-section="local_users"]');
    expect(await users.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
    await users.locator('summary').click();
    expect(await users.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    await page.locator('#changes', { hasText: 'nothing to compare yet' }).waitFor();
    // Every time is in the one format, with the browser's zone shown once.
    await expect(page.locator('#time-zone').innerText()).resolves.toMatch(/^Times: .+ \(UTC[+-]\d\d:\d\d\)$/);
    for (const t of await page.locator('main time').allInnerTexts())
      expect(t).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$/);
    await page.close();
  });

  it('sees the changes panel after a second inventory with a change', async () => {
    expect(
      await postRaw(
        glpiInventory('vm-e2e-2026-01-01-00-00-01', (m) => {
          m.content.softwares = m.content.softwares.map((s) => (s.name === 'adduser' ? { ...s, version: '3.135' } : s));
          m.content.softwares.push({ name: 'nmap', version: '7.93', publisher: 'Debian' });
        }),
      ),
    ).toBe(200);
    const page = await openPage();
    await signIn(page, token);
    await page.goto(`${base}/console#/devices/id:${vmId}`);
    const changes = page.locator('#software-changes');
    await changes.waitFor();
    await expect(changes.locator('h3').innerText()).resolves.toBe('Software (1 added, 0 removed, 1 upgraded)');
    await expect(changes.locator('tbody tr', { hasText: 'adduser' }).innerText()).resolves.toMatch(
      /upgraded\s+adduser\s+3\.134 → 3\.135\s+Debian/,
    );
    await expect(changes.locator('tbody tr', { hasText: 'nmap' }).innerText()).resolves.toMatch(/added\s+nmap\s+7\.93/);
    await page.close();
  });

  it('sees a look-alike flagged in the queue and listed on the device page', async () => {
    // The FusionInventory capture comes from the same virtual machine: name "vm", the same MACs.
    const xml = fusionCapture.decoded_text.replace(
      /<DEVICEID>[^<]*<\/DEVICEID>/,
      '<DEVICEID>vm-e2e-fusion-2026-01-01-00-00-02</DEVICEID>',
    );
    expect(await postRaw(zlib.deflateSync(xml))).toBe(200);
    const page = await openPage();
    await signIn(page, token);
    const row = page.locator('tbody tr', { hasText: 'vm-e2e-fusion' });
    await row.waitFor();
    await expect(row.locator('.badge-lookalike').innerText()).resolves.toMatch(/^\d+ look-alikes?$/);
    await expect(row.getAttribute('class')).resolves.toContain('has-lookalikes');
    // Devices with nothing in common carry no flag.
    await expect(
      page.locator('tbody tr', { hasText: 'kiosk-lobby' }).locator('.badge-lookalike').count(),
    ).resolves.toBe(0);
    await row.getByRole('link', { name: 'vm' }).first().click();
    const panel = page.locator('#lookalikes');
    await panel.waitFor();
    const twin = panel.locator('tbody tr', { hasText: 'vm-e2e-2026-01-01-00-00-01' });
    await expect(twin.locator('.chip').allInnerTexts()).resolves.toEqual(['mac', 'name']);
    await page.close();
  });

  it('sorts the queue by a column, both ways', async () => {
    const page = await openPage();
    await signIn(page, token);
    await page.locator('tbody tr').first().waitFor();
    const names = () => page.locator('tbody tr td.col-name .device-link').allInnerTexts();
    await page.locator('a.sort[data-sort="name"]').click();
    await page.locator('a.sort-active[data-sort="name"][aria-sort="ascending"]').waitFor();
    const asc = await names();
    expect(asc.length).toBeGreaterThan(2);
    // The server's order (case-insensitive, in the database's collation), not the browser's.
    const res = await fetch(`${base}/api/v1/devices?state=quarantined&sort=name&dir=asc`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(asc).toEqual(((await res.json()) as { name: string | null }[]).map((d) => d.name || '(no name)'));
    await page.locator('a.sort[data-sort="name"]').click();
    await page.locator('a.sort-active[data-sort="name"][aria-sort="descending"]').waitFor();
    expect(await names()).toEqual([...asc].reverse());
    await expect(page.title()).resolves.toBe('Quarantine queue · agent-gate console');
    await page.getByLabel('State').selectOption('any');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('heading', { level: 1, name: 'All devices' }).waitFor();
    await expect(page.title()).resolves.toBe('All devices · agent-gate console');
    // The agent column names the product and version.
    await expect(
      page.locator('tbody tr', { hasText: 'vm-e2e-fusion' }).locator('td.col-agent').innerText(),
    ).resolves.toBe('FusionInventory 2.6-3');
    await page.close();
  });
});

describe('a security analyst (admin)', () => {
  let token = '';
  beforeAll(async () => {
    token = (await gwAuth.server.deps.admin.createOperator({ name: 'sec', role: 'admin' }, actor)).token;
    const bad = `Basic ${Buffer.from('agc_e2e_guess:wrong').toString('base64')}`;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${baseAuth}/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: bad },
        body: new Uint8Array(xmlMessage('attacker-1', 'PROLOG')),
      });
      expect(res.status).toBe(401);
      await res.arrayBuffer();
    }
    // Security events are recorded just after the 401: wait for both rows before any page loads.
    await eventually(async () => {
      const [row] = await gwAuth.server.deps.db.sql<{ n: number }[]>`
        select count(*)::int as n from security_events where details->>'user' = 'agc_e2e_guess'`;
      expect(row!.n).toBe(2);
    });
    await gwAuth.server.deps.admin.createKey({ name: 'e2e-revoked' }, actor);
    await gwAuth.server.deps.admin.setKeyActive('e2e-revoked', false, { name: 'operator:sec', remoteAddr: null });
  });

  it('reads failed credentials on the security-events page and filters them', async () => {
    const page = await openPage();
    await signIn(page, token, baseAuth);
    await page.getByRole('link', { name: 'Security events' }).click();
    await page.getByRole('heading', { level: 1, name: 'Security events' }).waitFor();
    const rows = page.locator('tbody tr.security-event', { hasText: 'agc_e2e_guess' });
    await expect(rows.first().innerText()).resolves.toMatch(/invalid_credential\s+127\.0\.0\.1\s+agc_e2e_guess/);
    expect(await rows.count()).toBeGreaterThanOrEqual(2);
    const offered = await page
      .locator('#se-type option')
      .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(offered).toEqual([
      '',
      'invalid_credential',
      'invalid_client',
      'client_device_mismatch',
      'device_credential_mismatch',
      'invalid_operator_token',
      'invalid_metrics_token',
    ]);
    await page.locator('#se-type').selectOption('device_credential_mismatch');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('td.empty', { hasText: 'No security event matches these filters.' }).waitFor();
    await page.getByRole('button', { name: 'Reset' }).click();
    await page.locator('#se-key').fill('agc_e2e');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('tbody tr.security-event').first().waitFor();
    expect(await page.locator('tbody tr.security-event', { hasNotText: 'agc_e2e_guess' }).count()).toBe(0);
    await page.close();
  });

  it('reads an audit entry as a before → after diff, filtered by actor', async () => {
    const page = await openPage();
    await signIn(page, token, baseAuth);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.locator('#audit-actor').fill('operator:sec');
    await page.getByRole('button', { name: 'Apply' }).click();
    const entry = page.locator('tbody tr', { hasText: 'key.revoke' });
    await entry.waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);
    await expect(entry.locator('.audit-diff').innerText()).resolves.toBe('active: true → false');
    await expect(entry.locator('.audit-diff del').innerText()).resolves.toBe('true');
    await expect(entry.locator('.audit-diff ins').innerText()).resolves.toBe('false');
    expect(await page.locator('main pre').count()).toBe(0); // no raw JSON blob
    await page.close();
  });
});

describe('an admin managing policies', () => {
  let token = '';
  beforeAll(async () => {
    token = (await gw.server.deps.admin.createOperator({ name: 'pia', role: 'admin' }, actor)).token;
    // A quarantined device the rule below matches (model OptiPlex 7090, as every newDevice has), one it does not.
    await newDevice('pol-match-2026-01-01-00-00-01', { name: 'pol-optiplex', serial: 'SN-POL-1' });
  });

  it('dry-runs a new rule and sees what it would decide, adds it (confirmed with that result), and removes it', async () => {
    const [row0] = await gw.server.deps.db.sql<{ n: number }[]>`
      select count(*)::int as n from devices where state = 'quarantined' and model = 'OptiPlex 7090'`;
    const matching = row0!.n;
    expect(matching).toBeGreaterThanOrEqual(1);
    const page = await openPage();
    await signIn(page, token);
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('heading', { level: 1, name: 'Auto-approval policies' }).waitFor();
    await page.locator('td.empty', { hasText: 'No rule' }).waitFor();

    // The saved rules (none): nothing would change.
    await page.locator('#test-saved').click();
    await expect(page.locator('#saved-test .would-approve').innerText()).resolves.toBe('0');
    await expect(page.locator('#saved-test .would-reject').innerText()).resolves.toBe('0');

    // A new rule's dry run: it would reject the matching quarantined devices, the untrusted name as text.
    await page.locator('#policy-action').selectOption('reject');
    await page.locator('#policy-model').fill('OptiPlex 7090');
    await page.locator('#policy-comment').fill('e2e: no desktops here');
    await page.locator('#test-new').click();
    const result = page.locator('#new-test');
    await expect(result.locator('.would-reject').innerText()).resolves.toBe(String(matching));
    await expect(result.locator('.would-approve').innerText()).resolves.toBe('0');
    const rejected = result.locator('.test-queue tbody tr', { hasText: 'pol-optiplex' });
    await expect(rejected.innerText()).resolves.toMatch(/pol-optiplex\s+quarantined\s+reject\s+the new rule/);
    await expect(result.locator('.test-queue tbody tr', { hasText: XSS }).count()).resolves.toBe(1);
    // The devices of the last 7 days it would have decided otherwise: the same one among them.
    await expect(result.locator('.test-recent h3').innerText()).resolves.toMatch(
      /^First seen in the last 7 days: \d+ of \d+ would have been decided otherwise$/,
    );
    await result.locator('.test-recent tbody tr', { hasText: 'pol-optiplex' }).waitFor();
    // Nothing saved, nothing decided by a dry run.
    expect(await gw.server.deps.db.sql`select id from policy_rules`).toHaveLength(0);
    expect(await state('pol-match-2026-01-01-00-00-01')).toBe('quarantined');
    await page.screenshot({ path: '/tmp/console-policy-dry-run.png', fullPage: true });

    // Adding it: the confirmation shows the same dry run, then it is saved and applied to the queue.
    await page.locator('#add-policy').click();
    const dialog = page.getByRole('dialog');
    await expect(dialog.locator('.would-reject').innerText()).resolves.toBe(String(matching));
    await dialog.getByRole('button', { name: 'Add rule' }).click();
    await page.locator('.alert-success', { hasText: `added at position 1; ${matching} quarantined device` }).waitFor();
    const rules = await gw.server.deps.db.sql<{ id: number; action: string; match: unknown; comment: string }[]>`
      select id, action, match, comment from policy_rules`;
    expect(rules).toEqual([
      {
        id: expect.any(Number) as number,
        action: 'reject',
        match: { model: 'OptiPlex 7090' },
        comment: 'e2e: no desktops here',
      },
    ]);
    expect(await state('pol-match-2026-01-01-00-00-01')).toBe('rejected');
    const row = page.locator('tbody tr.policy-rule');
    await expect(row.innerText()).resolves.toMatch(/^1\s+#\d+\s+reject\s+model OptiPlex 7090\s+e2e: no desktops here/);

    // Removing it, after a confirmation.
    await page.locator(`[data-action="remove-${rules[0]!.id}"]`).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.locator('.alert-success', { hasText: `Rule #${rules[0]!.id} removed.` }).waitFor();
    await page.locator('td.empty', { hasText: 'No rule' }).waitFor();
    expect(await gw.server.deps.db.sql`select id from policy_rules`).toHaveLength(0);
    const audit = await gw.server.deps.db.sql<{ action: string; actor: string }[]>`
      select action, actor from audit_log where action like 'policy.%' order by id`;
    expect(audit).toEqual([
      { action: 'policy.add', actor: 'operator:pia' },
      { action: 'policy.remove', actor: 'operator:pia' },
    ]);
    await page.close();
  });
});

describe('an admin with dead letters in the forwarding outbox', () => {
  const glpi = new FakeGlpi();
  let fwd: Awaited<ReturnType<typeof startTestServer>>;
  let fwdBase = '';
  let token = '';
  const ids: Record<string, number> = {};
  beforeAll(async () => {
    await glpi.up();
    glpi.otherwise = 422; // GLPI refuses every inventory: one attempt, then a dead letter
    fwd = await startTestServer({
      AGENT_AUTH: 'off',
      UPSTREAM_URL: glpi.url,
      UPSTREAM_MAX_ATTEMPTS: '1',
      UPSTREAM_RATE: '0',
    });
    fwdBase = fwd.server.url;
    gateways.push(fwdBase);
    token = (await fwd.server.deps.admin.createOperator({ name: 'otto', role: 'admin' }, actor)).token;
    for (const deviceid of ['fwd-retry-2026-01-01-00-00-01', 'fwd-drop-2026-01-01-00-00-02']) {
      await agent(deviceid, 'PROLOG', '', { url: fwdBase });
      await fwd.server.deps.review.decide([deviceid], 'approve', null, actor);
      await agent(deviceid, 'INVENTORY', '<HARDWARE><NAME>fwd</NAME></HARDWARE>', { url: fwdBase });
    }
    await eventually(
      async () => {
        const rows = await fwd.server.deps.db.sql<{ id: number; deviceid: string; state: string }[]>`
          select id, deviceid, state from outbox`;
        expect(rows.map((r) => r.state)).toEqual(['dead', 'dead']);
        for (const r of rows) ids[r.deviceid] = Number(r.id);
      },
      { timeout: 15_000, message: 'both inventories refused by GLPI, then dead letters' },
    );
  }, 60_000);
  afterAll(async () => {
    await fwd?.close();
    await glpi.down();
  });

  it("sees both dead letters with GLPI's answer, retries one (then delivered) and drops the other", async () => {
    const retryId = ids['fwd-retry-2026-01-01-00-00-01']!;
    const dropId = ids['fwd-drop-2026-01-01-00-00-02']!;
    const page = await openPage();
    await signIn(page, token, fwdBase);
    await page.getByRole('link', { name: 'Outbox' }).click();
    await page.getByRole('heading', { level: 1, name: 'Forwarding outbox' }).waitFor();
    await page.locator('#outbox-state').selectOption('dead');
    await page.getByRole('button', { name: 'Apply' }).click();
    const rows = page.locator('tbody tr.outbox-dead');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(2);
    const retryRow = page.locator('tbody tr', { hasText: 'fwd-retry' });
    await expect(retryRow.innerText()).resolves.toMatch(/inventory\s+.+\s+dead\s+1\s+HTTP 422/);
    await page.screenshot({ path: '/tmp/console-outbox.png', fullPage: true });

    // GLPI accepts again: the retried item is sent and delivered.
    glpi.otherwise = 200;
    await page.locator(`[data-action="retry-${retryId}"]`).click();
    await page
      .locator('.alert-success', { hasText: `Outbox item ${retryId} (fwd-retry-2026-01-01-00-00-01) is due again` })
      .waitFor();
    await eventually(
      async () => {
        const [row] = await fwd.server.deps.db.sql<{ state: string }[]>`select state from outbox where id = ${retryId}`;
        expect(row?.state).toBe('delivered');
      },
      { timeout: 15_000, message: 'the retried item delivered' },
    );
    expect(glpi.delivered().map((r) => r.deviceid)).toEqual(['fwd-retry-2026-01-01-00-00-01']);

    // Dropping asks first; Cancel keeps the item.
    await page.locator(`[data-action="drop-${dropId}"]`).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    expect(await fwd.server.deps.db.sql`select id from outbox where id = ${dropId}`).toHaveLength(1);
    await page.locator(`[data-action="drop-${dropId}"]`).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Drop' }).click();
    await page
      .locator('.alert-success', { hasText: `Outbox item ${dropId} (fwd-drop-2026-01-01-00-00-02) dropped` })
      .waitFor();
    expect(await fwd.server.deps.db.sql`select id from outbox where id = ${dropId}`).toHaveLength(0);
    // Still on the dead letters: none left. Any state: the delivered one.
    await page.locator('td.empty', { hasText: 'No outbox item matches these filters.' }).waitFor();
    await page.locator('#outbox-state').selectOption('');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page.locator('tbody tr.outbox-item').innerText()).resolves.toMatch(/fwd-retry.+delivered/s);
    const audit = await fwd.server.deps.db.sql<{ action: string; actor: string; target: string }[]>`
      select action, actor, target_id as target from audit_log where action like 'outbox.%' order by id`;
    expect(audit).toEqual([
      { action: 'outbox.retry', actor: 'operator:otto', target: String(retryId) },
      { action: 'outbox.drop', actor: 'operator:otto', target: String(dropId) },
    ]);
    await page.close();
  });
});

describe('an admin managing operators', () => {
  it('creates a reviewer (token shown once, and it works), sees it listed, and revokes it after a confirmation', async () => {
    const token = (await gw.server.deps.admin.createOperator({ name: 'oda', role: 'admin' }, actor)).token;
    const page = await openPage();
    await signIn(page, token);
    await page.getByRole('link', { name: 'Operators' }).click();
    await page.getByRole('heading', { level: 1, name: 'Operators' }).waitFor();
    await expect(page.locator('tbody tr', { hasText: 'oda' }).innerText()).resolves.toContain('(you)');
    await page.getByText('Create an operator').click();
    await page.locator('#operator-name').fill('olga');
    await page.locator('#operator-role').selectOption('reviewer');
    await page.getByRole('button', { name: 'Create operator' }).click();
    const secret = await page.locator('.secret input[data-secret="Token"]').inputValue();
    expect(secret).toMatch(/^ago_/);
    const me = await fetch(`${base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
    expect(await me.json()).toEqual({ name: 'operator:olga', role: 'reviewer' });
    const row = page.locator('tbody tr', { hasText: 'olga' });
    await expect(row.innerText()).resolves.toMatch(/olga\s+reviewer\s+active\s+ago_/);
    await page.getByRole('button', { name: /I have stored it/ }).click();
    expect(await page.content()).not.toContain(secret);

    await page.locator('[data-action="revoke-olga"]').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await page.locator('.alert-success', { hasText: 'Operator "olga" revoked.' }).waitFor();
    await expect(row.innerText()).resolves.toMatch(/olga\s+reviewer\s+revoked/);
    const after = await fetch(`${base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
    expect(after.status).toBe(401);
    await after.arrayBuffer();
    // Revoking oneself is said before it is done.
    await page.locator('[data-action="revoke-oda"]').click();
    await page.getByRole('dialog').locator('.alert-error', { hasText: 'This is you' }).waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.close();
  });
});

describe('a reviewer sorting the queue', () => {
  let token = '';
  beforeAll(async () => {
    token = (await gw.server.deps.admin.createOperator({ name: 'sol', role: 'reviewer' }, actor)).token;
    // 30 conflicts (seen after every other device) whose names run opposite to when they were last seen:
    // sorting one page of the default order (newest first) in the browser could never show sort-00 first.
    await gw.server.deps.db.sql`
      insert into devices (deviceid, state, name, first_seen, last_seen)
      select 'sort-' || lpad(g::text, 2, '0') || '-2026', 'conflict', 'sort-' || lpad(g::text, 2, '0'),
             now() - interval '1 day', now() + interval '1 hour' + g * interval '1 second'
      from generate_series(0, 29) g`;
  });

  it('sorts by name across pages on the server, both ways', async () => {
    const page = await openPage();
    await signIn(page, token);
    await page.goto(`${base}/console#/devices?state=conflict&size=25`);
    const names = () => page.locator('tbody tr td.col-name .device-link').allInnerTexts();
    await page.locator('tbody tr').first().waitFor();
    // The default order: last seen, newest first (the header says so).
    await page.locator('a.sort-active[data-sort="lastSeen"][aria-sort="descending"]').waitFor();
    expect((await names())[0]).toBe('sort-29');

    await page.locator('a.sort[data-sort="name"]').click();
    await page.locator('a.sort-active[data-sort="name"][aria-sort="ascending"]').waitFor();
    const sorts = Array.from({ length: 30 }, (_, i) => `sort-${String(i).padStart(2, '0')}`);
    // build-01-clone, the conflict from the reviewer's tests, comes first.
    expect(await names()).toEqual(['build-01-clone', ...sorts.slice(0, 24)]);
    await page.getByRole('link', { name: 'Next →' }).click();
    await page.locator('.pager', { hasText: 'Devices 26–31 of 31' }).waitFor();
    expect(await names()).toEqual(sorts.slice(24));
    await page.locator('a.sort-active[data-sort="name"][aria-sort="ascending"]').waitFor();

    // The other way, from the first page again.
    await page.locator('a.sort[data-sort="name"]').click();
    await page.locator('a.sort-active[data-sort="name"][aria-sort="descending"]').waitFor();
    await page.locator('.pager', { hasText: 'Devices 1–25' }).waitFor();
    expect(await names()).toEqual([...sorts].reverse().slice(0, 25));
    await page.getByRole('link', { name: 'Next →' }).click();
    await page.locator('.pager', { hasText: 'Devices 26–31 of 31' }).waitFor();
    expect(await names()).toEqual([...sorts.slice(0, 5).reverse(), 'build-01-clone']);
    await page.close();
  });
});

describe('the browser', () => {
  it('made no request outside the gateway and hit no script error or CSP violation', () => {
    expect(elsewhere).toEqual([]);
    expect(problems).toEqual([]);
  });
});
