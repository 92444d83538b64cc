/**
 * An attacker holding a valid shared registration key, against the auto-approval policies: what an agent
 * claims (its tag, its MACs) never approves a device on its own, so nothing of the attacker's reaches the
 * GLPI outbox. Real captured GLPI Agent traffic (test/fixtures/glpi-second-run-tag, glpi-tag) is replayed
 * with the claims changed; forwarding is on (UPSTREAM_URL to an unused loopback port).
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { type CapturedRequest, headersOf, loadScenario } from '../helpers/fixtures.js';

let ctx: TestContext;
let admin = '';
let parisKey = '';
let attackerKey = '';
let lyonKey = '';
let niceKey = '';
const actor = { name: 'test', remoteAddr: null };

beforeAll(async () => {
  ctx = await createTestContext({
    AGENT_AUTH: 'required',
    SECRET_CACHE_TTL: '0',
    UPSTREAM_URL: 'http://127.0.0.1:9/front/inventory.php',
  });
  admin = (await ctx.deps.admin.createOperator({ name: 'sec', role: 'admin' }, actor)).token;
  parisKey = (await ctx.deps.admin.createKey({ name: 'site-paris', tag: 'paris' }, actor)).secret;
  attackerKey = (await ctx.deps.admin.createKey({ name: 'shared-lab' }, actor)).secret;
  lyonKey = (await ctx.deps.admin.createKey({ name: 'site-lyon', tag: 'lyon' }, actor)).secret;
  niceKey = (await ctx.deps.admin.createKey({ name: 'site-nice' }, actor)).secret;
});
afterAll(async () => {
  await ctx?.close();
});

const api = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
  const res = await send(ctx.app, {
    method,
    path,
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
  });
  return { status: res.status, json: JSON.parse(res.text || 'null') as Record<string, unknown> };
};

/** A captured request replayed with its decoded text rewritten, re-compressed as the agent does. */
function replayAs(r: CapturedRequest, secret: string, rewrite: (text: string) => string) {
  return send(ctx.app, {
    method: r.method,
    path: r.path,
    headers: { ...headersOf(r), Authorization: `Basic ${Buffer.from(`any:${secret}`).toString('base64')}` },
    body: zlib.deflateSync(rewrite(r.decoded_text)),
  });
}

async function device(deviceid: string) {
  const [d] = await ctx.sql<{ state: string; tag: string | null }[]>`
    select state, assigned_tag as tag from devices where deviceid = ${deviceid}`;
  return d;
}
const outboxCount = async () => (await ctx.sql<{ n: number }[]>`select count(*)::int as n from outbox`)[0]!.n;

const run = loadScenario('glpi-second-run-tag');
const contact = run.find((r) => r.classified.kind === 'contact')!;
const inventory = run.find((r) => r.classified.kind === 'inventory' && !r.classified.partial)!;
const victim = loadScenario('glpi-tag').find((r) => r.classified.kind === 'inventory')!;
const victimMac = (JSON.parse(victim.decoded_text) as { content: { networks: { mac?: string }[] } }).content.networks
  .map((n) => n.mac)
  .find((m) => m && m !== '00:00:00:00:00:00')!;

describe('a tag the agent sends', () => {
  const deviceid = contact.classified.deviceid!;
  const claimParis = (t: string) => t.replaceAll('"acceptance-tag"', '"paris"');

  it('never satisfies approve --tag paris: the device stays quarantined and nothing goes to GLPI', async () => {
    expect((await api('POST', '/api/v1/policies', { action: 'approve', match: { tag: 'paris' } })).status).toBe(201);
    expect((await replayAs(contact, attackerKey, claimParis)).status).toBe(200);
    expect((await replayAs(inventory, attackerKey, claimParis)).status).toBe(200);
    expect(await device(deviceid)).toEqual({ state: 'quarantined', tag: null });
    expect(await outboxCount()).toBe(0);
    const shown = (await api('GET', `/api/v1/devices/${deviceid}`)).json;
    expect(shown).toMatchObject({ tag: null, claimedTag: 'paris', keyName: 'shared-lab', state: 'quarantined' });
    // Another tagged key does not help either.
    const other = (t: string) => claimParis(t).replaceAll(deviceid, `${deviceid}-lyon`);
    await replayAs(inventory, lyonKey, other);
    expect(await device(`${deviceid}-lyon`)).toEqual({ state: 'quarantined', tag: 'lyon' });
    expect(await outboxCount()).toBe(0);
  });

  it('a device of the paris key is approved by the same rule, and forwarded', async () => {
    const own = (t: string) => t.replaceAll(deviceid, `${deviceid}-paris`); // claims "acceptance-tag"
    await replayAs(inventory, parisKey, own);
    expect(await device(`${deviceid}-paris`)).toEqual({ state: 'approved', tag: 'paris' });
    expect(await outboxCount()).toBeGreaterThan(0); // forwarding is on: the attacker's zero meant something
  });
});

describe('a MAC allowlist', () => {
  it('alone cannot approve: add and test refuse the rule and say why', async () => {
    await api('POST', '/api/v1/allowlists/office-macs/mac', { csv: `mac\n${victimMac}\n` });
    const rule = { action: 'approve', match: { allowlist: 'office-macs' } };
    const add = await api('POST', '/api/v1/policies', rule);
    expect(add.status).toBe(400);
    expect(add.json.message).toMatch(/MAC addresses.*cannot approve.*anyone on the LAN/);
    const dry = await api('POST', '/api/v1/policies/test', { rules: [rule] });
    expect(dry.status).toBe(400);
    expect(dry.json.message).toMatch(/MAC addresses.*cannot approve.*anyone on the LAN/);
  });

  it('with a key: the victim MAC approves only a device registered with that key', async () => {
    const outboxBefore = await outboxCount();
    const rule = { action: 'approve', match: { allowlist: 'office-macs', key: 'site-nice' } };
    expect((await api('POST', '/api/v1/policies', rule)).status).toBe(201);
    // The attacker's own machine, announcing the victim's MAC, through the shared key.
    const attackerId = `${inventory.classified.deviceid!}-spoof`;
    const spoof = (t: string) => {
      const j = JSON.parse(t.replaceAll(inventory.classified.deviceid!, attackerId)) as {
        content: { networks: { mac?: string }[] };
      };
      j.content.networks = [{ ...j.content.networks[0], mac: victimMac }];
      return JSON.stringify(j);
    };
    expect((await replayAs(inventory, attackerKey, spoof)).status).toBe(200);
    expect((await device(attackerId))!.state).toBe('quarantined');
    expect(await outboxCount()).toBe(outboxBefore);
    // The victim, with the key the rule names (untagged: the --tag paris rule has no say).
    expect((await replayAs(victim, niceKey, (t) => t)).status).toBe(200);
    expect((await device(victim.classified.deviceid!))!.state).toBe('approved');
  });
});
