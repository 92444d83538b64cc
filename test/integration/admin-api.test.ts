/**
 * The admin API: every route in ROUTES demands an operator token (401 without, or with a revoked one) and
 * its role (403 for a reviewer on an admin route); secrets are shown once, by the call that creates them;
 * every action is audited with the operator as actor; bad input is a 400 in JSON, never a 500.
 */
import zlib from 'node:zlib';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/admin-api.js';
import { AUDIT_ACTIONS, OPERATOR_ROLES } from '../../src/services/admin.js';
import { DEVICE_STATES } from '../../src/services/records.js';
import { SECURITY_EVENT_TYPES } from '../../src/services/security-events.js';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

const actor = { name: 'test:setup', remoteAddr: null };

let ctx: TestContext;
let adminToken = '';
let reviewerToken = '';
let revokedToken = '';
/** Every secret and token the current gateway has handed out (what the leak checks look for). */
let usedSecrets: string[] = [];

/** A fresh gateway with three operators: boss (admin), rita (reviewer) and gone (revoked). */
async function setUp(): Promise<void> {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
  adminToken = (await ctx.deps.admin.createOperator({ name: 'boss', role: 'admin' }, actor)).token;
  reviewerToken = (await ctx.deps.admin.createOperator({ name: 'rita', role: 'reviewer' }, actor)).token;
  revokedToken = (await ctx.deps.admin.createOperator({ name: 'gone', role: 'admin' }, actor)).token;
  await ctx.deps.admin.revokeOperator('gone', actor);
  usedSecrets = [adminToken, reviewerToken, revokedToken];
}
const tearDown = () => ctx?.close();

function call(method: 'get' | 'post', path: string, token?: string) {
  const r = request(ctx.app)[method](path);
  return token ? r.set('Authorization', `Bearer ${token}`) : r;
}

const concrete = (path: string) => path.replace(/:[A-Za-z]+/g, 'dummy-param');
const routeCases = ROUTES.map((r) => [`${r.method.toUpperCase()} ${r.path}`, r] as const);

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
const prologText = textOf('fusioninventory-plain', '0001-post-prolog.json');
function agentProlog(deviceid: string, password: string) {
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic('inventory', password) },
    body: zlib.deflateSync(prologText.replace(/<DEVICEID>[^<]*<\/DEVICEID>/, `<DEVICEID>${deviceid}</DEVICEID>`)),
  });
}

async function auditRows(action: string) {
  return ctx.sql<
    {
      actor: string;
      action: string;
      targetType: string;
      targetId: string;
      remoteAddr: string | null;
      before: Record<string, unknown> | null;
      after: Record<string, unknown> | null;
      reason: string | null;
    }[]
  >`
    select actor, action, target_type as "targetType", target_id as "targetId", remote_addr as "remoteAddr", before, after, reason
    from audit_log where action = ${action} and actor like 'operator:%' order by id`;
}

/** The admin API's error body: the code, the message, and the request id its X-Request-Id header names. */
function expectApiError(res: { body: unknown; headers: Record<string, string> }, ...args: string[]): void {
  const [where, code, message] = args.length === 3 ? args : [undefined, ...args];
  expect(res.body, where).toEqual({ status: 'error', code, message, requestId: res.headers['x-request-id'] });
  expect(res.headers['x-request-id'], where).toMatch(/^[0-9a-f-]{36}$/);
}

