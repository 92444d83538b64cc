/**
 * `npm run load`: many simulated agents against a real gateway (`agent-gate serve`, AGENT_AUTH=required) on
 * PostgreSQL (a fresh schema, dropped at the end) and Redis, all on loopback, bounded in time and count.
 *
 *   LOAD_SCENARIO=steady (default): first every agent's first run (its first contact, the device created; not
 *     measured against the target, its own p50/p99 printed), then LOAD_WARMUP_SECONDS (3) of the paced traffic
 *     (the agents' later runs, first seen there; printed, not measured), then for LOAD_SECONDS each
 *     (LOAD_PHASES, default both, in this order):
 *     paced: LOAD_CONCURRENCY (100) agents that start their runs at random, LOAD_RATE runs per second in all
 *       (default: INVENTORY_BUDGET_PER_SECOND's default, 100, each run bringing one inventory): the fleet
 *       within the admission budget, issue 13's condition for p99 ≤ 50 ms;
 *     overload: the same agents back to back, each starting its next run as soon as the previous one ended
 *       (at most LOAD_MAX_RUNS runs): as much as the gateway takes, the figure this test printed before.
 *     Each phase prints, besides the latencies, where the time went: the gateway's CPU (per request and per
 *     agent run), its PostgreSQL backends' CPU and this process's, so how many of the machine's cores the
 *     offered rate needs; the gateway's event-loop delay and GC pauses (its /metrics), its phase means
 *     (agentgate_agent_phase_seconds), TCP connect times, this process's own event-loop delay, and the p99
 *     second by second (a stall shows as one bad second, overload as all of them).
 *   LOAD_SCENARIO=spike: every agent starts its run at the same moment (LOAD_SPIKE_WAVES times): what did the
 *     gateway answer to the burst of PROLOG/CONTACT? With an INVENTORY_BUDGET_PER_SECOND key in src/config.ts,
 *     the gateway runs with it set to LOAD_INVENTORY_BUDGET (default 2) and the next-contact values the agents
 *     were given are printed as a distribution.
 * Steady raises every per-address, per-key, per-device limit, the spike thresholds and the inventory budget
 * this version has (all agents come from 127.0.0.1 and the Basic ones share one key; nothing is deferred);
 * spike raises only the per-address one.
 * LOAD_AUTH_FAILURES_LIMIT, if set, becomes RATE_LIMIT_AUTH_FAILURES_PER_15MIN. LOAD_GATEWAY_NODE_ARGS: node options for
 * the gateway after `npm start`'s own (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 * Deviceids carry a per-run tag, so Redis counters left by an earlier run (LOAD_REDIS_URL, default DB 6) do
 * not apply to this one.
 *
 * Agents (scripts/lib/agent-sim.ts): a third FusionInventory (PROLOG, XML inventory), a third GLPI Agent whose
 * first run is PROLOG + full JSON inventory + 3 getConfig GETs and later runs CONTACT + partial, a third GLPI
 * Agent already on CONTACT + partial. Half use the registration key over Basic (LOAD_BASIC_CHALLENGED_SHARE of
 * them, default 0.5, with the agents' real 401, 401, 200; the rest send it up front), the others a client
 * credential made with the CLI (OAuth for GLPI Agents, Basic for FusionInventory).
 *
 * Ends with a check in PostgreSQL that every inventory answered 2xx has its registration and submission rows;
 * exits 1 if one is missing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import postgres from 'postgres';
import {
  type Kind,
  KIND_LABELS,
  type SimAgent,
  type SimContext,
  Stats,
  buildAgents,
  runAgent,
} from './lib/agent-sim.js';
import { CONFIG_KEYS } from '../src/config.js';
import { RAISED_LIMITS, hasConfigKey, limitSettings } from './lib/limits.js';
import { quantile } from './lib/load-client.js';
import { type Proc, cpuSeconds, runCli, startGateway } from './lib/processes.js';
import { AGENT_PHASES, HANDLE_PHASES } from '../src/metrics.js';

function num(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  const v = raw === undefined || raw === '' ? def : Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`${name} must be a number in ${min}..${max}`);
  return v;
}

const SCENARIO = process.env.LOAD_SCENARIO ?? 'steady';
const AGENTS = num('LOAD_AGENTS', 200, 1, 5000);
const SECONDS = num('LOAD_SECONDS', 20, 1, 600);
const CONCURRENCY = Math.min(AGENTS, num('LOAD_CONCURRENCY', 100, 1, 1000));
const MAX_RUNS = num('LOAD_MAX_RUNS', 100_000, 1, 10_000_000);
const CLIENTS = num('LOAD_CLIENTS', 8, 1, 100);
const CHALLENGED_SHARE = num('LOAD_BASIC_CHALLENGED_SHARE', 0.5, 0, 1);
const SPIKE_WAVES = num('LOAD_SPIKE_WAVES', 1, 1, 10);
const BUDGET = num('LOAD_INVENTORY_BUDGET', 2, 1, 1_000_000);
const REQUEST_TIMEOUT_MS = num('LOAD_REQUEST_TIMEOUT', 60, 1, 180) * 1000;
/** The gateway's default inventory budget: the rate the paced phase offers unless LOAD_RATE says otherwise. */
const BUDGET_DEFAULT = Number(CONFIG_KEYS.find((k) => k.env === 'INVENTORY_BUDGET_PER_SECOND')?.default ?? 100);
/** Agent runs (each one inventory) started per second by the whole fleet in the paced phase. */
const RATE = num('LOAD_RATE', BUDGET_DEFAULT, 0.1, 100_000);
/** steady: `paced` (the agents at RATE), `overload` (back to back, no pause) or `both` (paced first). */
const PHASES = process.env.LOAD_PHASES ?? 'both';
/** steady: seconds of the paced traffic after the first contacts and before the measured phases (0: none). */
const WARMUP_SECONDS = num('LOAD_WARMUP_SECONDS', 3, 0, 60);
/** Extra node options for the gateway (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`), split on spaces. */
const GATEWAY_NODE_ARGS = (process.env.LOAD_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
const DATABASE_URL = process.env.LOAD_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.LOAD_REDIS_URL ?? 'redis://127.0.0.1:6379/6';
/** After this, whatever is still in flight is cut (every loop is bounded in time). */
const HARD_LIMIT_MS = (SECONDS + 150) * 1000;

const out = (s: string) => process.stdout.write(`${s}\n`);
const redact = (url: string) => url.replace(/:[^:@/]*@/, ':***@');
const withSearchPath = (url: string, schema: string) => `${url}${url.includes('?') ? '&' : '?'}search_path=${schema}`;

/**
 * Limits for this run. Every agent comes from 127.0.0.1 and the Basic ones share one key: steady raises the
 * per-address, per-key and per-device limits, the new-device spike thresholds and the inventory budget (so
 * no run is deferred: the paced phase offers the budget's rate, it does not lean on the budget to shed
 * bursts); spike raises only the per-address
 * limit and sets the budget to LOAD_INVENTORY_BUDGET (when the gateway has one).
 */
function loadLimits(budgetLow: boolean): Record<string, string> {
  const wanted =
    SCENARIO === 'steady' ? [...RAISED_LIMITS] : RAISED_LIMITS.filter(([k]) => k === 'RATE_LIMIT_IP_PER_MINUTE');
  if (budgetLow) wanted.push(['INVENTORY_BUDGET_PER_SECOND', String(BUDGET)]);
  // Optional: to look at one mechanism alone (e.g. the budget without the invalid-credential limiter).
  if (process.env.LOAD_AUTH_FAILURES_LIMIT)
    wanted.push(['RATE_LIMIT_AUTH_FAILURES_PER_15MIN', process.env.LOAD_AUTH_FAILURES_LIMIT]);
  return limitSettings(wanted);
}

async function createClients(
  count: number,
  databaseUrl: string,
): Promise<{ clientId: string; clientSecret: string }[]> {
  const made: { clientId: string; clientSecret: string }[] = [];
  for (let i = 0; i < count; i += 2) {
    const batch = [i, i + 1].filter((k) => k < count);
    const outs = await Promise.all(
      batch.map((k) =>
        runCli(['clients', 'create', '--name', `load-client-${k}`, '--comment', 'npm run load', '--json'], {
          DATABASE_URL: databaseUrl,
          LOG_LEVEL: 'warn',
        }),
      ),
    );
    for (const o of outs) {
      const c = JSON.parse(o) as { clientId: string; clientSecret: string };
      made.push({ clientId: c.clientId, clientSecret: c.clientSecret });
    }
  }
  return made;
}

function ms(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function human(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

type Phase = 'paced' | 'overload' | 'spike';

function report(stats: Stats, elapsed: number, phase: Phase): number {
  const runs = Object.values(stats.runs).reduce((a, b) => a + b, 0);
  out(
    `throughput: ${stats.requests} requests in ${elapsed.toFixed(1)} s = ${(stats.requests / elapsed).toFixed(1)} req/s; ${runs} agent runs = ${(runs / elapsed).toFixed(1)} runs/s`,
  );
  out(
    `  runs: ${Object.entries(stats.runs)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  out('latency per message kind (ms; final answer, then the 401 challenges before it):');
  out(
    `  ${'kind'.padEnd(36)} ${'n'.padStart(6)} ${'p50'.padStart(7)} ${'p99'.padStart(7)}   ${'401s'.padStart(6)} ${'p50'.padStart(7)} ${'p99'.padStart(7)}   final statuses`,
  );
  for (const kind of Object.keys(KIND_LABELS) as Kind[]) {
    const f = stats.latency(kind);
    const c = stats.latency(kind, true);
    if (f.n === 0 && c.n === 0) continue;
    out(
      `  ${KIND_LABELS[kind].padEnd(36)} ${String(f.n).padStart(6)} ${ms(f.p50).padStart(7)} ${ms(f.p99).padStart(7)}   ${String(c.n).padStart(6)} ${(c.n ? ms(c.p50) : '-').padStart(7)} ${(c.n ? ms(c.p99) : '-').padStart(7)}   ${JSON.stringify(stats.finalStatuses.get(kind) ?? {})}`,
    );
  }
  out(
    `status counts (every request): ${Object.entries(stats.statuses)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ')}`,
  );
  out(
    `errors: network ${stats.networkErrors}, unexpected final status ${stats.unexpectedStatus}, answers an agent would not accept ${stats.badAnswers}`,
  );
  for (const s of stats.samples) out(`  e.g. ${s}`);
  // Issue 13's latency target: every answer (final ones and the 401 challenges alike) at 100 concurrent agents
  // within the admission budget, i.e. the paced phase at the budget's rate.
  const all = stats.timeline.map(([, v]) => v).sort((a, b) => a - b);
  const p99 = quantile(all, 0.99);
  const verdict =
    phase === 'spike'
      ? '(the target applies to the steady scenario, paced phase)'
      : phase === 'overload'
        ? "(overload: agents back to back, more than the gateway serves; not the target's condition)"
        : CONCURRENCY < 100 || RATE < BUDGET_DEFAULT
          ? `(the target is at 100 concurrent agents offering the budget's ${BUDGET_DEFAULT} runs/s)`
          : p99 <= 50
            ? 'ok'
            : 'ABOVE TARGET';
  out(
    `p99 of every answer (${phase}): ${ms(p99)} ms over ${all.length} requests at ${CONCURRENCY} concurrent agents${phase === 'paced' ? ` offering ${RATE} runs/s` : ''}   target ≤ 50 ms at 100 within the admission budget  ${verdict}`,
  );
  return p99;
}

/** One /metrics sample: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(port: number): Promise<Sample[]> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) =>
    r.text(),
  );
  const samples: Sample[] = [];
  for (const m of text.matchAll(/^([a-zA-Z0-9_:]+)(?:\{([^}]*)\})? (\S+)$/gm)) {
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z0-9_]+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

function pick(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** What one measured phase costs and where its waiting is: gateway and load generator, from before/after readings. */
interface Probe {
  t0: number;
  gatewayCpu: number;
  /** CPU seconds so far of each PostgreSQL backend serving the gateway (PGAPPNAME is the run's schema). */
  dbCpu: Map<number, number>;
  clientCpu: NodeJS.CpuUsage;
  clientLoop: ReturnType<typeof monitorEventLoopDelay>;
  metrics: Sample[];
  load: number;
}

/** The gateway's PostgreSQL backends (found by their application_name) and the CPU each has used so far. */
async function backendCpu(sql: postgres.Sql, appName: string): Promise<Map<number, number>> {
  const rows = await sql<{ pid: number }[]>`select pid from pg_stat_activity where application_name = ${appName}`;
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      cpu.set(pid, cpuSeconds(pid));
    } catch {
      /* gone meanwhile, or another host's PostgreSQL: not counted */
    }
  }
  return cpu;
}

async function startProbe(proc: Proc, sql: postgres.Sql, appName: string): Promise<Probe> {
  const metrics = await scrape(proc.port); // also resets the gateway's event-loop delay window
  const dbCpu = await backendCpu(sql, appName);
  const clientLoop = monitorEventLoopDelay({ resolution: 10 });
  clientLoop.enable();
  return {
    t0: performance.now(),
    gatewayCpu: cpuSeconds(proc.child.pid!),
    dbCpu,
    clientCpu: process.cpuUsage(),
    clientLoop,
    metrics,
    load: os.loadavg()[0]!,
  };
}

async function reportProbe(
  probe: Probe,
  proc: Proc,
  stats: Stats,
  sql: postgres.Sql,
  appName: string,
  rate: number | null,
): Promise<void> {
  const seconds = (performance.now() - probe.t0) / 1000;
  const gatewayCpu = cpuSeconds(proc.child.pid!) - probe.gatewayCpu;
  const c = process.cpuUsage(probe.clientCpu);
  let dbCpu = 0;
  for (const [pid, v] of await backendCpu(sql, appName)) dbCpu += v - (probe.dbCpu.get(pid) ?? 0);
  probe.clientLoop.disable();
  const after = await scrape(proc.port);
  const runs = Object.values(stats.runs).reduce((a, b) => a + b, 0);
  const before = probe.metrics;
  const d = (name: string, labels: Record<string, string> = {}) =>
    pick(after, name, labels) - pick(before, name, labels);
  const gc = d('nodejs_gc_duration_seconds_count');
  const gcKinds = [
    ...new Set(after.filter((x) => x.name === 'nodejs_gc_duration_seconds_count').map((x) => x.labels.kind!)),
  ]
    .map((kind) => ({
      kind,
      n: d('nodejs_gc_duration_seconds_count', { kind }),
      s: d('nodejs_gc_duration_seconds_sum', { kind }),
    }))
    .filter((k) => k.n > 0)
    .map((k) => `${k.kind} ${k.n} (${(k.s * 1000).toFixed(0)} ms)`)
    .join(', ');
  const gcOver = (le: string) => gc - d('nodejs_gc_duration_seconds_bucket', { le });
  out('where the time went:');
  out(
    `  gateway: CPU ${((gatewayCpu / seconds) * 100).toFixed(0)} % of a core (all its threads), ${((gatewayCpu * 1000) / Math.max(1, stats.requests)).toFixed(2)} ms per request, ${((gatewayCpu * 1000) / Math.max(1, runs)).toFixed(1)} ms per agent run; event-loop delay p99 ${(pick(after, 'nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(1)} ms, max ${(pick(after, 'nodejs_eventloop_lag_max_seconds') * 1000).toFixed(0)} ms; GC ${gc} pauses, ${(d('nodejs_gc_duration_seconds_sum') * 1000).toFixed(0)} ms in all, ${gcOver('0.01')} over 10 ms, ${gcOver('0.1')} over 100 ms: ${gcKinds}`,
  );
  const parts: string[] = [];
  for (const phase of AGENT_PHASES) {
    const n = d('agentgate_agent_phase_seconds_count', { phase });
    if (n <= 0) continue;
    const mean = (d('agentgate_agent_phase_seconds_sum', { phase }) / n) * 1000;
    parts.push(`${HANDLE_PHASES.has(phase) ? '·' : ''}${phase} ${mean.toFixed(2)}`);
  }
  out(`  gateway phases, mean ms per request that passed through each: ${parts.join(', ')}`);
  // Inside the gateway (the `total` phase: from its router to the answer's last byte) vs as the agents saw it
  // (plus connecting, the kernel's queues, the event loop's turn before express, and the load generator itself).
  const totalN = d('agentgate_agent_phase_seconds_count', { phase: 'total' });
  const inside50 = totalN - d('agentgate_agent_phase_seconds_bucket', { phase: 'total', le: '0.05' });
  const seen50 = stats.timeline.filter(([, v]) => v > 50).length;
  const conn = [...stats.connects].sort((a, b) => a - b);
  out(
    `  new connections (one per message, as the agents open them): ${conn.length}, TCP connect p50 ${ms(quantile(conn, 0.5))} ms, p99 ${ms(quantile(conn, 0.99))} ms, max ${ms(conn[conn.length - 1] ?? 0)} ms`,
  );
  // The same from express's first middleware (agentgate_http_request_duration_seconds, agent routes), by bucket.
  const httpN = d('agentgate_http_request_duration_seconds_count', { route: 'agent' });
  const share = (le: string, over: number) =>
    `${((stats.timeline.filter(([, v]) => v > over).length / Math.max(1, stats.timeline.length)) * 100).toFixed(1)} % / ${(((httpN - d('agentgate_http_request_duration_seconds_bucket', { route: 'agent', le })) / Math.max(1, httpN)) * 100).toFixed(1)} %`;
  out(
    `  answers over 100 ms, 250 ms, 1 s (as the agents saw them / from the gateway's first middleware to its last byte): ${share('0.1', 100)}, ${share('0.25', 250)}, ${share('1', 1000)}`,
  );
  out(
    `  answers over 50 ms: ${((seen50 / Math.max(1, stats.timeline.length)) * 100).toFixed(1)} % as the agents saw them, ${((inside50 / Math.max(1, totalN)) * 100).toFixed(1)} % inside the gateway (router to last byte)`,
  );
  // What one agent run costs the machine, and so how much of its cores the offered rate needs: past about
  // 0.7 of them, queueing (for a CPU, for the event loop) dominates the tail whatever the code does.
  const clientCpu = (c.user + c.system) / 1e6;
  const perRun = (v: number) => (v * 1000) / Math.max(1, runs);
  const need = (perRun(gatewayCpu) + perRun(dbCpu) + perRun(clientCpu)) * (rate ?? runs / seconds);
  out(
    `  CPU per agent run: gateway ${perRun(gatewayCpu).toFixed(1)} ms + its PostgreSQL backends ${perRun(dbCpu).toFixed(1)} ms + this load generator ${perRun(clientCpu).toFixed(1)} ms (Redis not counted) = ${(need / (rate ?? runs / seconds)).toFixed(1)} ms; at ${rate === null ? `the ${(runs / seconds).toFixed(1)} runs/s served` : `the ${rate} runs/s offered`} that is ${(need / 1000).toFixed(2)} of the machine's ${os.cpus().length} cores`,
  );
  out(
    `  load generator (this process, same machine): CPU ${(((c.user + c.system) / 1e6 / seconds) * 100).toFixed(0)} % of a core; event-loop delay p99 ${(probe.clientLoop.percentile(99) / 1e6).toFixed(1)} ms, max ${(probe.clientLoop.max / 1e6).toFixed(0)} ms; load average ${probe.load.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)}`,
  );
  // p99 second by second: a stall (a pause, a start-up cost) shows as one bad second, overload as all of them.
  const bySecond = new Map<number, number[]>();
  for (const [at, v] of stats.timeline) {
    const k = Math.floor((at - probe.t0) / 1000);
    if (!bySecond.has(k)) bySecond.set(k, []);
    bySecond.get(k)!.push(v);
  }
  const seconds99 = [...bySecond]
    .sort((a, b) => a[0] - b[0])
    .map(([, v]) => {
      v.sort((a, b) => a - b);
      return ms(quantile(v, 0.99));
    });
  out(`  p99 second by second (ms): ${seconds99.join(' ')}`);
}

function reportAnswers(stats: Stats, budgetSet: boolean): void {
  out('what the agents were told at PROLOG/CONTACT (form: count, next contact min–max):');
  for (const [kind, m] of stats.told) {
    const forms = [...m]
      .sort((a, b) => b[1].n - a[1].n)
      .map(
        ([form, t]) =>
          `${form}: ${t.n}${Number.isFinite(t.min) ? ` (${t.min === t.max ? human(t.min) : `${human(t.min)}–${human(t.max)}`})` : ''}`,
      );
    out(`  ${KIND_LABELS[kind].padEnd(36)} ${forms.join('; ')}`);
  }
  out(`  inventories deferred by the answer (no SEND / inventory disabled): ${stats.inventoriesDeferred}`);
  if (budgetSet) {
    const s = [...stats.nextContactSeconds].sort((a, b) => a - b);
    const hours = new Map<number, number>();
    for (const v of s) hours.set(Math.floor(v / 3600), (hours.get(Math.floor(v / 3600)) ?? 0) + 1);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? 0;
    out(
      `next-contact distribution (${s.length} answers): min ${human(s[0] ?? 0)}, p50 ${human(q(0.5))}, p90 ${human(q(0.9))}, max ${human(s[s.length - 1] ?? 0)}`,
    );
    out(
      `  by hour [h, h+1): ${[...hours]
        .sort((a, b) => a[0] - b[0])
        .map(([h, n]) => `${h} h: ${n}`)
        .join(', ')}`,
    );
  }
}

/** The gateway's own count of 429s by limiter, deferrals and spike alerts (from /metrics), when it has them. */
async function gatewayCounters(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    const lines = text
      .split('\n')
      .filter((l) => /^agentgate_(limiter_hits_total|deferred_total|spike_alerts_total)[{ ]/.test(l));
    return lines.length
      ? lines.map((l) => l.replace(/^agentgate_/, '')).join(', ')
      : 'no 429, deferral or spike counted';
  } catch (err) {
    return `unavailable (${(err as Error).message})`;
  }
}

/** Every inventory the agents saw acknowledged must have its registration and its submission row. */
async function finalCheck(sql: postgres.Sql, acked: Map<string, number>): Promise<boolean> {
  const regs = await sql<{ deviceid: string; n: number }[]>`
    select deviceid, count(*)::int as n from registrations
    where kind = 'inventory' and status between 200 and 299 and deviceid is not null group by deviceid`;
  const subs = await sql<{ deviceid: string; n: number }[]>`
    select d.deviceid, count(*)::int as n from submissions s join devices d on d.id = s.device_id
    where s.kind = 'inventory' group by d.deviceid`;
  const regBy = new Map(regs.map((r) => [r.deviceid, r.n]));
  const subBy = new Map(subs.map((r) => [r.deviceid, r.n]));
  let total = 0;
  let stored = 0;
  const missing: string[] = [];
  for (const [deviceid, n] of [...acked].sort()) {
    const r = regBy.get(deviceid) ?? 0;
    const s = subBy.get(deviceid) ?? 0;
    total += n;
    stored += Math.min(n, r, s);
    if (r < n || s < n) missing.push(`${deviceid}: ${n} acknowledged, ${r} registration rows, ${s} submission rows`);
  }
  if (missing.length === 0) {
    out(`FINAL CHECK: every acknowledged inventory stored: yes (${stored}/${total})`);
    return true;
  }
  out(`FINAL CHECK: every acknowledged inventory stored: NO (${stored}/${total}); missing:`);
  for (const m of missing.slice(0, 50)) out(`  ${m}`);
  if (missing.length > 50) out(`  … and ${missing.length - 50} more devices`);
  return false;
}

/**
 * Before anything is measured, every agent's first run (its first contact: the device is created), at most
 * CONCURRENCY at once: the measured phases are the fleet's everyday runs, as the bench measures registered
 * devices. First contacts cost more (device creation, the new-device spike check); the spike scenario and
 * this phase's own figures show them.
 */
async function register(ctx: SimContext, agents: SimAgent[]): Promise<void> {
  const todo = [...agents];
  async function worker(): Promise<void> {
    for (let agent = todo.shift(); agent; agent = todo.shift()) {
      const label = await runAgent(ctx, agent);
      ctx.stats.runs[label] = (ctx.stats.runs[label] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Overload: CONCURRENCY agents, each starting its next run as soon as its previous one ended. */
async function overload(ctx: SimContext, idle: SimAgent[]): Promise<void> {
  const deadline = Date.now() + SECONDS * 1000;
  let started = 0;
  async function worker(): Promise<void> {
    while (Date.now() < deadline && started < MAX_RUNS && idle.length > 0) {
      started++;
      const agent = idle.shift()!; // an agent never runs twice at once
      const label = await runAgent(ctx, agent);
      ctx.stats.runs[label] = (ctx.stats.runs[label] ?? 0) + 1;
      idle.push(agent);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/**
 * Within the admission budget: CONCURRENCY agents, each starting its runs at random (exponential gaps, so the
 * fleet's starts are a Poisson stream, as independent agents' timers are) at RATE runs per second in all.
 * The schedule does not wait for the gateway: a run due while the agent's previous one is still going starts
 * as soon as that one ends, late (counted: the gateway is then not keeping up with what is offered).
 */
async function paced(
  ctx: SimContext,
  idle: SimAgent[],
  seconds = SECONDS,
): Promise<{ starts: number; late: number[] }> {
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const meanGapMs = (CONCURRENCY / RATE) * 1000;
  const gap = () => -Math.log(1 - Math.random()) * meanGapMs;
  let starts = 0;
  const late: number[] = [];
  async function agentLoop(): Promise<void> {
    let due = t0 + gap();
    while (due < end && performance.now() < end && starts < MAX_RUNS && idle.length > 0) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else late.push(-wait);
      starts++;
      const agent = idle.shift()!;
      const label = await runAgent(ctx, agent);
      ctx.stats.runs[label] = (ctx.stats.runs[label] ?? 0) + 1;
      idle.push(agent);
      due += gap();
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, agentLoop));
  return { starts, late };
}

async function spike(ctx: SimContext, agents: SimAgent[]): Promise<void> {
  const deadline = Date.now() + SECONDS * 1000;
  for (let w = 0; w < SPIKE_WAVES && Date.now() < deadline; w++) {
    const before = ctx.stats.requests;
    const t0 = Date.now();
    await Promise.all(
      agents.map(async (agent) => {
        const label = await runAgent(ctx, agent);
        ctx.stats.runs[label] = (ctx.stats.runs[label] ?? 0) + 1;
      }),
    );
    out(
      `  wave ${w + 1}: ${agents.length} agents at once, ${ctx.stats.requests - before} requests, done in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
}

/** A stretch not measured against the target, in one line: its requests, p50/p99 of every answer, errors. */
function summary(stats: Stats): string {
  const all = stats.timeline.map(([, v]) => v).sort((a, b) => a - b);
  return `${stats.requests} requests, p50 ${ms(quantile(all, 0.5))} ms, p99 ${ms(quantile(all, 0.99))} ms, errors ${stats.networkErrors + stats.unexpectedStatus + stats.badAnswers}`;
}

async function main(): Promise<number> {
  if (SCENARIO !== 'steady' && SCENARIO !== 'spike') throw new Error('LOAD_SCENARIO must be steady or spike');
  if (!['both', 'paced', 'overload'].includes(PHASES)) throw new Error('LOAD_PHASES must be both, paced or overload');
  const hasBudget = hasConfigKey('INVENTORY_BUDGET_PER_SECOND');
  const budgetSet = SCENARIO === 'spike' && hasBudget;
  const schema = `agload_${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(3).toString('hex')}`;
  const databaseUrl = withSearchPath(DATABASE_URL, schema);
  const admin = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
  const sql = postgres(databaseUrl, { onnotice: () => {}, max: 2 });
  await admin.unsafe(`create schema "${schema}"`);
  const logFile = path.join(os.tmpdir(), `agent-gate-load-${schema}.log`);
  let proc: Proc | null = null;
  let ok: boolean;
  try {
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      AGENT_AUTH: 'required',
      BOOTSTRAP_SECRET: `agk_${crypto.randomBytes(32).toString('base64url')}`,
      BOOTSTRAP_ADMIN_TOKEN: `ago_${crypto.randomBytes(32).toString('base64url')}`,
      PGAPPNAME: schema, // its PostgreSQL backends, found by name to measure their CPU
    };
    const limits = loadLimits(budgetSet);
    Object.assign(env, limits);
    proc = await startGateway(env, { logFile, nodeArgs: GATEWAY_NODE_ARGS });
    const clients = await createClients(CLIENTS, databaseUrl);
    const agents = buildAgents(
      AGENTS,
      { keySecret: env.BOOTSTRAP_SECRET!, clients },
      CHALLENGED_SHARE,
      `${schema.slice(-6)}-`,
    );
    const count = (f: (a: SimAgent) => boolean) => agents.filter(f).length;
    out(
      `load: scenario ${SCENARIO}, ${AGENTS} agents (${count((a) => a.type === 'fi')} FusionInventory, ${count((a) => a.type === 'ga-new')} GLPI Agent from its first run, ${count((a) => a.type === 'ga-known')} GLPI Agent on CONTACT), ${SCENARIO === 'spike' ? `all at once × ${SPIKE_WAVES}` : `${CONCURRENCY} at once, ${SECONDS} s`}`,
    );
    out(
      `  auth (AGENT_AUTH=required): registration key over Basic ${count((a) => a.auth === 'basic-challenged')} with 401,401,200 + ${count((a) => a.auth === 'basic-upfront')} up front; ${clients.length} CLI clients shared by ${count((a) => a.auth === 'oauth')} OAuth GLPI Agents + ${count((a) => a.auth === 'basic-client')} Basic FusionInventory`,
    );
    out(`  PostgreSQL ${redact(DATABASE_URL)} schema ${schema}, Redis ${redact(REDIS_URL)}`);
    out(
      `  limits: ${Object.entries(limits)
        .map(([k, v]) => `${k}=${v}`)
        .join(
          ', ',
        )}${SCENARIO === 'spike' && !budgetSet ? ' (no INVENTORY_BUDGET_PER_SECOND in src/config.ts)' : ''}; others at their defaults`,
    );
    const open = new Set<http.Agent>();
    let cut = false;
    const guard = setTimeout(
      () => {
        cut = true;
        for (const c of open) c.destroy();
      },
      HARD_LIMIT_MS * (SCENARIO === 'steady' && PHASES === 'both' ? 2 : 1),
    );
    const acked = new Map<string, number>();
    const phases: Phase[] =
      SCENARIO === 'spike' ? ['spike'] : PHASES === 'both' ? ['paced', 'overload'] : [PHASES as Phase];
    const idle = [...agents]; // shared by the phases: each agent's next run continues where it left off
    const p99s: string[] = [];
    let stats = new Stats();
    if (SCENARIO === 'steady') {
      const ctx: SimContext = { port: proc.port, stats, timeoutMs: REQUEST_TIMEOUT_MS, open };
      const t0 = performance.now();
      await register(ctx, agents);
      out(
        `\nfirst contacts (not measured against the target): ${AGENTS} agents' first runs, ${CONCURRENCY} at once, in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${summary(stats)}`,
      );
      for (const [d, n] of stats.acked) acked.set(d, (acked.get(d) ?? 0) + n);
      if (WARMUP_SECONDS > 0) {
        // The agents' later runs (CONTACT, partial inventories) are first exercised here: the paced traffic
        // for a few seconds before any phase is measured, as a gateway in service has long seen them.
        const warm = new Stats();
        const t1 = performance.now();
        await paced({ port: proc.port, stats: warm, timeoutMs: REQUEST_TIMEOUT_MS, open }, idle, WARMUP_SECONDS);
        out(
          `warm-up (not measured against the target): the paced traffic for ${((performance.now() - t1) / 1000).toFixed(1)} s: ${summary(warm)}`,
        );
        for (const [d, n] of warm.acked) acked.set(d, (acked.get(d) ?? 0) + n);
      }
    }
    for (const phase of phases) {
      stats = new Stats();
      const ctx: SimContext = { port: proc.port, stats, timeoutMs: REQUEST_TIMEOUT_MS, open };
      out('');
      out(
        phase === 'paced'
          ? `== paced (within the admission budget): ${CONCURRENCY} agents offering ${RATE} runs/s in all (one inventory each; INVENTORY_BUDGET_PER_SECOND's default is ${BUDGET_DEFAULT}), ${SECONDS} s ==`
          : phase === 'overload'
            ? `== overload: ${CONCURRENCY} agents back to back (no pause between runs), ${SECONDS} s ==`
            : `== spike ==`,
      );
      const probe = await startProbe(proc, sql, schema);
      const t0 = process.hrtime.bigint();
      let schedule: { starts: number; late: number[] } | null = null;
      if (phase === 'spike') await spike(ctx, agents);
      else if (phase === 'overload') await overload(ctx, idle);
      else schedule = await paced(ctx, idle);
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      const p99 = report(stats, elapsed, phase);
      p99s.push(`${phase} ${ms(p99)} ms`);
      if (schedule) {
        const l = schedule.late.sort((a, b) => a - b);
        const over = (v: number) => l.filter((x) => x > v).length;
        out(
          `  schedule: ${schedule.starts} runs started (${(schedule.starts / SECONDS).toFixed(1)}/s offered), ${over(10)} more than 10 ms late and ${over(1000)} more than 1 s (the agent's previous run still going)${l.length ? `, latest ${ms(l[l.length - 1]!)} ms` : ''}`,
        );
      }
      await reportProbe(probe, proc, stats, sql, schema, phase === 'paced' ? RATE : null);
      for (const [d, n] of stats.acked) acked.set(d, (acked.get(d) ?? 0) + n);
      if (phase !== 'spike') reportAnswers(stats, false);
    }
    clearTimeout(guard);
    if (cut) out(`(cut short: requests still in flight were aborted)`);
    if (SCENARIO === 'spike') reportAnswers(stats, budgetSet);
    if (p99s.length > 1) out(`\np99 of every answer: ${p99s.join('; ')} (target ≤ 50 ms: the paced phase)`);
    const lines = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean) : [];
    const levels = lines.map((l) => {
      try {
        return JSON.parse(l) as { level?: number; msg?: string };
      } catch {
        return { level: 0, msg: l };
      }
    });
    const errors = levels.filter((l) => (l.level ?? 0) >= 50);
    out(
      `gateway log (LOG_LEVEL=warn): ${lines.length - errors.length} warn, ${errors.length} error lines${lines.length ? ` in ${logFile}` : ''}${errors[0] ? `; first error: ${String(errors[0].msg).slice(0, 160)}` : ''}`,
    );
    out(`gateway metrics: ${await gatewayCounters(proc.port)}`);
    ok = await finalCheck(sql, acked);
  } finally {
    await proc?.stop();
    await sql.end();
    await admin.unsafe(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`load failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
