/**
 * Auto-approval policies through HTTP and real Postgres: first match decides with its rule id recorded as
 * the reason; conditions on key, tag, source network and allowlists; the dry run reports exactly what
 * saving the rules then does; a frozen key's devices stay quarantined.
 */
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';

let ctx: TestContext;
let admin: string;
let keyA = '';
let keyB = '';
let keyParis = '';
let keyLyon = '';
const actor = { name: 'test', remoteAddr: null };

// A gateway of each test's own: the rules (and the queue they act on) are only the ones the test adds.
beforeEach(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0', TRUST_PROXY: 'loopback' });
  admin = (await ctx.deps.admin.createOperator({ name: 'boss', role: 'admin' }, actor)).token;
  keyA = (await ctx.deps.admin.createKey({ name: 'site-a' }, actor)).secret;
  keyB = (await ctx.deps.admin.createKey({ name: 'site-b' }, actor)).secret;
  keyParis = (await ctx.deps.admin.createKey({ name: 'site-paris', tag: 'paris' }, actor)).secret;
  keyLyon = (await ctx.deps.admin.createKey({ name: 'site-lyon', tag: 'lyon' }, actor)).secret;
});
afterEach(async () => {
  await ctx?.close();
});

const api = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
  const res = await send(ctx.app, {
    method,
    path,
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
  });
  return { status: res.status, json: JSON.parse(res.text || 'null') };
};

function agent(secret: string, deviceid: string, opts: { ip?: string; content?: string; query?: string } = {}) {
  const query = opts.query ?? (opts.content ? 'INVENTORY' : 'PROLOG');
  const xml = `<?xml version="1.0"?><REQUEST>${opts.content ? `<CONTENT>${opts.content}</CONTENT>` : ''}<DEVICEID>${deviceid}</DEVICEID><QUERY>${query}</QUERY></REQUEST>`;
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: {
      'Content-Type': 'application/x-compress-zlib',
      Authorization: `Basic ${Buffer.from(`inv:${secret}`).toString('base64')}`,
      'X-Forwarded-For': opts.ip ?? '192.0.2.10',
    },
    body: zlib.deflateSync(xml),
  });
}

/**
 * Three devices, each claiming the other site's tag: q-paris-1 and q-paris-2 on the key tagged paris,
 * q-lyon-1 on the key tagged lyon. --tag is the tag of the registration key; what the agent says does not count.
 */
async function parisAndLyon(): Promise<void> {
  for (const d of ['q-paris-1', 'q-paris-2', 'q-lyon-1']) {
    const claimed = d.includes('paris') ? 'lyon' : 'paris';
    const res = await agent(d.includes('paris') ? keyParis : keyLyon, d, {
      content: `<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>${claimed}</KEYVALUE></ACCOUNTINFO>`,
    });
    expect(res.status).toBe(200);
  }
}

/** The deviceids of a JSON list of devices, sorted. */
const deviceids = (list: unknown) => (list as { deviceid: string }[]).map((d) => d.deviceid).sort();

async function state(deviceid: string) {
  const [d] = await ctx.sql<{ state: string; reason: string | null; actor: string | null }[]>`
    select d.state, d.state_reason as reason,
           (select actor from device_transitions t where t.device_id = d.id order by id desc limit 1) as actor
    from devices d where deviceid = ${deviceid}`;
  return d;
}

