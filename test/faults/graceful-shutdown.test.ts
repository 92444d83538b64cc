/**
 * Graceful shutdown (issue 7, item 2; issue 16, item 4): SIGTERM to a real gateway process.
 *
 * - While ten GLPI Agents are still sending their 228 KB inventory (zlib, written in pieces over ~2.5 s, as
 *   on a slow link): /readyz fails at once, the uploads in flight complete with 200 and their rows exist;
 *   new connections are refused once SHUTDOWN_DRAIN is over; the process exits 0 within the bound.
 * - Under load, agents doing the real 401, 401, 200 exchange on kept-alive sockets (PROTOCOL §3.8), behind
 *   a modelled balancer (new connections go elsewhere once it sees /readyz fail; open ones stay): no
 *   request already sent is cut, no agent is left between a 401 and its retry with credentials, traffic is
 *   still served during the drain, and every acknowledged inventory is stored. (Without a balancer, a
 *   connection the kernel completes in the instant the listener closes is reset by the kernel: that is
 *   what SHUTDOWN_DRAIN is for.)
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import {
  type Acked,
  type FaultGateway,
  type Message,
  type Outcome,
  RUN,
  type SimAgent,
  acceptedConnections,
  get,
  isAnswer,
  judge,
  makeAgents,
  message,
  missingRows,
  post,
  sleep,
  startFaultGateway,
} from './support.js';

const UPLOADS = 10;
const UPLOAD_MS = 2500;
const DRAIN_BOUND_MS = 15_000;

/** 'accepted' if a TCP connection to the port opens, 'refused' on ECONNREFUSED, else the error code. */
function probe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(2000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('connect', () => {
      s.destroy();
      resolve('accepted');
    });
    s.once('error', (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'ECONNREFUSED' ? 'refused' : (e.code ?? e.message)),
    );
  });
}

/** /readyz once it says 503 (SIGTERM fails it at once; the signal itself takes a moment to be delivered). */
async function notReady(port: number): Promise<Awaited<ReturnType<typeof get>>> {
  let last: Awaited<ReturnType<typeof get>> = { error: 'not asked' };
  await eventually(
    async () => {
      last = await get(port, '/readyz', 2000);
      expect(last).toMatchObject({ status: 503 });
    },
    { timeout: 2000, interval: 20 },
  ).catch(() => {});
  return last;
}

