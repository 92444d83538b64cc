/**
 * Nothing an agent sends is lost (issue 16): simulated agents spend 2–8 s between PROLOG/CONTACT and their
 * inventory, as real ones collect, while PostgreSQL is made unreachable for 20 s through a TCP proxy this
 * test controls (the shared server is never touched). Inventories read meanwhile go to the gateway's local
 * spool and are acknowledged; PROLOG/CONTACT get the agents' own "come back later". Afterwards every
 * acknowledged inventory is in the database exactly once. A gateway killed with SIGKILL while its spool is
 * not empty replays it at the next start — and again after a "crash" that left the replayed segment behind,
 * without recording anything twice (the message key).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
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
  metric,
  missingRows,
  post,
  sleep,
  startFaultGateway,
  storedMarkers,
} from './support.js';

/** 30 agents as the issue measured them (two cores manage it: the gateway is mostly waiting). */
const AGENTS = Number(process.env.SPOOL_FAULT_AGENTS ?? 30);
const OUTAGE_MS = 20_000;

const rand = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));

describe('PostgreSQL away for 20 s under agents: the spool', () => {
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
  }, 60_000);

  it('answers every inventory 2xx and no PROLOG/CONTACT 5xx, and records each acknowledged inventory exactly once', async () => {
    const agents: SimAgent[] = makeAgents(AGENTS, crypto.randomBytes(3).toString('hex'));
    const acked: Acked[] = [];
    const problems: string[] = [];
    const counts: Record<string, number> = {};
    let stop = false;
    let firstOkAfterResume: number | null = null;
    let resumedAt: number | null = null;
    const send = async (m: Message) => {
      const o = await post(gw.port, m, { timeoutMs: 170_000 });
      const v = judge(m, o);
      const status = 'status' in o ? o.status : o.error;
      const phase = proxy.paused ? 'away' : resumedAt ? 'after' : 'before';
      const k = `${phase} ${m.step} ${status} ${v.length > 12 ? 'problem' : v}`;
      counts[k] = (counts[k] ?? 0) + 1;
      if (m.step === 'inventory' ? v !== 'ok' : v !== 'ok' && v !== 'deferred') problems.push(`${phase}: ${v}`);
      if (m.step === 'inventory' && v === 'ok') acked.push({ deviceid: m.agent.deviceid, marker: m.marker! });
      if (resumedAt && firstOkAfterResume === null && m.step !== 'inventory' && v === 'ok')
        firstOkAfterResume = Date.now() - resumedAt;
      return v;
    };
    const agentLoop = async (agent: SimAgent) => {
      await sleep(rand(0, 3000));
      while (!stop) {
        const steps = RUN[agent.kind];
        let go = true;
        for (const step of steps.slice(0, -1)) if ((await send(message(agent, step))) !== 'ok') go = false;
        if (go) {
          await sleep(rand(2000, 8000)); // collecting the inventory
          await send(message(agent, 'inventory'));
        }
        await sleep(rand(500, 2500));
      }
    };
    const loops = agents.map((a) => agentLoop(a));

    await sleep(8000);
    proxy.pause('refuse');
    const awaySince = Date.now();
    // Halfway through the outage: what an operator sees.
    await sleep(OUTAGE_MS / 2);
    const readyAway = await get(gw.port, '/readyz', 5000);
    const spooledAway = Number(await metric(gw.port, 'agentgate_spool_messages'));
    await sleep(Math.max(0, awaySince + OUTAGE_MS - Date.now()));
    resumedAt = Date.now();
    proxy.resume();
    // How long the replay takes once the database answers (sampled while the agents go on).
    const drained = eventually(
      async () => {
        expect(await metric(gw.port, 'agentgate_spool_messages')).toBe('0');
        return Date.now() - resumedAt;
      },
      { timeout: 60_000, interval: 100 },
    );
    await sleep(10_000);
    stop = true;
    await Promise.all(loops);
    const spoolEmptyAfter = await drained;
    const missing = await missingRows(gw.admin, gw.schema, acked);
    const stored = await storedMarkers(gw.admin, gw.schema);
    const twice = acked.filter((a) => (stored.get(a.marker) ?? 0) !== 1);
    const spooledLines = gw.logs().filter((l) => /spooled: /.test(String(l.msg))).length;
    console.log(
      JSON.stringify(
        {
          agents: AGENTS,
          outageMs: OUTAGE_MS,
          answers: counts,
          acked: acked.length,
          spooledDuringOutage: spooledLines,
          spoolMessagesHalfway: spooledAway,
          readyzAway: readyAway,
          firstPrologOkAfterResumeMs: firstOkAfterResume,
          spoolEmptyAfterResumeMs: spoolEmptyAfter,
          missing: missing.length,
          notExactlyOnce: twice.length,
          problems: problems.slice(0, 8),
        },
        null,
        1,
      ),
    );
    expect(problems, 'inventories not answered 2xx, or PROLOG/CONTACT answered 5xx').toEqual([]);
    expect(missing, 'acknowledged inventories without their submission row').toEqual([]);
    expect(twice, 'acknowledged inventories stored other than exactly once').toEqual([]);
    // The scenario did what it is about: inventories were read while the database was away, and spooled.
    expect(spooledLines).toBeGreaterThan(0);
    expect(spooledAway).toBeGreaterThan(0);
    expect(readyAway).toMatchObject({ status: 503 });
    expect(JSON.parse((readyAway as { text: string }).text)).toMatchObject({
      checks: { spool: expect.stringMatching(/^\d+ message\(s\), \d+ bytes/) as unknown },
    });
    expect(gw.errorLogs().filter((l) => /could not be spooled|spool: /.test(String(l.msg)))).toEqual([]);
  }, 180_000);

  it('a gateway killed with a non-empty spool replays it at the next start, exactly once even if replayed twice', async () => {
    const agents = makeAgents(6, crypto.randomBytes(3).toString('hex'));
    // Their credentials verified (and PROLOG answered SEND) while the database answers.
    for (const agent of agents)
      for (const step of RUN[agent.kind].slice(0, -1))
        expect(judge(message(agent, step), await post(gw.port, message(agent, step)))).toBe('ok');
    proxy.pause('refuse');
    const inventories = agents.map((a) => message(a, 'inventory'));
    const verdicts = await Promise.all(inventories.map(async (m) => judge(m, await post(gw.port, m))));
    expect(verdicts).toEqual(inventories.map(() => 'ok'));
    expect(await metric(gw.port, 'agentgate_spool_messages')).toBe(String(inventories.length));
    await gw.kill();
    const segments = fs.readdirSync(gw.spoolDir).filter((f) => f.endsWith('.spool'));
    expect(segments.length).toBeGreaterThan(0);
    // A copy of the segments as they were: put back later, as if a crash had come between the replay's
    // commit and the spool's deletion.
    const saved = segments.map((f) => ({ f, data: fs.readFileSync(path.join(gw.spoolDir, f)) }));
    proxy.resume();
    await gw.respawn();
    const acked = inventories.map((m) => ({ deviceid: m.agent.deviceid, marker: m.marker! }));
    await eventually(async () => expect(await missingRows(gw.admin, gw.schema, acked)).toEqual([]), {
      timeout: 30_000,
    });
    await eventually(async () => expect(await metric(gw.port, 'agentgate_spool_messages')).toBe('0'));
    await eventually(() => expect(fs.readdirSync(gw.spoolDir).filter((f) => f.endsWith('.spool'))).toEqual([]));

    await gw.kill();
    for (const { f, data } of saved) fs.writeFileSync(path.join(gw.spoolDir, f), data, { mode: 0o600 });
    await gw.respawn();
    await eventually(async () => expect(await metric(gw.port, 'agentgate_spool_messages')).toBe('0'), {
      timeout: 30_000,
    });
    const stored = await storedMarkers(gw.admin, gw.schema);
    expect(acked.map((a) => stored.get(a.marker) ?? 0)).toEqual(acked.map(() => 1));
    // Replayed as received: the registration says so, and keeps its arrival time (before the replay).
    const regs = await gw.admin.unsafe<{ n: number }[]>(
      `select count(*)::int as n from "${gw.schema}".registrations where details->>'spooled' = 'true' and deviceid = any($1)`,
      [agents.map((a) => a.deviceid)],
    );
    expect(regs[0]!.n).toBe(inventories.length);
  }, 150_000);
});
