/**
 * Agent authentication with AGENT_AUTH=required, as the agents do it (../shared/PROTOCOL.md §3.8): every
 * message first arrives without credentials and gets a 401 carrying exactly one quoted Basic challenge, in
 * the agent's format and compression; every failing credential gets the very same bytes (no oracle); the
 * credential is checked before the body is read; a key's device limit refuses new devices only.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, replay, send } from '../helpers/context.js';
import { type CapturedRequest, bodyOf, loadScenario, textOf } from '../helpers/fixtures.js';
import { type RawResponse, comparable, listenLoopback, rawSend as sendRaw } from '../helpers/raw-http.js';

const actor = { name: 'test:setup', remoteAddr: null };
const REALM_HEADER = 'Basic realm="agent-gate"';

let ctx: TestContext;
let server: http.Server;
let port: number;

beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
  await ctx.deps.admin.createKey({ name: 'site-a', secret: 'acceptance-pw' }, actor);
  server = http.createServer(ctx.app);
  port = await listenLoopback(server);
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await ctx.close();
});

const rawSend = (r: Parameters<typeof sendRaw>[1]) => sendRaw(port, r);

function headerValues(res: RawResponse, name: string): string[] {
  return res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

/** What must be identical between two refusals: status, every header line but Date, body bytes. */

