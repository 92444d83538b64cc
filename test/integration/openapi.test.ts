/**
 * /api/openapi.json: a valid OpenAPI 3.1 document (checked against the official schemas), describing every
 * route of ROUTES with its path and query parameters, body and answers; and the answers of real calls on a
 * seeded gateway (every GET route, every POST route) validate against the schemas the document declares for
 * them, errors included. The query parameters are checked by the same schemas (a 400 naming each bad one).
 */
import zlib from 'node:zlib';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/admin-api.js';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { FakeGlpi } from '../helpers/fake-glpi.js';
import { loadScenario } from '../helpers/fixtures.js';

const actor = { name: 'test:setup', remoteAddr: null };

interface Operation {
  operationId: string;
  'x-role': string;
  parameters: { name: string; in: string; required: boolean; schema: Record<string, unknown> }[];
  requestBody?: { required: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<
    string,
    { $ref?: string; headers?: Record<string, unknown>; content?: Record<string, { schema: unknown }> }
  >;
}
interface Doc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
  security: unknown[];
}

const glpiInventory = loadScenario('glpi-plain').find((r) => r.classified.kind === 'inventory')!;
type Msg = { deviceid: string; content: Record<string, unknown> & { softwares: Record<string, unknown>[] } };
const glpiMessage = (): Msg => JSON.parse(glpiInventory.decoded_text) as Msg;

const glpi = new FakeGlpi();
let ctx: TestContext;
let doc: Doc;
let adminToken = '';
let ajv: Ajv2020;

const openApiPath = (p: string) => p.replace(/:(\w+)/g, '{$1}');
const operation = (method: string, path: string): Operation => doc.paths[openApiPath(path)]![method]!;

/** Validates a body against the schema the document declares for this route and status. */
function expectDeclared(method: string, path: string, status: number, body: unknown): void {
  const op = operation(method, path);
  let declared = op.responses[String(status)];
  expect(declared, `${method} ${path} declares ${status}`).toBeDefined();
  if (declared!.$ref)
    declared = (doc as unknown as { components: { responses: Record<string, typeof declared> } }).components.responses[
      declared!.$ref.split('/').pop()!
    ];
  const schema = declared!.content!['application/json']!.schema;
  // The document's components travel with the schema, so its $refs (#/components/schemas/…) resolve.
  const validate = ajv.compile({ ...(schema as object), components: doc.components });
  const ok = validate(body);
  expect(ok ? [] : validate.errors, `${method} ${path} → ${status}: ${JSON.stringify(body).slice(0, 300)}`).toEqual([]);
}

/** Routes whose answers were checked against the document (success, and errors). */
const checked = new Map<string, Set<number>>();

/** Calls a route as an admin, and checks the answer (any status) against the document. */
async function call(method: 'get' | 'post', route: string, concrete: string, body?: object) {
  const r = request(ctx.app)[method](concrete).set('Authorization', `Bearer ${adminToken}`);
  const res = body === undefined ? await r : await r.send(body);
  expectDeclared(method, route, res.status, res.body);
  const key = `${method} ${route}`;
  if (!checked.has(key)) checked.set(key, new Set());
  checked.get(key)!.add(res.status);
  return res;
}

function postJson(msg: Msg) {
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'GLPI-Agent_v1.12-dev' },
    body: zlib.deflateSync(JSON.stringify(msg)),
  });
}

beforeAll(async () => {
  await glpi.up();
  ctx = await createTestContext({
    AGENT_AUTH: 'off',
    UPSTREAM_URL: glpi.url,
    UPSTREAM_WORKERS: '0',
    UPSTREAM_RATE: '0',
  });
  adminToken = (await ctx.deps.admin.createOperator({ name: 'boss', role: 'admin' }, actor)).token;
  const res = await request(ctx.app).get('/api/openapi.json');
  expect(res.status).toBe(200);
  doc = res.body as Doc;
  ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
});
afterAll(async () => {
  await ctx?.close();
  await glpi.down();
});

