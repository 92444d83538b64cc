/**
 * What a security analyst reads before deciding, through the admin API and the CLI: the inventory itself
 * (a real GLPI Agent's), what changed between two inventories, look-alikes (`duplicates`), the queue's
 * credential fields, security events with filters and the security.spike webhook, the audit log's filters
 * and paging, and the INVENTORY_VIEW_LIMIT refusal.
 */
import zlib from 'node:zlib';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { eventually } from '../helpers/eventually.js';
import { loadScenario } from '../helpers/fixtures.js';

const actor = { name: 'test:setup', remoteAddr: null };

/** The GLPI Agent 1.12 inventory as captured (JSON, zlib), as a parsed message we can edit. */
const glpiInventory = loadScenario('glpi-plain').find((r) => r.classified.kind === 'inventory')!;
const fusionInventory = loadScenario('fusioninventory-plain').find((r) => r.classified.kind === 'inventory')!;
type Msg = { deviceid: string; content: Record<string, unknown> & { softwares: Record<string, unknown>[] } };
const glpiMessage = (): Msg => JSON.parse(glpiInventory.decoded_text) as Msg;

function postJson(ctx: TestContext, msg: Msg) {
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'GLPI-Agent_v1.12-dev' },
    body: zlib.deflateSync(JSON.stringify(msg)),
  });
}

function postXml(ctx: TestContext, deviceid: string) {
  const text = fusionInventory.decoded_text.replace(/<DEVICEID>[^<]*<\/DEVICEID>/, `<DEVICEID>${deviceid}</DEVICEID>`);
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', 'User-Agent': 'FusionInventory-Agent_v2.6-3' },
    body: zlib.deflateSync(text),
  });
}

const cli = (ctx: TestContext, args: string[]) => runCli(args, { DATABASE_URL: ctx.databaseUrl, LOG_LEVEL: 'silent' });