describe('every route is guarded', () => {
  // One gateway for these: each only asks, nothing is changed (the reviewer test below checks that itself).
  beforeAll(setUp);
  afterAll(tearDown);

  it('ROUTES is not empty and has both roles', () => {
    expect(ROUTES.length).toBeGreaterThan(10);
    expect(new Set(ROUTES.map((r) => r.role))).toEqual(new Set(['reviewer', 'admin']));
  });

  it.each(routeCases)('%s without a token → 401', async (_n, route) => {
    const res = await call(route.method, concrete(route.path));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expectApiError(res, 'unauthorized', 'Operator token required');
  });

  it.each(routeCases)('%s with a revoked operator token → 401', async (_n, route) => {
    expect((await call(route.method, concrete(route.path), revokedToken)).status).toBe(401);
  });

  it.each(routeCases)('%s with a wrong scheme or an agent secret → 401', async (_n, route) => {
    expect(
      (await call(route.method, concrete(route.path)).set('Authorization', basic('boss', adminToken))).status,
    ).toBe(401);
    expect((await call(route.method, concrete(route.path), 'agk_not-an-operator-token')).status).toBe(401);
  });

  it('POST routes without a token and with a malformed JSON body → 401 (the token is checked first)', async () => {
    const statuses: Record<string, number> = {};
    for (const [name, route] of routeCases.filter(([, r]) => r.method === 'post')) {
      statuses[name] = (
        await call('post', concrete(route.path)).set('Content-Type', 'application/json').send('{"name":')
      ).status;
    }
    expect(statuses).toEqual(Object.fromEntries(Object.keys(statuses).map((k) => [k, 401])));
  });

  it.each(routeCases.filter(([, r]) => r.role === 'admin'))('%s with a reviewer token → 403', async (_n, route) => {
    const res = await call(route.method, concrete(route.path), reviewerToken).send({
      name: 'from-reviewer',
      role: 'admin',
    });
    expect(res.status).toBe(403);
    expectApiError(res, 'forbidden', 'This needs the admin role');
  });

  it.each(routeCases.filter(([, r]) => r.role === 'reviewer'))(
    '%s with a reviewer token → served',
    async (_n, route) => {
      const res = await call(route.method, concrete(route.path), reviewerToken);
      expect([401, 403]).not.toContain(res.status);
      expect(res.status).toBeLessThan(500);
    },
  );

  it('a reviewer changed nothing', async () => {
    // Every route, as the reviewer (admin routes refused, reviewer routes served).
    for (const [, route] of routeCases) await call(route.method, concrete(route.path), reviewerToken);
    const [n] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from audit_log where actor = 'operator:rita'`;
    expect(n!.n).toBe(0);
    expect(await ctx.deps.admin.countKeys()).toBe(0);
  });

  it('unknown API routes: 401 anonymously, 404 with a token', async () => {
    expect((await call('get', '/api/v1/nothing-here')).status).toBe(401);
    const res = await call('get', '/api/v1/nothing-here', adminToken);
    expect(res.status).toBe(404);
    expectApiError(res, 'not_found', 'No such API route');
  });

  it('GET /api/v1/me names the operator and its role', async () => {
    expect((await call('get', '/api/v1/me', reviewerToken)).body).toEqual({ name: 'operator:rita', role: 'reviewer' });
    expect((await call('get', '/api/v1/me', adminToken)).body).toEqual({ name: 'operator:boss', role: 'admin' });
  });

  it('GET /api/v1/meta gives a reviewer the lists the server knows: states, audit actions, roles', async () => {
    const res = await call('get', '/api/v1/meta', reviewerToken);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const meta = res.body as { states: string[]; auditActions: string[]; roles: string[] };
    expect(meta).toEqual({
      states: [...DEVICE_STATES],
      auditActions: [...AUDIT_ACTIONS],
      roles: [...OPERATOR_ROLES],
      securityEventTypes: [...SECURITY_EVENT_TYPES],
    });
    expect(meta.states).toEqual(['quarantined', 'approved', 'rejected', 'conflict']);
    expect(meta.roles).toEqual(['reviewer', 'admin']);
    expect(meta.auditActions).toEqual(expect.arrayContaining(['key.freeze', 'policy.add', 'outbox.drop']));
    expect(new Set(meta.auditActions).size).toBe(meta.auditActions.length);
  });
});

/** POST /api/v1/keys "api-key" (checked as it goes), and an agent api-dev-1 on it: the key's secret. */
async function createApiKey(): Promise<string> {
  const res = await call('post', '/api/v1/keys', adminToken).send({
    name: 'api-key',
    maxDevices: 5,
    tag: 'paris-dc2',
    comment: 'made over the API',
  });
  expect(res.status).toBe(201);
  const secret = (res.body as { secret: string }).secret;
  usedSecrets.push(secret);
  expect(secret).toMatch(/^agk_[A-Za-z0-9_-]{40,}$/);
  const created = res.body as { key: unknown };
  expect(created.key).toMatchObject({
    name: 'api-key',
    active: true,
    maxDevices: 5,
    devicesUsed: 0,
    tag: 'paris-dc2',
    createdBy: 'operator:boss',
  });
  expect(JSON.stringify(created.key)).not.toContain(secret);

  expect((await agentProlog('api-dev-1', secret)).status).toBe(200);

  const list = await call('get', '/api/v1/keys', adminToken);
  expect(list.status).toBe(200);
  expect(list.headers['cache-control']).toBe('no-store');
  expect(list.text).not.toContain(secret);
  expect(list.text).not.toContain(secret.slice(4, 20));
  const key = (
    list.body as { name: string; devicesUsed: number; versions: { version: number; secret: string }[] }[]
  ).find((k) => k.name === 'api-key')!;
  expect(key.devicesUsed).toBe(1);
  expect(key.versions).toHaveLength(1);
  expect(key.versions[0]!.secret).toBe(`${secret.slice(0, 10)}…`);

  const [audit] = await auditRows('key.create');
  expect(audit).toMatchObject({
    actor: 'operator:boss',
    action: 'key.create',
    targetType: 'registration_key',
    targetId: 'api-key',
    before: null,
  });
  expect(audit!.after).toMatchObject({ name: 'api-key', maxDevices: 5, tag: 'paris-dc2' });
  expect(audit!.remoteAddr).not.toBeNull();
  return secret;
}

/** Rotates "api-key" with grace 1 h, agents on both versions across the grace end: the new secret. */
async function rotateApiKey(secret: string): Promise<string> {
  const now = ctx.clock.now().getTime();
  const res = await call('post', '/api/v1/keys/api-key/rotate', adminToken).send({ grace: '1h' });
  expect(res.status).toBe(200);
  const body = res.body as {
    secret: string;
    version: number;
    previousExpiresAt: string;
    key: { versions: { version: number; expiresAt: string | null; valid: boolean }[] };
  };
  const rotated = body.secret;
  usedSecrets.push(rotated);
  expect(rotated).toMatch(/^agk_/);
  expect(rotated).not.toBe(secret);
  expect(body.version).toBe(2);
  expect(new Date(body.previousExpiresAt).getTime()).toBe(now + 3600_000);
  expect(body.key.versions.map((v) => [v.version, v.valid])).toEqual([
    [1, true],
    [2, true],
  ]);
  expect(body.key.versions[1]!.expiresAt).toBeNull();

  const list = await call('get', '/api/v1/keys', adminToken);
  expect(list.text).not.toContain(secret);
  expect(list.text).not.toContain(rotated);

  expect((await agentProlog('api-dev-2', rotated)).status).toBe(200);
  expect((await agentProlog('api-dev-1', secret)).status).toBe(200);
  ctx.clock.advance(3601_000);
  expect((await agentProlog('api-dev-1', secret)).status).toBe(401);
  expect((await agentProlog('api-dev-1', rotated)).status).toBe(200);

  const [audit] = await auditRows('key.rotate');
  expect(audit).toMatchObject({ actor: 'operator:boss', targetId: 'api-key', reason: 'grace 3600s' });
  expect((audit!.before as { versions: unknown[] }).versions).toHaveLength(1);
  expect((audit!.after as { versions: unknown[] }).versions).toHaveLength(2);
  return rotated;
}

describe('registration keys over the API', () => {
  // A gateway of each test's own; each brings "api-key" to the point it needs.
  beforeEach(setUp);
  afterEach(tearDown);

  it('POST /api/v1/keys returns the plaintext secret once; it works for agents; GET never shows it', async () => {
    await createApiKey();
  });

  it('POST /api/v1/keys/:name/rotate with {grace:"1h"}: new secret once, old one until now + 1 h, audited', async () => {
    await rotateApiKey(await createApiKey());
  });

  it('rotate: a bad grace is a 400, an unknown key a 404', async () => {
    await createApiKey();
    const bad = await call('post', '/api/v1/keys/api-key/rotate', adminToken).send({ grace: 'one week' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ status: 'error' });
    const missing = await call('post', '/api/v1/keys/no-such-key/rotate', adminToken).send({ grace: '1h' });
    expect(missing.status).toBe(404);
    expectApiError(missing, 'not_found', 'No registration key named "no-such-key"');
  });

  it('revoke and activate: agents refused, then let in again; both audited with before/after', async () => {
    const secret = await createApiKey();
    expect((await call('post', '/api/v1/keys/api-key/revoke', adminToken)).status).toBe(200);
    expect((await agentProlog('api-dev-1', secret)).status).toBe(401);
    expect((await call('post', '/api/v1/keys/api-key/activate', adminToken)).status).toBe(200);
    expect((await agentProlog('api-dev-1', secret)).status).toBe(200);
    const [revoke] = await auditRows('key.revoke');
    expect(revoke).toMatchObject({
      actor: 'operator:boss',
      targetId: 'api-key',
      before: { active: true },
      after: { active: false },
    });
    const [activate] = await auditRows('key.activate');
    expect(activate).toMatchObject({
      actor: 'operator:boss',
      targetId: 'api-key',
      before: { active: false },
      after: { active: true },
    });
  });

  it('GET /api/v1/keys/:name/usage lists devices per version', async () => {
    const secret = await createApiKey();
    const rotated = await rotateApiKey(secret);
    const res = await call('get', '/api/v1/keys/api-key/usage', adminToken);
    expect(res.status).toBe(200);
    const usage = (res.body as { usage: { version: number; deviceid: string }[] }).usage;
    expect(
      usage
        .filter((u) => u.version === 1)
        .map((u) => u.deviceid)
        .sort(),
    ).toEqual(['api-dev-1']);
    expect(
      usage
        .filter((u) => u.version === 2)
        .map((u) => u.deviceid)
        .sort(),
    ).toEqual(['api-dev-1', 'api-dev-2']);
    expect(res.text).not.toContain(secret);
    expect(res.text).not.toContain(rotated);
  });

  it('bad input is a 400 in JSON, never a 500', async () => {
    await createApiKey();
    const cases: [string, unknown][] = [
      ['name missing', {}],
      ['name with a slash', { name: 'a/b' }],
      ['negative maxDevices', { name: 'k1', maxDevices: -1 }],
      ['maxDevices not a number', { name: 'k2', maxDevices: 'lots' }],
      ['expiresAt not a date', { name: 'k3', expiresAt: 'soon' }],
      ['name not a string', { name: 42 }],
    ];
    for (const [what, b] of cases) {
      const res = await call('post', '/api/v1/keys', adminToken).send(b as object);
      expect(res.status, what).toBe(400);
      expect(res.headers['content-type'], what).toMatch(/^application\/json/);
      expect((res.body as { status: string }).status, what).toBe('error');
    }
    const dup = await call('post', '/api/v1/keys', adminToken).send({ name: 'api-key' });
    expect(dup.status).toBe(409);
  });

  it('a malformed JSON body → 400 JSON error, not 500', async () => {
    for (const path of ['/api/v1/keys', '/api/v1/keys/api-key/rotate', '/api/v1/clients', '/api/v1/operators']) {
      const res = await call('post', path, adminToken).set('Content-Type', 'application/json').send('{"name": "x",');
      expect(res.status, path).toBe(400);
      expect(res.headers['content-type'], path).toMatch(/^application\/json/);
      expectApiError(res, path, 'bad_request', 'Request body must be valid JSON');
    }
  });
});

/** POST /api/v1/clients, GET, revoke (checked as it goes). */
async function clientLifecycle(): Promise<void> {
  const res = await call('post', '/api/v1/clients', adminToken).send({ name: 'ws17', device: 'lab-ws17' });
  expect(res.status).toBe(201);
  const { clientId, clientSecret, deviceid } = res.body as {
    clientId: string;
    clientSecret: string;
    deviceid: string;
  };
  usedSecrets.push(clientSecret);
  expect(clientId).toMatch(/^agc_/);
  expect(clientSecret).toMatch(/^ags_/);
  expect(deviceid).toBe('lab-ws17');
  const list = await call('get', '/api/v1/clients', adminToken);
  expect(list.status).toBe(200);
  expect(list.text).toContain(clientId);
  expect(list.text).not.toContain(clientSecret);

  const revoke = await call('post', `/api/v1/clients/${clientId}/revoke`, adminToken);
  expect(revoke.status).toBe(200);
  expect((revoke.body as { revokedAt: string | null }).revokedAt).not.toBeNull();
  const [created] = await auditRows('client.create');
  expect(created).toMatchObject({
    actor: 'operator:boss',
    targetType: 'agent_client',
    targetId: clientId,
    before: null,
    after: { name: 'ws17', deviceid: 'lab-ws17' },
  });
  const [revoked] = await auditRows('client.revoke');
  expect(revoked).toMatchObject({ actor: 'operator:boss', targetId: clientId, before: { revokedAt: null } });
  expect(revoked!.after!.revokedAt).not.toBeNull();
  expect((await call('post', '/api/v1/clients/agc_nope/revoke', adminToken)).status).toBe(404);
}

/** POST /api/v1/operators, use, revoke (checked as it goes). */
async function operatorLifecycle(): Promise<void> {
  const res = await call('post', '/api/v1/operators', adminToken).send({ name: 'newbie', role: 'reviewer' });
  expect(res.status).toBe(201);
  const token = (res.body as { token: string }).token;
  usedSecrets.push(token);
  expect(token).toMatch(/^ago_/);
  expect((await call('get', '/api/v1/me', token)).body).toEqual({ name: 'operator:newbie', role: 'reviewer' });
  const list = await call('get', '/api/v1/operators', adminToken);
  expect(list.text).toContain('newbie');
  expect(list.text).not.toContain(token);
  expect((await call('post', '/api/v1/operators', adminToken).send({ name: 'x', role: 'root' })).status).toBe(400);

  expect((await call('post', '/api/v1/operators/newbie/revoke', adminToken)).status).toBe(200);
  expect((await call('get', '/api/v1/me', token)).status).toBe(401);
  const [created] = await auditRows('operator.create');
  expect(created).toMatchObject({
    actor: 'operator:boss',
    targetType: 'operator',
    targetId: 'newbie',
    before: null,
    after: { name: 'newbie', role: 'reviewer' },
  });
  const [revoked] = await auditRows('operator.revoke');
  expect(revoked).toMatchObject({ actor: 'operator:boss', targetId: 'newbie', before: { revokedAt: null } });
}

describe('clients and operators over the API', () => {
  beforeEach(setUp);
  afterEach(tearDown);

  it('POST /api/v1/clients returns the secret once; GET never shows it; revoke is audited', clientLifecycle);

  it('POST /api/v1/operators returns the token once; it works; revoking it stops it; both audited', operatorLifecycle);

  it('GET /api/v1/audit lists the actions, without secrets', async () => {
    // Every kind of admin action, by boss.
    await rotateApiKey(await createApiKey());
    expect((await call('post', '/api/v1/keys/api-key/revoke', adminToken)).status).toBe(200);
    expect((await call('post', '/api/v1/keys/api-key/activate', adminToken)).status).toBe(200);
    await clientLifecycle();
    await operatorLifecycle();
    const res = await call('get', '/api/v1/audit?limit=100', adminToken);
    expect(res.status).toBe(200);
    const actions = (res.body as { action: string; actor: string }[])
      .filter((e) => e.actor === 'operator:boss')
      .map((e) => e.action);
    expect(new Set(actions)).toEqual(
      new Set([
        'key.create',
        'key.rotate',
        'key.revoke',
        'key.activate',
        'client.create',
        'client.revoke',
        'operator.create',
        'operator.revoke',
      ]),
    );
    for (const s of usedSecrets) expect(res.text).not.toContain(s);
    const filtered = await call('get', '/api/v1/audit?action=key.rotate', adminToken);
    expect((filtered.body as { action: string }[]).every((e) => e.action === 'key.rotate')).toBe(true);
    expect((await call('get', '/api/v1/audit?limit=0', adminToken)).status).toBe(400);
  });

  it('every action written to the audit log so far is one GET /api/v1/meta lists', async () => {
    // Every kind of admin action this file makes, on this test's gateway.
    await rotateApiKey(await createApiKey());
    expect((await call('post', '/api/v1/keys/api-key/revoke', adminToken)).status).toBe(200);
    expect((await call('post', '/api/v1/keys/api-key/activate', adminToken)).status).toBe(200);
    await clientLifecycle();
    await operatorLifecycle();
    const { auditActions } = (await call('get', '/api/v1/meta', adminToken)).body as { auditActions: string[] };
    const written = await ctx.sql<{ action: string }[]>`select distinct action from audit_log order by action`;
    expect(written.length).toBeGreaterThanOrEqual(8);
    expect(auditActions).toEqual(expect.arrayContaining(written.map((r) => r.action)));
  });
});

describe('secrets never leak', () => {
  beforeEach(setUp);
  afterEach(tearDown);

  it('a secret chosen by the admin (BOOTSTRAP_SECRET style) is never shown whole by GET /api/v1/keys or the audit log', async () => {
    const chosen = 'glpi_agents';
    await ctx.deps.admin.createKey({ name: 'chosen', secret: chosen }, actor);
    expect((await agentProlog('chosen-dev', chosen)).status).toBe(200);
    const list = await call('get', '/api/v1/keys', adminToken);
    expect(list.text).not.toContain(chosen);
    const audit = await call('get', '/api/v1/audit', adminToken);
    expect(audit.text).not.toContain(chosen);
    const rows = await ctx.sql<{ j: string }[]>`select row_to_json(t)::text as j from audit_log t`;
    expect(rows.map((r) => r.j).join('\n')).not.toContain(chosen);
  });

  it('registrations, devices, audit_log and security_events hold no plaintext secret or token', async () => {
    // Everything that hands out a secret or a token here, with agents using the keys.
    await rotateApiKey(await createApiKey());
    await clientLifecycle();
    await operatorLifecycle();
    const texts: string[] = [];
    for (const table of ['registrations', 'devices', 'audit_log', 'security_events']) {
      const rows = await ctx.sql.unsafe<{ j: string }[]>(`select row_to_json(t)::text as j from ${table} t`);
      texts.push(...rows.map((r) => r.j));
    }
    const all = texts.join('\n');
    expect(usedSecrets.length).toBeGreaterThanOrEqual(7);
    for (const s of usedSecrets) expect(all, s).not.toContain(s);
  });
});