describe('SIGTERM while uploads are in flight', () => {
  let gw: FaultGateway;
  const gateways: FaultGateway[] = [];
  beforeAll(async () => {
    gw = await startFaultGateway({ env: { SHUTDOWN_DRAIN: '1s' } });
    gateways.push(gw);
  }, 90_000);
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
  }, 30_000);

  it('drains in-flight uploads (200, stored), refuses new connections, exits 0 within the bound', async () => {
    // GLPI Agents (JSON inventory of the 228 KB capture); makeAgents alternates kinds, keep the GLPI ones.
    const agents = makeAgents(UPLOADS * 2, crypto.randomBytes(3).toString('hex')).filter((a) => a.kind === 'ga');
    const messages = agents.map((a) => message(a, 'inventory'));
    expect(messages[0]!.body.length).toBeGreaterThan(10_000);

    let started = 0;
    let allStarted!: () => void;
    const whenAllStarted = new Promise<void>((resolve) => (allStarted = resolve));
    const onStarted = () => ++started === messages.length && allStarted();
    const uploads: Promise<Outcome>[] = messages.map((m) =>
      post(gw.port, m, { timeoutMs: 30_000, chunks: 20, overMs: UPLOAD_MS, onStarted }),
    );
    await whenAllStarted;
    // The gateway process holds every upload (accepted, reading the body) before the signal; the bodies
    // still have most of UPLOAD_MS to go.
    await eventually(
      () => expect(acceptedConnections(gw.proc.child.pid!, gw.port)).toBeGreaterThanOrEqual(messages.length),
      {
        timeout: 10_000,
        message: 'the gateway accepted every upload',
      },
    );

    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) => {
      const t0 = Date.now();
      gw.proc.child.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - t0 }));
    });
    const signalledAt = Date.now();
    expect(gw.proc.child.kill('SIGTERM')).toBe(true);
    // Not ready at once (the balancer moves traffic), while the drain still serves.
    const readyz = await notReady(gw.port);
    const readyzAfterMs = Date.now() - signalledAt;

    // New connections: probe until refused, then a few more times (all must be refused until exit).
    const probes: { at: number; result: string }[] = [];
    let exitedYet = false;
    void exited.then(() => (exitedYet = true));
    while (!exitedYet && Date.now() - signalledAt < DRAIN_BOUND_MS) {
      probes.push({ at: Date.now() - signalledAt, result: await probe(gw.port) });
      await sleep(50); // the probes' pace: what is sampled is the whole drain, until the exit
    }
    const firstRefused = probes.findIndex((p) => p.result === 'refused');
    const outcomes = await Promise.all(uploads);
    const exit = await Promise.race([exited, sleep(DRAIN_BOUND_MS + 5000).then(() => null)]);

    const verdicts = messages.map((m, i) => judge(m, outcomes[i]!));
    const acked = messages
      .filter((_, i) => verdicts[i] === 'ok')
      .map((m) => ({ deviceid: m.agent.deviceid, marker: m.marker! }));
    const missing = await missingRows(gw.admin, gw.schema, acked);
    console.log(
      JSON.stringify(
        {
          uploadMs: outcomes.map((o) => o.ms),
          verdicts,
          readyz: 'status' in readyz ? { status: readyz.status, text: readyz.text } : readyz,
          readyzAfterMs,
          firstRefusedAfterMs: probes[firstRefused]?.at ?? null,
          probes: probes.length,
          acceptedAfterRefusal: probes.slice(firstRefused + 1).filter((p) => p.result !== 'refused').length,
          exit,
        },
        null,
        1,
      ),
    );

    expect(missing, 'acknowledged inventories without their submission row').toEqual([]);
    expect(verdicts, 'every upload in flight at SIGTERM completes with 200').toEqual(messages.map(() => 'ok'));
    expect(readyz, '/readyz right after SIGTERM').toMatchObject({ status: 503 });
    expect(JSON.parse((readyz as { text: string }).text)).toMatchObject({
      status: 'not ready',
      checks: { shutdown: 'stopping' },
    });
    // The drain (SHUTDOWN_DRAIN=1s) accepts connections: the first refusal comes after it.
    expect(probes[0]!.result, 'a connection right after SIGTERM is still accepted (drain)').toBe('accepted');
    expect(firstRefused, 'a new connection is refused after the signal').toBeGreaterThanOrEqual(0);
    expect(probes[firstRefused]!.at, 'ms from SIGTERM to refusing new connections').toBeLessThan(2000);
    // Refused from then on, and already while the uploads were still being drained.
    expect(probes.slice(firstRefused).map((p) => p.result)).toEqual(probes.slice(firstRefused).map(() => 'refused'));
    expect(probes[firstRefused]!.at).toBeLessThan(Math.max(...outcomes.map((o) => o.ms)));
    expect(exit, `the process exits within ${DRAIN_BOUND_MS} ms of SIGTERM`).not.toBeNull();
    expect(exit!.ms).toBeLessThan(DRAIN_BOUND_MS);
    expect({ code: exit!.code, signal: exit!.signal }).toEqual({ code: 0, signal: null });
  }, 120_000);

  it('a client that keeps its connection open after its answer (keep-alive) holds the exit no longer than the drain bound', async () => {
    // LWP sends Keep-Alive, and load balancers keep connections: answers during the drain say
    // Connection: close, and what is left is cut at the bound.
    const g = await startFaultGateway({ env: { SHUTDOWN_DRAIN: '1s' } });
    gateways.push(g);
    const agents = makeAgents(8, crypto.randomBytes(3).toString('hex')).filter((a) => a.kind === 'ga');
    const keepAlive = new http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
    try {
      const messages = agents.map((a) => message(a, 'inventory'));
      let started = 0;
      let allStarted!: () => void;
      const whenAllStarted = new Promise<void>((resolve) => (allStarted = resolve));
      const onStarted = () => ++started === messages.length && allStarted();
      const uploads = messages.map((m, i) =>
        post(g.port, m, {
          timeoutMs: 30_000,
          chunks: 10,
          overMs: 2000,
          onStarted,
          agent: i === 0 ? keepAlive : undefined,
        }),
      );
      await whenAllStarted;
      await eventually(
        () => expect(acceptedConnections(g.proc.child.pid!, g.port)).toBeGreaterThanOrEqual(messages.length),
        {
          timeout: 10_000,
          message: 'the gateway accepted every upload',
        },
      );
      const signalledAt = Date.now();
      const exited = new Promise<{ code: number | null; ms: number }>((resolve) =>
        g.proc.child.once('exit', (code) => resolve({ code, ms: Date.now() - signalledAt })),
      );
      g.proc.child.kill('SIGTERM');
      const outcomes = await Promise.all(uploads);
      const exit = await Promise.race([exited, sleep(DRAIN_BOUND_MS + 5000).then(() => null)]);
      const verdicts = messages.map((m, i) => judge(m, outcomes[i]!));
      const missing = await missingRows(
        g.admin,
        g.schema,
        messages.filter((_, i) => verdicts[i] === 'ok').map((m) => ({ deviceid: m.agent.deviceid, marker: m.marker! })),
      );
      console.log(
        JSON.stringify(
          {
            keepAliveAnswerConnection: 'headers' in outcomes[0]! ? outcomes[0].headers.connection : null,
            verdicts,
            exit,
          },
          null,
          1,
        ),
      );
      expect(missing).toEqual([]);
      expect(verdicts).toEqual(messages.map(() => 'ok'));
      expect(exit, `the process exits within ${DRAIN_BOUND_MS} ms of SIGTERM`).not.toBeNull();
      expect(exit!.ms).toBeLessThan(DRAIN_BOUND_MS);
      expect(exit!.code).toBe(0);
    } finally {
      keepAlive.destroy();
    }
  }, 120_000);
});

