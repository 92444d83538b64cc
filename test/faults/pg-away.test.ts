/**
 * Faults (issue 7, item 2): the database goes away under a running gateway process and comes back. The
 * gateway reaches the real PostgreSQL through a small TCP proxy of this test, which is paused — open
 * connections cut, new ones reset — and resumed; the shared server itself is never touched.
 *
 * While it is away: PROLOG/CONTACT get a 503 in the agent's format or a protocol-native "come back later"
 * (which one is printed; PROTOCOL §5 advises the deferral), /readyz says not ready, /healthz still alive,
 * and no inventory is acknowledged that is not stored. Once it is back, the same process serves again and
 * is ready, without a restart.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/env.js';
import { eventually } from '../helpers/eventually.js';
import {
  type Acked,
  type FaultGateway,
  type Message,
  RUN,
  type SimAgent,
  TcpProxy,
  get,
  hostPort,
  judge,
  makeAgents,
  message,
  missingRows,
  post,
  sleep,
  startFaultGateway,
  waitReady,
} from './support.js';

describe('PostgreSQL away and back (through a pausable proxy)', () => {
  let proxy: TcpProxy;
  let gw: FaultGateway;
  beforeAll(async () => {
    const pg = hostPort(TEST_DATABASE_URL, 5432);
    proxy = new TcpProxy(pg.host, pg.port);
    await proxy.start();
    gw = await startFaultGateway({ viaPort: proxy.port });
  }, 90_000);
  afterAll(async () => {
    proxy?.resume();
    await gw?.close();
    await proxy?.close();
  }, 30_000);

  it('refuses cleanly while the database is away, acknowledges nothing it did not store, and recovers by itself', async () => {
    const agents: SimAgent[] = makeAgents(4, crypto.randomBytes(3).toString('hex'));
    const acked: Acked[] = [];
    const problems: string[] = [];
    const seen: Record<string, number> = {};
    const slowest: Record<string, number> = {};
    const send = async (m: Message) => {
      const o = await post(gw.port, m, { timeoutMs: 30_000 });
      const v = judge(m, o);
      const k = `${m.agent.kind} ${m.step} ${'status' in o ? o.status : o.error} ${v.length > 12 ? 'problem' : v}${proxy.paused ? ' (away)' : ''}`;
      seen[k] = (seen[k] ?? 0) + 1;
      slowest[proxy.paused ? 'away' : 'up'] = Math.max(slowest[proxy.paused ? 'away' : 'up'] ?? 0, o.ms);
      if (v !== 'ok' && v !== 'deferred' && v !== 'unavailable') problems.push(`${proxy.paused ? 'away: ' : ''}${v}`);
      if (m.step === 'inventory' && v === 'ok') acked.push({ deviceid: m.agent.deviceid, marker: m.marker! });
      return v;
    };
    const fullRun = async (agent: SimAgent) => {
      const verdicts = [];
      for (const step of RUN[agent.kind]) verdicts.push(await send(message(agent, step)));
      return verdicts;
    };

    // Before: every agent is served (and its credential is now cached for SECRET_CACHE_TTL, 5 s).
    for (const agent of agents) expect(await fullRun(agent)).toEqual(RUN[agent.kind].map(() => 'ok'));

    proxy.pause('refuse');
    const awaySince = Date.now();
    // Every message of a run, sent whatever the previous answer (to see each one refused), twice: at once
    // (credentials still cached) and after the credential cache expired (the check itself needs the database).
    const awayVerdicts: string[] = [];
    for (const round of [0, 1]) {
      // Round 1 once the gateway's credential cache (SECRET_CACHE_TTL, 5 s of its real clock, in another
      // process) has expired: the time passing is the condition under test, not background work to wait for.
      if (round === 1) await sleep(Math.max(0, awaySince + 6000 - Date.now()));
      const all = agents.flatMap((agent) => RUN[agent.kind].map((step) => send(message(agent, step))));
      awayVerdicts.push(...(await Promise.all(all)));
    }
    const readyAway = await get(gw.port, '/readyz', 15_000);
    const healthAway = await get(gw.port, '/healthz', 5_000);
    const stillRunning = gw.proc.child.exitCode === null;

    proxy.resume();
    const resumedAt = Date.now();
    const readyAgain = stillRunning && (await waitReady(gw.port, 30_000));
    const readyAfterMs = Date.now() - resumedAt;
    const after: string[][] = [];
    if (readyAgain) for (const agent of agents) after.push(await fullRun(agent));
    const missing = await eventually(
      async () => {
        const m = await missingRows(gw.admin, gw.schema, acked);
        expect(m).toEqual([]);
        return m;
      },
      { timeout: 30_000 },
    ).catch(() => missingRows(gw.admin, gw.schema, acked));

    console.log(
      JSON.stringify(
        {
          answers: seen,
          slowestMs: slowest,
          readyAfterMs,
          readyz: readyAway,
          healthz: healthAway,
          problems: problems.slice(0, 8),
          problemCount: problems.length,
          acked: acked.length,
          missing: missing.length,
        },
        null,
        1,
      ),
    );

    expect(missing, 'acknowledged inventories without their submission row').toEqual([]);
    expect(stillRunning, 'the gateway process died while the database was away (its stderr is above)').toBe(true);
    expect(problems.slice(0, 10), 'answers that are neither a proper 200 nor a clean agent-format 503').toEqual([]);
    // While away no PROLOG/CONTACT is "ok" (they are deferred); inventories are spooled and acknowledged
    // (test/faults/spool.test.ts follows them into the database).
    expect(awayVerdicts.filter((v) => v === 'unavailable')).toEqual([]);
    expect(awayVerdicts.filter((v) => v === 'ok')).toHaveLength(agents.length * 2);
    expect(readyAway).toMatchObject({ status: 503 });
    const readiness = JSON.parse((readyAway as { text: string }).text) as {
      status: string;
      checks: { database: string };
    };
    expect(readiness.status).toBe('not ready');
    expect(readiness.checks.database).toMatch(/^(?!ok$)/); // a string, and not "ok"
    expect(healthAway).toMatchObject({ status: 200 });
    expect(readyAgain, '/readyz ready again after the database came back').toBe(true);
    expect(after).toEqual(agents.map((a) => RUN[a.kind].map(() => 'ok')));
  }, 120_000);

  it('answers within a bound while the database is silent (connections open, nothing forwarded), and recovers', async () => {
    const SILENT_MS = 15_000;
    const agents: SimAgent[] = makeAgents(4, crypto.randomBytes(3).toString('hex'));
    // Warm: the agents side by side, so that the pool holds a few open connections (as under any load).
    const warm = await Promise.all(
      agents.map(async (agent) => {
        const v = [];
        for (const step of RUN[agent.kind]) {
          const m = message(agent, step);
          v.push(judge(m, await post(gw.port, m)));
        }
        return v;
      }),
    );
    expect(warm).toEqual(agents.map((a) => RUN[a.kind].map(() => 'ok')));

    /** Asks /readyz (2 s per request) until it says 503, while the database is silent. */
    let readyzAt = 0;
    const notReadyWhileSilent = async (): Promise<Awaited<ReturnType<typeof get>>> => {
      let last: Awaited<ReturnType<typeof get>> = { error: 'not asked' };
      await eventually(
        async () => {
          last = await get(gw.port, '/readyz', 2000);
          expect(last).toMatchObject({ status: 503 });
        },
        { timeout: SILENT_MS - 2000, interval: 100 },
      ).catch(() => {});
      readyzAt = Date.now();
      return last;
    };
    proxy.pause('blackhole');
    // The fault's length: the database stays silent for SILENT_MS whatever the gateway does meanwhile.
    const resumeTimer = setTimeout(() => proxy.resume(), SILENT_MS);
    try {
      const messages = agents.flatMap((agent) => RUN[agent.kind].map((step) => message(agent, step)));
      const silentSince = Date.now();
      const [outcomes, readyz] = await Promise.all([
        Promise.all(messages.map((m) => post(gw.port, m, { timeoutMs: SILENT_MS + 30_000 }))),
        notReadyWhileSilent(),
      ]);
      const rows = messages.map((m, i) => ({
        what: `${m.agent.kind} ${m.step}`,
        verdict: judge(m, outcomes[i]!),
        ms: outcomes[i]!.ms,
      }));
      const acked = messages
        .filter((m, i) => m.step === 'inventory' && rows[i]!.verdict === 'ok')
        .map((m) => ({ deviceid: m.agent.deviceid, marker: m.marker! }));
      const errors = [
        ...new Set(
          gw.errorLogs().map((l) => `${String(l.msg)}: ${(l.err as { code?: string } | undefined)?.code ?? ''}`),
        ),
      ];
      console.log(
        JSON.stringify(
          {
            silentMs: SILENT_MS,
            answers: rows,
            readyz: 'status' in readyz ? { status: readyz.status, ms: readyz.ms } : readyz.error,
            errors,
          },
          null,
          1,
        ),
      );
      await waitReady(gw.port, 30_000);
      // /readyz is a probed state, not a query awaited per request: it says 503 while the database is still
      // silent (each probe request given 2 s), not only once it comes back.
      expect(readyz, '/readyz while the database is silent').toMatchObject({ status: 503 });
      expect(JSON.parse((readyz as { text: string }).text)).toMatchObject({
        status: 'not ready',
        checks: { database: expect.stringMatching(/^unreachable/) as unknown },
      });
      expect(readyzAt - silentSince, 'ms from the fault to /readyz failing').toBeLessThan(SILENT_MS);
      // Spooled ones are recorded by the replay, in the background, once the database answers.
      await eventually(
        async () =>
          expect(
            await missingRows(gw.admin, gw.schema, acked),
            'acknowledged inventories without their submission row',
          ).toEqual([]),
        { timeout: 30_000 },
      );
      expect(gw.proc.child.exitCode).toBeNull();
      // Every PROLOG/CONTACT is answered while the database is still silent — refused (503) or deferred —
      // rather than held until it comes back (agents give up after 180 s and count it as a failure anyway).
      const gate = rows.filter((r) => !r.what.endsWith('inventory'));
      expect(
        gate.filter((r) => !(r.ms < SILENT_MS && (r.verdict === 'unavailable' || r.verdict === 'deferred'))),
        'PROLOG/CONTACT not answered while the database was silent',
      ).toEqual([]);
    } finally {
      clearTimeout(resumeTimer);
      proxy.resume();
    }
    expect(await waitReady(gw.port, 30_000)).toBe(true);
    for (const agent of agents)
      for (const step of RUN[agent.kind])
        expect(judge(message(agent, step), await post(gw.port, message(agent, step)))).toBe('ok');
  }, 120_000);
});
