/**
 * Conformance: the real FusionInventory agent 2.6 (Debian package) told "not now" by a real running gateway
 * (startTestServer on 127.0.0.1, its own Postgres schema, AGENT_AUTH=off), the two ways the gateway says it
 * (PROTOCOL.md §3.1, §5): a PROLOG answer without `RESPONSE=SEND` and with a later PROLOG_FREQ —
 *   - for a rejected device: PROLOG_FREQ 240 (src/services/agent-service.ts rejectedAnswer);
 *   - past the gateway-wide inventory budget: PROLOG_FREQ 1–4 (deferredAnswer, src/http/limits.ts).
 * The agent must take it as a normal answer: no [error], no inventory sent, the long delay saved.
 *
 * These runs go WITHOUT `--force` (runAgentIn): with it, the agent sends its inventory whatever the PROLOG
 * answer says, which is documented agent behaviour and not what is under test here.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import type { RegistrationRecord } from '../../src/store/read-store.js';
import { startTestServer } from '../helpers/context.js';
import { eventually } from '../helpers/eventually.js';
import {
  type AgentInstall,
  type AgentRun,
  agentDirOf,
  createAgentDir,
  logExcerpt,
  removeRunDir,
  requireAgent,
  runAgent,
  runAgentIn,
} from '../helpers/fusioninventory.js';

const RUN_TIMEOUT = 60_000;
const DEVICEID = /^.+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$/;
const actor = { name: 'test:conformance', remoteAddr: null };
/** Deviceids of the background PROLOGs that keep the inventory budget spent. */
const FILLER_PREFIX = 'budget-filler-';

interface Gateway {
  server: RunningServer;
  /** Highest registration id so far (0 when none). */
  lastRegistrationId(): Promise<number>;
  /** Registrations above the watermark, oldest first, without the budget fillers' ones. */
  registrationsAfter(watermark: number): Promise<RegistrationRecord[]>;
  submissionsOf(deviceid: string): Promise<number>;
}

const cleanups: (() => void | Promise<void>)[] = [];
let agentPromise: Promise<AgentInstall> | undefined;

/** Resolves the installed agent once per file; a missing agent fails every scenario with the install hint. */
function agent(): Promise<AgentInstall> {
  agentPromise ??= requireAgent();
  return agentPromise;
}

async function startGateway(env: Record<string, string> = {}): Promise<Gateway> {
  const { server, close } = await startTestServer({ AGENT_AUTH: 'off', ...env });
  cleanups.push(close);
  const records = server.deps.records;
  return {
    server,
    async lastRegistrationId() {
      return (await records.registrations({ limit: 1 }))[0]?.id ?? 0;
    },
    async registrationsAfter(watermark) {
      const all = await records.registrations({ limit: 100_000 });
      return all.filter((r) => r.id > watermark && !r.deviceid?.startsWith(FILLER_PREFIX)).reverse();
    },
    async submissionsOf(deviceid) {
      const [row] = await server.deps.db.sql<{ n: number }[]>`
        select count(*)::int as n from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid}`;
      return row!.n;
    },
  };
}

function keep(run: AgentRun, name: string): AgentRun {
  cleanups.push(() => removeRunDir(run));
  console.info(
    `fusioninventory-agent deferral scenario "${name}": ${(run.durationMs / 1000).toFixed(1)} s (exit ${run.exitCode}${run.timedOut ? ', killed after timeout' : ''})`,
  );
  return run;
}

function messages(run: AgentRun, level: string): string[] {
  return run.entries.filter((e) => e.level === level).map((e) => e.message);
}

const sentQueries = (run: AgentRun) =>
  messages(run, 'debug2')
    .filter((m) => m.startsWith('[http client] sending message:'))
    .map((m) => /<QUERY>(\w+)<\/QUERY>/.exec(m)?.[1]);
const receivedAnswers = (run: AgentRun) =>
  messages(run, 'debug2').filter((m) => m.startsWith('[http client] receiving message:'));

/** The agent ran in our storage directory, exited on its own with 0, and logged no [error] or [warning]. */
function expectCleanRun(run: AgentRun): void {
  const why = logExcerpt(run);
  expect(run.timedOut, why).toBe(false);
  expect(run.signal, why).toBeNull();
  expect(run.exitCode, why).toBe(0);
  expect(run.entries.length, `the agent wrote no log\n${why}`).toBeGreaterThan(0);
  expect(run.log).toContain(`Storage directory: ${run.vardir}\n`);
  expect(messages(run, 'error'), why).toEqual([]);
  expect(messages(run, 'warning'), why).toEqual([]);
  expect(run.deviceid, `no deviceid in the agent's state file\n${why}`).toMatch(DEVICEID);
}

