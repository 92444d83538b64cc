/**
 * Registration key rotation against the injected clock: the grace window's edges, `--grace 0`, repeated
 * rotations, which version each registration used, usage per version — and the verification cache, which
 * must not let a revocation or an expired token live on.
 */
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

const actor = { name: 'test:setup', remoteAddr: null };
const prologText = textOf('fusioninventory-plain', '0001-post-prolog.json');

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function prolog(ctx: TestContext, deviceid: string, authorization: string) {
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: {
      'Content-Type': 'application/x-compress-zlib',
      'User-Agent': 'FusionInventory-Agent_v2.6-3',
      Authorization: authorization,
    },
    body: zlib.deflateSync(prologText.replace(/<DEVICEID>[^<]*<\/DEVICEID>/, `<DEVICEID>${deviceid}</DEVICEID>`)),
  });
}

function contact(ctx: TestContext, deviceid: string, authorization: string) {
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: {
      'Content-Type': 'application/x-compress-zlib',
      'GLPI-Agent-ID': `agent-${deviceid}`,
      Authorization: authorization,
    },
    body: zlib.deflateSync(JSON.stringify({ action: 'contact', deviceid, name: 'GLPI-Agent', version: '1.12' })),
  });
}

async function versionIds(ctx: TestContext, key: string): Promise<Record<number, number>> {
  const rows = await ctx.sql<{ version: number; id: number }[]>`
    select v.version, v.id from key_versions v join registration_keys k on k.id = v.key_id where k.name = ${key}`;
  return Object.fromEntries(rows.map((r) => [r.version, Number(r.id)]));
}

async function lastVersionUsed(ctx: TestContext, deviceid: string): Promise<number | null> {
  const [r] = await ctx.sql<{ v: number | null }[]>`
    select key_version_id as v from registrations where deviceid = ${deviceid} order by id desc limit 1`;
  return r?.v == null ? null : Number(r.v);
}

