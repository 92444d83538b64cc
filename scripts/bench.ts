/**
 * `npm run bench`: throughput of the gateway's full HTTP path against floors measured in the same run on
 * the same machine (so the ratios, not the absolute numbers, are what to compare across machines):
 *   the store floor (scripts/lib/floor-server.ts `store`): express.raw + zlib.inflateSync + a group-committed
 *     multi-row INSERT of the raw body into the same PostgreSQL, answered after the commit: the honest floor
 *     of a gateway that records what it acknowledges, for XML / JSON inventories, PROLOG and CONTACT bodies;
 *   the read floor (`read`): the store floor that also makes the decoded body one string (and JSON.parse's
 *     it when it is JSON): the ceiling of any gateway that reads the documents it records, in JavaScript;
 *   the trips floor (`trips`): the store floor that first makes one Redis round trip (a shared counter) and
 *     one PostgreSQL read of the device by deviceid: the ceiling, for PROLOG and CONTACT, of any gateway
 *     that keeps limits shared by replicas and decides who a device is before it answers;
 *   the inflate-only and express no-op floors, for reference;
 *   the gateway as deployed: AGENT_AUTH=required, credentials up front (the registration key over Basic for
 *     FusionInventory, an OAuth bearer token for the GLPI Agent), REDIS_URL set, DEVICES devices of each
 *     agent, all registered first; measured with every device quarantined, then with half of them approved.
 *     Each case prints where a request's time went (agentgate_agent_phase_seconds, means per request) and
 *     the gateway's CPU use;
 *   rejections: an inventory body without Authorization (401) and from an address over
 *     RATE_LIMIT_IP_PER_MINUTE (429), both answered before the body is read or inflated, vs the no-op;
 *   memory: 50 concurrent ~20 MB uploads; decompression bombs (BENCH_ONLY=bomb alone).
 * BENCH_SECONDS per case (default 5), BENCH_CONCURRENCY clients (8), BENCH_DEVICES per agent (250),
 * BENCH_REDIS_URL (redis://127.0.0.1:6379/7), BENCH_ONLY (bomb | gateway | ingest | memory | reject), BENCH_COMPARE (another
 * checkout, measured in the same run), BENCH_PROFILE (a directory: the gateway as deployed writes a V8 CPU
 * profile there when it stops). Loopback only, bounded in time. Uses PostgreSQL at BENCH_DATABASE_URL
 * (default: the local test database, in a schema of its own, dropped afterwards).
 */
import crypto from 'node:crypto';
import postgres from 'postgres';
import { type LoadRequest, type LoadResult, quantile, runLoad } from './lib/load-client.js';
import { RAISED_LIMITS, limitSettings } from './lib/limits.js';
import { type FloorMode, type Proc, processUsage, runCli, startFloor, startGateway } from './lib/processes.js';
import { variants } from './lib/traffic.js';
import { bigInventory, residentMb } from './lib/memory.js';
import { jsonBomb, xmlBomb } from './lib/bombs.js';
import zlib from 'node:zlib';
import { AGENT_PHASES, HANDLE_PHASES } from '../src/metrics.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DEVICES = Number(process.env.BENCH_DEVICES ?? 250);
/** Limits, admission and the spike counters of the gateway as deployed (its own database number). */
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/7';

function cycle(reqs: LoadRequest[]): (i: number) => LoadRequest {
  return (i) => reqs[i % reqs.length]!;
}

/** What the server process used per answered request (all threads): CPU ms, its kernel part, minor page faults. */
interface Usage {
  cpuMs: number;
  sysMs: number;
  faults: number;
}

/** A measured case: the client's view, and what the server process used per answered request. */
type Measured = LoadResult & Usage;

type UsageReading = ReturnType<typeof processUsage>;

function perRequest(before: UsageReading, after: UsageReading, requests: number): Usage {
  const n = Math.max(1, requests);
  return {
    cpuMs: ((after.cpu - before.cpu) * 1000) / n,
    sysMs: ((after.sys - before.sys) * 1000) / n,
    faults: (after.faults - before.faults) / n,
  };
}

const usageText = (u: Usage) =>
  `CPU ${u.cpuMs.toFixed(2)} ms/req (kernel ${u.sysMs.toFixed(2)}), ${u.faults.toFixed(0)} page faults/req`;