describe('the document', () => {
  it('is valid OpenAPI 3.1 (the official schemas)', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    // And a document that is not: the validator does refuse.
    const broken = structuredClone(doc) as unknown as Record<string, Record<string, unknown>>;
    (broken.paths!['/api/v1/devices'] as Record<string, Record<string, unknown>>).get!.parameters = [{ in: 'query' }];
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('describes every route of the route table with its parameters, body, answers and role', () => {
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    expect(documented.sort()).toEqual(ROUTES.map((r) => `${r.method} ${openApiPath(r.path)}`).sort());
    const ids = new Set<string>();
    for (const r of ROUTES) {
      const where = `${r.method} ${r.path}`;
      const op = operation(r.method, r.path);
      expect(op['x-role'], where).toBe(r.role);
      ids.add(op.operationId);
      const pathNames = [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]);
      expect(
        op.parameters.filter((p) => p.in === 'path').map((p) => p.name),
        where,
      ).toEqual(pathNames);
      expect(
        op.parameters.filter((p) => p.in === 'path').every((p) => p.required),
        where,
      ).toBe(true);
      // GET routes read their query through a schema, POST routes their body: the document lists exactly those.
      if (r.method === 'get') {
        expect(r.query, where).toBeDefined();
        expect(
          op.parameters.filter((p) => p.in === 'query').map((p) => p.name),
          where,
        ).toEqual(Object.keys(r.query!.shape));
        expect(op.requestBody, where).toBeUndefined();
      } else {
        expect(r.body, where).toBeDefined();
        expect(op.requestBody?.content['application/json']?.schema, where).toBeDefined();
      }
      const ok = op.responses[String(r.status ?? 200)];
      expect(ok?.content?.['application/json']?.schema, where).toBeDefined();
      for (const s of ['400', '401', '403', '404']) expect(op.responses[s]?.$ref, `${where} ${s}`).toBeDefined();
    }
    expect(ids.size).toBe(ROUTES.length);
    expect(doc.components.securitySchemes).toEqual({
      operatorToken: expect.objectContaining({ type: 'http', scheme: 'bearer' }) as unknown,
    });
    expect(doc.security).toEqual([{ operatorToken: [] }]);
  });

  it('gives query parameters their types, enums and defaults, and the paging header', () => {
    const params = Object.fromEntries(operation('get', '/api/v1/devices').parameters.map((p) => [p.name, p]));
    expect(params.state!.schema).toEqual({ type: 'string', enum: ['quarantined', 'approved', 'rejected', 'conflict'] });
    expect(params.limit!.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, default: 100 });
    expect(params.limit!.required).toBe(false);
    expect(params.offset!.schema).toMatchObject({ type: 'integer', minimum: 0, default: 0 });
    expect(params.claimedTagMismatch!.schema).toEqual({ type: 'string', enum: ['true', 'false'] });
    expect(operation('get', '/api/v1/registrations').parameters.find((p) => p.name === 'limit')!.schema).toMatchObject({
      default: 50,
    });
    expect(operation('get', '/api/v1/devices').responses['200']!.headers).toHaveProperty('X-Next-Cursor');
    expect(operation('get', '/api/v1/audit').parameters.find((p) => p.name === 'action')!.schema).toMatchObject({
      enum: expect.arrayContaining(['key.create', 'device.approve']) as unknown,
    });
    expect(operation('post', '/api/v1/allowlists/:name/:kind').parameters[1]!.schema).toEqual({
      type: 'string',
      enum: ['serial', 'uuid', 'mac'],
    });
  });
});