function decode(res: RawResponse): string {
  const type = headerValues(res, 'content-type')[0];
  if (type === 'application/x-compress-zlib') return zlib.inflateSync(res.body).toString('utf8');
  if (type === 'application/x-compress-gzip') return zlib.gunzipSync(res.body).toString('utf8');
  return res.body.toString('utf8');
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** The headers an agent sent, minus the hop-by-hop ones a raw socket sets itself. */
function agentHeaders(r: CapturedRequest): Record<string, string> {
  const skip = new Set(['host', 'content-length', 'authorization', 'connection', 'keep-alive', 'te']);
  return Object.fromEntries(r.headers.filter(([k]) => !skip.has(k.toLowerCase())));
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

const FI = loadScenario('fusioninventory-basic-auth');
const GA = loadScenario('glpi-basic-auth');
const fiProlog = FI.find((r) => r.file === '0001-post-prolog.json')!;
const gaInventory = GA.find((r) => r.file === '0007-post-inventory.json')!;

/** Request shapes an agent (or a prober) may send; each must get the same 401 whatever credential fails. */
const SHAPES: Record<
  string,
  { headers: Record<string, string>; body: Buffer; format: 'xml' | 'json'; contentType: string }
> = {
  'FusionInventory zlib PROLOG': {
    headers: agentHeaders(fiProlog),
    body: bodyOf(fiProlog),
    format: 'xml',
    contentType: 'application/x-compress-zlib',
  },
  'GLPI Agent zlib JSON inventory': {
    headers: agentHeaders(gaInventory),
    body: bodyOf(gaInventory),
    format: 'json',
    contentType: 'application/x-compress-zlib',
  },
  'plain XML PROLOG': {
    headers: { 'Content-Type': 'application/xml', 'User-Agent': 'FusionInventory-Agent_v2.6-3' },
    body: Buffer.from(xmlProlog('plain-1')),
    format: 'xml',
    contentType: 'application/xml',
  },
  'plain JSON CONTACT with GLPI-Agent-ID': {
    headers: { 'Content-Type': 'application/json', 'GLPI-Agent-ID': 'f3a1c1a2-0000-4000-8000-000000000001' },
    body: Buffer.from(jsonContact('plain-2')),
    format: 'json',
    contentType: 'application/json',
  },
  'gzip PROLOG': {
    headers: { 'Content-Type': 'application/x-compress-gzip' },
    body: zlib.gzipSync(xmlProlog('gzip-1')),
    format: 'xml',
    contentType: 'application/x-compress-gzip',
  },
};

async function counts() {
  const [c] = await ctx.sql<{ devices: number; registrations: number; submissions: number }[]>`
    select (select count(*)::int from devices) as devices, (select count(*)::int from registrations) as registrations,
           (select count(*)::int from submissions) as submissions`;
  return c!;
}

describe('no credentials', () => {
  it.each(Object.entries(SHAPES))(
    '%s: 401, one quoted Basic challenge, agent-format body, compressed like the request',
    async (_name, shape) => {
      const before = await counts();
      const res = await rawSend({ headers: shape.headers, body: shape.body });
      expect(res.status).toBe(401);
      expect(headerValues(res, 'www-authenticate')).toEqual([REALM_HEADER]);
      expect(headerValues(res, 'content-type')).toEqual([shape.contentType]);
      expect(headerValues(res, 'cache-control')).toEqual(['no-cache, no-store']);
      if (shape.contentType === 'application/x-compress-zlib')
        expect(res.body.subarray(0, 2).toString('hex')).toBe('789c');
      if (shape.contentType === 'application/x-compress-gzip')
        expect(res.body.subarray(0, 2).toString('hex')).toBe('1f8b');
      const text = decode(res);
      if (shape.format === 'json')
        expect(JSON.parse(text)).toEqual({ status: 'error', message: 'Authorization required', expiration: 24 });
      else
        expect(text).toBe(
          '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><ERROR>Authorization required</ERROR></REPLY>\n',
        );
      for (const name of ['GLPI-Agent-ID', 'GLPI-Request-ID']) {
        if (shape.headers[name]) expect(headerValues(res, name)).toEqual([shape.headers[name]]);
      }
      // A challenge is normal traffic: it writes nothing.
      expect(await counts()).toEqual(before);
    },
  );

  it('the realm is the same on every 401 (LWP keys credentials by realm)', async () => {
    const answers = await Promise.all(Object.values(SHAPES).map((s) => rawSend({ headers: s.headers, body: s.body })));
    expect(new Set(answers.flatMap((a) => headerValues(a, 'www-authenticate')))).toEqual(new Set([REALM_HEADER]));
  });
});

/** Replays a captured run as sent, Authorization headers included; the answers, in order. */
async function replayRun(c: TestContext, requests: CapturedRequest[]) {
  const answers = [];
  for (const r of requests) answers.push(await replay(c.app, r, { keepAuthorization: true }));
  return answers;
}

describe('the captured 401, 401, 200 runs replay to a recorded device', () => {
  it.each([
    ['fusioninventory-basic-auth', FI],
    ['glpi-basic-auth', GA],
  ])('%s', async (_scenario, requests) => {
    const deviceid = requests.find((r) => r.classified.deviceid)!.classified.deviceid!;
    // This run's rows only (another test may have replayed the same capture before).
    const [{ watermark }] = await ctx.sql<[{ watermark: number }]>`
      select coalesce(max(id), 0)::int as watermark from registrations`;
    const answers = await replayRun(ctx, requests);
    for (const [i, r] of requests.entries()) {
      const res = answers[i]!;
      const authorized = r.headers.some(([k]) => k.toLowerCase() === 'authorization');
      if (r.method === 'GET') {
        // getConfig needs no credential: a fixed quiet answer, with or without Authorization.
        expect(res.status, r.file).toBe(200);
        expect(JSON.parse(res.text)).toEqual({ configValidityPeriod: 600, schedule: [] });
        continue;
      }
      expect(res.status, r.file).toBe(authorized ? 200 : 401);
      if (!authorized) {
        expect(res.headers['www-authenticate']).toBe(REALM_HEADER);
        expect(res.headers['content-type']).toBe('application/x-compress-zlib');
      }
      const requestId = r.headers.find(([k]) => k === 'GLPI-Request-ID')?.[1];
      if (requestId) expect(res.headers['glpi-request-id']).toBe(requestId);
    }
    const [key] = await ctx.sql<{ id: number; versionId: number; devicesUsed: number }[]>`
      select k.id, v.id as "versionId", k.devices_used as "devicesUsed" from registration_keys k join key_versions v on v.key_id = k.id where k.name = 'site-a'`;
    const [device] = await ctx.sql<{ registeredKeyId: number | null; lastInventoryAt: Date | null }[]>`
      select registered_key_id as "registeredKeyId", last_inventory_at as "lastInventoryAt" from devices where deviceid = ${deviceid}`;
    expect(device).toBeDefined();
    expect(Number(device!.registeredKeyId)).toBe(Number(key!.id));
    expect(device!.lastInventoryAt).not.toBeNull();
    const regs = await ctx.sql<
      {
        kind: string;
        status: number;
        authType: string | null;
        authUser: string | null;
        keyId: number | null;
        keyVersionId: number | null;
      }[]
    >`
      select kind, status, auth_type as "authType", auth_user as "authUser", key_id as "keyId", key_version_id as "keyVersionId"
      from registrations where deviceid = ${deviceid} and kind <> 'getconfig' and id > ${watermark} order by id`;
    // Only the authorized POSTs were recorded (the 401s are not rows), each with the key version it used.
    const authorizedPosts = requests.filter(
      (r) => r.method === 'POST' && r.headers.some(([k]) => k === 'Authorization'),
    );
    expect(regs.map((r) => r.kind)).toEqual(authorizedPosts.map((r) => r.classified.kind));
    for (const r of regs) {
      expect(r).toMatchObject({ status: 200, authType: 'key:basic', authUser: 'inventory' });
      expect(Number(r.keyId)).toBe(Number(key!.id));
      expect(Number(r.keyVersionId)).toBe(Number(key!.versionId));
    }
  });
});

describe('device slots', () => {
  it('devices_used of an unlimited key counts the devices it registered', async () => {
    // Both captured runs (again, if the tests above replayed them: the same two devices) register with site-a.
    await replayRun(ctx, FI);
    await replayRun(ctx, GA);
    // site-a (max_devices 0 = unlimited) registered the FusionInventory and the GLPI Agent device.
    const [row] = await ctx.sql<{ devicesUsed: number; registered: number }[]>`
      select k.devices_used as "devicesUsed", (select count(*)::int from devices d where d.registered_key_id = k.id) as registered
      from registration_keys k where k.name = 'site-a'`;
    expect(row!.registered).toBe(2);
    expect(row!.devicesUsed).toBe(row!.registered);
    const view = (await ctx.deps.admin.listKeys()).find((k) => k.name === 'site-a')!;
    expect(view.devicesUsed).toBe(2);
  });
});

describe('every failing credential gets the no-credential 401, byte for byte', () => {
  const failing: Record<string, () => string> = {};
  let revokedClientBasic = '';
  let revokedClientBearer = '';

  beforeAll(async () => {
    const admin = ctx.deps.admin;
    await admin.createKey(
      { name: 'expired', secret: 'expired-pw', expiresAt: new Date(ctx.clock.now().getTime() - 1000) },
      actor,
    );
    await admin.createKey({ name: 'revoked', secret: 'revoked-pw' }, actor);
    await admin.setKeyActive('revoked', false, actor);
    const client = await admin.createClient({ name: 'to-revoke' }, actor);
    const { accessToken } = await ctx.deps.credentials.issueToken(client.clientId, client.clientSecret);
    await admin.revokeClient(client.clientId, actor);
    revokedClientBasic = basic(client.clientId, client.clientSecret);
    revokedClientBearer = `Bearer ${accessToken}`;
  });

  Object.assign(failing, {
    'unknown password': () => basic('inventory', 'wrong-password'),
    'password one character off': () => basic('site-a', 'acceptance-pw-'),
    'expired key': () => basic('inventory', 'expired-pw'),
    'revoked key': () => basic('inventory', 'revoked-pw'),
    'malformed Basic (not base64)': () => 'Basic !!!not-base64!!!',
    'malformed Basic (no colon)': () => `Basic ${Buffer.from('no-colon-here').toString('base64')}`,
    'Basic without credentials': () => 'Basic',
    'another scheme': () => 'Digest username="inventory", realm="agent-gate"',
    'unknown bearer token': () => 'Bearer agt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'revoked client over Basic': () => revokedClientBasic,
    'bearer token of a revoked client': () => revokedClientBearer,
  });

  const cases = Object.keys(SHAPES).flatMap((shape) => Object.keys(failing).map((cred) => [shape, cred] as const));
  it.each(cases)('%s — %s', async (shapeName, credName) => {
    const shape = SHAPES[shapeName]!;
    const reference = await rawSend({ headers: shape.headers, body: shape.body });
    const before = await counts();
    const res = await rawSend({ headers: { ...shape.headers, Authorization: failing[credName]!() }, body: shape.body });
    expect(comparable(res)).toEqual(comparable(reference));
    expect(await counts()).toEqual(before);
  });
});

describe('the credential is checked before the body is read', () => {
  it('a wrong credential with a corrupt body gets 401, not 400, and writes no row', async () => {
    const before = await counts();
    const corrupt = Buffer.concat([Buffer.from([0x78, 0x9c]), Buffer.from('definitely not deflate data')]);
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic('inventory', 'wrong-password') },
      body: corrupt,
    });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(REALM_HEADER);
    expect(zlib.inflateSync(res.raw).toString('utf8')).toContain('<ERROR>Authorization required</ERROR>');
    expect(await counts()).toEqual(before);
    // Control: the same corrupt body with the right credential is read, refused with 400 and recorded.
    const ok = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic('inventory', 'acceptance-pw') },
      body: corrupt,
    });
    expect(ok.status).toBe(400);
    expect((await counts()).registrations).toBe(before.registrations + 1);
  });

  it('a wrong credential with JSON garbage gets the JSON 401', async () => {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: {
        'Content-Type': 'application/json',
        'GLPI-Agent-ID': 'x-1',
        Authorization: basic('inventory', 'nope'),
      },
      body: Buffer.from('{"action":'),
    });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text)).toEqual({ status: 'error', message: 'Authorization required', expiration: 24 });
  });

  it('the 401 comes while the upload is still incomplete', async () => {
    const body = zlib.deflateSync(xmlProlog('half-sent'));
    const res = await new Promise<{ status: number; auth: string | undefined }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/',
          agent: false,
          headers: {
            'Content-Type': 'application/x-compress-zlib',
            'Content-Length': String(body.length + 1000),
            Authorization: basic('inventory', 'wrong-password'),
          },
        },
        (r) => {
          r.resume();
          resolve({ status: r.statusCode!, auth: r.headers['www-authenticate'] });
          req.destroy();
        },
      );
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      req.write(body); // 1000 announced bytes never follow
      setTimeout(() => reject(new Error('no answer before the body was complete')), 5000).unref();
    });
    expect(res).toEqual({ status: 401, auth: REALM_HEADER });
  });
});

