/**
 * OAuth2 client credentials as the GLPI Agent does them (../shared/PROTOCOL.md §3.9): the token endpoint on
 * every path the agent derives, bearer tokens on the agent endpoint until TOKEN_TTL or revocation, client
 * credentials over Basic, and clients bound to one device.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';
import { comparable, listenLoopback, rawSend as sendRaw } from '../helpers/raw-http.js';

const actor = { name: 'test:setup', remoteAddr: null };
const TTL = 900; // TOKEN_TTL=15m

let ctx: TestContext;
let server: http.Server;
let port: number;
let client: { clientId: string; clientSecret: string };

beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0', TOKEN_TTL: '15m' });
  client = await ctx.deps.admin.createClient({ name: 'oauth-1' }, actor);
  server = http.createServer(ctx.app);
  port = await listenLoopback(server);
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await ctx.close();
});

const rawSend = (r: Parameters<typeof sendRaw>[1]) => sendRaw(port, r);

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

const prologText = textOf('fusioninventory-plain', '0001-post-prolog.json');
function xmlProlog(deviceid: string): string {
  return prologText.replace(/<DEVICEID>[^<]*<\/DEVICEID>/, `<DEVICEID>${deviceid}</DEVICEID>`);
}
function jsonContact(deviceid: string): string {
  return JSON.stringify({
    action: 'contact',
    deviceid,
    'enabled-tasks': ['inventory'],
    'installed-tasks': ['inventory'],
    name: 'GLPI-Agent',
    version: '1.12',
  });
}

/** A GLPI Agent CONTACT, zlib as the agent sends it. */
function contactRequest(deviceid: string, authorization?: string, path = '/') {
  return {
    path,
    headers: {
      'Content-Type': 'application/x-compress-zlib',
      'User-Agent': 'GLPI-Agent_v1.12',
      'GLPI-Agent-ID': `agent-${deviceid}`,
      ...(authorization ? { Authorization: authorization } : {}),
    },
    body: zlib.deflateSync(jsonContact(deviceid)),
  };
}

async function token(id = client.clientId, secret = client.clientSecret, path = '/api.php/token'): Promise<string> {
  const res = await request(ctx.app)
    .post(path)
    .set('Content-Type', 'application/json')
    .send(
      JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret, scope: 'inventory' }),
    );
  expect(res.status).toBe(200);
  return (res.body as { access_token: string }).access_token;
}

describe('token endpoint', () => {
  it.each([
    '/api.php/token',
    '/front/inventory.php/api.php/token',
    '/glpi/api.php/token',
    '/glpi/api.php/token?debug=1',
  ])('compact JSON on %s → Bearer token', async (path) => {
    const res = await request(ctx.app)
      .post(path)
      .set('Content-Type', 'application/json')
      .send(
        JSON.stringify({
          grant_type: 'client_credentials',
          client_id: client.clientId,
          client_secret: client.clientSecret,
          scope: 'inventory',
        }),
      )
      .buffer(true)
      .parse((r, cb) => {
        let s = '';
        r.on('data', (c: Buffer) => (s += c.toString('utf8')));
        r.on('end', () => cb(null, s));
      });
    expect(res.status).toBe(200);
    // The agent needs a Content-Type containing application/json (a charset parameter is fine).
    expect(res.headers['content-type']).toMatch(/^application\/json(;|$)/);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers['cache-control']).toBe('no-store');
    const text = res.body as string;
    // The agent reads expires_in as digits only.
    expect(text).toMatch(new RegExp(`"expires_in":${TTL}[,}]`));
    const body = JSON.parse(text) as { token_type: string; access_token: string; expires_in: number };
    expect(body.token_type).toBe('Bearer');
    expect(typeof body.access_token).toBe('string');
    expect(body.access_token.length).toBeGreaterThan(16);
    expect(body.expires_in).toBe(TTL);
  });

  it('form-encoded body works too', async () => {
    const res = await request(ctx.app).post('/api.php/token').type('form').send({
      grant_type: 'client_credentials',
      client_id: client.clientId,
      client_secret: client.clientSecret,
      scope: 'inventory',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: TTL });
    expect((res.body as { access_token: string }).access_token).not.toBe('');
  });

  it('every grant is a new token', async () => {
    expect(await token()).not.toBe(await token());
  });

  it('wrong secret, unknown client and revoked client all get the same 401 invalid_client', async () => {
    const revoked = await ctx.deps.admin.createClient({ name: 'revoked-oauth' }, actor);
    await ctx.deps.admin.revokeClient(revoked.clientId, actor);
    const attempts = [
      { client_id: client.clientId, client_secret: 'ags_wrong' },
      { client_id: 'agc_00000000000000000000', client_secret: client.clientSecret },
      { client_id: revoked.clientId, client_secret: revoked.clientSecret },
      { client_id: client.clientId },
    ];
    const answers = [];
    for (const a of attempts) {
      const res = await request(ctx.app)
        .post('/glpi/api.php/token')
        .set('Content-Type', 'application/json')
        .send(JSON.stringify({ grant_type: 'client_credentials', scope: 'inventory', ...a }));
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      answers.push(res.text);
    }
    expect(JSON.parse(answers[0]!)).toMatchObject({ error: 'invalid_client' });
    expect(new Set(answers).size).toBe(1);
  });

  it('another grant type → 400 unsupported_grant_type', async () => {
    for (const grant of ['password', 'authorization_code', undefined]) {
      const res = await request(ctx.app)
        .post('/api.php/token')
        .set('Content-Type', 'application/json')
        .send(
          JSON.stringify({
            grant_type: grant,
            client_id: client.clientId,
            client_secret: client.clientSecret,
            scope: 'inventory',
          }),
        );
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'unsupported_grant_type' });
    }
  });

  it('a scope without inventory → 400 invalid_scope; a broken body → 400 invalid_request; GET → 405', async () => {
    const scope = await request(ctx.app)
      .post('/api.php/token')
      .set('Content-Type', 'application/json')
      .send(
        JSON.stringify({
          grant_type: 'client_credentials',
          client_id: client.clientId,
          client_secret: client.clientSecret,
          scope: 'admin',
        }),
      );
    expect(scope.status).toBe(400);
    expect(scope.body).toMatchObject({ error: 'invalid_scope' });
    const broken = await request(ctx.app)
      .post('/api.php/token')
      .set('Content-Type', 'application/json')
      .send('{"grant_type":');
    expect(broken.status).toBe(400);
    expect(broken.body).toMatchObject({ error: 'invalid_request' });
    const get = await request(ctx.app).get('/api.php/token');
    expect(get.status).toBe(405);
  });
});

