/**
 * Admission under load, the way the agents honour it: past the inventory budget, a device's or a key's
 * limit, PROLOG and CONTACT still get a successful answer — without an inventory order and with a later
 * next contact, spread with jitter — and every deferral is recorded and counted. Inventories that arrive
 * are never refused for load. A spike of new devices from one key freezes the key for auto-approval.
 */
import zlib from 'node:zlib';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { eventually } from '../helpers/eventually.js';

const zlibXml = { 'Content-Type': 'application/x-compress-zlib' };
const prolog = (deviceid: string) =>
  zlib.deflateSync(
    `<?xml version="1.0"?><REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY><TOKEN>12345678</TOKEN></REQUEST>`,
  );
const freqOf = (text: string) => Number(/<PROLOG_FREQ>(\d+)<\/PROLOG_FREQ>/.exec(text)?.[1]);
const actor = { name: 'test', remoteAddr: null };

async function outcomes(ctx: TestContext, like: string) {
  const rows = await ctx.sql<
    { outcome: string }[]
  >`select outcome from registrations where deviceid like ${like} order by id`;
  return rows.map((r) => r.outcome);
}

/** agentgate_deferred_total{reason} of this context's gateway (0 before the first deferral). */
async function deferredTotal(ctx: TestContext, reason: string): Promise<number> {
  const metrics = (await send(ctx.app, { method: 'GET', path: '/metrics' })).text;
  return Number(new RegExp(`^agentgate_deferred_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
}

// A Redis database of its own: the limit tests flush theirs, and both files may run at once.
const REDIS_URL = TEST_REDIS_URL.replace(/\/\d+$/, '/7');

describe('the inventory budget (shared through Redis)', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext({ AGENT_AUTH: 'off', REDIS_URL, INVENTORY_BUDGET_PER_SECOND: '5' });
  });
  // Every test starts with the whole budget: no window left half used by the one before.
  beforeEach(async () => {
    const r = new Redis(REDIS_URL);
    await r.flushdb();
    r.disconnect();
  });
  afterAll(async () => {
    await ctx.close();
  });

  it('past the budget, PROLOG gets "not now, come back in 1-4 h", never an error', async () => {
    const countedBefore = await deferredTotal(ctx, 'budget');
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog(`herd-${i}`) }),
      ),
    );
    const windows = Math.ceil((Date.now() - started) / 1000) + 1; // fixed one-second windows the herd spanned
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const admitted = answers.filter((a) => a.text.includes('<RESPONSE>SEND</RESPONSE>'));
    const deferred = answers.filter((a) => !a.text.includes('SEND'));
    expect(admitted.length).toBeGreaterThanOrEqual(5);
    expect(admitted.length).toBeLessThanOrEqual(5 * windows);
    expect(deferred.length).toBeGreaterThan(0);
    expect(deferred.length).toBe(30 - admitted.length);
    for (const d of deferred) {
      expect(freqOf(d.text)).toBeGreaterThanOrEqual(1);
      expect(freqOf(d.text)).toBeLessThanOrEqual(4);
    }
    const recorded = await outcomes(ctx, 'herd-%');
    expect(recorded.filter((o) => o === 'deferred:budget').length).toBe(deferred.length);
    expect((await deferredTotal(ctx, 'budget')) - countedBefore).toBe(deferred.length);
    expect(await ctx.deps.redis!.keys('agentgate:budget:*')).not.toHaveLength(0);
  });

  it('the budget resets with its one-second window', async () => {
    const herd = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog(`reset-a-${i}`) }),
      ),
    );
    expect(herd.some((a) => !a.text.includes('SEND'))).toBe(true);
    // Not a wait for background work: the window is one second of real time (the Redis key expires with it,
    // not on the test clock), and that it ends is what this test checks.
    await new Promise((r) => setTimeout(r, 1100));
    const next = await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog('reset-b') });
    expect(next.text).toContain('<RESPONSE>SEND</RESPONSE>');
  });

  it('a GLPI Agent CONTACT is deferred with the inventory task disabled and a later expiration', async () => {
    /** The parts of a CONTACT answer read here. */
    interface ContactAnswer {
      status: string;
      disabled: string[];
      tasks: { inventory: { server: string } };
      expiration: string;
    }
    const contacts: ContactAnswer[] = [];
    for (let i = 0; i < 20; i++) {
      const body = Buffer.from(
        JSON.stringify({ action: 'contact', deviceid: `ga-herd-${i}`, name: 'GLPI-Agent', version: '1.12' }),
      );
      contacts.push(
        JSON.parse(
          (
            await send(ctx.app, {
              method: 'POST',
              path: '/',
              headers: {
                'Content-Type': 'application/json',
                'GLPI-Agent-ID': `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
              },
              body,
            })
          ).text,
        ) as ContactAnswer,
      );
    }
    const deferred = contacts.filter((c) => c.disabled.includes('inventory'));
    expect(deferred.length).toBeGreaterThan(0);
    for (const c of deferred) {
      expect(c.status).toBe('ok');
      expect(c.tasks.inventory.server).toBe('glpi'); // no extra legacy PROLOG
      const minutes = Number(/^(\d+)m$/.exec(c.expiration)?.[1]);
      expect(minutes).toBeGreaterThanOrEqual(60);
      expect(minutes).toBeLessThanOrEqual(240);
    }
    expect(new Set(deferred.map((c) => c.expiration)).size).toBeGreaterThan(1); // spread, not one wave
  });

  it('an inventory of a known device that arrives anyway is stored, never refused for load; a new one is admitted like its PROLOG', async () => {
    // A device the gateway knows (registered while the budget had room).
    const known = await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog('known-1') });
    expect(known.text).toContain('<RESPONSE>SEND</RESPONSE>');
    const inventory = (deviceid: string) =>
      zlib.deflateSync(
        `<?xml version="1.0"?><REQUEST><CONTENT><HARDWARE><NAME>late</NAME></HARDWARE></CONTENT><DEVICEID>${deviceid}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`,
      );
    const stored = async (deviceid: string) =>
      (
        await ctx.sql<
          { n: number }[]
        >`select count(*)::int as n from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid}`
      )[0]!.n;
    // What follows must happen in one budget window (a second of real time): it starts at the beginning of
    // the next one, so a slow machine does not see the budget refill half-way. Not a wait for background work.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 10));
    const drain = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog(`drain-${i}`) }),
      ),
    );
    expect(drain.some((a) => !a.text.includes('SEND'))).toBe(true); // the budget is spent
    // The known device's inventory is taken all the same.
    const res = await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: inventory('known-1') });
    // A new device whose PROLOG was deferred (it created no device) sends its inventory anyway: a first
    // contact, admitted through the same budget, so it is told to come back later and creates nothing.
    const lateProlog = await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog('late-1') });
    const late = await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: inventory('late-1') });
    expect(res.status).toBe(200);
    expect(await stored('known-1')).toBe(1);
    expect(lateProlog.text).not.toContain('SEND');
    expect(late.status).toBe(429);
    expect((await ctx.sql`select 1 from devices where deviceid = 'late-1'`).length).toBe(0);
  });
});

