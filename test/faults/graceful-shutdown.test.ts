/**
 * Graceful shutdown (issue 7, item 2): SIGTERM to a real gateway process while ten GLPI Agents are still
 * sending their 228 KB inventory (zlib, written in pieces over ~2.5 s, as on a slow link). The uploads in
 * flight complete with 200 and their rows exist; new connections are refused once the signal is handled;
 * the process exits 0 within the drain bound (10 s for requests, then the pools close).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import {
  type FaultGateway,
  type Outcome,
  acceptedConnections,
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

describe('SIGTERM while uploads are in flight', () => {
  let gw: FaultGateway;
  const gateways: FaultGateway[] = [];
  beforeAll(async () => {
    gw = await startFaultGateway();
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
    // LWP sends Keep-Alive, and load balancers keep connections: answers during the drain still say
    // keep-alive, so such a connection stays until the gateway cuts the rest (10 s after the signal).
    const g = await startFaultGateway();
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