describe('real answers match the declared schemas', () => {
  let outboxId = 0;
  let ruleId = 0;
  let clientId = '';

  beforeAll(async () => {
    // Devices: a real GLPI Agent's inventory twice with a change, a look-alike, a FusionInventory-like one.
    const msg = { ...glpiMessage(), deviceid: 'oa-dev-1' };
    expect((await postJson(msg)).status).toBe(200);
    const second = structuredClone(msg);
    second.content.softwares = [...second.content.softwares, { name: 'oa-new-tool', version: '1.0', publisher: 'x' }];
    expect((await postJson(second)).status).toBe(200);
    expect((await postJson({ ...glpiMessage(), deviceid: 'oa-dev-2' })).status).toBe(200);
    // A wrong operator token: a security event.
    expect((await request(ctx.app).get('/api/v1/me').set('Authorization', 'Bearer ago_wrong')).status).toBe(401);
  });

  it('POST routes: keys, clients, operators, policies, allowlists, decisions, outbox', async () => {
    expect((await call('post', '/api/v1/keys', '/api/v1/keys', { name: 'oa-key', tag: 'paris' })).status).toBe(201);
    expect(
      (await call('post', '/api/v1/keys/:name/rotate', '/api/v1/keys/oa-key/rotate', { grace: '1d' })).status,
    ).toBe(200);
    for (const what of ['freeze', 'unfreeze', 'revoke', 'activate'])
      expect((await call('post', `/api/v1/keys/:name/${what}`, `/api/v1/keys/oa-key/${what}`, {})).status).toBe(200);
    const client = await call('post', '/api/v1/clients', '/api/v1/clients', { name: 'oa-client' });
    expect(client.status).toBe(201);
    clientId = (client.body as { clientId: string }).clientId;
    expect(
      (await call('post', '/api/v1/clients/:clientId/revoke', `/api/v1/clients/${clientId}/revoke`, {})).status,
    ).toBe(200);
    expect(
      (await call('post', '/api/v1/operators', '/api/v1/operators', { name: 'oa-op', role: 'reviewer' })).status,
    ).toBe(201);
    expect((await call('post', '/api/v1/operators/:name/revoke', '/api/v1/operators/oa-op/revoke', {})).status).toBe(
      200,
    );
    const rule = await call('post', '/api/v1/policies', '/api/v1/policies', {
      action: 'quarantine',
      match: { tag: 'paris' },
      comment: 'openapi test',
    });
    expect(rule.status).toBe(201);
    expect((await call('post', '/api/v1/policies/test', '/api/v1/policies/test', {})).status).toBe(200);
    expect(
      (await call('post', '/api/v1/allowlists/:name/:kind', '/api/v1/allowlists/oa-list/serial', { csv: 'SN-OA-1\n' }))
        .status,
    ).toBe(200);
    ruleId = (await ctx.deps.policies.list()).rules[0]!.id;
    expect((await call('post', '/api/v1/policies/:id/remove', `/api/v1/policies/${ruleId}/remove`, {})).status).toBe(
      200,
    );

    // Decisions: by ids, a filter's dry run, undo, rebind.
    expect(
      (await call('post', '/api/v1/devices/approve', '/api/v1/devices/approve', { ids: ['oa-dev-1'] })).status,
    ).toBe(200);
    const dry = await call('post', '/api/v1/devices/reject', '/api/v1/devices/reject', { filter: 'state=quarantined' });
    expect(dry.body).toMatchObject({ dryRun: true, count: 1 });
    expect((await call('post', '/api/v1/devices/reject', '/api/v1/devices/reject', { ids: ['oa-dev-2'] })).status).toBe(
      200,
    );
    expect((await call('post', '/api/v1/devices/:id/undo', '/api/v1/devices/oa-dev-2/undo', {})).status).toBe(200);
    expect(
      (await call('post', '/api/v1/devices/:id/rebind', '/api/v1/devices/oa-dev-2/rebind', { key: 'oa-key' })).status,
    ).toBe(200);

    // The outbox: the approved device's inventories wait there (no worker runs here).
    const items = await ctx.deps.forwarder.list({});
    expect(items.length).toBeGreaterThan(0);
    outboxId = items[0]!.id;
    expect((await call('post', '/api/v1/outbox/:id/retry', `/api/v1/outbox/${outboxId}/retry`, {})).status).toBe(200);
    expect((await call('post', '/api/v1/outbox/:id/drop', `/api/v1/outbox/${outboxId}/drop`, {})).status).toBe(200);

    // Client certificates: one never seen is a 404 (the declared error format); one seen (as a TLS handshake
    // with TLS_CLIENT_CA records it) is listed and revoked.
    const unseen = await call(
      'post',
      '/api/v1/certs/:fingerprint/revoke',
      `/api/v1/certs/${'ab'.repeat(32)}/revoke`,
      {},
    );
    expect(unseen.status).toBe(404);
    await ctx.sql`insert into client_certificates (fingerprint, subject, issuer, serial, not_before, not_after, first_seen, last_seen)
      values (${'cd'.repeat(32)}, 'CN=oa-agent', 'CN=oa-ca', '01', now(), now() + interval '1 year', now(), now())`;
    expect(((await call('get', '/api/v1/certs', '/api/v1/certs')).body as unknown[]).length).toBe(1);
    const cert = await call('post', '/api/v1/certs/:fingerprint/revoke', `/api/v1/certs/${'cd'.repeat(32)}/revoke`, {});
    expect(cert.status).toBe(200);
    expect(cert.body).toMatchObject({ fingerprint: 'cd'.repeat(32), revokedBy: 'operator:boss' });
  });

  it('every GET route answers 200 with a body its schema accepts', async () => {
    const concrete: Record<string, string> = { id: 'oa-dev-1', name: 'oa-key' };
    for (const r of ROUTES.filter((x) => x.method === 'get')) {
      const path = r.path.replace(/:(\w+)/g, (_m, n: string) => encodeURIComponent(concrete[n]!));
      const res = await call('get', r.path, path);
      expect(res.status, path).toBe(200);
    }
    const devicesSeen = (await call('get', '/api/v1/devices', '/api/v1/devices')).body as Record<string, unknown>[];
    // The check itself refuses what does not match (a device without its deviceid, a time that is not one).
    expect(() =>
      expectDeclared('get', '/api/v1/devices', 200, [{ ...devicesSeen[0]!, deviceid: undefined }]),
    ).toThrow();
    expect(() =>
      expectDeclared('get', '/api/v1/devices', 200, [{ ...devicesSeen[0]!, lastSeen: 'yesterday' }]),
    ).toThrow();
    // The lists hold what was seeded (an empty list would validate against anything).
    const devices = (await call('get', '/api/v1/devices', '/api/v1/devices')).body as { duplicates: unknown[] }[];
    expect(devices).toHaveLength(2);
    expect(devices[0]!.duplicates.length).toBeGreaterThan(0);
    const changes = (await call('get', '/api/v1/devices/:id/changes', '/api/v1/devices/oa-dev-1/changes')).body as {
      changes: { software: { added: unknown[] } } | null;
    };
    expect(changes.changes?.software.added.length).toBeGreaterThan(0);
    for (const p of [
      '/api/v1/audit',
      '/api/v1/security-events',
      '/api/v1/registrations',
      '/api/v1/keys',
      '/api/v1/operators',
    ])
      expect(((await call('get', p, p)).body as unknown[]).length, p).toBeGreaterThan(0);
    const paged = await call('get', '/api/v1/devices', '/api/v1/devices?limit=1');
    expect(paged.headers['x-next-cursor']).toEqual(expect.any(String));
    const next = await call(
      'get',
      '/api/v1/devices',
      `/api/v1/devices?limit=1&cursor=${paged.headers['x-next-cursor']}`,
    );
    expect(next.status).toBe(200);
  });

  it('every route of the table had its success answer checked', () => {
    const missing = ROUTES.filter((r) => !checked.get(`${r.method} ${r.path}`)?.has(r.status ?? 200)).map(
      (r) => `${r.method} ${r.path}`,
    );
    expect(missing).toEqual([]);
  });
});

