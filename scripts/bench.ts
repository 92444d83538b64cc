/**
 * `npm run bench`: throughput of the gateway's full HTTP path against floors measured in the same run on
 * the same machine (so the ratios, not the absolute numbers, are what to compare across machines):
 *   XML / JSON inventory ingest  vs  express + zlib inflate of the same bodies
 *   PROLOG / CONTACT             vs  an express no-op
 *   rejections (AGENT_AUTH=required): an inventory body without Authorization (401) and from an address over
 *   RATE_LIMIT_IP_PER_MINUTE (429), both answered before the body is read or inflated  vs  the express no-op
 *   reading the same bodies. Their limits live in process memory unless BENCH_REDIS_URL is set.
 * Loopback only, bounded in time. Uses PostgreSQL at BENCH_DATABASE_URL (default: the local test database,
 * in a schema of its own, dropped afterwards).
 */
import crypto from 'node:crypto';
import postgres from 'postgres';
import { type LoadRequest, type LoadResult, runLoad } from './lib/load-client.js';
import { RAISED_LIMITS, limitSettings } from './lib/limits.js';
import { type Proc, startFloor, startGateway } from './lib/processes.js';
import { type MessageName, variants } from './lib/traffic.js';
import { bigInventory, residentMb } from './lib/memory.js';
import { jsonBomb, xmlBomb } from './lib/bombs.js';
import zlib from 'node:zlib';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DEVICES = 500;
const REDIS_URL = process.env.BENCH_REDIS_URL ?? ''; // empty: in-memory limits

function cycle(reqs: LoadRequest[]): (i: number) => LoadRequest {
  return (i) => reqs[i % reqs.length]!;
}

async function measure(label: string, proc: Proc, reqs: LoadRequest[], expected = 200): Promise<LoadResult> {
  await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: Math.min(1, SECONDS) }); // warm-up
  const r = await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: SECONDS });
  const bad = Object.entries(r.statuses).filter(([s]) => s !== String(expected));
  process.stdout.write(
    `  ${label.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50ms.toFixed(1)} ms   p99 ${r.p99ms.toFixed(1)} ms${bad.length || r.errors ? `   NON-${expected}: ${JSON.stringify(r.statuses)} errors ${r.errors}` : ''}\n`,
  );
  return r;
}

/** `BENCH_ONLY=bomb`: only the decompression-bomb case (it needs no other case's set-up). */
const ONLY = process.env.BENCH_ONLY ?? '';

