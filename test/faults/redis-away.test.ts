/**
 * Faults under load (issue 7, item 2): Redis goes away while agents submit. The gateway process reaches the
 * shared Redis (a database of its own, FAULTS_REDIS_URL) through a pausable TCP proxy of this test; the
 * shared server is never touched. While Redis is away every agent keeps being served (limits fall back to
 * this process, RATE_LIMIT_REDIS_FAILURE=memory), agentgate_limiter_redis_up reads 0, and it reads 1 again
 * once Redis is back — without a restart. Every acknowledged inventory is in PostgreSQL afterwards.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import {
  type Acked,
  FAULTS_REDIS_URL,
  type FaultGateway,
  type PauseMode,
  RUN,
  type SimAgent,
  TcpProxy,
  get,
  hostPort,
  judge,
  makeAgents,
  message,
  metric,
  missingRows,
  post,
  sleep,
  startFaultGateway,
} from './support.js';

const GAUGE = 'agentgate_limiter_redis_up';

describe('Redis away under load (through a pausable proxy)', () => {
  let proxy: TcpProxy;
  let gw: FaultGateway;
  beforeAll(async () => {
    const redis = hostPort(FAULTS_REDIS_URL, 6379);
    proxy = new TcpProxy(redis.host, redis.port);
    await proxy.start();
    const db = new URL(FAULTS_REDIS_URL).pathname;
    gw = await startFaultGateway({
      env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}${db}`, RATE_LIMIT_REDIS_FAILURE: 'memory' },
    });
  }, 90_000);
  afterAll(async () => {
    proxy?.resume();
    await gw?.close();
    await proxy?.close();
  }, 30_000);

  /** Ms until the gauge reads `value`, or null if it did not within `withinMs` (the summary is printed first). */
  async function gaugeBecomes(value: string, withinMs: number): Promise<number | null> {
    const t0 = Date.now();
    return eventually(async () => expect(await metric(gw.port, GAUGE)).toBe(value), {
      timeout: withinMs,
      interval: 200,
    }).then(
      () => Date.now() - t0,
      () => null,
    );
  }

  /**
   * 10 agents run back to back; after UP_MS Redis is taken away (`mode`) for AWAY_MS, then given back,
   * and the traffic goes on until the gauge reads 1 again (at most 30 s) and a little more.
   */
  async function scenario(mode: PauseMode) {
    const UP_MS = 2000;
    const AWAY_MS = 7000;
    expect(await gaugeBecomes('1', 15_000), `${GAUGE} is 1 while Redis answers`).not.toBeNull();
    const agents: SimAgent[] = makeAgents(10, crypto.randomBytes(3).toString('hex'));
    const acked: Acked[] = [];
    const problems: string[] = [];
    const answers: Record<string, number> = {};
    const gaugeWhileAway = new Set<string | undefined>();
    let phase: 'before' | 'away' | 'after' = 'before';
    let stop = false;
    let slowestAwayMs = 0;

    const traffic = Promise.all(
      agents.map(async (agent, i) => {
        await sleep(i * 50); // the load's shape: the agents start staggered
        while (!stop) {
          for (const step of RUN[agent.kind]) {
            const m = message(agent, step);
            const during = phase;
            const o = await post(gw.port, m, { timeoutMs: 30_000 });
            if (during === 'away') slowestAwayMs = Math.max(slowestAwayMs, o.ms);
            const v = judge(m, o);
            const k = `${during} ${step} ${'status' in o ? o.status : o.error} ${v.length > 12 ? 'problem' : v}`;
            answers[k] = (answers[k] ?? 0) + 1;
            if (v !== 'ok') {
              problems.push(`${during}: ${v}`);
              break;
            }
            if (step === 'inventory') acked.push({ deviceid: agent.deviceid, marker: m.marker! });
          }
        }
      }),
    );

    // The scenario's timeline (traffic before, during and after the fault), not waits for the gateway.
    await sleep(UP_MS);
    proxy.pause(mode);
    phase = 'away';
    const awayUntil = Date.now() + AWAY_MS;
    let readyAway: Awaited<ReturnType<typeof get>> | undefined;
    const readyStatusesAway = new Set<unknown>();
    while (Date.now() < awayUntil) {
      const gauge = await metric(gw.port, GAUGE);
      gaugeWhileAway.add(gauge);
      // Once this process noticed (the gauge reads 0): what /readyz says while Redis is away. /readyz is a
      // probed state (one probe a second), so the last answer of the outage is the one judged; every
      // answer meanwhile must be a 200.
      if (gauge === '0') {
        readyAway = await get(gw.port, '/readyz', 10_000);
        readyStatusesAway.add('status' in readyAway ? readyAway.status : readyAway);
      }
      await sleep(300); // sampling the gauge all the while Redis is away
    }
    proxy.resume();
    phase = 'after';
    const backAfterMs = await gaugeBecomes('1', 30_000);
    await sleep(1000); // traffic goes on for a while on Redis again
    stop = true;
    await traffic;

    const missing = await missingRows(gw.admin, gw.schema, acked);
    console.log(
      JSON.stringify(
        {
          mode,
          answers,
          slowestAwayMs,
          gaugeWhileAway: [...gaugeWhileAway],
          gaugeBackAfterMs: backAfterMs,
          readyzAway:
            readyAway &&
            ('status' in readyAway ? { status: readyAway.status, text: readyAway.text, ms: readyAway.ms } : readyAway),
          problems: problems.slice(0, 6),
          problemCount: problems.length,
          acked: acked.length,
          missing: missing.length,
        },
        null,
        1,
      ),
    );

    expect(missing, 'acknowledged inventories without their submission row').toEqual([]);
    expect(gw.proc.child.exitCode, 'the gateway process died while Redis was away').toBeNull();
    expect(problems.slice(0, 10), 'every message is served (200) before, while and after Redis is away').toEqual([]);
    expect(
      Object.keys(answers).filter((k) => k.startsWith('away ')).length,
      'traffic while Redis was away',
    ).toBeGreaterThan(0);
    expect(slowestAwayMs, 'longest wait of a request sent while Redis was away (ms)').toBeLessThan(5000);
    expect([...gaugeWhileAway], `${GAUGE} while Redis is away`).toContain('0');
    // Ready all the while: with RATE_LIMIT_REDIS_FAILURE=memory every agent is served, so a readiness-gated
    // balancer must not pull the replica (every replica at once, Redis being shared).
    expect([...readyStatusesAway], '/readyz answers while Redis is away').toEqual([200]);
    expect(JSON.parse((readyAway as { text: string }).text)).toEqual({
      status: 'ready',
      checks: { database: 'ok', redis: 'degraded', spool: 'empty' },
    });
    expect(backAfterMs, `${GAUGE} back to 1 after Redis returned`).not.toBeNull();
  }

  it('keeps serving on per-process limits while Redis refuses connections, and goes back to Redis by itself', async () => {
    await scenario('refuse');
  }, 120_000);

  it('keeps serving while Redis is silent (connections open, nothing forwarded), and goes back to Redis by itself', async () => {
    await scenario('blackhole');
  }, 120_000);
});

