/**
 * `npm run bench`: throughput of the gateway's full HTTP path against floors measured in the same run on
 * the same machine (so the ratios, not the absolute numbers, are what to compare across machines):
 *   XML / JSON inventory ingest  vs  express + zlib inflate of the same bodies
 *   PROLOG / CONTACT             vs  an express no-op
 * Loopback only, bounded in time. Uses PostgreSQL at BENCH_DATABASE_URL (default: the local test database,
 * in a schema of its own, dropped afterwards).
 */
import crypto from 'node:crypto';
import postgres from 'postgres';
import { type LoadRequest, type LoadResult, runLoad } from './lib/load-client.js';
import { type Proc, startFloor, startGateway } from './lib/processes.js';
import { type MessageName, variants } from './lib/traffic.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DEVICES = 500;

function cycle(reqs: LoadRequest[]): (i: number) => LoadRequest {
  return (i) => reqs[i % reqs.length]!;
}

async function measure(label: string, proc: Proc, reqs: LoadRequest[]): Promise<LoadResult> {
  await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: Math.min(1, SECONDS) }); // warm-up
  const r = await runLoad(proc.port, cycle(reqs), { concurrency: CONCURRENCY, seconds: SECONDS });
  const bad = Object.entries(r.statuses).filter(([s]) => s !== '200');
  process.stdout.write(`  ${label.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50ms.toFixed(1)} ms   p99 ${r.p99ms.toFixed(1)} ms${bad.length || r.errors ? `   NON-200: ${JSON.stringify(r.statuses)} errors ${r.errors}` : ''}\n`);
  return r;
}

async function main(): Promise<void> {
  const schema = `agbench_${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(3).toString('hex')}`;
  const admin = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
  await admin.unsafe(`create schema "${schema}"`);
  const msgs = Object.fromEntries((['fi-prolog', 'fi-inventory', 'ga-contact', 'ga-inventory'] as MessageName[]).map((m) => [m, variants(m, DEVICES)])) as Record<MessageName, LoadRequest[]>;
  process.stdout.write(`bench: ${SECONDS} s per case, ${CONCURRENCY} concurrent loopback clients, ${DEVICES} simulated devices, PostgreSQL ${DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}\n`);
  const results: Record<string, LoadResult> = {};
  let proc: Proc | null = null;
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
    proc = await startGateway({ DATABASE_URL: `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}search_path=${schema}`, AGENT_AUTH: 'off' });
    results.prolog = await measure('PROLOG (FusionInventory)', proc, msgs['fi-prolog']);
    results.contact = await measure('CONTACT (GLPI Agent)', proc, msgs['ga-contact']);
    results.xml = await measure('XML inventory, 18 KB zlib / 234 KB', proc, msgs['fi-inventory']);
    results.json = await measure('JSON inventory, 18 KB zlib / 228 KB', proc, msgs['ga-inventory']);
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
  ];
  process.stdout.write('ratios (same run):\n');
  for (const [name, value, target] of rows) process.stdout.write(`  ${name.padEnd(40)} ${value.toFixed(2)}   target ≥ ${target}  ${value >= target ? 'ok' : 'BELOW TARGET'}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
