/**
 * `npm run load`: many simulated agents against a real gateway (`agent-gate serve`, AGENT_AUTH=required) on
 * PostgreSQL (a fresh schema, dropped at the end) and Redis, all on loopback, bounded in time and count.
 *
 *   LOAD_SCENARIO=steady (default): LOAD_CONCURRENCY agents run at once, each starting its next run as soon as
 *     its previous one ended, for LOAD_SECONDS (at most LOAD_MAX_RUNS runs).
 *   LOAD_SCENARIO=spike: every agent starts its run at the same moment (LOAD_SPIKE_WAVES times): what did the
 *     gateway answer to the burst of PROLOG/CONTACT? With an INVENTORY_BUDGET_PER_SECOND key in src/config.ts,
 *     the gateway runs with it set to LOAD_INVENTORY_BUDGET (default 2) and the next-contact values the agents
 *     were given are printed as a distribution.
 * Steady raises every per-address, per-key, per-device limit and the inventory budget this version has (all
 * agents come from 127.0.0.1 and the Basic ones share one key); spike raises only the per-address one.
 * LOAD_AUTH_FAILURES_LIMIT, if set, becomes RATE_LIMIT_AUTH_FAILURES_PER_15MIN.
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
import { RAISED_LIMITS, hasConfigKey, limitSettings } from './lib/limits.js';
import { type Proc, runCli, startGateway } from './lib/processes.js';

function num(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  const v = raw === undefined || raw === '' ? def : Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`${name} must be a number in ${min}..${max}`);
  return v;
}

const SCENARIO = process.env.LOAD_SCENARIO ?? 'steady';
const AGENTS = num('LOAD_AGENTS', 200, 1, 5000);
const SECONDS = num('LOAD_SECONDS', 20, 1, 600);
const CONCURRENCY = Math.min(AGENTS, num('LOAD_CONCURRENCY', 16, 1, 1000));
const MAX_RUNS = num('LOAD_MAX_RUNS', 100_000, 1, 10_000_000);
const CLIENTS = num('LOAD_CLIENTS', 8, 1, 100);
const CHALLENGED_SHARE = num('LOAD_BASIC_CHALLENGED_SHARE', 0.5, 0, 1);
const SPIKE_WAVES = num('LOAD_SPIKE_WAVES', 1, 1, 10);
const BUDGET = num('LOAD_INVENTORY_BUDGET', 2, 1, 1_000_000);
const REQUEST_TIMEOUT_MS = num('LOAD_REQUEST_TIMEOUT', 60, 1, 180) * 1000;
const DATABASE_URL = process.env.LOAD_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.LOAD_REDIS_URL ?? 'redis://127.0.0.1:6379/6';
/** After this, whatever is still in flight is cut (every loop is bounded in time). */
const HARD_LIMIT_MS = (SECONDS + 150) * 1000;

const out = (s: string) => process.stdout.write(`${s}\n`);
const redact = (url: string) => url.replace(/:[^:@/]*@/, ':***@');
const withSearchPath = (url: string, schema: string) => `${url}${url.includes('?') ? '&' : '?'}search_path=${schema}`;

/**
 * Limits for this run. Every agent comes from 127.0.0.1 and the Basic ones share one key: steady raises the
 * per-address, per-key and per-device limits and the inventory budget; spike raises only the per-address
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

function report(stats: Stats, elapsed: number): void {
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
  // Issue 13's latency target: every answer (final ones and the 401 challenges alike) at 100 concurrent agents.
  const all = [...stats.final.values(), ...stats.challenges.values()].flat().sort((a, b) => a - b);
  const p99 = all[Math.min(all.length - 1, Math.floor(all.length * 0.99))] ?? 0;
  const verdict =
    SCENARIO !== 'steady'
      ? '(the target applies to the steady scenario)'
      : CONCURRENCY < 100
        ? `(the target is at 100 concurrent agents: LOAD_CONCURRENCY=100)`
        : p99 <= 50
          ? 'ok'
          : 'ABOVE TARGET';
  out(
    `p99 of every answer: ${ms(p99)} ms over ${all.length} requests at ${CONCURRENCY} concurrent agents   target ≤ 50 ms at 100  ${verdict}`,
  );
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

async function steady(ctx: SimContext, agents: SimAgent[]): Promise<void> {
  const idle = [...agents]; // an agent never runs twice at once
  const deadline = Date.now() + SECONDS * 1000;
  let started = 0;
  async function worker(): Promise<void> {
    while (Date.now() < deadline && started < MAX_RUNS && idle.length > 0) {
      started++;
      const agent = idle.shift()!;
      const label = await runAgent(ctx, agent);
      ctx.stats.runs[label] = (ctx.stats.runs[label] ?? 0) + 1;
      idle.push(agent);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
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

async function main(): Promise<number> {
  if (SCENARIO !== 'steady' && SCENARIO !== 'spike') throw new Error('LOAD_SCENARIO must be steady or spike');
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
    };
    const limits = loadLimits(budgetSet);
    Object.assign(env, limits);
    proc = await startGateway(env, { logFile });
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
    const stats = new Stats();
    const ctx: SimContext = { port: proc.port, stats, timeoutMs: REQUEST_TIMEOUT_MS, open: new Set<http.Agent>() };
    const t0 = process.hrtime.bigint();
    let cut = false;
    const guard = setTimeout(() => {
      cut = true;
      for (const c of ctx.open) c.destroy();
    }, HARD_LIMIT_MS);
    await (SCENARIO === 'spike' ? spike(ctx, agents) : steady(ctx, agents));
    clearTimeout(guard);
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    if (cut) out(`(cut short after ${HARD_LIMIT_MS / 1000} s: requests still in flight were aborted)`);
    report(stats, elapsed);
    reportAnswers(stats, budgetSet);
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
    ok = await finalCheck(sql, stats.acked);
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
