/**
 * Operating GLPI forwarding: dead letters listed, retried and dropped through the admin API and the CLI
 * (admin only, audited); Basic and OAuth2 client-credentials authentication against the fake GLPI (token
 * cached until it expires, renewed when refused); the worker started by the server and by
 * `agent-gate forward`, which runs until SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../src/config.js';
import { createForwarder } from '../../src/services/forwarder.js';
import { runCli } from '../helpers/cli.js';
import { type TestContext, createTestContext, send, startTestServer } from '../helpers/context.js';
import { eventually } from '../helpers/eventually.js';
import { FakeGlpi } from '../helpers/fake-glpi.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'agent-gate.js');
const STACK = /^\s+at .+[:(]\d+|Error: |node:internal|UnhandledPromiseRejection/m;
const actor = { name: 'test', remoteAddr: null };

const glpi = new FakeGlpi();
let ctx: TestContext;
let adminToken = '';
let reviewerToken = '';

beforeAll(async () => {
  await glpi.up();
});
afterAll(async () => {
  await glpi.down();
});
// Each test on a gateway and outbox of its own (the lists and counts below are of everything in the outbox),
// and a fake GLPI that has seen nothing, answers 200 and asks for no credential.
beforeEach(async () => {
  glpi.reset();
  glpi.basic = null;
  glpi.oauth = null;
  ctx = await createTestContext({
    AGENT_AUTH: 'off',
    UPSTREAM_URL: glpi.url,
    UPSTREAM_MAX_ATTEMPTS: '1',
    UPSTREAM_RATE: '0',
  });
  adminToken = (await ctx.deps.admin.createOperator({ name: 'boss', role: 'admin' }, actor)).token;
  reviewerToken = (await ctx.deps.admin.createOperator({ name: 'rita', role: 'reviewer' }, actor)).token;
});
afterEach(async () => {
  await ctx?.close();
});

const zlibType = { 'Content-Type': 'application/x-compress-zlib' };
const prologBody = (deviceid: string) =>
  zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
  );
const inventoryBody = (deviceid: string, marker: string) =>
  zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><CONTENT><HARDWARE><NAME>${deviceid}</NAME><DESCRIPTION>${marker}</DESCRIPTION></HARDWARE></CONTENT><DEVICEID>${deviceid}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`,
  );

/** An approved device with one inventory in the outbox. */
async function approvedInventory(deviceid: string, marker = deviceid): Promise<number> {
  expect(
    (await send(ctx.app, { method: 'POST', path: '/', headers: zlibType, body: prologBody(deviceid) })).status,
  ).toBe(200);
  await ctx.deps.review.decide([deviceid], 'approve', null, actor);
  expect(
    (await send(ctx.app, { method: 'POST', path: '/', headers: zlibType, body: inventoryBody(deviceid, marker) }))
      .status,
  ).toBe(200);
  const [row] = await ctx.sql<
    { id: number }[]
  >`select id from outbox where deviceid = ${deviceid} order by id desc limit 1`;
  return row!.id;
}

async function deadLetter(deviceid: string): Promise<number> {
  const id = await approvedInventory(deviceid);
  glpi.script = [422];
  expect(await ctx.deps.forwarder.runOnce()).toBe(1);
  const [row] = await ctx.sql<{ state: string }[]>`select state from outbox where id = ${id}`;
  expect(row!.state).toBe('dead'); // UPSTREAM_MAX_ATTEMPTS=1
  return id;
}

const api = (method: 'get' | 'post', url: string, token = adminToken) =>
  request(ctx.app)[method](url).set('Authorization', `Bearer ${token}`);