describe('the inventory, its changes and look-alikes', () => {
  let ctx: TestContext;
  let token = '';
  const get = (p: string) => request(ctx.app).get(p).set('Authorization', `Bearer ${token}`);

  beforeAll(async () => {
    ctx = await createTestContext({ AGENT_AUTH: 'off' });
    token = (await ctx.deps.admin.createOperator({ name: 'rita', role: 'reviewer' }, actor)).token;
  });
  afterAll(() => ctx?.close());

  it("returns a real agent's inventory as sections, the software with name, version and publisher", async () => {
    const msg = { ...glpiMessage(), deviceid: 'vm-inv-1' };
    expect((await postJson(ctx, msg)).status).toBe(200);
    const res = await get('/api/v1/devices/vm-inv-1/inventory');
    expect(res.status).toBe(200);
    const body = res.body as {
      state: string;
      source: { state: string; format: string };
      sections: { key: string; title: string; count: number; items: Record<string, unknown>[] }[];
    };
    expect(body.state).toBe('quarantined');
    expect(body.source).toMatchObject({ state: 'held', format: 'json' });
    const keys = body.sections.map((s) => s.key);
    // The reviewer's sections first, in the documented order, then the rest by key.
    expect(keys.slice(0, 8)).toEqual([
      'hardware',
      'bios',
      'operatingsystem',
      'cpus',
      'storages',
      'drives',
      'networks',
      'softwares',
    ]);
    expect(keys.slice(8)).toEqual([...keys.slice(8)].sort());
    expect(keys).toContain('local_users');
    const software = body.sections.find((s) => s.key === 'softwares')!;
    expect(software.count).toBe(msg.content.softwares.length);
    expect(software.items).toContainEqual({ name: 'adduser', version: '3.134', publisher: 'Debian' });
    expect(body.sections.find((s) => s.key === 'hardware')!.items[0]).toMatchObject({ name: 'vm' });
  });

  it('prints the same inventory from the CLI (devices show --inventory, text and --json)', async () => {
    const json = await cli(ctx, ['devices', 'show', 'vm-inv-1', '--inventory', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const api = (await get('/api/v1/devices/vm-inv-1/inventory')).body as { sections: unknown };
    expect((JSON.parse(json.stdout) as { sections: unknown }).sections).toEqual(api.sections);
    const text = await cli(ctx, ['devices', 'show', 'vm-inv-1', '--inventory']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/== Software \(\d+\)/);
    expect(text.stdout).toMatch(/adduser\s+3\.134\s+Debian/);
  }, 90_000);

  it('shows what changed with a second inventory: software upgraded, added and removed, memory', async () => {
    const msg = { ...glpiMessage(), deviceid: 'vm-inv-1' };
    const sw = msg.content.softwares;
    const removed = sw.find((s) => s.name === 'alsa-topology-conf')!;
    msg.content.softwares = sw
      .filter((s) => s !== removed)
      .map((s) => (s.name === 'adduser' ? { ...s, version: '3.135' } : s))
      .concat([{ name: 'netcat-openbsd', version: '1.219-1', publisher: 'Debian' }]);
    const hw = msg.content.hardware as Record<string, unknown>;
    msg.content.hardware = { ...hw, name: 'vm-renamed' };
    expect((await postJson(ctx, msg)).status).toBe(200);
    const res = await get('/api/v1/devices/vm-inv-1/changes');
    expect(res.status).toBe(200);
    const body = res.body as {
      basis: string;
      from: { submissionId: number };
      to: { submissionId: number };
      changes: {
        identity: { field: string; before: unknown; after: unknown }[];
        software: { added: unknown[]; removed: unknown[]; upgraded: unknown[] };
        macs: { added: string[]; removed: string[] };
      };
    };
    expect(body.basis).toBe('previous');
    expect(body.to.submissionId).toBeGreaterThan(body.from.submissionId);
    expect(body.changes.software.upgraded).toEqual([
      { name: 'adduser', publisher: 'Debian', from: '3.134', to: '3.135' },
    ]);
    expect(body.changes.software.added).toEqual([{ name: 'netcat-openbsd', version: '1.219-1', publisher: 'Debian' }]);
    expect(body.changes.software.removed).toEqual([
      { name: 'alsa-topology-conf', version: String(removed.version), publisher: 'Debian' },
    ]);
    expect(body.changes.identity).toEqual([{ field: 'name', before: 'vm', after: 'vm-renamed' }]);
    expect(body.changes.macs).toEqual({ added: [], removed: [] });
  });

  it('has no changes to show for a device with one inventory', async () => {
    expect((await postJson(ctx, { ...glpiMessage(), deviceid: 'vm-inv-2' })).status).toBe(200);
    const res = await get('/api/v1/devices/vm-inv-2/changes');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ from: null, changes: null });
  });

  it('flags look-alikes in the list, on the device and in the CLI, naming what they share', async () => {
    // The FusionInventory capture is the same virtual machine: name "vm", the same MACs.
    expect((await postXml(ctx, 'vm-fusion-1')).status).toBe(200);
    const list = await get('/api/v1/devices?state=quarantined');
    expect(list.status).toBe(200);
    type Row = { id: number; deviceid: string; duplicates: { id: number; deviceid: string; shared: string[] }[] };
    const rows = list.body as Row[];
    const fusion = rows.find((r) => r.deviceid === 'vm-fusion-1')!;
    const second = rows.find((r) => r.deviceid === 'vm-inv-2')!;
    const dupOfFusion = fusion.duplicates.find((x) => x.deviceid === 'vm-inv-2');
    expect(dupOfFusion).toEqual({
      id: second.id,
      deviceid: 'vm-inv-2',
      shared: ['mac', 'name'],
      state: 'quarantined',
      name: 'vm',
    });
    // The renamed one still shares its MACs, not its name; the all-zero MAC both carry is junk (GLPI's list).
    const renamed = fusion.duplicates.find((x) => x.deviceid === 'vm-inv-1');
    expect(renamed?.shared).toEqual(['mac']);
    const show = await get(`/api/v1/devices/id:${second.id}`);
    expect((show.body as Row).duplicates.map((x) => x.deviceid).sort()).toEqual(['vm-fusion-1', 'vm-inv-1']);
    const out = await cli(ctx, ['devices', 'list', '--json']);
    expect(out.code, out.stderr).toBe(0);
    const cliRow = (JSON.parse(out.stdout) as Row[]).find((r) => r.deviceid === 'vm-fusion-1')!;
    expect(cliRow.duplicates).toEqual(fusion.duplicates);
  }, 90_000);

  it('never calls devices look-alikes for a junk serial or an empty name alone', async () => {
    const a = glpiMessage();
    const base = {
      hardware: { name: '' },
      bios: { ssn: 'To Be Filled By O.E.M.' },
      networks: [{ description: 'eth0', mac: '00:00:00:00:00:00' }],
    };
    for (const id of ['junk-1', 'junk-2'])
      expect((await postJson(ctx, { ...a, deviceid: id, content: { ...base, softwares: [] } })).status).toBe(200);
    const rows = (await get('/api/v1/devices?q=junk-')).body as { deviceid: string; duplicates: unknown[] }[];
    expect(rows.map((r) => [r.deviceid, r.duplicates])).toEqual([
      ['junk-2', []],
      ['junk-1', []],
    ]);
  });

  it('gives the agent and the route of each device in the list', async () => {
    const rows = (await get('/api/v1/devices')).body as {
      deviceid: string;
      agent: { product: string | null; version: string | null };
      proxyChain: string[];
    }[];
    expect(rows.find((r) => r.deviceid === 'vm-fusion-1')!.agent).toEqual({
      product: 'FusionInventory',
      version: '2.6-3',
    });
    expect(rows.find((r) => r.deviceid === 'vm-inv-1')!.agent.product).toBe('GLPI Agent');
    expect(rows.find((r) => r.deviceid === 'vm-inv-1')!.proxyChain).toEqual([]);
  });
});

