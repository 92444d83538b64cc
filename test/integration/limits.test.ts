/**
 * Abuse limits through real Redis: a flood from one address is cut off (429, agent format, Retry-After)
 * while another address is served; invalid credentials trip the brute-force limit while the agents'
 * normal credential-less first attempts never do; two gateway processes share one limit; and Redis going
 * away and coming back is survived.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import type { Options } from 'express-rate-limit';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Proc, freePort, startGateway } from '../../scripts/lib/processes.js';
import { FailoverStore } from '../../src/http/limits.js';
import { type TestContext, createSchema, createTestContext, send } from '../helpers/context.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { eventually } from '../helpers/eventually.js';
import { textOf } from '../helpers/fixtures.js';
import { TEST_ADMIN_TOKEN } from '../helpers/secrets.js';

const prolog = zlib.deflateSync(textOf('fusioninventory-plain', '0001-post-prolog.json'));
const zlibXml = { 'Content-Type': 'application/x-compress-zlib' };
const badBasic = `Basic ${Buffer.from('inventory:wrong-password-123').toString('base64')}`;

/** A PROLOG from `ip` (X-Forwarded-For, with TRUST_PROXY=loopback), with `authz` when given. */
function prologFrom(ctx: TestContext, ip: string, authz?: string) {
  return send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { ...zlibXml, 'X-Forwarded-For': ip, ...(authz ? { Authorization: authz } : {}) },
    body: prolog,
  });
}

async function flushRedis(url: string): Promise<void> {
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
}

describe('limits in one gateway (real Redis)', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    await flushRedis(TEST_REDIS_URL);
    ctx = await createTestContext({
      AGENT_AUTH: 'required',
      REDIS_URL: TEST_REDIS_URL,
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_IP_PER_MINUTE: '5',
      RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '3',
    });
  });
  afterAll(async () => {
    await ctx.close();
  });

  it('cuts off a flood from one address and keeps serving another', async () => {
    const from = (ip: string) => prologFrom(ctx, ip);
    const flood = [];
    for (let i = 0; i < 7; i++) flood.push((await from('198.51.100.7')).status);
    expect(flood).toEqual([401, 401, 401, 401, 401, 429, 429]);
    const cut = await from('198.51.100.7');
    expect(cut.headers['retry-after']).toBe('60');
    expect(cut.headers['content-type']).toBe('application/x-compress-zlib');
    expect(cut.text).toMatch(/<REPLY><ERROR>Too many requests<\/ERROR><\/REPLY>/);
    expect((await from('198.51.100.8')).status).toBe(401);
    const keys = await ctx.deps.redis!.keys('agentgate:ip:*');
    expect(keys.length).toBeGreaterThanOrEqual(2);
  });

  it('trips on invalid credentials, never on the missing ones every agent sends first', async () => {
    const from = (ip: string, authz?: string) => prologFrom(ctx, ip, authz);
    const missing = [];
    for (let i = 0; i < 4; i++) missing.push((await from('203.0.113.1')).status);
    expect(missing).toEqual([401, 401, 401, 401]);
    const wrong = [];
    for (let i = 0; i < 4; i++) wrong.push((await from('203.0.113.2', badBasic)).status);
    expect(wrong).toEqual([401, 401, 401, 429]);
    // The same address is now refused even with no credential at all…
    expect((await from('203.0.113.2')).status).toBe(429);
    // …while the address that only made normal first attempts is not.
    expect((await from('203.0.113.1')).status).toBe(401);
    const metrics = (await send(ctx.app, { method: 'GET', path: '/metrics' })).text;
    expect(metrics).toMatch(/agentgate_limiter_hits_total\{limiter="auth_failures"\} [1-9]/);
  });

  it('reset when their window ends: the counters in Redis expire with it', async () => {
    const from = (ip: string, authz?: string) => prologFrom(ctx, ip, authz);
    // Trip both limits from addresses of this test's own: a flood, and invalid credentials.
    const flood = [];
    for (let i = 0; i < 6; i++) flood.push((await from('198.51.100.9')).status);
    expect(flood.at(-1)).toBe(429);
    const wrong = [];
    for (let i = 0; i < 4; i++) wrong.push((await from('203.0.113.3', badBasic)).status);
    expect(wrong.at(-1)).toBe(429);
    // Each counter lives exactly one window.
    const ipTtl = await ctx.deps.redis!.pttl('agentgate:ip:198.51.100.9');
    expect(ipTtl).toBeGreaterThan(0);
    expect(ipTtl).toBeLessThanOrEqual(60_000);
    const authTtl = await ctx.deps.redis!.pttl('agentgate:authfail:203.0.113.3');
    expect(authTtl).toBeGreaterThan(60_000);
    expect(authTtl).toBeLessThanOrEqual(15 * 60_000);
    // Ending the window (what expiry does) lets the address in again, once this gateway's memory of the
    // refusal (at most REFUSAL_MEMORY_MS, never past the window) has passed.
    await ctx.deps.redis!.del('agentgate:ip:198.51.100.9');
    await eventually(async () => expect((await from('198.51.100.9')).status).toBe(401), { timeout: 5000 });
  });

  it('answers a refused address from memory: its counter in Redis stops moving', async () => {
    const from = (ip: string) => prologFrom(ctx, ip);
    const counter = async () => Number(await ctx.deps.redis!.get('agentgate:ip:198.51.100.10'));
    const flood = [];
    for (let i = 0; i < 6; i++) flood.push((await from('198.51.100.10')).status);
    expect(flood).toEqual([401, 401, 401, 401, 401, 429]);
    const counted = await counter();
    expect(counted).toBe(6);
    const more = [];
    for (let i = 0; i < 3; i++) more.push((await from('198.51.100.10')).status);
    expect(more).toEqual([429, 429, 429]);
    // The remembered refusal is still the shared one: later it is asked of Redis again, and counted there.
    expect(await counter()).toBeLessThan(counted + 3);
    await eventually(async () => {
      expect((await from('198.51.100.10')).status).toBe(429);
      expect(await counter()).toBeGreaterThan(counted);
    });
  });
});