describe('rotation with the cache off (exact time travel)', () => {
  // A gateway of each test's own: its keys, registrations, audit log and clock are the test's alone.
  let ctx: TestContext;
  /** Every plaintext secret the test's gateway has been given. */
  let usedSecrets: string[];
  beforeEach(async () => {
    ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
    usedSecrets = [];
  });
  afterEach(async () => {
    await ctx?.close();
  });

  /** Key "rot" rotated with grace 3600 s, its devices rot-old and rot-new across the window's edges. */
  async function rotStory(): Promise<void> {
    await ctx.deps.admin.createKey({ name: 'rot', secret: 'rot-v1-pw' }, actor);
    usedSecrets.push('rot-v1-pw');
    const oldAuth = basic('inventory', 'rot-v1-pw');
    expect((await prolog(ctx, 'rot-old', oldAuth)).status).toBe(200);

    const t0 = ctx.clock.now().getTime();
    const rotated = await ctx.deps.admin.rotateKey('rot', 3600, actor);
    usedSecrets.push(rotated.secret);
    expect(rotated.version).toBe(2);
    expect(rotated.previousExpiresAt.getTime()).toBe(t0 + 3600_000);
    const newAuth = basic('inventory', rotated.secret);
    const ids = await versionIds(ctx, 'rot');

    // Right after the rotation both work.
    expect((await prolog(ctx, 'rot-old', oldAuth)).status).toBe(200);
    expect(await lastVersionUsed(ctx, 'rot-old')).toBe(ids[1]);
    expect((await prolog(ctx, 'rot-new', newAuth)).status).toBe(200);
    expect(await lastVersionUsed(ctx, 'rot-new')).toBe(ids[2]);

    ctx.clock.set(new Date(t0 + 3599_000));
    expect((await prolog(ctx, 'rot-old', oldAuth)).status).toBe(200);
    expect(await lastVersionUsed(ctx, 'rot-old')).toBe(ids[1]);
    expect((await contact(ctx, 'rot-new', newAuth)).status).toBe(200);

    ctx.clock.set(new Date(t0 + 3601_000));
    const refused = await prolog(ctx, 'rot-old', oldAuth);
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Basic realm="agent-gate"');
    expect(refused.text).toContain('<ERROR>Authorization required</ERROR>');
    expect((await prolog(ctx, 'rot-new', newAuth)).status).toBe(200);
    // The old device moves to the new secret.
    expect((await prolog(ctx, 'rot-old', newAuth)).status).toBe(200);
    expect(await lastVersionUsed(ctx, 'rot-old')).toBe(ids[2]);

    // Much later the new version still works (no expiry of its own).
    ctx.clock.advance(400 * 86400_000);
    expect((await prolog(ctx, 'rot-new', newAuth)).status).toBe(200);
  }

  /** Key "zero" rotated with grace 0. */
  async function zeroStory(): Promise<void> {
    await ctx.deps.admin.createKey({ name: 'zero', secret: 'zero-v1-pw' }, actor);
    usedSecrets.push('zero-v1-pw');
    expect((await prolog(ctx, 'zero-dev', basic('inventory', 'zero-v1-pw'))).status).toBe(200);
    const rotated = await ctx.deps.admin.rotateKey('zero', 0, actor);
    usedSecrets.push(rotated.secret);
    expect(rotated.previousExpiresAt.getTime()).toBe(ctx.clock.now().getTime());
    expect((await prolog(ctx, 'zero-dev', basic('inventory', 'zero-v1-pw'))).status).toBe(401);
    expect((await prolog(ctx, 'zero-dev', basic('inventory', rotated.secret))).status).toBe(200);
  }

  /** Key "twice" rotated three times (3600 s, 7 days, then 0). */
  async function twiceStory(): Promise<void> {
    await ctx.deps.admin.createKey({ name: 'twice', secret: 'twice-v1-pw' }, actor);
    usedSecrets.push('twice-v1-pw');
    const t0 = ctx.clock.now().getTime();
    const v2 = await ctx.deps.admin.rotateKey('twice', 3600, actor);
    ctx.clock.advance(60_000);
    const v3 = await ctx.deps.admin.rotateKey('twice', 7 * 86400, actor);
    usedSecrets.push(v2.secret, v3.secret);
    const v1Auth = basic('u', 'twice-v1-pw');
    const v2Auth = basic('u', v2.secret);
    const v3Auth = basic('u', v3.secret);

    ctx.clock.set(new Date(t0 + 3599_000));
    expect((await prolog(ctx, 'twice-dev', v1Auth)).status).toBe(200);
    ctx.clock.set(new Date(t0 + 3601_000));
    expect((await prolog(ctx, 'twice-dev', v1Auth)).status).toBe(401); // not stretched to 7 days
    expect((await prolog(ctx, 'twice-dev', v2Auth)).status).toBe(200);
    expect((await prolog(ctx, 'twice-dev', v3Auth)).status).toBe(200);

    const v4 = await ctx.deps.admin.rotateKey('twice', 0, actor);
    usedSecrets.push(v4.secret);
    expect((await prolog(ctx, 'twice-dev', v2Auth)).status).toBe(401);
    expect((await prolog(ctx, 'twice-dev', v3Auth)).status).toBe(401);
    expect((await prolog(ctx, 'twice-dev', basic('u', v4.secret))).status).toBe(200);
    const { key } = await ctx.deps.admin.keyUsage('twice');
    expect(key.versions.map((v) => [v.version, v.valid])).toEqual([
      [1, false],
      [2, false],
      [3, false],
      [4, true],
    ]);
  }

  /** Key "exp-key" with an expiresAt. */
  async function expiryStory(): Promise<void> {
    const at = new Date(ctx.clock.now().getTime() + 1000_000);
    await ctx.deps.admin.createKey({ name: 'exp-key', secret: 'exp-key-pw', expiresAt: at }, actor);
    usedSecrets.push('exp-key-pw');
    ctx.clock.set(new Date(at.getTime() - 1000));
    expect((await prolog(ctx, 'exp-dev', basic('x', 'exp-key-pw'))).status).toBe(200);
    ctx.clock.set(new Date(at.getTime() + 1000));
    expect((await prolog(ctx, 'exp-dev', basic('x', 'exp-key-pw'))).status).toBe(401);
  }

  it('grace 3600 s: old secret accepted at +3599 s, refused at +3601 s; new secret accepted throughout', rotStory);

  it('registrations record the key version of every accepted message; usage lists devices per version', async () => {
    await rotStory();
    const ids = await versionIds(ctx, 'rot');
    const regs = await ctx.sql<{ deviceid: string; v: number }[]>`
      select deviceid, key_version_id as v from registrations where deviceid in ('rot-old', 'rot-new') order by id`;
    expect(regs.map((r) => [r.deviceid, Number(r.v)])).toEqual([
      ['rot-old', ids[1]],
      ['rot-old', ids[1]],
      ['rot-new', ids[2]],
      ['rot-old', ids[1]],
      ['rot-new', ids[2]],
      ['rot-new', ids[2]],
      ['rot-old', ids[2]],
      ['rot-new', ids[2]],
    ]);
    const { key, usage } = await ctx.deps.admin.keyUsage('rot');
    expect(key.versions.map((v) => [v.version, v.valid])).toEqual([
      [1, false],
      [2, true],
    ]);
    const devicesOf = (version: number) =>
      [...new Set(usage.filter((u) => u.version === version).map((u) => u.deviceid))].sort();
    expect(devicesOf(1)).toEqual(['rot-old']);
    expect(devicesOf(2)).toEqual(['rot-new', 'rot-old']);
    const requests = (version: number, deviceid: string) =>
      usage.filter((u) => u.version === version && u.deviceid === deviceid).reduce((n, u) => n + u.requests, 0);
    expect(requests(1, 'rot-old')).toBe(3);
    expect(requests(2, 'rot-new')).toBe(4);
    expect(requests(2, 'rot-old')).toBe(1);
  });

  it('grace 0 cuts the old secret off at once', zeroStory);

  it('a second rotation never extends an older version, and grace 0 closes every older one', twiceStory);

  it('a key expiring (expiresAt) stops every version at that instant', expiryStory);

  it('rotation is audited without the new secret', async () => {
    await rotStory();
    await zeroStory();
    await twiceStory();
    const rows = await ctx.sql<{ actor: string; targetId: string; reason: string; before: unknown; after: unknown }[]>`
      select actor, target_id as "targetId", reason, before, after from audit_log where action = 'key.rotate' order by id`;
    expect(rows.map((r) => [r.targetId, r.reason])).toEqual([
      ['rot', 'grace 3600s'],
      ['zero', 'grace 0s'],
      ['twice', 'grace 3600s'],
      ['twice', 'grace 604800s'],
      ['twice', 'grace 0s'],
    ]);
    expect(rows.every((r) => r.actor === 'test:setup' && r.before && r.after)).toBe(true);
    const audited = JSON.stringify(rows);
    for (const secret of usedSecrets) expect(audited, secret).not.toContain(secret);
  });

  it('no plaintext secret in registrations, devices, audit_log or security_events', async () => {
    await rotStory();
    await zeroStory();
    await twiceStory();
    await expiryStory();
    const texts: string[] = [];
    for (const table of ['registrations', 'devices', 'audit_log', 'security_events']) {
      const rows = await ctx.sql.unsafe<{ j: string }[]>(`select row_to_json(t)::text as j from ${table} t`);
      texts.push(...rows.map((r) => r.j));
    }
    const all = texts.join('\n');
    expect(usedSecrets.length).toBe(9);
    for (const s of usedSecrets) expect(all, s).not.toContain(s);
  });
});