/** Sent a PROLOG, understood the answer (no SEND), skipped the inventory task: nothing else went out. */
function expectInventorySkipped(run: AgentRun, prologFreq: (freq: number) => void): void {
  const why = logExcerpt(run);
  expect(messages(run, 'info'), why).toContain('sending prolog request to server0');
  expect(sentQueries(run), why).toEqual(['PROLOG']);
  const received = receivedAnswers(run);
  expect(received, why).toHaveLength(1);
  expect(received[0]).toMatch(/<REPLY>[\s\S]*<\/REPLY>/);
  expect(received[0]).not.toContain('SEND');
  prologFreq(Number(/<PROLOG_FREQ>(\d+)<\/PROLOG_FREQ>/.exec(received[0]!)?.[1]));
  // FusionInventory's own words for "the server did not ask for an inventory" (Task/Inventory.pm isEnabled).
  expect(messages(run, 'debug'), why).toContain('Inventory task execution not requested');
  expect(messages(run, 'info'), why).not.toContain('running task Inventory');
  expect(
    messages(run, 'info').filter((m) => m.startsWith('New inventory from')),
    why,
  ).toEqual([]);
}

afterAll(async () => {
  const errors: unknown[] = [];
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
});

describe('FusionInventory agent 2.6, device rejected after its first run', () => {
  let gw: Gateway;
  let first: AgentRun;
  let second: AgentRun;
  let registrations: RegistrationRecord[];
  let submissionsBefore: number;
  let submissionsAfter: number;

  beforeAll(async () => {
    const install = await agent();
    gw = await startGateway();
    // First run (fresh storage directory): the device appears, quarantined, with its inventory held.
    first = keep(await runAgent(install, { serverUrl: gw.server.url, timeoutMs: 45_000 }), 'first run');
    expectCleanRun(first);
    const [decided] = await gw.server.deps.review.decide([first.deviceid!], 'reject', 'test', actor);
    expect(decided).toMatchObject({ deviceid: first.deviceid, to: 'rejected' });
    submissionsBefore = await gw.submissionsOf(first.deviceid!);
    const watermark = await gw.lastRegistrationId();
    // Second run in the same storage directory (same deviceid, its saved server state), without --force.
    second = keep(
      await runAgentIn(install, agentDirOf(first), { serverUrl: gw.server.url, timeoutMs: 45_000 }),
      'rejected',
    );
    registrations = await gw.registrationsAfter(watermark);
    submissionsAfter = await gw.submissionsOf(first.deviceid!);
  }, RUN_TIMEOUT * 2);

  it('the first run left a quarantined device with its inventory, before the rejection', () => {
    expect(first.target?.maxDelay).toBe(24 * 3600);
    expect(submissionsBefore).toBe(1);
  });

  it('runs again under the same deviceid without any [error] or [warning] in its log', () => {
    expectCleanRun(second);
    expect(second.deviceid).toBe(first.deviceid);
  });

  it('sends only its PROLOG, recorded as rejected: no inventory registration, no new submission', async () => {
    expect(
      registrations.map((r) => ({ kind: r.kind, outcome: r.outcome, status: r.status, deviceid: r.deviceid })),
    ).toEqual([{ kind: 'prolog', outcome: 'rejected', status: 200, deviceid: first.deviceid }]);
    expect(submissionsAfter).toBe(submissionsBefore);
    const [device] = await gw.server.deps.records.devices({ deviceid: first.deviceid! });
    expect(device?.state).toBe('rejected');
  });

  it('understood the PROLOG answer without SEND, skipped its inventory and saved PROLOG_FREQ 240 h', () => {
    expectInventorySkipped(second, (freq) => expect(freq).toBe(240));
    expect(second.target?.maxDelay, logExcerpt(second)).toBe(240 * 3600); // 864000 s
  });
});

/**
 * Keeps the gateway-wide inventory budget (1 per second) spent: a PROLOG for another deviceid every
 * INTERVAL_MS, at most MAX_IN_FLIGHT at once, for at most MAX_MS whatever happens.
 */