async function measure(label: string, proc: Proc, reqs: LoadRequest[], expected = 200): Promise<Measured> {
  await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: Math.min(1, SECONDS) }); // warm-up
  const u0 = processUsage(proc.child.pid!);
  const r = await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: SECONDS });
  const m = { ...r, ...perRequest(u0, processUsage(proc.child.pid!), r.requests) };
  report(label, m, expected);
  return m;
}

function report(label: string, m: Measured, expected: number): void {
  const bad = Object.entries(m.statuses).filter(([s]) => s !== String(expected));
  process.stdout.write(
    `  ${label.padEnd(34)} ${m.rps.toFixed(0).padStart(7)} req/s   p50 ${m.p50ms.toFixed(1)} ms   p99 ${m.p99ms.toFixed(1)} ms   ${usageText(m)}${bad.length || m.errors ? `   NON-${expected}: ${JSON.stringify(m.statuses)} errors ${m.errors}` : ''}\n`,
  );
}

/** One case of an interleaved measurement: a server, its requests and the status every answer must have. */
interface Case {
  label: string;
  proc: Proc;
  reqs: LoadRequest[];
  expected: number;
}

/**
 * Cases measured in turns instead of one after the other: ROUNDS rounds, each giving every case an equal
 * slice of BENCH_SECONDS, in an order that rotates from round to round, so that a slow stretch of this
 * shared machine weighs on every case alike instead of on whichever ran then. A case's figures are its
 * totals over the rounds (requests / seconds, CPU per request, percentiles of all its latencies).
 */
async function measureInterleaved(cases: Case[]): Promise<Measured[]> {
  const ROUNDS = 5;
  const totals = cases.map(() => ({
    requests: 0,
    seconds: 0,
    cpu: 0,
    sys: 0,
    faults: 0,
    errors: 0,
    latencies: [] as number[],
  }));
  const statuses = cases.map((): Record<number, number> => ({}));
  for (const c of cases)
    await runLoad(c.proc.port, cycle(c.reqs), { concurrency: CONCURRENCY, seconds: Math.min(1, SECONDS) }); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (round + k) % cases.length;
      const c = cases[i]!;
      const t = totals[i]!;
      const u0 = processUsage(c.proc.child.pid!);
      const r = await runLoad(c.proc.port, cycle(c.reqs), { concurrency: CONCURRENCY, seconds: SECONDS / ROUNDS });
      const u1 = processUsage(c.proc.child.pid!);
      t.cpu += u1.cpu - u0.cpu;
      t.sys += u1.sys - u0.sys;
      t.faults += u1.faults - u0.faults;
      t.requests += r.requests;
      t.seconds += r.seconds;
      t.errors += r.errors;
      t.latencies.push(...r.latencies);
      for (const [code, n] of Object.entries(r.statuses))
        statuses[i]![Number(code)] = (statuses[i]![Number(code)] ?? 0) + n;
    }
  }
  return cases.map((c, i) => {
    const t = totals[i]!;
    const latencies = t.latencies.sort((a, b) => a - b);
    const m: Measured = {
      requests: t.requests,
      seconds: t.seconds,
      rps: t.requests / t.seconds,
      statuses: statuses[i]!,
      errors: t.errors,
      p50ms: quantile(latencies, 0.5),
      p99ms: quantile(latencies, 0.99),
      latencies,
      ...perRequest({ cpu: 0, sys: 0, faults: 0 }, t, t.requests),
    };
    report(c.label, m, c.expected);
    return m;
  });
}

/**
 * `BENCH_ONLY`: `bomb` runs only the decompression-bomb case (it needs no other case's set-up); `ingest`
 * only the floors and the gateway as deployed (no rejections, memory or bomb case); `memory` only the
 * 20 MB-upload memory case; `reject` only the 401 and 429 rejections and their no-op floor; `gateway` the
 * gateway as deployed without the floors (no ratios to them: a quick before/after with BENCH_COMPARE).
 */
const ONLY = process.env.BENCH_ONLY ?? '';

const withSearchPath = (url: string, schema: string) => `${url}${url.includes('?') ? '&' : '?'}search_path=${schema}`;