describe('SIGTERM under load: agents doing the 401, 401, 200 exchange on kept-alive sockets', () => {
  const AGENTS = 12;
  const DRAIN_S = 2;
  let gw: FaultGateway;
  beforeAll(async () => {
    gw = await startFaultGateway({ env: { SHUTDOWN_DRAIN: `${DRAIN_S}s` } });
  }, 90_000);
  afterAll(async () => {
    await gw?.close();
  }, 30_000);

  it('cuts no request already sent, leaves no agent between a 401 and its retry, serves during the drain', async () => {
    const agents = makeAgents(AGENTS, crypto.randomBytes(3).toString('hex'));
    /** What went wrong: a request sent and not answered, or a retry after a 401 that could not be made. */
    const cut: string[] = [];
    const problems: string[] = [];
    const acked: Acked[] = [];
    const counts = { exchanges: 0, afterSignal: 0, closeAnswers: 0 };
    let signalledAt: number | null = null;
    let exitedAt: number | null = null;

    /**
     * The load balancer in front: it sends new connections to this gateway until it sees /readyz fail
     * (then to another replica), and leaves connections already open where they are.
     */
    const balancer = { routable: true, movedAway: 0 };

    /** One request on the agent's connection; false when it would need a new one the balancer no longer sends here. */
    async function request(
      conn: { open: boolean; http1: http.Agent },
      m: Pick<Message, 'path' | 'headers' | 'body'>,
    ): Promise<Outcome | 'moved'> {
      if (!conn.open && !balancer.routable) {
        balancer.movedAway++;
        return 'moved';
      }
      const o = await post(gw.port, m, { agent: conn.http1, timeoutMs: 30_000 });
      conn.open = isAnswer(o) && o.headers.connection !== 'close';
      return o;
    }

    /** One message as LWP sends it: unauthenticated twice (401, 401), then with credentials, on one socket. */
    async function exchange(
      agent: SimAgent,
      conn: { open: boolean; http1: http.Agent },
      step: Message['step'],
    ): Promise<'go' | 'next-run' | 'end'> {
      const m = message(agent, step);
      const bare = { ...m, headers: { ...m.headers } };
      delete bare.headers.Authorization;
      for (const attempt of [1, 2]) {
        const o = await request(conn, bare);
        if (o === 'moved') return 'end';
        if (!isAnswer(o)) {
          cut.push(`${agent.kind} ${step} unauthenticated #${attempt}: ${o.error} after ${o.ms} ms`);
          return 'end';
        }
        if (o.status !== 401) {
          problems.push(`${agent.kind} ${step} unauthenticated #${attempt}: ${o.status}`);
          return 'end';
        }
        if (!conn.open) problems.push(`${agent.kind} ${step}: a 401 closed the connection the retry needs`);
        // The agent's pace between the challenge and its next try (LWP is immediate; spread to hit the edges).
        await sleep(Math.floor(Math.random() * 150));
      }
      const o = await request(conn, m);
      if (o === 'moved') {
        cut.push(`${agent.kind} ${step}: the retry after its 401s needed a new connection`);
        return 'end';
      }
      if (!isAnswer(o)) {
        cut.push(`${agent.kind} ${step} retry with credentials after its 401s: ${o.error} after ${o.ms} ms`);
        return 'end';
      }
      counts.exchanges++;
      if (signalledAt !== null && exitedAt === null) counts.afterSignal++;
      if (o.headers.connection === 'close') counts.closeAnswers++;
      const v = judge(m, o);
      if (v !== 'ok' && v !== 'deferred') {
        problems.push(v);
        return 'end';
      }
      if (step === 'inventory' && v === 'ok') acked.push({ deviceid: agent.deviceid, marker: m.marker! });
      return v === 'ok' ? 'go' : 'next-run';
    }

    /** Runs after runs until the balancer sends the agent elsewhere (or something went wrong). */
    async function runAgent(agent: SimAgent): Promise<void> {
      const conn = { open: false, http1: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
      try {
        for (;;) {
          for (const step of RUN[agent.kind]) {
            const r = await exchange(agent, conn, step);
            if (r === 'end') return;
            if (r === 'next-run') break;
          }
        }
      } finally {
        conn.http1.destroy();
      }
    }

    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      gw.proc.child.once('exit', (code, signal) => {
        exitedAt = Date.now();
        resolve({ code, signal });
      }),
    );
    const traffic = Promise.all(agents.map(runAgent));
    // Under way: every agent has completed an exchange before the signal.
    await eventually(() => expect(counts.exchanges).toBeGreaterThanOrEqual(AGENTS), {
      timeout: 60_000,
      message: 'the load is running',
    });
    const before = counts.exchanges;
    signalledAt = Date.now();
    gw.proc.child.kill('SIGTERM');
    const readyz = await notReady(gw.port);
    const readyzMs = Date.now() - signalledAt;
    balancer.routable = false;
    const exit = await Promise.race([exited, sleep(30_000).then(() => null)]);
    await traffic;
    const missing = await missingRows(gw.admin, gw.schema, acked);
    console.log(
      JSON.stringify(
        {
          exchangesBeforeSignal: before,
          ...counts,
          movedAway: balancer.movedAway,
          readyz: 'status' in readyz ? readyz.status : readyz,
          readyzMs,
          exitAfterMs: exitedAt !== null ? exitedAt - signalledAt : null,
          exit,
          cut: cut.slice(0, 8),
          problems: problems.slice(0, 8),
          acked: acked.length,
          missing: missing.length,
        },
        null,
        1,
      ),
    );
    expect(cut, 'requests already sent that were cut, or retries after a 401 that could not be made').toEqual([]);
    expect(problems).toEqual([]);
    expect(missing, 'acknowledged inventories without their submission row').toEqual([]);
    expect(readyz, '/readyz right after SIGTERM').toMatchObject({ status: 503 });
    expect(counts.afterSignal, 'exchanges completed during the drain').toBeGreaterThan(0);
    expect(counts.closeAnswers, 'answers during the drain say Connection: close').toBeGreaterThan(0);
    expect(balancer.movedAway, 'agents sent elsewhere once /readyz failed').toBeGreaterThan(0);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAt! - signalledAt, 'the drain lasts SHUTDOWN_DRAIN').toBeGreaterThanOrEqual(DRAIN_S * 1000);
  }, 120_000);
});