describe('bounded parsing', () => {
  it('refuses to parse an inventory larger than INVENTORY_VIEW_LIMIT (413), and shows a smaller one', async () => {
    const ctx = await createTestContext({ AGENT_AUTH: 'off', INVENTORY_VIEW_LIMIT: '64kb' });
    try {
      const token = (await ctx.deps.admin.createOperator({ name: 'rita', role: 'reviewer' }, actor)).token;
      expect((await postJson(ctx, { ...glpiMessage(), deviceid: 'big-1' })).status).toBe(200);
      const res = await request(ctx.app).get('/api/v1/devices/big-1/inventory').set('Authorization', `Bearer ${token}`);
      expect(res.status).toBe(413);
      expect((res.body as { message: string }).message).toMatch(/INVENTORY_VIEW_LIMIT/);
      const [row] = await ctx.sql<{ view: unknown }[]>`select view from inventory_views`;
      expect(row!.view).toBeNull(); // nothing was parsed
      const small = { deviceid: 'small-1', content: { hardware: { name: 'tiny' }, softwares: [] } };
      expect((await postJson(ctx, { ...glpiMessage(), ...small })).status).toBe(200);
      const ok = await request(ctx.app)
        .get('/api/v1/devices/small-1/inventory')
        .set('Authorization', `Bearer ${token}`);
      expect(ok.status).toBe(200);
    } finally {
      await ctx.close();
    }
  });
});