/** The gateway's agentgate_agent_phase_seconds sums and counts, by phase. */
async function phaseTotals(port: number): Promise<Map<string, { sum: number; count: number }>> {
  const out = new Map<string, { sum: number; count: number }>();
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  for (const m of text.matchAll(/^agentgate_agent_phase_seconds_(sum|count)\{phase="([a-z_]+)"\} (\S+)$/gm)) {
    const e = out.get(m[2]!) ?? { sum: 0, count: 0 };
    e[m[1] as 'sum' | 'count'] = Number(m[3]);
    out.set(m[2]!, e);
  }
  return out;
}

interface GatewayCase extends Measured {
  breakdown: string;
}

/**
 * A measured case on the gateway, with where the time went: per request, the mean of each phase the
 * gateway observed (agentgate_agent_phase_seconds, only this case's requests: the difference of two
 * scrapes), and the gateway process's CPU use over the case (/proc: 100 % = one core busy).
 */
async function measureGateway(label: string, proc: Proc, reqs: LoadRequest[]): Promise<GatewayCase> {
  await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: Math.min(1, SECONDS) }); // warm-up
  const before = await phaseTotals(proc.port);
  const u0 = processUsage(proc.child.pid!);
  const r = await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: SECONDS });
  const u1 = processUsage(proc.child.pid!);
  const cpu = (u1.cpu - u0.cpu) / r.seconds;
  const usage = perRequest(u0, u1, r.requests);
  const after = await phaseTotals(proc.port);
  const parts: string[] = [];
  for (const phase of AGENT_PHASES) {
    const a = after.get(phase);
    const b = before.get(phase) ?? { sum: 0, count: 0 };
    if (!a || a.count === b.count) continue;
    // Mean over the requests that passed through the phase, in ms.
    const ms = ((a.sum - b.sum) / (a.count - b.count)) * 1000;
    parts.push(`${HANDLE_PHASES.has(phase) ? '·' : ''}${phase} ${ms.toFixed(2)}`);
  }
  const bad = Object.entries(r.statuses).filter(([s]) => s !== '200');
  const breakdown = `      ms/request: ${parts.join(', ')}; gateway CPU ${(cpu * 100).toFixed(0)} % of a core, ${usageText(usage)}`;
  process.stdout.write(
    `  ${label.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50ms.toFixed(1)} ms   p99 ${r.p99ms.toFixed(1)} ms${bad.length || r.errors ? `   NON-200: ${JSON.stringify(r.statuses)} errors ${r.errors}` : ''}\n${breakdown}\n`,
  );
  return { ...r, ...usage, breakdown };
}