describe('the verification cache (SECRET_CACHE_TTL=30s)', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '30s', TOKEN_TTL: '60s' });
  });
  afterAll(async () => {
    await ctx.close();
  });

  it('revoking a key in this process takes effect at once, despite a cached verification', async () => {
    await ctx.deps.admin.createKey({ name: 'cached', secret: 'cached-pw' }, actor);
    const auth = basic('inventory', 'cached-pw');
    expect((await prolog(ctx, 'cache-dev', auth)).status).toBe(200);
    await ctx.deps.admin.setKeyActive('cached', false, actor);
    expect((await prolog(ctx, 'cache-dev', auth)).status).toBe(401);
    await ctx.deps.admin.setKeyActive('cached', true, actor);
    expect((await prolog(ctx, 'cache-dev', auth)).status).toBe(200);
  });

  it('a rotation with grace 0 ends a cached old secret at once', async () => {
    await ctx.deps.admin.createKey({ name: 'cached-rot', secret: 'cached-rot-pw' }, actor);
    const auth = basic('inventory', 'cached-rot-pw');
    expect((await prolog(ctx, 'cache-rot-dev', auth)).status).toBe(200);
    const r = await ctx.deps.admin.rotateKey('cached-rot', 0, actor);
    expect((await prolog(ctx, 'cache-rot-dev', auth)).status).toBe(401);
    expect((await prolog(ctx, 'cache-rot-dev', basic('inventory', r.secret))).status).toBe(200);
  });

  it('a cached old version is refused no later than grace end + SECRET_CACHE_TTL', async () => {
    await ctx.deps.admin.createKey({ name: 'cached-grace', secret: 'cached-grace-pw' }, actor);
    const t0 = ctx.clock.now().getTime();
    await ctx.deps.admin.rotateKey('cached-grace', 3600, actor);
    const auth = basic('inventory', 'cached-grace-pw');
    ctx.clock.set(new Date(t0 + 3590_000));
    expect((await prolog(ctx, 'cache-grace-dev', auth)).status).toBe(200); // verified and cached here
    ctx.clock.set(new Date(t0 + 3600_000 + 30_000 + 1000));
    expect((await prolog(ctx, 'cache-grace-dev', auth)).status).toBe(401);
  });

  it('a cached bearer token never outlives its expiry', async () => {
    const c = await ctx.deps.admin.createClient({ name: 'cached-client' }, actor);
    const { accessToken, expiresIn } = await ctx.deps.credentials.issueToken(c.clientId, c.clientSecret);
    expect(expiresIn).toBe(60);
    const auth = `Bearer ${accessToken}`;
    ctx.clock.advance(50_000);
    expect((await contact(ctx, 'cache-bearer-dev', auth)).status).toBe(200); // cached for 30 s, but the token ends in 10 s
    ctx.clock.advance(11_000);
    expect((await contact(ctx, 'cache-bearer-dev', auth)).status).toBe(401);
  });

  it('revoking a client ends its cached bearer token and Basic verification at once', async () => {
    const c = await ctx.deps.admin.createClient({ name: 'cached-client-2' }, actor);
    const { accessToken } = await ctx.deps.credentials.issueToken(c.clientId, c.clientSecret);
    expect((await contact(ctx, 'cache-rev-dev', `Bearer ${accessToken}`)).status).toBe(200);
    expect((await contact(ctx, 'cache-rev-dev', basic(c.clientId, c.clientSecret))).status).toBe(200);
    await ctx.deps.admin.revokeClient(c.clientId, actor);
    expect((await contact(ctx, 'cache-rev-dev', `Bearer ${accessToken}`)).status).toBe(401);
    expect((await contact(ctx, 'cache-rev-dev', basic(c.clientId, c.clientSecret))).status).toBe(401);
  });
});