describe('rules', () => {
  it('the first matching rule decides, and its id is the recorded reason', async () => {
    const reject = await api('POST', '/api/v1/policies', {
      action: 'reject',
      match: { key: 'site-a', cidr: '203.0.113.0/24' },
      comment: 'site A guest network',
    });
    expect(reject.status).toBe(201);
    const approve = await api('POST', '/api/v1/policies', {
      action: 'approve',
      match: { key: 'site-a' },
      comment: 'site A',
    });
    expect((await agent(keyA, 'a-office', { ip: '192.0.2.10' })).status).toBe(200);
    expect(await state('a-office')).toEqual({
      state: 'approved',
      reason: `policy rule #${approve.json.rule.id} (site A)`,
      actor: 'policy',
    });
    const guest = await agent(keyA, 'a-guest', { ip: '203.0.113.9' });
    expect(guest.text).not.toContain('SEND'); // rejected at once: told to skip its inventory
    expect(await state('a-guest')).toMatchObject({
      state: 'rejected',
      reason: `policy rule #${reject.json.rule.id} (site A guest network)`,
    });
    await agent(keyB, 'b-1');
    expect((await state('b-1'))!.state).toBe('quarantined'); // no rule matches: a person decides
  });

  it('an allowlisted serial is approved when its inventory arrives, and the held inventory released', async () => {
    const imported = await api('POST', '/api/v1/allowlists/fleet/serial', { csv: 'serial\nCZC4318XKQ\nCZC0000001\n' });
    expect(imported.json).toEqual({ name: 'fleet', kind: 'serial', entries: 2 });
    await api('POST', '/api/v1/policies', { action: 'approve', match: { allowlist: 'fleet' } });
    await agent(keyB, 'b-known');
    expect((await state('b-known'))!.state).toBe('quarantined');
    await agent(keyB, 'b-known', { content: '<BIOS><SSN>CZC4318XKQ</SSN></BIOS><HARDWARE><NAME>ws</NAME></HARDWARE>' });
    expect((await state('b-known'))!.state).toBe('approved');
    const subs = await ctx.sql<
      { state: string }[]
    >`select s.state from submissions s join devices d on d.id = s.device_id where d.deviceid = 'b-known'`;
    expect(subs.map((s) => s.state)).toEqual(['released']);
  });
});

describe('the dry run', () => {
  it('reports for the queue exactly what saving the rules then does', async () => {
    await parisAndLyon();
    const proposed = [{ action: 'approve', match: { tag: 'paris' }, comment: 'paris' }];
    const dry = await api('POST', '/api/v1/policies/test', { rules: proposed, days: 7 });
    expect(dry.status).toBe(200);
    const predicted = deviceids(dry.json.queue.wouldApprove);
    expect(predicted).toEqual(['q-paris-1', 'q-paris-2']);
    expect((await state('q-paris-1'))!.state).toBe('quarantined'); // nothing changed yet
    const saved = await api('POST', '/api/v1/policies', proposed[0]);
    expect(deviceids(saved.json.applied)).toEqual(predicted);
    expect((await state('q-lyon-1'))!.state).toBe('quarantined');
  });

  it('refuses malformed rules with a clear message', async () => {
    const bad = await api('POST', '/api/v1/policies/test', {
      rules: [{ action: 'approve', match: { cidr: '10.0.0.0/99', colour: 'red' } }],
    });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/unknown condition "colour"/);
    expect(bad.json.message).toMatch(/cidr "10.0.0.0\/99"/);
  });
});

describe('a frozen key', () => {
  it('keeps its new devices quarantined even where a rule would approve; unfreezing lets rules act again', async () => {
    await api('POST', '/api/v1/policies', { action: 'approve', match: { key: 'site-b', cidr: '198.51.100.0/24' } });
    expect((await api('POST', '/api/v1/keys/site-b/freeze', { reason: 'spike' })).status).toBe(200);
    await agent(keyB, 'b-spike-1', { ip: '198.51.100.5' });
    expect((await state('b-spike-1'))!.state).toBe('quarantined');
    const dry = await api('POST', '/api/v1/policies/test', {});
    expect(dry.json.queue.wouldStay).toBeGreaterThan(0);
    await api('POST', '/api/v1/keys/site-b/unfreeze', {});
    await agent(keyB, 'b-spike-1', { ip: '198.51.100.5' });
    expect((await state('b-spike-1'))!.state).toBe('approved');
    const audit = await ctx.sql<
      { action: string }[]
    >`select action from audit_log where target_id = 'site-b' and action like 'key.%freeze' order by id`;
    expect(audit.map((a) => a.action)).toEqual(['key.freeze', 'key.unfreeze']);
  });
});