/** A client credential made with the CLI and an OAuth bearer token for it, as a GLPI Agent ≥ 1.10 gets one. */
async function bearerToken(port: number, databaseUrl: string, root?: string): Promise<string> {
  const made = JSON.parse(
    await runCli(
      ['clients', 'create', '--name', 'bench-client', '--comment', 'npm run bench', '--json'],
      {
        DATABASE_URL: databaseUrl,
      },
      root,
    ),
  ) as { clientId: string; clientSecret: string };
  const res = await fetch(`http://127.0.0.1:${port}/api.php/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: made.clientId,
      client_secret: made.clientSecret,
    }).toString(),
  });
  const j = (await res.json()) as { access_token?: string };
  if (!res.ok || !j.access_token) throw new Error(`token endpoint answered ${res.status}`);
  return j.access_token;
}

async function main(): Promise<void> {
  if (ONLY === 'bomb') return bombOnly();
  const schema = `agbench_${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(3).toString('hex')}`;
  const admin = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
  await admin.unsafe(`create schema "${schema}"`);
  const databaseUrl = withSearchPath(DATABASE_URL, schema);
  const raised = limitSettings(RAISED_LIMITS);
  const results: Record<string, Measured> = {};
  let memory: Awaited<ReturnType<typeof measureMemory>> | null = null;
  let bomb: BombResult | null = null;
  const ingest = ONLY === '' || ONLY === 'ingest';
  const gatewayOnly = ONLY === 'gateway';
  try {
    if (ingest || gatewayOnly) await measureIngest(databaseUrl, schema, raised, results, !gatewayOnly);
    if (ONLY === '' || ONLY === 'reject') {
      const inventories = variants('fi-inventory', DEVICES);
      const kb = inventories.reduce((n, r) => n + r.body!.length, 0) / inventories.length / 1024;
      process.stdout.write(
        `rejections (AGENT_AUTH=required, answered before the body is read or inflated; ${kb.toFixed(1)} KB zlib XML inventory bodies; limits in Redis ${redact(REDIS_URL)}):\n`,
      );
      // The three servers run side by side and are measured in turns (measureInterleaved): these ratios
      // compare requests of about a millisecond, where the machine's drift between two cases measured one
      // after the other was as large as the difference looked for.
      const required = deployedEnv(databaseUrl);
      const servers: Proc[] = [];
      try {
        servers.push(await startFloor('noop'));
        servers.push(await startGateway({ ...required, ...raised }));
        servers.push(await startGateway({ ...required, RATE_LIMIT_IP_PER_MINUTE: '1' }));
        const [noop, gateway, limited] = servers as [Proc, Proc, Proc];
        await runLoad(limited.port, cycle(inventories), { concurrency: 1, seconds: 5, maxRequests: 1 }); // the minute's one allowed request
        const measured = await measureInterleaved([
          { label: 'express no-op, inventory body', proc: noop, reqs: inventories, expected: 200 },
          { label: '401, no Authorization', proc: gateway, reqs: inventories, expected: 401 },
          { label: '429, over RATE_LIMIT_IP_PER_MINUTE', proc: limited, reqs: inventories, expected: 429 },
        ]);
        results.noopInventory = measured[0]!;
        results.reject401 = measured[1]!;
        results.reject429 = measured[2]!;
      } finally {
        for (const p of servers) await p.stop();
      }
    }
    if (ONLY === '' || ONLY === 'memory')
      memory = await measureMemory({ DATABASE_URL: databaseUrl, AGENT_AUTH: 'off', ...raised });
    if (ONLY === '') bomb = await measureBombs({ DATABASE_URL: databaseUrl, AGENT_AUTH: 'off', ...raised });
  } finally {
    await admin.unsafe(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  }
  const ratio = (a: string, b: string) => (results[a] && results[b] ? results[a].rps / results[b].rps : NaN);
  const rows: [string, number, number][] = ingest
    ? [
        ['XML inventory, quarantined / store floor', ratio('xmlQ', 'storeXml'), 0.8],
        ['XML inventory, half approved / store floor', ratio('xmlMix', 'storeXml'), 0.8],
        ['JSON inventory, quarantined / store floor', ratio('jsonQ', 'storeJson'), 0.8],
        ['JSON inventory, half approved / store floor', ratio('jsonMix', 'storeJson'), 0.8],
        ['PROLOG, quarantined / store floor', ratio('prologQ', 'storeProlog'), 0.7],
        ['PROLOG, half approved / store floor', ratio('prologMix', 'storeProlog'), 0.7],
        ['CONTACT, quarantined / store floor', ratio('contactQ', 'storeContact'), 0.7],
        ['CONTACT, half approved / store floor', ratio('contactMix', 'storeContact'), 0.7],
        ['(read floor / store floor, XML)', ratio('readXml', 'storeXml'), 0],
        ['(read floor / store floor, JSON)', ratio('readJson', 'storeJson'), 0],
        ['(XML inventory, half approved / read floor)', ratio('xmlMix', 'readXml'), 0],
        ['(JSON inventory, half approved / read floor)', ratio('jsonMix', 'readJson'), 0],
        ['(trips floor / store floor, PROLOG)', ratio('tripsProlog', 'storeProlog'), 0],
        ['(trips floor / store floor, CONTACT)', ratio('tripsContact', 'storeContact'), 0],
        ['(PROLOG, half approved / trips floor)', ratio('prologMix', 'tripsProlog'), 0],
        ['(CONTACT, half approved / trips floor)', ratio('contactMix', 'tripsContact'), 0],
        ['(XML inventory / inflate floor)', ratio('xmlMix', 'inflateXml'), 0],
        ['(JSON inventory / inflate floor)', ratio('jsonMix', 'inflateJson'), 0],
        ['(PROLOG / express no-op)', ratio('prologMix', 'noopProlog'), 0],
        ['(CONTACT / express no-op)', ratio('contactMix', 'noopContact'), 0],
      ]
    : [];
  if (results.cmpxmlQ)
    // CPU per request is the steadier of the two on a shared machine (the throughput ratio moves with it).
    for (const name of ['prologQ', 'contactQ', 'xmlQ', 'jsonQ', 'prologMix', 'contactMix', 'xmlMix', 'jsonMix'])
      rows.push(
        [`(${name}: this checkout / BENCH_COMPARE)`, ratio(name, `cmp${name}`), 0],
        [`(${name} CPU/req: BENCH_COMPARE / this)`, results[`cmp${name}`]!.cpuMs / results[name]!.cpuMs, 0],
      );
  if (results.reject401) {
    rows.push(['401 rejection / express no-op', ratio('reject401', 'noopInventory'), 0.8]);
    rows.push(['429 rejection / express no-op', ratio('reject429', 'noopInventory'), 0.8]);
    const cpu = (a: string) => results.noopInventory!.cpuMs / results[a]!.cpuMs;
    rows.push(['(CPU per request, no-op / 401)', cpu('reject401'), 0]);
    rows.push(['(CPU per request, no-op / 429)', cpu('reject429'), 0]);
  }
  if (rows.length) process.stdout.write('ratios (same run):\n');
  for (const [name, value, target] of rows)
    process.stdout.write(
      `  ${name.padEnd(44)} ${value.toFixed(2)}${target ? `   target ≥ ${target}  ${value >= target ? 'ok' : 'BELOW TARGET'}` : ''}\n`,
    );
  if (ingest) {
    // CPU time per request barely depends on what else the machine runs (throughput does, a lot, on a
    // shared 2-core machine): the floor's process CPU per request over the gateway's, the ratio the
    // throughputs would have if both were CPU-bound on the same core.
    process.stdout.write('CPU per request, store floor process / gateway, read- or trips-floor process (same run):\n');
    for (const [name, a, b] of [
      ['XML inventory', 'storeXml', 'xmlMix'],
      ['JSON inventory', 'storeJson', 'jsonMix'],
      ['XML, read floor', 'storeXml', 'readXml'],
      ['JSON, read floor', 'storeJson', 'readJson'],
      ['PROLOG', 'storeProlog', 'prologMix'],
      ['CONTACT', 'storeContact', 'contactMix'],
      ['PROLOG, trips', 'storeProlog', 'tripsProlog'],
      ['CONTACT, trips', 'storeContact', 'tripsContact'],
    ] as const)
      process.stdout.write(
        `  ${name.padEnd(16)} ${results[a]!.cpuMs.toFixed(2)} / ${results[b]!.cpuMs.toFixed(2)} ms = ${(results[a]!.cpuMs / results[b]!.cpuMs).toFixed(2)}\n`,
      );
  }
  if (memory)
    process.stdout.write(
      `memory: ${MEMORY_UPLOADS} concurrent uploads of a ${memory.megabytes.toFixed(1)} MB (decompressed) inventory: ${memory.ok}/${MEMORY_UPLOADS} answered 200; gateway peak RSS ${memory.peak.toFixed(0)} MB (idle ${memory.idle.toFixed(0)} MB)   target ≤ 300 MB  ${memory.peak <= 300 ? 'ok' : 'ABOVE TARGET'}\n`,
    );
  if (bomb) printBombs(bomb);
}

const redact = (url: string) => url.replace(/:[^:@/]*@/, ':***@');

/** The gateway as deployed: agent credentials required, limits and admission shared through Redis. */
function deployedEnv(databaseUrl: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    AGENT_AUTH: 'required',
    BOOTSTRAP_SECRET: `agk_${crypto.randomBytes(32).toString('base64url')}`,
    BOOTSTRAP_ADMIN_TOKEN: `ago_${crypto.randomBytes(32).toString('base64url')}`,
  };
}

/**
 * The floors and the gateway as deployed, on the same bodies at the same concurrency: FusionInventory
 * devices (PROLOG, XML inventory) with the registration key over Basic sent up front, GLPI Agent devices
 * (CONTACT, JSON inventory) with an OAuth bearer token; DEVICES of each, every one registered (quarantined)
 * before anything is measured; then half of them approved and everything measured again.
 * BENCH_COMPARE=<another checkout of agent-gate> measures that one too, in the same run (its own schema).
 */
async function measureIngest(
  databaseUrl: string,
  schema: string,
  raised: Record<string, string>,
  results: Record<string, Measured>,
  floors: boolean,
): Promise<void> {
  const tag = `${schema.slice(-6)}-`; // Redis counters of an earlier run never apply to this one
  const env = deployedEnv(databaseUrl);
  const basic = { Authorization: `Basic ${Buffer.from(`bench:${env.BOOTSTRAP_SECRET}`).toString('base64')}` };
  // Bearer tokens are made per gateway (its own database); the floors see one of the same length.
  const placeholder = { Authorization: `Bearer agt_${'x'.repeat(43)}` };
  const msgs = {
    prolog: variants('fi-prolog', DEVICES, basic, tag),
    xml: variants('fi-inventory', DEVICES, basic, tag),
    contact: variants('ga-contact', DEVICES, placeholder, tag),
    json: variants('ga-inventory', DEVICES, placeholder, tag),
  };
  process.stdout.write(
    `bench: ${SECONDS} s per case, ${CONCURRENCY} concurrent loopback clients, ${DEVICES} FusionInventory + ${DEVICES} GLPI Agent devices, PostgreSQL ${redact(DATABASE_URL)}, Redis ${redact(REDIS_URL)}\n`,
  );
  if (floors) {
    // Each floor server in turn, with the cases measured on it (results[key]).
    const store = { FLOOR_DATABASE_URL: databaseUrl };
    const plan: [FloorMode, Record<string, string>, [string, string, LoadRequest[]][]][] = [
      [
        'noop',
        {},
        [
          ['noopProlog', 'express no-op, PROLOG body', msgs.prolog],
          ['noopContact', 'express no-op, CONTACT body', msgs.contact],
        ],
      ],
      [
        'inflate',
        {},
        [
          ['inflateXml', 'express + inflate, XML inventory', msgs.xml],
          ['inflateJson', 'express + inflate, JSON inventory', msgs.json],
        ],
      ],
      [
        'store',
        store,
        [
          ['storeProlog', 'store floor, PROLOG body', msgs.prolog],
          ['storeContact', 'store floor, CONTACT body', msgs.contact],
          ['storeXml', 'store floor, XML inventory', msgs.xml],
          ['storeJson', 'store floor, JSON inventory', msgs.json],
        ],
      ],
      [
        'read',
        store,
        [
          ['readXml', 'read floor, XML (as one string)', msgs.xml],
          ['readJson', 'read floor, JSON (JSON.parse)', msgs.json],
        ],
      ],
      [
        'trips',
        { ...store, REDIS_URL },
        [
          ['tripsProlog', 'trips floor, PROLOG body', msgs.prolog],
          ['tripsContact', 'trips floor, CONTACT body', msgs.contact],
        ],
      ],
    ];
    process.stdout.write('floors (same bodies, same headers):\n');
    for (const [mode, floorEnv, cases] of plan) {
      const proc = await startFloor(mode, floorEnv);
      try {
        for (const [key, label, reqs] of cases) results[key] = await measure(label, proc, reqs);
      } finally {
        await proc.stop();
      }
    }
  }
  await measureDeployed('agent-gate', { ...env, ...raised }, msgs, results, '');
  const compare = process.env.BENCH_COMPARE;
  if (compare) {
    const other = `${schema}_cmp`;
    const admin = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
    await admin.unsafe(`create schema "${other}"`);
    try {
      const url = withSearchPath(DATABASE_URL, other);
      await measureDeployed(
        `BENCH_COMPARE ${compare}`,
        { ...env, DATABASE_URL: url, ...raised },
        msgs,
        results,
        'cmp',
        compare,
      );
    } finally {
      await admin.unsafe(`drop schema if exists "${other}" cascade`);
      await admin.end();
    }
  }
}

type Messages = Record<'prolog' | 'xml' | 'contact' | 'json', LoadRequest[]>;

/** The gateway cases on one gateway (this checkout, or `root`); results under `prefix` + name. */
async function measureDeployed(
  label: string,
  env: Record<string, string>,
  base: Messages,
  results: Record<string, Measured>,
  prefix: string,
  root?: string,
): Promise<void> {
  // BENCH_PROFILE=<dir>: the gateway writes a V8 CPU profile there when it stops (node --cpu-prof).
  const profile = process.env.BENCH_PROFILE;
  const proc = await startGateway(env, {
    root,
    ...(profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profile}`] } : {}),
  });
  // The bench's own connection to the gateway's schema: set-up checks and changes, never measured.
  const sql = postgres(env.DATABASE_URL!, { onnotice: () => {}, max: 1 });
  try {
    const bearer = `Bearer ${await bearerToken(proc.port, env.DATABASE_URL!, root)}`;
    const withBearer = (reqs: LoadRequest[]) =>
      reqs.map((r) => ({ ...r, headers: { ...r.headers, Authorization: bearer } }));
    const msgs: Messages = { ...base, contact: withBearer(base.contact), json: withBearer(base.json) };
    // First contact of every device (not measured): each becomes a quarantined device pinned to its credential.
    for (const reqs of [msgs.prolog, msgs.contact]) {
      const r = await runLoad(proc.port, (i) => reqs[i]!, {
        concurrency: CONCURRENCY,
        seconds: 120,
        maxRequests: reqs.length,
      });
      if (r.statuses[200] !== reqs.length) throw new Error(`registering devices: ${JSON.stringify(r.statuses)}`);
    }
    // A deferred first contact is also a 200: check that every device was made, or the cases below would
    // measure first contacts of unknown devices instead of the fleet they claim.
    const [made] = await sql<{ n: number }[]>`select count(*)::int as n from devices where state = 'quarantined'`;
    const expected = msgs.prolog.length + msgs.contact.length;
    if (made?.n !== expected)
      throw new Error(`registering devices: ${made?.n} quarantined devices, ${expected} expected`);
    process.stdout.write(
      `${label} as deployed (AGENT_AUTH=required: key over Basic / OAuth bearer up front; REDIS_URL; every device known):\n`,
    );
    process.stdout.write(' all devices quarantined:\n');
    results[`${prefix}prologQ`] = await measureGateway('PROLOG (FusionInventory, key)', proc, msgs.prolog);
    results[`${prefix}contactQ`] = await measureGateway('CONTACT (GLPI Agent, bearer)', proc, msgs.contact);
    results[`${prefix}xmlQ`] = await measureGateway('XML inventory, 18 KB zlib / 234 KB', proc, msgs.xml);
    results[`${prefix}jsonQ`] = await measureGateway('JSON inventory, 18 KB zlib / 228 KB', proc, msgs.json);
    // Bench set-up, not the operators' path: half the devices approved directly in the bench's schema.
    await sql`update devices set state = 'approved', state_changed_at = now() where id % 2 = 0`;
    process.stdout.write(' half the devices approved:\n');
    results[`${prefix}prologMix`] = await measureGateway('PROLOG (FusionInventory, key)', proc, msgs.prolog);
    results[`${prefix}contactMix`] = await measureGateway('CONTACT (GLPI Agent, bearer)', proc, msgs.contact);
    results[`${prefix}xmlMix`] = await measureGateway('XML inventory, 18 KB zlib / 234 KB', proc, msgs.xml);
    results[`${prefix}jsonMix`] = await measureGateway('JSON inventory, 18 KB zlib / 228 KB', proc, msgs.json);
  } finally {
    await sql.end();
    await proc.stop();
  }
}