describe('security events and the audit log', () => {
  let ctx: TestContext;
  let admin = '';
  const get = (p: string) => request(ctx.app).get(p).set('Authorization', `Bearer ${admin}`);
  const badBasic = (user: string, addr: string) =>
    send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: {
        'Content-Type': 'application/x-compress-zlib',
        Authorization: `Basic ${Buffer.from(`${user}:wrong-secret`).toString('base64')}`,
        'X-Forwarded-For': addr,
      },
      body: zlib.deflateSync('<?xml version="1.0"?><REQUEST><DEVICEID>x-1</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>'),
    });

  beforeAll(async () => {
    ctx = await createTestContext({
      AGENT_AUTH: 'required',
      SECRET_CACHE_TTL: '0',
      TRUST_PROXY: 'loopback',
      SECURITY_SPIKE_FAILURES: '3',
      WEBHOOK_URLS: 'http://127.0.0.1:9/hook',
      WEBHOOK_SECRET: 'test-secret',
    });
    admin = (await ctx.deps.admin.createOperator({ name: 'boss', role: 'admin' }, actor)).token;
  });
  afterAll(() => ctx?.close());

  it('lists failed credentials with type, address and key filters, and pages by id', async () => {
    for (let i = 0; i < 4; i++) expect((await badBasic('inventory', '198.51.100.7')).status).toBe(401);
    expect((await badBasic('agc_abcdef', '198.51.100.8')).status).toBe(401);
    const all = await eventually(async () => {
      const res = await get('/api/v1/security-events');
      expect(res.status).toBe(200);
      expect(res.body).toHaveLength(5);
      return res.body as { id: number; kind: string; remoteAddr: string; credential: string | null }[];
    });
    expect(all.every((e) => e.kind === 'invalid_credential')).toBe(true);
    const byAddr = (await get('/api/v1/security-events?address=198.51.100.7')).body as unknown[];
    expect(byAddr).toHaveLength(4);
    expect((await get('/api/v1/security-events?address=198.51.100.0/24')).body).toHaveLength(5);
    const byKey = (await get('/api/v1/security-events?key=agc_abc')).body as {
      remoteAddr: string;
      credential: string;
    }[];
    expect(byKey.map((e) => [e.remoteAddr, e.credential])).toEqual([['198.51.100.8', 'agc_abcdef']]);
    expect((await get('/api/v1/security-events?type=device_credential_mismatch')).body).toEqual([]);
    expect((await get('/api/v1/security-events?type=nonsense')).status).toBe(400);
    const page1 = (await get('/api/v1/security-events?limit=2')).body as { id: number }[];
    const page2 = (await get(`/api/v1/security-events?limit=2&before=${page1[1]!.id}`)).body as { id: number }[];
    expect(page2.map((e) => e.id)).toEqual(all.slice(2, 4).map((e) => e.id));
    expect((await get(`/api/v1/security-events?since=${new Date(Date.now() + 3600_000).toISOString()}`)).body).toEqual(
      [],
    );
  });

  it('records one security.spike webhook when failures from one address pass SECURITY_SPIKE_FAILURES', async () => {
    const spikes = () =>
      ctx.sql<{ payload: Record<string, unknown> }[]>`
        select payload from webhook_deliveries where event = 'security.spike' order by id`;
    const rows = await eventually(async () => {
      const r = await spikes();
      expect(r).toHaveLength(1);
      return r;
    });
    expect(rows[0]!.payload).toMatchObject({
      scope: 'address',
      subject: '198.51.100.7',
      failures: 4,
      threshold: 3,
      lastType: 'invalid_credential',
    });
    // More failures from that address in the same window: no second alert.
    expect((await badBasic('inventory', '198.51.100.7')).status).toBe(401);
    await eventually(async () => expect((await get('/api/v1/security-events')).body).toHaveLength(6));
    expect(await spikes()).toHaveLength(1);
  });

  it('lists them from the CLI with --type, --since and --limit', async () => {
    const out = await cli(ctx, ['security-events', 'list', '--type', 'invalid_credential', '--limit', '2', '--json']);
    expect(out.code, out.stderr).toBe(0);
    const rows = JSON.parse(out.stdout) as { kind: string; remoteAddr: string }[];
    expect(rows).toHaveLength(2);
    const future = await cli(ctx, ['security-events', 'list', '--since', '2999-01-01', '--json']);
    expect(JSON.parse(future.stdout)).toEqual([]);
    const text = await cli(ctx, ['security-events', 'list', '--key', 'agc_abcdef']);
    expect(text.stdout).toMatch(/invalid_credential\s+198\.51\.100\.8\s+agc_abcdef/);
    const bad = await cli(ctx, ['security-events', 'list', '--since', 'yesterday-ish']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--since must be a date/);
  }, 90_000);

  it('filters the audit log by actor, action and time, and pages it', async () => {
    for (const name of ['k1', 'k2', 'k3'])
      await ctx.deps.admin.createKey({ name }, { name: 'operator:alice', remoteAddr: null });
    await ctx.deps.admin.rotateKey('k1', 0, { name: 'operator:bob', remoteAddr: null });
    const byActor = (await get('/api/v1/audit?actor=alice')).body as { actor: string; action: string; id: number }[];
    expect(byActor.map((e) => [e.actor, e.action])).toEqual([
      ['operator:alice', 'key.create'],
      ['operator:alice', 'key.create'],
      ['operator:alice', 'key.create'],
    ]);
    expect(((await get('/api/v1/audit?action=key.rotate')).body as { actor: string }[]).map((e) => e.actor)).toEqual([
      'operator:bob',
    ]);
    const next = (await get(`/api/v1/audit?actor=alice&limit=2&before=${byActor[1]!.id}`)).body as { id: number }[];
    expect(next.map((e) => e.id)).toEqual([byActor[2]!.id]);
    expect((await get('/api/v1/audit?until=2000-01-01')).body).toEqual([]);
    expect((await get('/api/v1/audit?action=nope')).status).toBe(400);
  });
});
