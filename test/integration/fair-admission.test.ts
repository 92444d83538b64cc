/**
 * The fair budget, decision by decision, on a clock the test sets (each query carries its time): the Redis
 * script and the in-memory fallback give the same answer to every request of the same sequence, a tenant
 * alone gets the whole budget, and a flood through one tenant takes only what the others leave.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisAdmission } from '../../src/http/limits.js';
import {
  type AdmissionBackend,
  type AdmissionQuery,
  type DeferReason,
  createMemoryAdmission,
} from '../../src/services/admission.js';
import { TEST_REDIS_URL } from '../helpers/env.js';

// A Redis database of its own, flushed before each test.
const REDIS_URL = TEST_REDIS_URL.replace(/\/\d+$/, '/9');
const BUDGET = 20;

let redis: Redis;
let viaRedis: RedisAdmission;
beforeAll(() => {
  redis = new Redis(REDIS_URL);
  viaRedis = new RedisAdmission(redis, 'memory', pino({ level: 'silent' }), () => {}, `agtest:${process.pid}:`);
});
beforeEach(async () => {
  await redis.flushdb();
});
afterAll(() => {
  viaRedis.shutdown();
  redis.disconnect();
});

interface Ask {
  at: number;
  tenant: string;
  deviceid: string;
}

const query = (a: Ask): AdmissionQuery => ({
  deviceid: a.deviceid,
  credential: a.tenant,
  tenant: a.tenant,
  devicePerHour: 1_000_000,
  credentialPerMinute: 1_000_000,
  budgetPerSecond: BUDGET,
  nowMs: a.at,
});

async function run(backend: AdmissionBackend, asks: Ask[]): Promise<(DeferReason | null)[]> {
  const out: (DeferReason | null)[] = [];
  for (const a of asks) out.push(await backend.decide(query(a)));
  return out;
}

/** Within one second from `start`: `flood` asks of tenant A evenly spread, and `trickle` asks of tenant B. */
function second(start: number, flood: number, trickle: number, tag: string): Ask[] {
  const asks: Ask[] = [];
  for (let i = 0; i < flood; i++)
    asks.push({ at: start + Math.floor((i * 1000) / flood), tenant: 'key:A', deviceid: `${tag}-a-${i}` });
  for (let i = 0; i < trickle; i++)
    asks.push({ at: start + 50 + Math.floor((i * 900) / trickle), tenant: 'key:B', deviceid: `${tag}-b-${i}` });
  return asks.sort((x, y) => x.at - y.at);
}

const admittedOf = (asks: Ask[], out: (DeferReason | null)[], tenant: string) =>
  asks.filter((a, i) => a.tenant === tenant && out[i] === null).length;

describe('the fair budget', () => {
  // A second boundary, so each simulated second is one budget window.
  const t0 = Math.ceil(Date.now() / 1000) * 1000 + 10_000_000;

  it('a tenant alone gets the whole budget, no more', async () => {
    const asks = second(t0, 100, 0, 'alone');
    const out = await run(viaRedis, asks);
    expect(admittedOf(asks, out, 'key:A')).toBe(BUDGET);
    expect(new Set(out.filter((o) => o !== null))).toEqual(new Set(['budget']));
  });

  it('a flood through key A takes what key B leaves; B is admitted whole; Redis and memory agree', async () => {
    const memory = createMemoryAdmission();
    // B was already active; then five seconds of A flooding at 200/s while B asks 6 times a second.
    const asks = [
      ...second(t0 - 1000, 0, 3, 'pre'),
      ...[0, 1, 2, 3, 4].flatMap((s) => second(t0 + s * 1000, 200, 6, `s${s}`)),
    ];
    const fromRedis = await run(viaRedis, asks);
    const fromMemory = await run(memory, asks);
    expect(fromMemory).toEqual(fromRedis);
    for (let s = 0; s < 5; s++) {
      const inSecond = (a: Ask) => a.at >= t0 + s * 1000 && a.at < t0 + (s + 1) * 1000;
      const idx = asks.map((a, i) => (inSecond(a) ? i : -1)).filter((i) => i >= 0);
      const sub = idx.map((i) => asks[i]!);
      const subOut = idx.map((i) => fromRedis[i]!);
      expect(admittedOf(sub, subOut, 'key:B'), `second ${s}: B admitted`).toBe(6);
      const a = admittedOf(sub, subOut, 'key:A');
      // A gets its share (10) and what B leaves of the rest, never more than the budget in all.
      expect(a, `second ${s}: A admitted`).toBeGreaterThanOrEqual(BUDGET / 2);
      expect(a + 6, `second ${s}: total`).toBeLessThanOrEqual(BUDGET);
      const reasons = new Set(subOut.filter((o) => o !== null));
      expect(reasons, `second ${s}: A is deferred as over its share`).toContain('share');
    }
  });

  it('a tenant over its share while the other is quiet still uses the budget by the end of the window', async () => {
    // B asked once a few seconds ago and stays quiet: its share is released as the window goes by.
    const asks = [{ at: t0 - 3000, tenant: 'key:B', deviceid: 'b-once' }, ...second(t0, 200, 0, 'quiet')];
    const out = await run(viaRedis, asks);
    expect(admittedOf(asks, out, 'key:A')).toBeGreaterThanOrEqual(BUDGET - 2);
    expect(await run(createMemoryAdmission(), asks)).toEqual(out);
  });
});