describe('per device and per key', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext({
      AGENT_AUTH: 'required',
      SECRET_CACHE_TTL: '0',
      RATE_LIMIT_DEVICE_PER_HOUR: '2',
      RATE_LIMIT_KEY_PER_MINUTE: '5',
      SPIKE_NEW_DEVICES_PER_KEY: '3',
    });
  });
  afterAll(async () => {
    await ctx.close();
  });
  /** A registration key of the test's own: the per-key limit and the spike count start from zero. */
  const newKey = async (name: string) => (await ctx.deps.admin.createKey({ name }, actor)).secret;
  const withKey = (key: string, deviceid: string) =>
    send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibXml, Authorization: `Basic ${Buffer.from(`u:${key}`).toString('base64')}` },
      body: prolog(deviceid),
    });

  it('a device looping on PROLOG is told to come back later from its third contact in the hour', async () => {
    const key = await newKey('site-loop');
    const answers = [await withKey(key, 'loop-1'), await withKey(key, 'loop-1'), await withKey(key, 'loop-1')];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.map((a) => a.text.includes('SEND'))).toEqual([true, true, false]);
    expect(await outcomes(ctx, 'loop-1')).toEqual(['quarantined', 'quarantined', 'deferred:device']);
  });

  it('a key past its per-minute limit has its agents deferred', async () => {
    // Five contacts of the key's agents are admitted (two devices twice, one once: each under its own limit
    // of two, and no more than three new devices, so no spike either), the sixth waits for the key.
    const key = await newKey('site-kk');
    const answers = [];
    for (const d of ['kk-1', 'kk-1', 'kk-2', 'kk-2', 'kk-3', 'kk-3']) answers.push(await withKey(key, d));
    expect(answers.map((a) => a.text.includes('SEND'))).toEqual([true, true, true, true, true, false]);
    expect((await outcomes(ctx, 'kk-3')).at(-1)).toBe('deferred:key');
  });

  it('a spike of new devices from one key freezes it for auto-approval and says so', async () => {
    // Four new devices of site-spike: one past SPIKE_NEW_DEVICES_PER_KEY=3.
    const key = await newKey('site-spike');
    for (const d of ['spike-1', 'spike-2', 'spike-3', 'spike-4']) expect((await withKey(key, d)).status).toBe(200);
    // The detector runs just after the answer.
    const k = await eventually(async () => {
      const [row] = await ctx.sql<
        { frozenAt: Date | null; frozenReason: string | null }[]
      >`select frozen_at as "frozenAt", frozen_reason as "frozenReason" from registration_keys where name = 'site-spike'`;
      expect(row!.frozenAt).not.toBeNull();
      return row!;
    });
    expect(k.frozenReason).toMatch(/spike: 4 new devices from key site-spike/);
    const [a] = await ctx.sql<
      { actor: string }[]
    >`select actor from audit_log where action = 'key.freeze' and target_id = 'site-spike'`;
    expect(a!.actor).toBe('system:spike-detector');
    expect((await send(ctx.app, { method: 'GET', path: '/metrics' })).text).toContain(
      'agentgate_spike_alerts_total{scope="key"} 1',
    );
  });
});