describe('two gateway processes sharing one Redis', () => {
  const procs: Proc[] = [];
  let drop: () => Promise<void> = async () => {};
  beforeAll(async () => {
    await flushRedis(TEST_REDIS_URL);
    const schema = await createSchema();
    drop = () => schema.drop();
    const env = {
      DATABASE_URL: schema.url,
      REDIS_URL: TEST_REDIS_URL,
      AGENT_AUTH: 'off',
      RATE_LIMIT_IP_PER_MINUTE: '6',
      BOOTSTRAP_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    };
    procs.push(await startGateway(env));
    procs.push(await startGateway(env));
  }, 120_000);
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await drop();
  });

  it('enforce one limit between them', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`http://127.0.0.1:${procs[i % 2]!.port}/`, {
        method: 'POST',
        headers: zlibXml,
        body: prolog,
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
  });
});

describe('Redis going away and coming back', () => {
  let redisPort = 0;
  let redis: ChildProcess | null = null;
  let ctx: TestContext;
  const startRedis = async () => {
    redis = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    await eventually(
      async () => {
        const probe = new Redis({
          port: redisPort,
          host: '127.0.0.1',
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
        });
        probe.on('error', () => {});
        try {
          await probe.connect();
          await probe.ping();
        } finally {
          probe.disconnect();
        }
      },
      { timeout: 5000, interval: 100, message: `the test redis-server on port ${redisPort} answers PING` },
    );
  };
  const stopRedis = async () => {
    const r = redis!;
    const exited = new Promise((resolve) => r.once('exit', resolve));
    r.kill('SIGKILL');
    await exited;
  };

  beforeAll(async () => {
    redisPort = await freePort();
    await startRedis();
    ctx = await createTestContext({
      AGENT_AUTH: 'off',
      REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
      RATE_LIMIT_IP_PER_MINUTE: '1000',
    });
  }, 30_000);
  afterAll(async () => {
    await ctx.close();
    if (redis && redis.exitCode === null && redis.signalCode === null) await stopRedis();
  });

  const gauge = async () =>
    /^agentgate_limiter_redis_up (\d)$/m.exec((await send(ctx.app, { method: 'GET', path: '/metrics' })).text)?.[1];

  it('keeps serving on per-process limits while Redis is away, and goes back to Redis by itself', async () => {
    expect((await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog })).status).toBe(200);
    await stopRedis();
    const during = [];
    for (let i = 0; i < 3; i++)
      during.push((await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog })).status);
    expect(during).toEqual([200, 200, 200]);
    expect(await gauge()).toBe('0');
    await startRedis();
    // The limiters find Redis again by themselves (traffic goes on meanwhile).
    await eventually(
      async () => {
        await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog });
        expect(await gauge()).toBe('1');
      },
      { timeout: 20_000, interval: 500 },
    );
    // Counting is back in the restarted Redis.
    await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog });
    const probe = new Redis({ port: redisPort, host: '127.0.0.1' });
    expect((await probe.keys('agentgate:ip:*')).length).toBeGreaterThan(0);
    probe.disconnect();
  }, 40_000);
});