async function main(): Promise<void> {
  if (ONLY === 'bomb') return bombOnly();
  const schema = `agbench_${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(3).toString('hex')}`;
  const admin = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
  await admin.unsafe(`create schema "${schema}"`);
  const msgs = Object.fromEntries(
    (['fi-prolog', 'fi-inventory', 'ga-contact', 'ga-inventory'] as MessageName[]).map((m) => [
      m,
      variants(m, DEVICES),
    ]),
  ) as Record<MessageName, LoadRequest[]>;
  process.stdout.write(
    `bench: ${SECONDS} s per case, ${CONCURRENCY} concurrent loopback clients, ${DEVICES} simulated devices, PostgreSQL ${DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}\n`,
  );
  const results: Record<string, LoadResult> = {};
  let proc: Proc | null = null;
  let memory: Awaited<ReturnType<typeof measureMemory>> | null;
  let bomb: BombResult | null;
  try {
    process.stdout.write('floors:\n');
    proc = await startFloor('noop');
    results.noopProlog = await measure('express no-op, PROLOG body', proc, msgs['fi-prolog']);
    results.noopContact = await measure('express no-op, CONTACT body', proc, msgs['ga-contact']);
    await proc.stop();
    proc = await startFloor('inflate');
    results.inflateXml = await measure('express + inflate, XML inventory', proc, msgs['fi-inventory']);
    results.inflateJson = await measure('express + inflate, JSON inventory', proc, msgs['ga-inventory']);
    await proc.stop();
    process.stdout.write('agent-gate (AGENT_AUTH=off, full path: parse, identity, Postgres transaction):\n');
    // One address and 500 devices replayed thousands of times a second: raise the abuse limits, the per-device
    // limit and the inventory budget, or this measures 429s and "come back later" answers instead of ingest.
    const raised = limitSettings(RAISED_LIMITS);
    proc = await startGateway({
      DATABASE_URL: `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}search_path=${schema}`,
      AGENT_AUTH: 'off',
      ...raised,
    });
    results.prolog = await measure('PROLOG (FusionInventory)', proc, msgs['fi-prolog']);
    results.contact = await measure('CONTACT (GLPI Agent)', proc, msgs['ga-contact']);
    results.xml = await measure('XML inventory, 18 KB zlib / 234 KB', proc, msgs['fi-inventory']);
    results.json = await measure('JSON inventory, 18 KB zlib / 228 KB', proc, msgs['ga-inventory']);
    await proc.stop();
    proc = null;
    const inventories = msgs['fi-inventory'];
    const kb = inventories.reduce((n, r) => n + r.body!.length, 0) / inventories.length / 1024;
    process.stdout.write(
      `rejections (AGENT_AUTH=required, answered before the body is read or inflated; ${kb.toFixed(1)} KB zlib XML inventory bodies; limits ${REDIS_URL ? `in Redis ${REDIS_URL.replace(/:[^:@/]*@/, ':***@')}` : 'in process memory'}):\n`,
    );
    proc = await startFloor('noop');
    results.noopInventory = await measure('express no-op, inventory body', proc, inventories);
    await proc.stop();
    const required = {
      DATABASE_URL: `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}search_path=${schema}`,
      REDIS_URL,
      AGENT_AUTH: 'required',
      BOOTSTRAP_SECRET: `agk_${crypto.randomBytes(32).toString('base64url')}`,
      BOOTSTRAP_ADMIN_TOKEN: `ago_${crypto.randomBytes(32).toString('base64url')}`,
    };
    proc = await startGateway({ ...required, ...raised });
    results.reject401 = await measure('401, no Authorization', proc, inventories, 401);
    await proc.stop();
    proc = await startGateway({ ...required, RATE_LIMIT_IP_PER_MINUTE: '1' });
    await runLoad(proc.port, cycle(inventories), { concurrency: 1, seconds: 5, maxRequests: 1 }); // the minute's one allowed request
    results.reject429 = await measure('429, over RATE_LIMIT_IP_PER_MINUTE', proc, inventories, 429);
    await proc.stop();
    memory = await measureMemory({ DATABASE_URL: required.DATABASE_URL, AGENT_AUTH: 'off', ...raised });
    bomb = await measureBombs({ DATABASE_URL: required.DATABASE_URL, AGENT_AUTH: 'off', ...raised });
  } finally {
    await proc?.stop();
    await admin.unsafe(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  }
  const ratio = (a: string, b: string) => results[a]!.rps / results[b]!.rps;
  const rows: [string, number, number][] = [
    ['XML inventory ingest / inflate floor', ratio('xml', 'inflateXml'), 0.35],
    ['JSON inventory ingest / inflate floor', ratio('json', 'inflateJson'), 0.45],
    ['PROLOG / express no-op', ratio('prolog', 'noopProlog'), 0.6],
    ['CONTACT / express no-op', ratio('contact', 'noopContact'), 0.6],
    ['401 rejection / express no-op', ratio('reject401', 'noopInventory'), 0.8],
    ['429 rejection / express no-op', ratio('reject429', 'noopInventory'), 0.8],
  ];
  process.stdout.write('ratios (same run):\n');
  for (const [name, value, target] of rows)
    process.stdout.write(
      `  ${name.padEnd(40)} ${value.toFixed(2)}   target ≥ ${target}  ${value >= target ? 'ok' : 'BELOW TARGET'}\n`,
    );
  if (memory)
    process.stdout.write(
      `memory: ${MEMORY_UPLOADS} concurrent uploads of a ${memory.megabytes.toFixed(1)} MB (decompressed) inventory: ${memory.ok}/${MEMORY_UPLOADS} answered 200; gateway peak RSS ${memory.peak.toFixed(0)} MB (idle ${memory.idle.toFixed(0)} MB)   target ≤ 300 MB  ${memory.peak <= 300 ? 'ok' : 'ABOVE TARGET'}\n`,
    );
  if (bomb) printBombs(bomb);
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
