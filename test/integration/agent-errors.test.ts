/**
 * Refusals an agent (or anything posing as one) can get: each in the agent's own format, with the status
 * the agents react to, recorded as the only row written, and never a stack trace.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off', BODY_LIMIT: '64kb', INFLATE_LIMIT: '1mb' });
});
afterAll(async () => {
  await ctx.close();
});

const zlibHeaders = { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'FusionInventory-Agent_v2.6-3' };
const prolog = textOf('fusioninventory-plain', '0001-post-prolog.json');

async function counts() {
  const [c] = await ctx.sql<{ devices: number; registrations: number; submissions: number }[]>`
    select (select count(*)::int from devices) as devices, (select count(*)::int from registrations) as registrations,
           (select count(*)::int from submissions) as submissions`;
  return c!;
}

async function lastRegistration() {
  const [r] = await ctx.sql<{ outcome: string; status: number; message: string | null; kind: string }[]>`
    select outcome, status, message, kind from registrations order by id desc limit 1`;
  return r!;
}

describe('refusals', () => {
  it.each([
    [
      'an unsupported XML QUERY',
      'xml',
      `<?xml version="1.0"?><REQUEST><DEVICEID>d-1</DEVICEID><QUERY>REGISTER</QUERY></REQUEST>`,
      501,
      /<REPLY><ERROR>Query 'REGISTER' is not supported\.<\/ERROR><\/REPLY>/,
    ],
    [
      'an unsupported JSON action',
      'json',
      JSON.stringify({ action: 'register', deviceid: 'd-1' }),
      501,
      /"message":"Action 'register' is not supported\."/,
    ],
    [
      'a JSON message without action',
      'json',
      JSON.stringify({ deviceid: 'd-1' }),
      400,
      /"status":"error","message":"Invalid JSON: missing action"/,
    ],
    [
      'broken XML',
      'xml',
      '<REQUEST><DEVICEID>d-1</DEVICEID><QUERY>PROLOG</QUERY>',
      400,
      /<ERROR>Invalid XML: &lt;REQUEST&gt; is not closed<\/ERROR>/,
    ],
    [
      'an XML DOCTYPE (entity expansion)',
      'xml',
      '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><REQUEST><DEVICEID>&a;</DEVICEID></REQUEST>',
      400,
      /DOCTYPE and entity declarations are not accepted/,
    ],
    ['a message without deviceid', 'xml', '<REQUEST><QUERY>PROLOG</QUERY></REQUEST>', 400, /Missing deviceid/],
    ['a body that is neither XML nor JSON', 'xml', 'hello', 400, /expected an XML or JSON message/],
  ])('%s', async (_name, format, text, status, bodyPattern) => {
    const before = await counts();
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibHeaders, ...(format === 'json' ? { 'GLPI-Agent-ID': 'a' } : {}) },
      body: zlib.deflateSync(text),
    });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/x-compress-zlib');
    expect(res.text).toMatch(bodyPattern);
    expect(res.text).not.toMatch(/at .*\.ts:\d+/);
    const after = await counts();
    expect(after).toEqual({ ...before, registrations: before.registrations + 1 });
    expect((await lastRegistration()).status).toBe(status);
  });

  it('a truncated zlib body', async () => {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibHeaders,
      body: zlib.deflateSync(prolog).subarray(0, 40),
    });
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/<ERROR>Invalid zlib body: cannot decompress<\/ERROR>/);
  });

  it('a zip bomb stops at INFLATE_LIMIT with 413', async () => {
    const bomb = zlib.deflateSync(
      Buffer.concat([Buffer.from('<REQUEST><DEVICEID>x</DEVICEID><CONTENT><X>'), Buffer.alloc(5 * 1024 * 1024, 0x41)]),
    );
    expect(bomb.length).toBeLessThan(64 * 1024);
    const res = await send(ctx.app, { method: 'POST', path: '/', headers: zlibHeaders, body: bomb });
    expect(res.status).toBe(413);
    expect(res.text).toMatch(/Decompressed body exceeds 1048576 bytes/);
    expect((await lastRegistration()).outcome).toBe('refused');
  });

  it('a body over BODY_LIMIT is refused with 413 before it is read', async () => {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/xml' },
      body: Buffer.alloc(70 * 1024, 0x20),
    });
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe('application/xml');
    expect(res.text).toMatch(/<ERROR>Body larger than 65536 bytes<\/ERROR>/);
  });

  it('an empty POST', async () => {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/front/inventory.php',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toEqual({ status: 'error', message: 'Empty body', expiration: 24 });
  });

  it('methods other than GET and POST get 405 with an empty body', async () => {
    const res = await send(ctx.app, { method: 'PUT', path: '/', body: Buffer.from('x') });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, POST');
    expect(res.raw.length).toBe(0);
  });

  it('a GET that is neither getConfig nor a pending poll gets 405', async () => {
    const res = await send(ctx.app, { method: 'GET', path: '/plugins/glpiinventory/' });
    expect(res.status).toBe(405);
  });

  it('paths that are not agent URLs get 404', async () => {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/wp-login.php',
      headers: { 'Content-Type': 'application/xml' },
      body: Buffer.from(prolog),
    });
    expect(res.status).toBe(404);
  });
});

describe('accepted variants', () => {
  it.each([
    '/',
    '/front/inventory.php',
    '/plugins/fusioninventory/',
    '/plugins/fusioninventory/front/communication.php',
    '/plugins/glpiinventory/',
    '/marketplace/glpiinventory/',
    '/Inventory',
    '/glpi/front/inventory.php',
  ])('PROLOG on %s', async (path) => {
    const res = await send(ctx.app, { method: 'POST', path, headers: zlibHeaders, body: zlib.deflateSync(prolog) });
    expect(res.status).toBe(200);
    expect(res.text).toContain('<RESPONSE>SEND</RESPONSE>');
  });

  it('gzip requests get gzip answers; plain requests plain ones', async () => {
    const gz = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-gzip' },
      body: zlib.gzipSync(prolog),
    });
    expect(gz.headers['content-type']).toBe('application/x-compress-gzip');
    expect(gz.raw.subarray(0, 2).toString('hex')).toBe('1f8b');
    const plain = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/xml' },
      body: Buffer.from(prolog),
    });
    expect(plain.headers['content-type']).toBe('application/xml');
    expect(plain.text).toContain('<PROLOG_FREQ>24</PROLOG_FREQ>');
  });

  it('the capital-A content type of glpi-injector, and a mislabelled plain body', async () => {
    const a = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'Application/x-compress-zlib' },
      body: zlib.deflateSync(prolog),
    });
    expect(a.status).toBe(200);
    const b = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib' },
      body: Buffer.from(prolog),
    });
    expect(b.status).toBe(200);
    expect(b.text).toContain('<RESPONSE>SEND</RESPONSE>');
  });

  it('ISO-8859-1 XML is read, not refused', async () => {
    const inv = Buffer.from(
      '<?xml version="1.0" encoding="ISO-8859-1"?><REQUEST><DEVICEID>latin-1</DEVICEID><QUERY>INVENTORY</QUERY><CONTENT><HARDWARE><NAME>poste-comptabilit\xe9</NAME></HARDWARE></CONTENT></REQUEST>',
      'latin1',
    );
    const res = await send(ctx.app, { method: 'POST', path: '/', headers: zlibHeaders, body: zlib.deflateSync(inv) });
    expect(res.status).toBe(200);
    const [d] = await ctx.sql<{ name: string }[]>`select name from devices where deviceid = 'latin-1'`;
    expect(d!.name).toBe('poste-comptabilité');
  });

  it('NETDISCOVERY is acknowledged and kept, without creating a device for the sender', async () => {
    const msg =
      '<?xml version="1.0"?><REQUEST><CONTENT><DEVICE><IP>192.0.2.7</IP></DEVICE><MODULEVERSION>6.1</MODULEVERSION><PROCESSNUMBER>7</PROCESSNUMBER></CONTENT><DEVICEID>foo</DEVICEID><QUERY>NETDISCOVERY</QUERY></REQUEST>';
    const res = await send(ctx.app, { method: 'POST', path: '/', headers: zlibHeaders, body: zlib.deflateSync(msg) });
    expect(res.status).toBe(200);
    expect(res.text).toContain('<REPLY>');
    const [reg] = await ctx.sql<
      { kind: string; deviceId: number | null }[]
    >`select kind, device_id as "deviceId" from registrations where deviceid = 'foo'`;
    expect(reg).toEqual({ kind: 'netdiscovery', deviceId: null });
    const [sub] = await ctx.sql<
      { n: number }[]
    >`select count(*)::int as n from submissions where kind = 'netdiscovery'`;
    expect(sub!.n).toBe(1);
    const [dev] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices where deviceid = 'foo'`;
    expect(dev!.n).toBe(0);
  });

  it('get_params is answered ok', async () => {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/json', 'GLPI-Agent-ID': 'x' },
      body: Buffer.from(JSON.stringify({ action: 'get_params', deviceid: 'gp-1' })),
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ status: 'ok', expiration: 24 });
  });

  it('CONTACT secrets are redacted before they are stored', async () => {
    const contact = {
      action: 'contact',
      deviceid: 'contact-1',
      'httpd-plugins': {
        inventory: { disabled: 'no', token: 's3cr3t-token', url_path: '/inventory' },
        basicauthentication: { user: 'bob', password: 'hunter2' },
      },
      name: 'GLPI-Agent',
      version: '1.12',
    };
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibHeaders, 'GLPI-Agent-ID': 'y' },
      body: zlib.deflateSync(JSON.stringify(contact)),
    });
    expect(res.status).toBe(200);
    const [reg] = await ctx.sql<{ details: unknown }[]>`select details from registrations where deviceid = 'contact-1'`;
    const stored = JSON.stringify(reg!.details);
    expect(stored).toContain('url_path');
    expect(stored).not.toMatch(/s3cr3t-token|hunter2|bob/);
  });

  it('concurrent first contacts of one device make exactly one device row', async () => {
    const body = zlib.deflateSync(prolog.replace(/<DEVICEID>[^<]+/, '<DEVICEID>race-1'));
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => send(ctx.app, { method: 'POST', path: '/', headers: zlibHeaders, body })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    const [d] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices where deviceid = 'race-1'`;
    expect(d!.n).toBe(1);
    const [r] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from registrations where deviceid = 'race-1'`;
    expect(r!.n).toBe(12);
  });
});