describe('a key with max devices', () => {
  const zlibXml = { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'FusionInventory-Agent_v2.6-3' };
  beforeAll(async () => {
    await ctx.deps.admin.createKey({ name: 'one-device', secret: 'one-device-pw', maxDevices: 1 }, actor);
  });
  const auth = () => basic('inventory', 'one-device-pw');

  it('accepts the first device, refuses a second with 403 in the agent format, and keeps serving the first', async () => {
    const first = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibXml, Authorization: auth() },
      body: zlib.deflateSync(xmlProlog('limit-dev-1')),
    });
    expect(first.status).toBe(200);
    expect(first.text).toContain('<RESPONSE>SEND</RESPONSE>');

    const second = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibXml, Authorization: auth() },
      body: zlib.deflateSync(xmlProlog('limit-dev-2')),
    });
    expect(second.status).toBe(403);
    expect(second.headers['content-type']).toBe('application/x-compress-zlib');
    expect(second.headers['www-authenticate']).toBeUndefined();
    expect(second.text).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><ERROR>Registration key has reached its device limit</ERROR></REPLY>\n',
    );

    const third = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/json', 'GLPI-Agent-ID': 'limit-agent-3', Authorization: auth() },
      body: Buffer.from(jsonContact('limit-dev-3')),
    });
    expect(third.status).toBe(403);
    expect(third.headers['content-type']).toBe('application/json');
    expect(JSON.parse(third.text)).toEqual({
      status: 'error',
      message: 'Registration key has reached its device limit',
      expiration: 24,
    });

    const again = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibXml, Authorization: auth() },
      body: zlib.deflateSync(xmlProlog('limit-dev-1')),
    });
    expect(again.status).toBe(200);

    const devices = await ctx.sql<
      { deviceid: string }[]
    >`select deviceid from devices where deviceid like 'limit-dev-%' order by deviceid`;
    expect(devices.map((d) => d.deviceid)).toEqual(['limit-dev-1']);
    const [key] = await ctx.sql<
      { devicesUsed: number }[]
    >`select devices_used as "devicesUsed" from registration_keys where name = 'one-device'`;
    expect(key!.devicesUsed).toBe(1);
    const refused = await ctx.sql<{ deviceid: string; status: number; outcome: string; deviceId: number | null }[]>`
      select deviceid, status, outcome, device_id as "deviceId" from registrations where deviceid in ('limit-dev-2', 'limit-dev-3') order by id`;
    expect(refused).toEqual([
      { deviceid: 'limit-dev-2', status: 403, outcome: 'refused', deviceId: null },
      { deviceid: 'limit-dev-3', status: 403, outcome: 'refused', deviceId: null },
    ]);
    const view = (await ctx.deps.admin.listKeys()).find((k) => k.name === 'one-device')!;
    expect(view.devicesUsed).toBe(1);
  });

  it('two new devices racing for the last slot: exactly one wins', async () => {
    await ctx.deps.admin.createKey({ name: 'race-key', secret: 'race-key-pw', maxDevices: 1 }, actor);
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        send(ctx.app, {
          method: 'POST',
          path: '/',
          headers: { ...zlibXml, Authorization: basic('x', 'race-key-pw') },
          body: zlib.deflateSync(xmlProlog(`race-dev-${i}`)),
        }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 403, 403, 403, 403, 403]);
    const [n] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices where deviceid like 'race-dev-%'`;
    expect(n!.n).toBe(1);
    const [key] = await ctx.sql<
      { devicesUsed: number }[]
    >`select devices_used as "devicesUsed" from registration_keys where name = 'race-key'`;
    expect(key!.devicesUsed).toBe(1);
  });
});

describe('secrets never reach the stored rows', () => {
  let own: TestContext;
  beforeAll(async () => {
    own = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
  });
  afterAll(async () => {
    await own?.close();
  });

  /** On `c`: every way a secret reaches the gateway in this file. Returns the plaintexts it used. */
  async function everySecretOnce(c: TestContext): Promise<string[]> {
    const admin = c.deps.admin;
    const zlibXml = { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'FusionInventory-Agent_v2.6-3' };
    const prologWith = (deviceid: string, authorization: string) =>
      send(c.app, {
        method: 'POST',
        path: '/',
        headers: { ...zlibXml, Authorization: authorization },
        body: zlib.deflateSync(xmlProlog(deviceid)),
      });
    // The captured runs with their credentials (the FusionInventory inventory carries the password in perl_args).
    await admin.createKey({ name: 'site-a', secret: 'acceptance-pw' }, actor);
    for (const res of [...(await replayRun(c, FI)), ...(await replayRun(c, GA))]) expect(res.status).not.toBe(500);
    // Every kind of failing credential.
    await admin.createKey(
      { name: 'expired', secret: 'expired-pw', expiresAt: new Date(c.clock.now().getTime() - 1000) },
      actor,
    );
    await admin.createKey({ name: 'revoked', secret: 'revoked-pw' }, actor);
    await admin.setKeyActive('revoked', false, actor);
    const client = await admin.createClient({ name: 'to-revoke' }, actor);
    const { accessToken } = await c.deps.credentials.issueToken(client.clientId, client.clientSecret);
    await admin.revokeClient(client.clientId, actor);
    const failing = [
      basic('inventory', 'wrong-password'),
      basic('inventory', 'expired-pw'),
      basic('inventory', 'revoked-pw'),
      basic(client.clientId, client.clientSecret),
      `Bearer ${accessToken}`,
    ];
    for (const authorization of failing) expect((await prologWith('secret-dev-1', authorization)).status).toBe(401);
    // A key at its device limit: one device accepted, the next refused.
    await admin.createKey({ name: 'one-device', secret: 'one-device-pw', maxDevices: 1 }, actor);
    expect((await prologWith('secret-dev-2', basic('inventory', 'one-device-pw'))).status).toBe(200);
    expect((await prologWith('secret-dev-3', basic('inventory', 'one-device-pw'))).status).toBe(403);
    return [
      'acceptance-pw',
      'expired-pw',
      'revoked-pw',
      client.clientSecret,
      accessToken,
      'wrong-password',
      'one-device-pw',
    ];
  }

  it('registrations, devices, submissions, audit_log and security_events hold no plaintext secret', async () => {
    const usedSecrets = await everySecretOnce(own);
    const texts: string[] = [];
    for (const table of ['registrations', 'devices', 'audit_log', 'security_events']) {
      const rows = await own.sql.unsafe<{ j: string }[]>(`select row_to_json(t)::text as j from ${table} t`);
      texts.push(...rows.map((r) => r.j));
    }
    const subs = await own.sql<{ body: Buffer; compression: string }[]>`select body, compression from submissions`;
    for (const s of subs)
      texts.push(
        (s.compression === 'zlib'
          ? zlib.inflateSync(s.body)
          : s.compression === 'gzip'
            ? zlib.gunzipSync(s.body)
            : s.body
        ).toString('utf8'),
      );
    expect(texts.length).toBeGreaterThan(10);
    const all = texts.join('\n');
    for (const secret of usedSecrets) expect(all, secret).not.toContain(secret);
    expect(all).not.toContain(Buffer.from('inventory:acceptance-pw').toString('base64'));
  });
});