describe('server-side facts only', () => {
  it('devices show the key tag as tag and the agent tag as claimedTag; the tag= filter is the key tag', async () => {
    await parisAndLyon();
    const list = await api('GET', '/api/v1/devices?tag=paris');
    expect(list.status).toBe(200);
    expect(deviceids(list.json)).toEqual(['q-paris-1', 'q-paris-2']);
    expect(list.json[0]).toMatchObject({ tag: 'paris', claimedTag: 'lyon' });
    const claimed = await api('GET', '/api/v1/devices?claimedTag=paris');
    expect(deviceids(claimed.json)).toEqual(['q-lyon-1']);
    const one = await api('GET', '/api/v1/devices/q-lyon-1');
    expect(one.json).toMatchObject({ tag: 'lyon', claimedTag: 'paris', keyName: 'site-lyon' });
  });

  it('an approve rule on a MAC allowlist without key or cidr is refused by add and by test, saying why', async () => {
    const imported = await api('POST', '/api/v1/allowlists/lan-macs/mac', { csv: 'mac\n3C-52-82-11-4E-0A\n' });
    expect(imported.json).toEqual({ name: 'lan-macs', kind: 'mac', entries: 1 });
    const before = await api('GET', '/api/v1/policies');
    const rule = { action: 'approve', match: { allowlist: 'lan-macs' }, comment: 'office MACs' };
    const add = await api('POST', '/api/v1/policies', rule);
    expect(add.status).toBe(400);
    expect(add.json.message).toMatch(/allowlist "lan-macs" holds MAC addresses.*cannot approve.*key or a cidr/);
    const dry = await api('POST', '/api/v1/policies/test', { rules: [rule] });
    expect(dry.status).toBe(400);
    expect(dry.json.message).toMatch(/^Rule 1 refused: allowlist "lan-macs" holds MAC addresses/);
    expect((await api('GET', '/api/v1/policies')).json.rules).toEqual(before.json.rules);
    // Rejecting on a MAC, or approving on a MAC plus a verified key or network, is fine.
    expect((await api('POST', '/api/v1/policies/test', { rules: [{ ...rule, action: 'reject' }] })).status).toBe(200);
    const withCidr = { ...rule, match: { allowlist: 'lan-macs', cidr: '192.0.2.0/24' } };
    expect((await api('POST', '/api/v1/policies/test', { rules: [withCidr] })).status).toBe(200);
  });

  it('MACs imported later into the list of a MAC-less approve rule do not approve, with a warning', async () => {
    await api('POST', '/api/v1/allowlists/mixed/serial', { csv: 'SER-MIXED-1\n' });
    const saved = await api('POST', '/api/v1/policies', { action: 'approve', match: { allowlist: 'mixed' } });
    expect(saved.status).toBe(201);
    const imported = await api('POST', '/api/v1/allowlists/mixed/mac', { csv: '02:00:00:00:00:01\n' });
    expect(imported.json.warnings).toEqual([
      expect.stringMatching(new RegExp(`^rule #${saved.json.rule.id}: .*its MACs are ignored$`)),
    ]);
    await agent(keyB, 'mac-only', {
      content: '<NETWORKS><MACADDR>02:00:00:00:00:01</MACADDR></NETWORKS><HARDWARE><NAME>m</NAME></HARDWARE>',
    });
    expect((await state('mac-only'))!.state).toBe('quarantined');
    await agent(keyB, 'serial-ok', {
      content: '<BIOS><SSN>SER-MIXED-1</SSN></BIOS><HARDWARE><NAME>s</NAME></HARDWARE>',
    });
    expect((await state('serial-ok'))!.state).toBe('approved');
    const dry = await api('POST', '/api/v1/policies/test', {});
    expect(dry.json.warnings).toEqual([expect.stringContaining(`rule #${saved.json.rule.id}:`)]);
  });

  it('--cidr judges the recorded source address (X-Forwarded-For only through a trusted proxy)', async () => {
    const rule = { action: 'reject', match: { key: 'site-a', cidr: '198.18.0.0/15' }, position: 1 };
    expect((await api('POST', '/api/v1/policies', rule)).status).toBe(201);
    await agent(keyA, 'a-cidr', { ip: '198.18.0.7' });
    const [d] = await ctx.sql<{ state: string; addr: string }[]>`
      select state, last_remote_addr as addr from devices where deviceid = 'a-cidr'`;
    expect(d).toEqual({ state: 'rejected', addr: '198.18.0.7' });
  });
});
