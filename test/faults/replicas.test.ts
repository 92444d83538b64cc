/**
 * Two replicas on one database, one killed (issue 16, "Done when"): agents spread over two `agent-gate serve`
 * processes sharing the schema; replica A is killed (SIGKILL, as in a crash) while agents are in the middle
 * of their runs. Every request sent to replica B is answered properly (no error, no 5xx: the other replica's
 * death costs B nothing, its locks and leases included), agents that were on A carry on through B at their
 * next run, and every inventory either replica acknowledged is in the database exactly once.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Proc } from '../../scripts/lib/processes.js';
import { eventually } from '../helpers/eventually.js';
import {
  type Acked,
  type FaultGateway,
  RUN,
  type SimAgent,
  judge,
  makeAgents,
  message,
  missingRows,
  post,
  sleep,
  startFaultGateway,
  storedMarkers,
} from './support.js';

const AGENTS = 16;
const RUNS_PER_AGENT = 6;

describe('two replicas, one killed', () => {
  let gw: FaultGateway;
  let b: Proc;
  beforeAll(async () => {
    gw = await startFaultGateway();
    b = await gw.replica();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('answers every request sent to the survivor and loses nothing either acknowledged', async () => {
    const agents = makeAgents(AGENTS, crypto.randomBytes(3).toString('hex'));
    const problemsOnB: string[] = [];
    const acked: Acked[] = [];
    let killed = false;
    const sentToB = { n: 0 };

    /** One run: half the agents start on A; once A is dead, everyone uses B (the balancer moved them). */
    async function run(agent: SimAgent, onA: boolean): Promise<void> {
      const port = onA && !killed ? gw.port : b.port;
      for (const step of RUN[agent.kind]) {
        const m = message(agent, step);
        const o = await post(port, m, { timeoutMs: 30_000 });
        const verdict = judge(m, o);
        if (port === b.port) {
          sentToB.n++;
          if (verdict !== 'ok' && verdict !== 'deferred') problemsOnB.push(`${step}: ${verdict}`);
        }
        if (step === 'inventory' && verdict === 'ok') acked.push({ deviceid: agent.deviceid, marker: m.marker! });
        if (verdict !== 'ok') return; // like the real agents: a run stops at a "not now" or an error
      }
    }

    const traffic = Promise.all(
      agents.map(async (agent, i) => {
        await sleep(i * 50);
        for (let n = 0; n < RUNS_PER_AGENT; n++) await run(agent, i % 2 === 0);
      }),
    );
    // Kill A once both replicas have recorded something: in the middle of the traffic.
    await eventually(async () => acked.length >= AGENTS / 2, { timeout: 60_000, interval: 50 });
    await gw.kill();
    killed = true;
    await traffic;

    expect(sentToB.n, 'requests sent to the surviving replica').toBeGreaterThan(AGENTS);
    expect(problemsOnB, 'answers of the surviving replica that are not a proper ok or "come back later"').toEqual([]);
    // What A acknowledged before it died is committed (or, if it was spooled, A's spool is replayed when A
    // comes back; here none should have been, the database being up the whole time).
    expect(await missingRows(gw.admin, gw.schema, acked), 'acknowledged inventories without their row').toEqual([]);
    const twice = [...(await storedMarkers(gw.admin, gw.schema)).entries()].filter(([, n]) => n > 1);
    expect(twice, 'inventories stored twice').toEqual([]);
    // A died by SIGKILL (it writes nothing more): the error lines are the survivor's.
    expect(gw.errorLogs(), 'error log lines').toEqual([]);
  });
});