describe('bearer tokens on the agent endpoint', () => {
  it.each(['/', '/front/inventory.php', '/plugins/glpiinventory/'])(
    'a fresh token authenticates a CONTACT on %s and is recorded as the client',
    async (path) => {
      const t = await token();
      const deviceid = `bearer-${path.replace(/\W/g, '') || 'root'}`;
      const res = await send(ctx.app, { method: 'POST', ...contactRequest(deviceid, `Bearer ${t}`, path) });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toMatchObject({ status: 'ok' });
      const [reg] = await ctx.sql<{ authType: string; clientPk: number; keyId: number | null }[]>`
      select auth_type as "authType", client_pk as "clientPk", key_id as "keyId" from registrations where deviceid = ${deviceid}`;
      const [c] = await ctx.sql<{ id: number }[]>`select id from agent_clients where client_id = ${client.clientId}`;
      expect(reg!.authType).toBe('client:bearer');
      expect(Number(reg!.clientPk)).toBe(Number(c!.id));
      expect(reg!.keyId).toBeNull();
    },
  );

  it('the flow of §3.9 on /glpi/: 401, token at /glpi/api.php/token, Bearer replay → 200', async () => {
    const first = await send(ctx.app, { method: 'POST', ...contactRequest('glpi-prefix-1', undefined, '/glpi/') });
    expect(first.status).toBe(401);
    const t = await token(client.clientId, client.clientSecret, '/glpi/api.php/token');
    const replayed = await send(ctx.app, {
      method: 'POST',
      ...contactRequest('glpi-prefix-1', `Bearer ${t}`, '/glpi/'),
    });
    expect(replayed.status).toBe(200);
  });

  it('works until TOKEN_TTL, then gets the no-credential 401', async () => {
    const t = await token();
    const req = contactRequest('ttl-dev', `Bearer ${t}`);
    const reference = await rawSend({ headers: contactRequest('ttl-dev').headers, body: req.body });
    ctx.clock.advance((TTL - 1) * 1000);
    expect((await rawSend(req)).status).toBe(200);
    ctx.clock.advance(2000);
    const expired = await rawSend(req);
    expect(comparable(expired)).toEqual(comparable(reference));
  });

  it('revoking the client stops its token at once', async () => {
    const c = await ctx.deps.admin.createClient({ name: 'short-lived' }, actor);
    const t = await token(c.clientId, c.clientSecret);
    expect((await rawSend(contactRequest('revoke-dev', `Bearer ${t}`))).status).toBe(200);
    await ctx.deps.admin.revokeClient(c.clientId, actor);
    const after = await rawSend(contactRequest('revoke-dev', `Bearer ${t}`));
    const reference = await rawSend(contactRequest('revoke-dev'));
    expect(comparable(after)).toEqual(comparable(reference));
    // …and the Basic form of the same client as well, and no new token.
    expect((await rawSend(contactRequest('revoke-dev', basic(c.clientId, c.clientSecret)))).status).toBe(401);
    const grant = await request(ctx.app)
      .post('/api.php/token')
      .set('Content-Type', 'application/json')
      .send(
        JSON.stringify({
          grant_type: 'client_credentials',
          client_id: c.clientId,
          client_secret: c.clientSecret,
          scope: 'inventory',
        }),
      );
    expect(grant.status).toBe(401);
  });

  it('the client id and secret also work as Basic user and password, for both agents', async () => {
    const auth = basic(client.clientId, client.clientSecret);
    const xml = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: auth },
      body: zlib.deflateSync(xmlProlog('basic-client-fi')),
    });
    expect(xml.status).toBe(200);
    expect(xml.text).toContain('<RESPONSE>SEND</RESPONSE>');
    const json = await send(ctx.app, { method: 'POST', ...contactRequest('basic-client-ga', auth) });
    expect(json.status).toBe(200);
    const regs = await ctx.sql<{ authType: string; authUser: string }[]>`
      select auth_type as "authType", auth_user as "authUser" from registrations where deviceid in ('basic-client-fi', 'basic-client-ga') order by id`;
    expect(regs).toEqual([
      { authType: 'client:basic', authUser: client.clientId },
      { authType: 'client:basic', authUser: client.clientId },
    ]);
    // A token is not a password, and a client secret is not a token.
    const t = await token();
    expect((await rawSend(contactRequest('basic-client-ga', basic(client.clientId, t)))).status).toBe(401);
    expect((await rawSend(contactRequest('basic-client-ga', `Bearer ${client.clientSecret}`))).status).toBe(401);
  });
});

