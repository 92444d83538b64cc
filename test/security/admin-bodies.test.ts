/**
 * An admin's intent is never silently replaced by a default: the emergency rotation of a leaked key sent
 * as a form (`curl -d '{"grace":"0"}'` without a JSON Content-Type) is refused with 415, a body with a
 * misspelt or ill-typed field is refused with a 400 naming it, and in neither case is the old secret left
 * valid for the default grace of 7 days. Wrong operator tokens count towards the brute-force limit and
 * are recorded as security events. All against a gateway on a real loopback socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/admin-api.js';
import { openApiSchema } from '../../src/http/admin-schemas.js';
import { type Gate, securityEvents, startGate } from './support.js';

const actor = { name: 'test', remoteAddr: null };
let gate: Gate;
beforeAll(async () => {
  gate = await startGate({ RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '1000000' });
});
afterAll(async () => {
  await gate.close();
});

async function versionsOf(name: string): Promise<{ version: number; expiresAt: Date | null }[]> {
  return gate.ctx.sql`
    select v.version, v.expires_at as "expiresAt" from key_versions v join registration_keys k on k.id = v.key_id
    where k.name = ${name} order by v.version`;
}

function rotate(name: string, body: Buffer, type?: string) {
  return gate.raw({
    path: `/api/v1/keys/${name}/rotate`,
    headers: { Authorization: `Bearer ${gate.adminToken}`, ...(type ? { 'Content-Type': type } : {}) },
    body,
  });
}

describe('admin API bodies', () => {
  it.each([
    ['a form', 'application/x-www-form-urlencoded'],
    ['plain text', 'text/plain'],
    ['no type at all', undefined],
  ])('a rotation sent as %s is refused with 415 and rotates nothing', async (_what, type) => {
    const name = `leaked-${type?.length ?? 0}`;
    await gate.ctx.deps.admin.createKey({ name }, actor);
    const before = await versionsOf(name);
    const res = await rotate(name, Buffer.from('{"grace":"0"}'), type);
    expect(res.status).toBe(415);
    const json = JSON.parse(res.body.toString()) as Record<string, unknown>;
    expect(json).toMatchObject({ status: 'error', code: 'unsupported_media_type' });
    expect(json.requestId).toBe(res.headers.find(([k]) => k.toLowerCase() === 'x-request-id')![1]);
    expect(await versionsOf(name)).toEqual(before);
  });

  it.each([
    ['a misspelt field', { grase: '0' }, /unknown field "grase"/],
    ['a number instead of a duration', { grace: 0 }, /grace: must be a string/],
    ['a malformed duration', { grace: 'now' }, /grace: must be a duration/],
  ])('a rotation with %s is a 400 naming the field, and rotates nothing', async (_what, body, message) => {
    const name = `typo-${Object.keys(body)[0]}-${typeof Object.values(body)[0]}-${String(Object.values(body)[0])}`;
    await gate.ctx.deps.admin.createKey({ name }, actor);
    const before = await versionsOf(name);
    const res = await gate.api('POST', `/api/v1/keys/${name}/rotate`, body, 'admin');
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ status: 'error', code: 'bad_request', message: expect.stringMatching(message) });
    expect(await versionsOf(name)).toEqual(before);
  });

  it('every problem of a body is named at once', async () => {
    const res = await gate.api('POST', '/api/v1/operators', { name: 7, role: 'root', colour: 'red' }, 'admin');
    expect(res.status).toBe(400);
    expect(res.json.message).toMatch(/name: must be a string/);
    expect(res.json.message).toMatch(/role: /);
    expect(res.json.message).toMatch(/unknown field "colour"/);
    const [count] = await gate.ctx.sql<{ n: number }[]>`select count(*)::int as n from operators`;
    expect(count!.n).toBe(2); // the reviewer and the admin of the set-up only
  });

  it('a body that is not a JSON object is a 400, and a route without a body refuses fields', async () => {
    await gate.ctx.deps.admin.createKey({ name: 'array-body' }, actor);
    const asArray = await gate.api('POST', '/api/v1/keys/array-body/rotate', ['0'], 'admin');
    expect(asArray.status).toBe(400);
    expect(asArray.json.message).toMatch(/must be a JSON object/);
    const revoke = await gate.api('POST', '/api/v1/keys/array-body/revoke', { now: true }, 'admin');
    expect(revoke.status).toBe(400);
    expect(revoke.json.message).toMatch(/unknown field "now"/);
    const [key] = await gate.ctx.sql<
      { active: boolean }[]
    >`select active from registration_keys where name = 'array-body'`;
    expect(key!.active).toBe(true);
    expect(await versionsOf('array-body')).toHaveLength(1);
  });

  it('the same rotation as JSON cuts the old version off at once', async () => {
    await gate.ctx.deps.admin.createKey({ name: 'leaked-json' }, actor);
    const res = await rotate('leaked-json', Buffer.from('{"grace":"0"}'), 'application/json');
    expect(res.status).toBe(200);
    const [old] = await versionsOf('leaked-json');
    expect(old!.expiresAt!.getTime()).toBeLessThanOrEqual(gate.ctx.clock.now().getTime());
  });

  it('a POST without a body needs no Content-Type', async () => {
    await gate.ctx.deps.admin.createKey({ name: 'to-revoke' }, actor);
    const res = await gate.raw({
      path: '/api/v1/keys/to-revoke/revoke',
      headers: { Authorization: `Bearer ${gate.adminToken}` },
    });
    expect(res.status).toBe(200);
  });

  it('the OpenAPI document describes each body with the schema that validates it', async () => {
    const res = await gate.raw({ method: 'GET', path: '/api/openapi.json' });
    const doc = JSON.parse(res.body.toString()) as {
      paths: Record<string, Record<string, { requestBody?: { required: boolean; content: Record<string, unknown> } }>>;
    };
    const posts = ROUTES.filter((r) => r.method === 'post');
    expect(posts.length).toBeGreaterThan(10);
    for (const r of posts) {
      expect(r.body, `${r.path} has a body schema`).toBeDefined();
      const op = doc.paths[r.path.replace(/:(\w+)/g, '{$1}')]!.post!;
      expect(op.requestBody?.content['application/json'], r.path).toEqual({ schema: openApiSchema(r.body!) });
    }
    const rotateBody = doc.paths['/api/v1/keys/{name}/rotate']!.post!.requestBody!;
    expect(rotateBody.content['application/json']).toMatchObject({
      schema: { type: 'object', additionalProperties: false, properties: { grace: { type: 'string' } } },
    });
    expect(doc.paths['/api/v1/operators']!.post!.requestBody!.required).toBe(true);
  });
});

describe('operator tokens', () => {
  it('a wrong token is a 401 and a security event that never holds the token', async () => {
    const guess = 'ago_guessed-token-value-that-names-nobody-x1';
    const res = await gate.raw({ method: 'GET', path: '/api/v1/keys', headers: { Authorization: `Bearer ${guess}` } });
    expect(res.status).toBe(401);
    const events = (await securityEvents(gate)).filter((e) => e.kind === 'invalid_operator_token');
    expect(events).toEqual([
      expect.objectContaining({ details: expect.objectContaining({ path: '/api/v1/keys', method: 'GET' }) }),
    ]);
    expect(JSON.stringify(events)).not.toContain(guess);
    // A missing token is not a guess: no event.
    expect((await gate.raw({ method: 'GET', path: '/api/v1/keys' })).status).toBe(401);
    expect((await securityEvents(gate)).filter((e) => e.kind === 'invalid_operator_token')).toHaveLength(1);
  });
});

describe('operator token brute force', () => {
  let bf: Gate;
  beforeAll(async () => {
    bf = await startGate({ RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '3' });
  });
  afterAll(async () => {
    await bf.close();
  });

  it('counts wrong tokens towards RATE_LIMIT_AUTH_FAILURES_PER_15MIN: then even the right token gets 429', async () => {
    const get = (token: string) =>
      bf.raw({ method: 'GET', path: '/api/v1/me', headers: { Authorization: `Bearer ${token}` } });
    expect((await get(bf.adminToken)).status).toBe(200);
    for (let i = 0; i < 3; i++)
      expect((await get(`ago_wrong-guess-number-${i}-aaaaaaaaaaaaaaaaaaaa`)).status).toBe(401);
    const blocked = await get(bf.adminToken);
    expect(blocked.status).toBe(429);
    expect(JSON.parse(blocked.body.toString())).toMatchObject({ status: 'error', code: 'rate_limited' });
    expect(blocked.headers.find(([k]) => k.toLowerCase() === 'retry-after')?.[1]).toBe('900');
    // Nothing a blocked caller sends is acted on.
    await bf.ctx.deps.admin.createKey({ name: 'kept' }, actor);
    const rotated = await bf.raw({
      path: '/api/v1/keys/kept/rotate',
      headers: { Authorization: `Bearer ${bf.adminToken}`, 'Content-Type': 'application/json' },
      body: Buffer.from('{"grace":"0"}'),
    });
    expect(rotated.status).toBe(429);
    const versions = await bf.ctx.sql`
      select 1 from key_versions v join registration_keys k on k.id = v.key_id where k.name = 'kept'`;
    expect(versions).toHaveLength(1);
    expect((await securityEvents(bf)).filter((e) => e.kind === 'invalid_operator_token')).toHaveLength(3);
  });
});