describe('a burst of valid agents behind one address', () => {
  let ctx: TestContext;
  let key = '';
  beforeAll(async () => {
    ctx = await createTestContext({
      AGENT_AUTH: 'required',
      SECRET_CACHE_TTL: '0',
      RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '3',
    });
    key = (await ctx.deps.admin.createKey({ name: 'nat-site' }, { name: 't', remoteAddr: null })).secret;
  });
  afterAll(async () => {
    await ctx.close();
  });

  it('is never taken for brute force, however many are in flight at once', async () => {
    const authz = `Basic ${Buffer.from(`u:${key}`).toString('base64')}`;
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        send(ctx.app, { method: 'POST', path: '/', headers: { ...zlibXml, Authorization: authz }, body: prolog }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(200));
  });
});

describe('a limiter store read through Redis (ioredis)', () => {
  let redis: Redis;
  let store: FailoverStore;
  const prefix = `agtest:${process.pid}:${Date.now()}:authfail:`;
  beforeAll(async () => {
    redis = new Redis(TEST_REDIS_URL);
    store = new FailoverStore(redis, prefix, 'memory', pino({ level: 'silent' }), () => {});
    await store.init({ windowMs: 60_000 } as Options);
  });
  afterAll(async () => {
    store.shutdown();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('reads an address Redis has no count for as no record, as the in-memory store does', async () => {
    // rate-limit-redis parsed ioredis's null for a missing key to NaN hits, and the agent edge read NaN
    // invalid credentials as "past the budget": an address that never failed was refused (429).
    expect(await store.get('198.51.100.30')).toBeUndefined();
    expect(await store.onRedis()).toBe(true);
    await store.increment('198.51.100.30');
    expect(await store.get('198.51.100.30')).toMatchObject({ totalHits: 1 });
  });
});

describe('allowances: requests reserved in Redis for one gateway (http/edge-memory.ts)', () => {
  let ctx: TestContext;
  const net = `198.18.${crypto.randomInt(256)}`; // this run's addresses (a database of its own, never flushed)
  const redisUrl = TEST_REDIS_URL.replace(/\/\d+$/, '/12');
  beforeAll(async () => {
    ctx = await createTestContext({
      AGENT_AUTH: 'required',
      REDIS_URL: redisUrl,
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_IP_PER_MINUTE: '400',
      RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '3',
    });
  });
  afterAll(async () => {
    await ctx.close();
  });
  const from = (ip: string, authz?: string) => prologFrom(ctx, ip, authz);
  const counter = async (ip: string) => Number(await ctx.deps.redis!.get(`agentgate:ip:${ip}`));

  it('counts the requests it reserves when it reserves them, and gives back the ones it did not use', async () => {
    const ip = `${net}.1`;
    expect((await from(ip)).status).toBe(401);
    // This request, and min(32, (400 - 1) / 8) reserved for this gateway: every replica reads 33.
    expect(await counter(ip)).toBe(33);
    const within = [];
    for (let i = 0; i < 10; i++) within.push((await from(ip)).status);
    expect(within).toEqual(Array(10).fill(401));
    expect(await counter(ip), 'answered from the allowance: no round trip').toBe(33);
    // Once the allowance ends (a second) or is used up, the next request asks again: what was not used goes
    // back, and 32 more are reserved.
    let sent = 11;
    await eventually(async () => {
      expect((await from(ip)).status).toBe(401);
      sent++;
      expect(await counter(ip)).not.toBe(33);
    });
    expect(await counter(ip)).toBe(sent + 32);
  });

  it('reserves nothing for an address with an invalid credential, and ends its allowance at one', async () => {
    const ip = `${net}.2`;
    expect((await from(ip)).status).toBe(401);
    expect(await counter(ip)).toBe(33);
    expect((await from(ip, badBasic)).status).toBe(401);
    // The next request asks: 30 unused go back, and nothing more is reserved (one invalid credential).
    expect((await from(ip)).status).toBe(401);
    expect(await counter(ip)).toBe(3);
    expect((await from(ip)).status).toBe(401);
    expect(await counter(ip)).toBe(4);
  });

  it('admits exactly the budget of an address, its allowances included', async () => {
    const ip = `${net}.3`;
    const statuses: number[] = [];
    for (let i = 0; i < 404; i++) statuses.push((await from(ip)).status);
    expect(statuses.slice(0, 400)).toEqual(Array(400).fill(401));
    expect(statuses.slice(400)).toEqual([429, 429, 429, 429]);
  });
});