describe('a client bound to one device', () => {
  let bound: { clientId: string; clientSecret: string };
  let bearer = '';
  beforeAll(async () => {
    bound = await ctx.deps.admin.createClient({ name: 'bound-a', deviceid: 'dev-A' }, actor);
    bearer = await token(bound.clientId, bound.clientSecret);
  });

  async function mismatchEvents() {
    return ctx.sql<{ kind: string; deviceid: string; details: { clientId: string; boundDeviceid: string } }[]>`
      select kind, deviceid, details from security_events where kind = 'client_device_mismatch' order by id`;
  }

  it('is accepted for its device, over Basic and Bearer', async () => {
    const prolog = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: {
        'Content-Type': 'application/x-compress-zlib',
        Authorization: basic(bound.clientId, bound.clientSecret),
      },
      body: zlib.deflateSync(xmlProlog('dev-A')),
    });
    expect(prolog.status).toBe(200);
    const contact = await send(ctx.app, { method: 'POST', ...contactRequest('dev-A', `Bearer ${bearer}`) });
    expect(contact.status).toBe(200);
    const [d] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices where deviceid = 'dev-A'`;
    expect(d!.n).toBe(1);
  });

  it.each([
    ['Basic', () => basic(bound.clientId, bound.clientSecret)],
    ['Bearer', () => `Bearer ${bearer}`],
  ])(
    'another deviceid over %s gets the byte-identical 401, a security event and no device row',
    async (_scheme, auth) => {
      const eventsBefore = (await mismatchEvents()).length;
      const headers = { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'FusionInventory-Agent_v2.6-3' };
      const body = zlib.deflateSync(xmlProlog('dev-B'));
      const reference = await rawSend({ headers, body });
      const res = await rawSend({ headers: { ...headers, Authorization: auth() }, body });
      expect(comparable(res)).toEqual(comparable(reference));
      const events = await mismatchEvents();
      expect(events.length).toBe(eventsBefore + 1);
      expect(events.at(-1)).toMatchObject({
        kind: 'client_device_mismatch',
        deviceid: 'dev-B',
        details: { clientId: bound.clientId, boundDeviceid: 'dev-A' },
      });
      const [d] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices where deviceid = 'dev-B'`;
      expect(d!.n).toBe(0);
    },
  );

  it('another deviceid in a JSON CONTACT gets the JSON 401, identical to the no-credential one', async () => {
    const req = contactRequest('dev-C', basic(bound.clientId, bound.clientSecret));
    const reference = await rawSend(contactRequest('dev-C'));
    expect(comparable(await rawSend(req))).toEqual(comparable(reference));
    const [d] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices where deviceid = 'dev-C'`;
    expect(d!.n).toBe(0);
  });

  // The no-credential 401 is encoded from the Content-Type label (the body is never read); the mismatch 401
  // comes after the body was read. Whatever the body looks like, both must be the same bytes.
  it.each([
    [
      'plain XML labelled application/x-compress-zlib',
      { 'Content-Type': 'application/x-compress-zlib' },
      () => Buffer.from(xmlProlog('dev-D')),
    ],
    [
      'zlib body labelled application/octet-stream',
      { 'Content-Type': 'application/octet-stream' },
      () => zlib.deflateSync(xmlProlog('dev-D')),
    ],
    ['zlib body without Content-Type', {}, () => zlib.deflateSync(xmlProlog('dev-D'))],
    [
      'zlib body labelled application/x-compress-deflate',
      { 'Content-Type': 'application/x-compress-deflate' },
      () => zlib.deflateSync(xmlProlog('dev-D')),
    ],
  ])('no oracle for a bound client on another device: %s', async (_name, headers: Record<string, string>, body) => {
    const reference = await rawSend({ headers, body: body() });
    const res = await rawSend({
      headers: { ...headers, Authorization: basic(bound.clientId, bound.clientSecret) },
      body: body(),
    });
    expect(res.status).toBe(401);
    expect(comparable(res)).toEqual(comparable(reference));
  });
});

describe('secrets never reach the stored rows', () => {
  let own: TestContext;
  beforeAll(async () => {
    own = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0', TOKEN_TTL: '15m' });
  });
  afterAll(async () => {
    await own?.close();
  });

  /** On `c`: every way a client secret or a token reaches the gateway in this file. Returns the plaintexts. */
  async function everySecretOnce(c: TestContext): Promise<string[]> {
    const used: string[] = [];
    const grant = async (id: string, secret: string, form = false) => {
      const body = { grant_type: 'client_credentials', client_id: id, client_secret: secret, scope: 'inventory' };
      const req = request(c.app).post('/api.php/token');
      return form
        ? req.type('form').send(body)
        : req.set('Content-Type', 'application/json').send(JSON.stringify(body));
    };
    const tokenOf = (res: request.Response) => (res.body as { access_token: string }).access_token;
    const agent = (r: ReturnType<typeof contactRequest>) => send(c.app, { method: 'POST', ...r });

    // A client: tokens (JSON and form grants), used as Bearer and as Basic, on both agents' messages.
    const cl = await c.deps.admin.createClient({ name: 'sweep-client' }, actor);
    const [json, form] = [await grant(cl.clientId, cl.clientSecret), await grant(cl.clientId, cl.clientSecret, true)];
    expect([json.status, form.status]).toEqual([200, 200]);
    used.push(cl.clientSecret, tokenOf(json), tokenOf(form));
    expect((await agent(contactRequest('sweep-1', `Bearer ${tokenOf(json)}`))).status).toBe(200);
    expect((await agent(contactRequest('sweep-2', basic(cl.clientId, cl.clientSecret)))).status).toBe(200);
    const xml = await send(c.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic(cl.clientId, cl.clientSecret) },
      body: zlib.deflateSync(xmlProlog('sweep-3')),
    });
    expect(xml.status).toBe(200);
    // Refused: a wrong secret, a token as a password, a revoked client (its grant and its token).
    expect((await grant(cl.clientId, 'ags_wrong')).status).toBe(401);
    expect((await agent(contactRequest('sweep-2', basic(cl.clientId, tokenOf(form))))).status).toBe(401);
    const revoked = await c.deps.admin.createClient({ name: 'sweep-revoked' }, actor);
    const revokedToken = tokenOf(await grant(revoked.clientId, revoked.clientSecret));
    used.push(revoked.clientSecret, revokedToken);
    await c.deps.admin.revokeClient(revoked.clientId, actor);
    expect((await grant(revoked.clientId, revoked.clientSecret)).status).toBe(401);
    expect((await agent(contactRequest('sweep-4', `Bearer ${revokedToken}`))).status).toBe(401);
    // A client bound to one device, used by another (a security event).
    const bound = await c.deps.admin.createClient({ name: 'sweep-bound', deviceid: 'sweep-A' }, actor);
    used.push(bound.clientSecret);
    expect((await agent(contactRequest('sweep-B', basic(bound.clientId, bound.clientSecret)))).status).toBe(401);
    return used;
  }

  it('registrations, devices, audit_log and security_events hold no client secret or token', async () => {
    const usedSecrets = await everySecretOnce(own);
    const texts: string[] = [];
    for (const table of ['registrations', 'devices', 'audit_log', 'security_events', 'agent_clients', 'agent_tokens']) {
      const rows = await own.sql.unsafe<{ j: string }[]>(`select row_to_json(t)::text as j from ${table} t`);
      texts.push(...rows.map((r) => r.j));
    }
    expect(usedSecrets.length).toBeGreaterThan(5);
    const all = texts.join('\n');
    for (const secret of usedSecrets) expect(all, secret).not.toContain(secret);
  });
});