describe('Redis away with RATE_LIMIT_REDIS_FAILURE=closed', () => {
  let proxy: TcpProxy;
  let gw: FaultGateway;
  beforeAll(async () => {
    const redis = hostPort(FAULTS_REDIS_URL, 6379);
    proxy = new TcpProxy(redis.host, redis.port);
    await proxy.start();
    const db = new URL(FAULTS_REDIS_URL).pathname;
    gw = await startFaultGateway({
      env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}${db}`, RATE_LIMIT_REDIS_FAILURE: 'closed' },
    });
  }, 90_000);
  afterAll(async () => {
    proxy?.resume();
    await gw?.close();
    await proxy?.close();
  }, 30_000);

  it('is not ready while Redis is away (limited requests are refused), and ready again when it is back', async () => {
    proxy.pause('refuse');
    let away: Awaited<ReturnType<typeof get>> = { error: 'not asked' };
    await eventually(
      async () => {
        away = await get(gw.port, '/readyz', 5000);
        expect(away).toMatchObject({ status: 503 });
      },
      { timeout: 15_000, message: '/readyz fails while Redis is away' },
    );
    expect(JSON.parse((away as unknown as { text: string }).text)).toEqual({
      status: 'not ready',
      checks: { database: 'ok', redis: 'unreachable', spool: 'empty' },
    });
    proxy.resume();
    await eventually(async () => expect(await get(gw.port, '/readyz', 5000)).toMatchObject({ status: 200 }), {
      timeout: 30_000,
      message: '/readyz ready again once Redis is back',
    });
  }, 90_000);
});
