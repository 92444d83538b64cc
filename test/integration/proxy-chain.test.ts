/**
 * GLPI Agent proxies: the GLPI-Proxy-ID chain of every registration is recorded and shown (`proxyChain`),
 * and a device page lists the chains its messages came through (`proxies`), through the admin API.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, replay, send } from '../helpers/context.js';
import { loadScenario } from '../helpers/fixtures.js';

let ctx: TestContext;
let reviewer = '';
const actor = { name: 'test', remoteAddr: null };

beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off' });
  reviewer = (await ctx.deps.admin.createOperator({ name: 'rev', role: 'reviewer' }, actor)).token;
});
afterAll(async () => {
  await ctx?.close();
});

const api = async (path: string) => {
  const res = await send(ctx.app, { method: 'GET', path, headers: { Authorization: `Bearer ${reviewer}` } });
  expect(res.status).toBe(200);
  return JSON.parse(res.text) as unknown;
};

describe('GLPI-Proxy-ID', () => {
  const [prolog, inventory] = loadScenario('glpi-tag').filter((r) => r.method === 'POST');
  const deviceid = prolog!.classified.deviceid!;

  it('is recorded as proxyChain on each registration and summed up on the device page', async () => {
    expect((await replay(ctx.app, prolog!)).status).toBe(200);
    const long = 'p'.repeat(300);
    const header = ` relay-paris-1 ,, relay-core , ${Array.from({ length: 20 }, (_, i) => `r${i}`).join(',')}`;
    expect((await replay(ctx.app, inventory!, { headers: { 'GLPI-Proxy-ID': header } })).status).toBe(200);
    expect((await replay(ctx.app, inventory!, { headers: { 'GLPI-Proxy-ID': 'relay-paris-1' } })).status).toBe(200);
    // A raw header of 300 characters is recorded cut to 256; each id is cut to 128.
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', 'GLPI-Proxy-ID': long },
      body: zlib.deflateSync(
        `<?xml version="1.0"?><REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
      ),
    });
    expect(res.status).toBe(200);

    const regs = (await api(`/api/v1/registrations?deviceid=${deviceid}`)) as { kind: string; proxyChain: string[] }[];
    expect(regs.map((r) => r.proxyChain)).toEqual([
      ['p'.repeat(128)],
      ['relay-paris-1'],
      ['relay-paris-1', 'relay-core', ...Array.from({ length: 14 }, (_, i) => `r${i}`)],
      [],
    ]);
    const [row] = await ctx.sql<{ proxyId: string }[]>`
      select proxy_id as "proxyId" from registrations where deviceid = ${deviceid} and kind = 'inventory' order by id limit 1`;
    expect(row!.proxyId).toBe(header.trim()); // the header as received (up to 256 characters)

    const shown = (await api(`/api/v1/devices/${deviceid}`)) as {
      proxies: { proxyChain: string[]; requests: number; lastSeen: string }[];
      registrations: { proxyChain: string[] }[];
    };
    expect(shown.proxies.map((p) => [p.proxyChain.length, p.requests])).toEqual([
      [1, 1],
      [1, 1],
      [16, 1],
    ]);
    expect(shown.proxies[1]!.proxyChain).toEqual(['relay-paris-1']);
    expect(shown.registrations[0]!.proxyChain).toEqual(['p'.repeat(128)]);
  });

  it('a device whose messages all came direct has no proxies', async () => {
    const other = loadScenario('glpi-plain').find((r) => r.method === 'POST')!;
    expect((await replay(ctx.app, other)).status).toBe(200);
    const shown = (await api(`/api/v1/devices/${other.classified.deviceid!}`)) as { proxies: unknown[] };
    expect(shown.proxies).toEqual([]);
  });
});