function budgetFiller(url: string) {
  const INTERVAL_MS = 20;
  const MAX_IN_FLIGHT = 4;
  const MAX_MS = 40_000;
  const stats = { sent: 0, admitted: 0, deferred: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const deadline = Date.now() + MAX_MS;

  async function one(n: number): Promise<void> {
    const body = zlib.deflateSync(
      `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>${FILLER_PREFIX}${n % 4}</DEVICEID><QUERY>PROLOG</QUERY><TOKEN>12345678</TOKEN></REQUEST>\n`,
    );
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-compress-zlib' },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      const text = zlib.inflateSync(Buffer.from(await res.arrayBuffer())).toString('utf8');
      if (res.status !== 200) stats.failed++;
      else if (text.includes('<RESPONSE>SEND</RESPONSE>')) stats.admitted++;
      else stats.deferred++;
    } catch {
      stats.failed++;
    }
  }

  const loop = (async () => {
    for (let n = 0; !stopped && Date.now() < deadline; n++) {
      if (inFlight.size < MAX_IN_FLIGHT) {
        stats.sent++;
        const p = one(n).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      // The pace of the load itself (one PROLOG per INTERVAL_MS), not a wait for anything.
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
    }
  })();

  return {
    stats,
    /** Resolves once a filler PROLOG was itself deferred: the budget is spent. */
    spent: (timeoutMs: number) =>
      eventually(
        () => {
          if (stats.deferred === 0) throw new Error(`no filler PROLOG deferred yet: ${JSON.stringify(stats)}`);
        },
        { timeout: timeoutMs, interval: 20, message: 'the inventory budget is spent' },
      ),
    async stop() {
      stopped = true;
      await loop;
      await Promise.all([...inFlight]);
      return { ...stats };
    },
  };
}

describe('FusionInventory agent 2.6, first run while the inventory budget is spent', () => {
  const MAX_ATTEMPTS = 3;
  let gw: Gateway;
  let run: AgentRun;
  let registrations: RegistrationRecord[];
  let submissions: number;

  beforeAll(async () => {
    const install = await agent();
    gw = await startGateway({ INVENTORY_BUDGET_PER_SECOND: '1', RATE_LIMIT_IP_PER_MINUTE: '1000000' });
    // The budget is a window of one second that opens with its first PROLOG: if the agent's PROLOG happens to
    // be that first one (it lands in the few ms between a window's end and the next filler), it is admitted
    // and this run shows nothing about deferral — the scenario is then run again with a fresh agent.
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const filler = budgetFiller(gw.server.url);
      let stats;
      try {
        await filler.spent(10_000);
        const watermark = await gw.lastRegistrationId();
        run = keep(
          await runAgentIn(install, createAgentDir(install), { serverUrl: gw.server.url, timeoutMs: 45_000 }),
          `budget spent (attempt ${attempt})`,
        );
        stats = await filler.stop();
        registrations = await gw.registrationsAfter(watermark);
      } finally {
        await filler.stop();
      }
      console.info(`budget fillers during attempt ${attempt}: ${JSON.stringify(stats)}`);
      const prolog = registrations.find((r) => r.kind === 'prolog' && r.deviceid === run.deviceid);
      if (prolog?.outcome !== 'quarantined' || attempt === MAX_ATTEMPTS) break;
      console.info(
        `attempt ${attempt}: the agent's PROLOG opened a fresh budget window and was admitted; trying again`,
      );
      // Not background work: the agent's deviceid is its host name plus the second of its first start, so the
      // next fresh agent must start in another second of the wall clock than this one did.
      await new Promise((r) => setTimeout(r, 1100));
    }
    submissions = run.deviceid ? await gw.submissionsOf(run.deviceid) : -1;
  }, RUN_TIMEOUT * 3);

  it('finishes without any [error] or [warning] in its log', () => {
    expectCleanRun(run);
  });

  it('sends only its PROLOG, recorded as deferred:budget: no inventory registration, no submission', () => {
    expect(
      registrations.map((r) => ({ kind: r.kind, outcome: r.outcome, status: r.status, deviceid: r.deviceid })),
    ).toEqual([{ kind: 'prolog', outcome: 'deferred:budget', status: 200, deviceid: run.deviceid }]);
    expect(submissions).toBe(0);
  });

  it('understood the PROLOG answer without SEND, skipped its inventory and saved a 1–4 h PROLOG_FREQ', () => {
    expectInventorySkipped(run, (freq) => {
      expect(freq).toBeGreaterThanOrEqual(1);
      expect(freq).toBeLessThanOrEqual(4);
    });
    const maxDelay = run.target?.maxDelay;
    expect(maxDelay, logExcerpt(run)).toBeGreaterThanOrEqual(3600);
    expect(maxDelay).toBeLessThanOrEqual(4 * 3600);
    expect(maxDelay! % 3600).toBe(0);
  });
});