/** The bomb case alone, in a schema of its own. */
async function bombOnly(): Promise<void> {
  const schema = `agbench_${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(3).toString('hex')}`;
  const admin = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
  await admin.unsafe(`create schema "${schema}"`);
  try {
    const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}search_path=${schema}`;
    printBombs(await measureBombs({ DATABASE_URL: url, AGENT_AUTH: 'off', ...limitSettings(RAISED_LIMITS) }));
  } finally {
    await admin.unsafe(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  }
}

const BOMB_CLIENTS = 8;
const BOMB_MB = 60;

interface BombResult {
  compressedKb: number;
  statuses: Record<string, number>;
  normal: number[];
  healthP99: number;
  healthMax: number;
  healthCount: number;
  peak: number;
  idle: number;
  seconds: number;
}

/**
 * Decompression bombs: BOMB_CLIENTS clients at once, half JSON and half XML, each a ~100 KB zlib body that
 * inflates to ~60 MB. Meanwhile /healthz is asked every 20 ms (its p99 is the event loop's health) and a
 * normal inventory is sent every second; the gateway's peak RSS is read from /proc afterwards.
 */
async function measureBombs(env: Record<string, string>): Promise<BombResult> {
  process.stdout.write(
    `decompression bomb (${BOMB_CLIENTS} parallel clients, ~${BOMB_MB} MB each decompressed, JSON and XML):\n`,
  );
  const bodies = { json: jsonBomb(BOMB_MB, 'bench-bomb-json'), xml: xmlBomb(BOMB_MB, 'bench-bomb-xml') };
  const normalBody = variants('fi-inventory', 1)[0]!;
  const proc = await startGateway(env);
  try {
    const base = `http://127.0.0.1:${proc.port}`;
    const idle = residentMb(proc.child.pid!).now;
    const started = performance.now();
    let done = false;
    const health: number[] = [];
    const probe = (async () => {
      while (!done) {
        const t = performance.now();
        const ok = await fetch(`${base}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        health.push(ok ? performance.now() - t : Infinity);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const normal: number[] = [];
    const normals = (async () => {
      while (!done) {
        normal.push(
          await fetch(`${base}/`, {
            method: 'POST',
            headers: { 'Content-Type': normalBody.headers['Content-Type'] ?? 'application/x-compress-zlib' },
            body: new Uint8Array(normalBody.body!),
          }).then(
            (r) => r.status,
            () => 0,
          ),
        );
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const answers = await Promise.all(
      Array.from({ length: BOMB_CLIENTS }, (_, i) => {
        const kind = i % 2 === 0 ? 'json' : 'xml';
        return fetch(`${base}/`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-compress-zlib' },
          body: new Uint8Array(bodies[kind]),
          signal: AbortSignal.timeout(170_000),
        }).then(
          (r) => `${kind} ${r.status}`,
          () => `${kind} failed`,
        );
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    done = true;
    await Promise.all([probe, normals]);
    const statuses: Record<string, number> = {};
    for (const a of answers) statuses[a] = (statuses[a] ?? 0) + 1;
    const sorted = [...health].sort((a, b) => a - b);
    return {
      compressedKb: (bodies.json.length + bodies.xml.length) / 2 / 1024,
      statuses,
      normal,
      healthP99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? Infinity,
      healthMax: sorted.at(-1) ?? Infinity,
      healthCount: sorted.length,
      peak: residentMb(proc.child.pid!).peak,
      idle,
      seconds,
    };
  } finally {
    await proc.stop();
  }
}

function countOf(statuses: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

function printBombs(b: BombResult): void {
  const normalOk = b.normal.filter((s) => s === 200).length;
  process.stdout.write(
    `  bombs: ${BOMB_CLIENTS} × ~${b.compressedKb.toFixed(0)} KB zlib → ~${BOMB_MB} MB, answered ${JSON.stringify(b.statuses)} in ${b.seconds.toFixed(1)} s\n` +
      `  normal inventory meanwhile: ${normalOk}/${b.normal.length} answered 200 ${JSON.stringify(countOf(b.normal))}   ${b.normal.length > 0 && normalOk === b.normal.length ? 'ok' : 'NOT ACCEPTED'}\n` +
      `  /healthz meanwhile: p99 ${b.healthP99.toFixed(1)} ms (max ${b.healthMax.toFixed(1)} ms, ${b.healthCount} probes)   target < 200 ms  ${b.healthP99 < 200 ? 'ok' : 'ABOVE TARGET'}\n` +
      `  gateway peak RSS ${b.peak.toFixed(0)} MB (idle ${b.idle.toFixed(0)} MB)   target < 600 MB  ${b.peak < 600 ? 'ok' : 'ABOVE TARGET'}\n`,
  );
}

const MEMORY_UPLOADS = 50;

/** Peak RSS of a gateway taking MEMORY_UPLOADS concurrent uploads of a ~20 MB inventory. */
async function measureMemory(
  env: Record<string, string>,
): Promise<{ megabytes: number; ok: number; peak: number; idle: number }> {
  process.stdout.write(`memory (${MEMORY_UPLOADS} concurrent uploads of a ~20 MB inventory):\n`);
  const bodies = Array.from({ length: 5 }, (_, i) => bigInventory(20, `bench-big-${i}`));
  const megabytes = zlib.inflateSync(bodies[0]!).length / 1024 / 1024;
  const proc = await startGateway(env);
  try {
    const idle = residentMb(proc.child.pid!).now;
    const answers = await Promise.all(
      Array.from({ length: MEMORY_UPLOADS }, (_, i) =>
        fetch(`http://127.0.0.1:${proc.port}/`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-compress-zlib' },
          body: new Uint8Array(bodies[i % bodies.length]!),
          signal: AbortSignal.timeout(170_000),
        }).then(
          (r) => r.status,
          () => 0,
        ),
      ),
    );
    return { megabytes, ok: answers.filter((s) => s === 200).length, peak: residentMb(proc.child.pid!).peak, idle };
  } finally {
    await proc.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