describe('admin API', () => {
  it('GET /api/v1/outbox lists items (admin only), filtered by state', async () => {
    const id = await deadLetter('ops-api-1');
    const res = await api('get', '/api/v1/outbox?state=dead');
    expect(res.status).toBe(200);
    const items = res.body as Record<string, unknown>[];
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      id,
      deviceid: 'ops-api-1',
      kind: 'inventory',
      partial: false,
      state: 'dead',
      attempts: 1,
      lastStatus: 422,
      lastError: 'HTTP 422',
    });
    expect(items[0]!.lastResponse).toContain('scripted 422');
    expect((await api('get', '/api/v1/outbox?state=pending')).body).toEqual([]);
    expect((await api('get', '/api/v1/outbox?state=lost')).status).toBe(400);
    expect((await api('get', '/api/v1/outbox', reviewerToken)).status).toBe(403);
    expect((await request(ctx.app).get('/api/v1/outbox')).status).toBe(401);
  });

  it('POST /api/v1/outbox/:id/retry makes a dead letter due again, audited; it is then delivered', async () => {
    const id = await deadLetter('ops-api-3');
    expect((await api('post', `/api/v1/outbox/${id}/retry`, reviewerToken)).status).toBe(403);
    const res = await api('post', `/api/v1/outbox/${id}/retry`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, state: 'pending', attempts: 0, lastStatus: 422 });
    const [audit] = await ctx.sql<{ actor: string; before: { state: string }; after: { state: string } }[]>`
      select actor, before, after from audit_log where action = 'outbox.retry' and target_id = ${String(id)}`;
    expect(audit).toMatchObject({ actor: 'operator:boss', before: { state: 'dead' }, after: { state: 'pending' } });
    expect(await ctx.deps.forwarder.runOnce()).toBe(1);
    expect(glpi.delivered()).toHaveLength(1);
    // Delivered: neither retried nor dropped any more.
    expect((await api('post', `/api/v1/outbox/${id}/retry`)).status).toBe(409);
    expect((await api('post', `/api/v1/outbox/${id}/drop`)).status).toBe(409);
  });

  it('POST /api/v1/outbox/:id/drop removes a dead letter, audited; unknown ids are a 404', async () => {
    const id = await deadLetter('ops-api-2');
    const res = await api('post', `/api/v1/outbox/${id}/drop`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id, dropped: true });
    expect((await api('get', '/api/v1/outbox?state=dead')).body).toEqual([]);
    const [audit] = await ctx.sql<
      { actor: string; before: { state: string; deviceid: string } }[]
    >`select actor, before from audit_log where action = 'outbox.drop' and target_id = ${String(id)}`;
    expect(audit).toMatchObject({ actor: 'operator:boss', before: { state: 'dead', deviceid: 'ops-api-2' } });
    expect((await api('post', `/api/v1/outbox/${id}/drop`)).status).toBe(404);
    expect((await api('post', '/api/v1/outbox/abc/retry')).status).toBe(400);
  });
});