describe('query parameters are checked by the schemas the document shows', () => {
  it('a 400 names each invalid or unknown parameter, in the declared error format', async () => {
    const res = await call('get', '/api/v1/devices', '/api/v1/devices?limit=0&state=lost&limt=5&firstSeenFrom=soon');
    expect(res.status).toBe(400);
    const message = (res.body as { message: string }).message;
    expect(message).toMatch(/^Invalid query: /);
    expect(message).toContain('limit: must be a whole number from 1 to 1000');
    expect(message).toMatch(/state: .*quarantined/);
    expect(message).toContain('unknown parameter "limt"');
    expect(message).toContain('firstSeenFrom: must be an ISO 8601 date or time');
  });

  it.each([
    ['/api/v1/devices?claimedTagMismatch=yes', 'claimedTagMismatch'],
    ['/api/v1/devices?subnet=10.0.0.0', 'subnet: must be a CIDR'],
    ['/api/v1/devices?offset=-1', 'offset: must be a whole number ≥ 0'],
    ['/api/v1/devices?limit=1.5', 'limit: must be a whole number'],
    ['/api/v1/devices?q=a&q=b', 'q: '],
    ['/api/v1/registrations?limit=1001', 'limit: must be a whole number from 1 to 1000'],
    ['/api/v1/audit?action=key.steal', 'action: '],
    ['/api/v1/audit?before=abc', 'before: must be an entry id'],
    ['/api/v1/security-events?type=nope', 'type: '],
    ['/api/v1/security-events?address=host.example', 'address: must be an IP address'],
    ['/api/v1/security-events?until=tomorrow', 'until: must be an ISO 8601 date or time'],
    ['/api/v1/outbox?state=lost', 'state: '],
    ['/api/v1/keys?limit=5', 'unknown parameter "limit"'],
    ['/api/v1/keys/oa-key/usage?cursor=' + 'x'.repeat(300), 'cursor: '],
  ])('%s → 400 naming it', async (path, expected) => {
    const route = ROUTES.find(
      (r) => r.method === 'get' && new RegExp(`^${r.path.replace(/:\w+/g, '[^/]+')}$`).test(path.split('?')[0]!),
    )!;
    const res = await call('get', route.path, path);
    expect(res.status).toBe(400);
    expect((res.body as { message: string }).message).toContain(expected);
  });

  it('valid values are read as the schema says (dates, flags, defaults)', async () => {
    const all = await call(
      'get',
      '/api/v1/devices',
      '/api/v1/devices?firstSeenFrom=2000-01-01&claimedTagMismatch=false',
    );
    expect((all.body as unknown[]).length).toBe(2);
    const none = await call('get', '/api/v1/devices', '/api/v1/devices?firstSeenFrom=2999-01-01T00:00:00Z');
    expect(none.body).toEqual([]);
    const one = await call('get', '/api/v1/registrations', '/api/v1/registrations?limit=1&deviceid=oa-dev-1');
    expect(one.body).toHaveLength(1);
    // An empty value is the parameter left out (an HTML form sends every field).
    const blank = await call('get', '/api/v1/devices', '/api/v1/devices?state=&firstSeenFrom=&limit=&q=');
    expect((blank.body as unknown[]).length).toBe(2);
  });

  it('a bad path parameter is a 400 naming it', async () => {
    const res = await call('post', '/api/v1/outbox/:id/retry', '/api/v1/outbox/abc/retry', {});
    expect(res.status).toBe(400);
    expect((res.body as { message: string }).message).toBe('Invalid path: id: must be an outbox item id');
    const kind = await call('post', '/api/v1/allowlists/:name/:kind', '/api/v1/allowlists/x/imei', { csv: 'a' });
    expect(kind.status).toBe(400);
    expect((kind.body as { message: string }).message).toMatch(/^Invalid path: kind: /);
  });
});