describe('agent-gate outbox', () => {
  const cli = (args: string[]) => runCli(args, { DATABASE_URL: ctx.databaseUrl, LOG_LEVEL: 'warn' });

  it('list --state dead --json, retry --json and drop', async () => {
    const a = await deadLetter('ops-cli-1');
    const b = await deadLetter('ops-cli-2');
    const listed = await cli(['outbox', 'list', '--state', 'dead', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).toBe('');
    expect((JSON.parse(listed.stdout) as { id: number; state: string }[]).map((r) => [r.id, r.state])).toEqual([
      [b, 'dead'],
      [a, 'dead'],
    ]);
    const table = await cli(['outbox', 'list', '--state', 'dead']);
    expect(table.stdout).toMatch(/^ID\s+DEVICEID\s+KIND\s+PARTIAL\s+STATE\s+ATTEMPTS\s+LASTSTATUS\s+LASTERROR/);
    expect(table.stdout).toContain('HTTP 422');

    const retried = await cli(['outbox', 'retry', String(a), '--json']);
    expect(retried.code, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ id: a, state: 'pending', attempts: 0 });
    const dropped = await cli(['outbox', 'drop', String(b)]);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stdout).toBe(`outbox item ${b} dropped\n`);
    const actions = await ctx.sql<
      { action: string; actor: string }[]
    >`select action, actor from audit_log where target_type = 'outbox' and target_id in ${ctx.sql([String(a), String(b)])} order by id`;
    expect(actions.map((x) => x.action)).toEqual(['outbox.retry', 'outbox.drop']);
    expect(actions.every((x) => x.actor.startsWith('cli:'))).toBe(true);
    ctx.clock.set(new Date(Date.now() + 1000)); // the CLI made it due on the real clock
    expect(await ctx.deps.forwarder.runOnce()).toBe(1);
    expect(glpi.delivered()).toHaveLength(1);

    const missing = await cli(['outbox', 'retry', '999999']);
    expect(missing.code).not.toBe(0);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe('agent-gate: No outbox item 999999\n');
    expect(missing.stderr).not.toMatch(STACK);
    const bad = await cli(['outbox', 'list', '--state', 'lost']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/must be one of pending, in_flight, delivered, dead/);
  });

  it('forward disable, then backfill --since: what was accepted while off is enqueued once, per device from its newest full inventory', async () => {
    const post = async (deviceid: string, body: Buffer) =>
      expect((await send(ctx.app, { method: 'POST', path: '/', headers: zlibType, body })).status).toBe(200);
    await approvedInventory('ops-bf-a', 'A#1');
    expect(await ctx.deps.forwarder.runOnce()).toBe(1);

    const off = await cli(['forward', 'disable', '--json']);
    expect(off.code, off.stderr).toBe(0);
    expect(JSON.parse(off.stdout)).toMatchObject({ enabled: false });
    // While off: an accepted inventory, and an approval releasing three held ones, write no outbox rows.
    await post('ops-bf-a', inventoryBody('ops-bf-a', 'A#2'));
    await post('ops-bf-b', prologBody('ops-bf-b'));
    for (const n of [1, 2, 3]) await post('ops-bf-b', inventoryBody('ops-bf-b', `B#${n}`));
    const [decided] = await ctx.deps.review.decide(['ops-bf-b'], 'approve', null, actor);
    expect(decided).toMatchObject({ releasedSubmissions: 3 });
    const rows = async () =>
      (await ctx.sql<{ n: number }[]>`select count(*)::int as n from outbox where state = 'pending'`)[0]!.n;
    expect(await rows()).toBe(0);

    const refused = await cli(['forward', 'backfill', '--since', '2000-01-01']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^agent-gate: Forwarding is not enabled in this database/);
    expect(refused.stderr).not.toMatch(STACK);

    await ctx.deps.forwarder.enable(); // a gateway with UPSTREAM_URL starts
    const filled = await cli(['forward', 'backfill', '--since', '2000-01-01', '--json']);
    expect(filled.code, filled.stderr).toBe(0);
    expect(JSON.parse(filled.stdout)).toEqual({
      since: '2000-01-01T00:00:00.000Z',
      devices: 2,
      enqueued: 2,
      superseded: 2,
    });
    const again = await cli(['forward', 'backfill', '--since', '2000-01-01']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^enqueued 0 inventories of 0 devices received since 2000-01-01T00:00:00Z/);
    ctx.clock.set(new Date(Date.now() + 1000)); // the CLI made them due on the real clock
    expect(await ctx.deps.forwarder.runOnce()).toBe(2);
    const marker = (t: string) => /<DESCRIPTION>([^<]*)</.exec(t)?.[1];
    expect(glpi.delivered().map((r) => marker(r.text))).toEqual(['A#1', expect.any(String), expect.any(String)]);
    expect(
      glpi
        .delivered()
        .map((r) => marker(r.text))
        .sort(),
    ).toEqual(['A#1', 'A#2', 'B#3']);
    const audit = await ctx.sql<{ action: string }[]>`
      select action from audit_log where action in ('forwarding.disable', 'outbox.backfill') order by id`;
    expect(audit.map((a) => a.action)).toEqual(['forwarding.disable', 'outbox.backfill', 'outbox.backfill']);
  }, 90_000);
});

describe('upstream authentication', () => {
  it('Basic: UPSTREAM_USER / UPSTREAM_PASSWORD', async () => {
    glpi.basic = { user: 'gate', password: 'glpi-pw' };
    await approvedInventory('ops-basic-1');
    const f = createForwarder({
      sql: ctx.sql,
      clock: ctx.clock,
      logger: ctx.deps.logger,
      config: { ...ctx.deps.config, upstreamUser: 'gate', upstreamPassword: 'glpi-pw' },
    });
    expect(await f.runOnce()).toBe(1);
    expect(glpi.requests.map((r) => r.status)).toEqual([200]);
    expect(glpi.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('gate:glpi-pw').toString('base64')}`);
  });

  it('OAuth2 client credentials: one token from <base>/api.php/token, reused until it expires, renewed when refused', async () => {
    glpi.oauth = { clientId: 'gate-client', clientSecret: 'gate-secret', expiresIn: 3600 };
    const f = createForwarder({
      sql: ctx.sql,
      clock: ctx.clock,
      logger: ctx.deps.logger,
      config: { ...ctx.deps.config, upstreamClientId: 'gate-client', upstreamClientSecret: 'gate-secret' },
    });
    await approvedInventory('ops-oauth-1', 'o1');
    await approvedInventory('ops-oauth-2', 'o2');
    expect(await f.runOnce()).toBe(2); // two sends at once share one token request
    expect(glpi.tokenRequests).toHaveLength(1);
    expect(glpi.tokenRequests[0]!.body).toEqual({
      grant_type: 'client_credentials',
      client_id: 'gate-client',
      client_secret: 'gate-secret',
      scope: 'inventory',
    });
    expect(glpi.tokenRequests[0]!.headers['content-type']).toBe('application/json');
    expect(glpi.requests.map((r) => [r.status, r.headers.authorization])).toEqual([
      [200, 'Bearer tok-1'],
      [200, 'Bearer tok-1'],
    ]);

    await approvedInventory('ops-oauth-3', 'o3');
    expect(await f.runOnce()).toBe(1);
    expect(glpi.tokenRequests).toHaveLength(1); // cached
    ctx.clock.advance(3600_000); // expired (renewed 30 s early)
    await approvedInventory('ops-oauth-4', 'o4');
    expect(await f.runOnce()).toBe(1);
    expect(glpi.tokenRequests).toHaveLength(2);
    expect(glpi.requests.at(-1)!.headers.authorization).toBe('Bearer tok-2');

    glpi.revokeTokens(); // GLPI restarted: the cached token is refused once, a new one is fetched, the send repeated
    await approvedInventory('ops-oauth-5', 'o5');
    expect(await f.runOnce()).toBe(1);
    expect(glpi.requests.slice(-2).map((r) => [r.status, r.headers.authorization])).toEqual([
      [401, 'Bearer tok-2'],
      [200, 'Bearer tok-3'],
    ]);
    const [row] = await ctx.sql<{ state: string }[]>`select state from outbox where deviceid = 'ops-oauth-5'`;
    expect(row!.state).toBe('delivered');

    // A wrong client secret: the token endpoint's 401 counts like GLPI refusing the inventory.
    const wrong = createForwarder({
      sql: ctx.sql,
      clock: ctx.clock,
      logger: ctx.deps.logger,
      config: { ...ctx.deps.config, upstreamClientId: 'gate-client', upstreamClientSecret: 'nope' },
    });
    await approvedInventory('ops-oauth-6', 'o6');
    expect(await wrong.runOnce()).toBe(1);
    const [refused] = await ctx.sql<{ state: string; lastStatus: number; lastError: string; lastResponse: string }[]>`
      select state, last_status as "lastStatus", last_error as "lastError", last_response as "lastResponse" from outbox where deviceid = 'ops-oauth-6'`;
    expect(refused).toMatchObject({
      state: 'dead',
      lastStatus: 401,
      lastError: 'token endpoint answered HTTP 401',
      lastResponse: '{"error":"invalid_client"}',
    });
  });
});

describe('the worker in a running gateway and in `agent-gate forward`', () => {
  it('a gateway started with UPSTREAM_URL forwards on its own, and closes cleanly', async () => {
    const t = await startTestServer({ AGENT_AUTH: 'off', UPSTREAM_URL: glpi.url });
    try {
      const { server } = t;
      const post = (body: Buffer) =>
        fetch(`${server.url}/`, { method: 'POST', headers: zlibType, body: body as Uint8Array<ArrayBuffer> });
      expect((await post(prologBody('ops-server-1'))).status).toBe(200);
      await server.deps.review.decide(['ops-server-1'], 'approve', null, actor);
      expect((await post(inventoryBody('ops-server-1', 's1'))).status).toBe(200);
      await eventually(() => expect(glpi.delivered()).toHaveLength(1), {
        timeout: 10_000,
        message: 'the inventory upstream',
      });
      expect(glpi.delivered()[0]!.deviceid).toBe('ops-server-1');
    } finally {
      await t.close();
    }
  });

  it('`agent-gate forward` sends what is due until SIGTERM, then exits 0', async () => {
    ctx.clock.set(new Date(Date.now() - 1000)); // the child process runs on the real clock
    await approvedInventory('ops-forward-1', 'f1');
    await approvedInventory('ops-forward-2', 'f2');
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of CONFIG_KEYS) delete env[key.env];
    let child: ChildProcess | null = spawn(process.execPath, [BIN, 'forward', '--workers', '1'], {
      cwd: ROOT,
      env: { ...env, DATABASE_URL: ctx.databaseUrl, UPSTREAM_URL: glpi.url, UPSTREAM_WORKERS: '0', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child!.once('close', (code) => resolve(code)));
    try {
      await eventually(() => expect(glpi.delivered()).toHaveLength(2), {
        timeout: 20_000,
        message: 'both inventories upstream',
      });
      expect(glpi.delivered().map((r) => r.deviceid)).toEqual(['ops-forward-1', 'ops-forward-2']);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      child = null;
      expect(stderr).toBe('');
    } finally {
      child?.kill('SIGKILL');
    }
  });
});
