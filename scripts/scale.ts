/**
 * `npm run scale`: the operator calls at fleet size (issue 17). Builds, with SQL (generate_series), a
 * database like a fleet of SCALE_DEVICES (100 000) devices after SCALE_DAYS (30) days of requests (~3.5 a
 * device a day: PROLOG, inventory, getConfig GETs) and SCALE_INVENTORY_DAYS (7) days of real inventory
 * bodies (test/fixtures, ~18 KB compressed each), in a database of its own (agentgate_scale, dropped after
 * unless SCALE_KEEP=1). Then it times each call of the issue's table plus the audit log and /metrics against
 * a gateway on loopback (p50/p95 of SCALE_SAMPLES sequential requests, EXPLAIN of any call over the 100 ms
 * target), runs one retention pass, adds a day of traffic and runs the next, printing the database size
 * around each (flat at a steady fleet). The passes use SCALE_REGISTRATION_RETENTION (14d) and
 * SCALE_SUBMISSION_RETENTION (3d) so that they have work on a 30-day dataset.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { buildApp } from '../src/app.js';
import { loadConfig, parseDuration } from '../src/config.js';
import { createDeps } from '../src/deps.js';
import { createLogger } from '../src/logger.js';
import { createRetention } from '../src/services/retention.js';
import { summarizeSubmission } from '../src/services/inventory-summary.js';
import { saveSummary } from '../src/store/read-store.js';
import { createKeyUsageTracker } from '../src/services/key-usage.js';
import { bodyOf, loadScenario } from '../test/helpers/fixtures.js';

const N = Number(process.env.SCALE_DEVICES ?? 100_000);
const DAYS = Number(process.env.SCALE_DAYS ?? 30);
const INV_DAYS = Number(process.env.SCALE_INVENTORY_DAYS ?? 7);
const SAMPLES = Number(process.env.SCALE_SAMPLES ?? 40);
const KEEP = process.env.SCALE_KEEP === '1' || process.env.SCALE_REUSE === '1';
/** Times the calls on a database kept by an earlier run (SCALE_KEEP=1): no build, no retention passes. */
const REUSE = process.env.SCALE_REUSE === '1';
const SERVER_URL = process.env.SCALE_SERVER_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = process.env.SCALE_DB ?? 'agentgate_scale';
if (!/^[a-z_][a-z0-9_]*$/.test(DB)) throw new Error(`SCALE_DB: not a plain database name: ${DB}`);
const TARGET_MS = 100;
// A fresh strong token each run (BOOTSTRAP_ADMIN_TOKEN refuses weak ones).
const ADMIN_TOKEN = `ago_${randomBytes(32).toString('base64url')}`;
const KEYS = ['paris', 'lyon', 'berlin', 'madrid'];

const out = (s: string) => process.stdout.write(`${s}\n`);
const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MB`;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function scaleUrl(): string {
  const u = new URL(SERVER_URL);
  u.pathname = `/${DB}`;
  return u.toString();
}

async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  out(`  ${label.padEnd(58)} ${(ms(t0) / 1000).toFixed(1)} s`);
  return r;
}

/** The dataset, in SQL. Day d of the history is [now - (DAYS - d) days, …); ids are explicit so rows can point at each other. */
async function build(sql: postgres.Sql, dayOffset = 0, onlyDay?: number): Promise<void> {
  const bodies = ['fusioninventory-plain', 'fusioninventory-tag', 'fusioninventory-no-compression']
    .map((s) => loadScenario(s).find((r) => r.classified.kind === 'inventory' && r.compression !== 'none'))
    .filter((r) => r !== undefined)
    .map((r) => ({ body: bodyOf(r), decoded: r.decoded_size, compression: r.compression }));
  if (onlyDay === undefined) {
    await step('keys, versions (lyon v1 closing within 12 h), devices', async () => {
      for (const [i, name] of KEYS.entries()) {
        await sql`insert into registration_keys (id, name, tag, created_by, created_at) values (${i + 1}, ${name}, ${name}, 'scale', now() - interval '400 days')`;
        await sql`insert into key_versions (id, key_id, version, prefix, secret_hash, created_at, expires_at)
                  values (${i + 1}, ${i + 1}, 1, 'agk_scale', sha256(convert_to(${name}::text, 'UTF8')), now() - interval '400 days',
                          ${name === 'lyon' ? sql`now() + interval '12 hours'` : sql`null`})`;
      }
      await sql`insert into key_versions (id, key_id, version, prefix, secret_hash, created_at) values (${KEYS.length + 1}, 2, 2, 'agk_scale2', sha256('lyon2'::bytea), now() - interval '6 days')`;
      await sql`select setval('registration_keys_id_seq', 100), setval('key_versions_id_seq', 100)`;
      await sql`
        insert into devices (id, deviceid, state, name, uuid, serial, manufacturer, model, macs, ips, os, tag, agent_version,
                             first_seen, last_seen, last_remote_addr, last_inventory_at, registered_key_id, assigned_tag, state_changed_at)
        select g, 'LT-' || lpad(g::text, greatest(5, length(g::text)), '0') || '-2025-01-01-00-00-00',
               case when g % 50 = 0 then 'quarantined' when g % 97 = 0 then 'conflict' when g % 193 = 0 then 'rejected' else 'approved' end,
               'LT-' || lpad(g::text, greatest(5, length(g::text)), '0'), md5('uuid' || g), 'SN' || lpad((g * 7919)::text, 10, '0'), 'LENOVO', 'ThinkPad T14',
               array['aa:bb:' || to_char(g / 65536, 'FM00') || ':' || lpad(to_hex((g / 256) % 256), 2, '0') || ':' || lpad(to_hex(g % 256), 2, '0') || ':01'],
               array['10.' || (g / 65536) || '.' || ((g / 256) % 256) || '.' || (g % 256)], 'Windows 11 Pro',
               (array['paris', 'lyon', 'berlin', 'madrid'])[1 + g % 4], 'FusionInventory-Agent_v2.6',
               now() - interval '400 days', now() - (g % 86400) * interval '1 second',
               '10.' || (g / 65536) || '.' || ((g / 256) % 256) || '.' || (g % 256), now() - (g % 86400) * interval '1 second',
               1 + g % 4, (array['paris', 'lyon', 'berlin', 'madrid'])[1 + g % 4], now() - interval '300 days'
        from generate_series(1, ${N}) g`;
      await sql`select setval('devices_id_seq', ${N + 1})`;
    });
  }
  // Registrations: per device and day a PROLOG and an inventory (authenticated), a getConfig GET, and a
  // second getConfig every other day: ~3.5 a device a day. id = (day * N + device) * 4 + k.
  const first = onlyDay ?? 0;
  const last = onlyDay ?? DAYS - 1;
  await step(`registrations, ${last - first + 1} day(s) × ${N} devices × ~3.5`, async () => {
    for (let d = first; d <= last; d++) {
      await sql`
        insert into registrations (id, received_at, device_id, deviceid, method, path, kind, format, compression, body_size, decoded_size,
                                   remote_addr, user_agent, outcome, status, auth_type, auth_user, key_id, key_version_id, details)
        select ((${d}::bigint * ${N} + g) * 4 + k), now() - (${DAYS - d - dayOffset} * interval '1 day') + (g % 86400) * interval '1 second' + k * interval '2 seconds',
               case when k < 2 then g end, 'LT-' || lpad(g::text, greatest(5, length(g::text)), '0') || '-2025-01-01-00-00-00',
               case when k < 2 then 'POST' else 'GET' end, '/',
               (array['prolog', 'inventory', 'getconfig', 'getconfig'])[k + 1], case when k < 2 then 'xml' else 'none' end,
               case when k < 2 then 'zlib' else 'none' end, case k when 0 then 250 when 1 then 18000 else 0 end,
               case k when 0 then 300 when 1 then 230000 else 0 end,
               '10.' || (g / 65536) || '.' || ((g / 256) % 256) || '.' || (g % 256), 'FusionInventory-Agent_v2.6',
               'accepted', 200, case when k < 2 then 'key:basic' end, case when k < 2 then 'inventory' end,
               case when k < 2 then 1 + g % 4 end,
               case when k < 2 then (case when g % 4 = 1 and g % 3 = 0 and ${d} >= ${DAYS - 6} then ${KEYS.length + 1} else 1 + g % 4 end) end,
               case when k >= 2 then '{"tasks":{"deploy":"1"}}'::jsonb end
        from generate_series(1, ${N}) g, generate_series(0, 3) k
        where k < 3 or (g + ${d}) % 2 = 0`;
    }
    await sql`select setval('registrations_id_seq', ${(DAYS + 2) * N * 4 + 8})`;
  });
  // Submissions: the last INV_DAYS days, one full inventory a device a day, a real body each; the rejected
  // devices' held ones are 'rejected', the quarantined ones' 'held'. id = day * N + device.
  const invFirst = onlyDay ?? DAYS - INV_DAYS;
  await step(`submissions, ${last - invFirst + 1} day(s) × ${N} real inventory bodies`, async () => {
    for (let d = invFirst; d <= last; d++) {
      const b = bodies[d % bodies.length]!;
      await sql`
        insert into submissions (id, device_id, registration_id, received_at, kind, format, compression, content_type, partial,
                                 decoded_size, body, state)
        select ${d}::bigint * ${N} + g, g, ((${d}::bigint * ${N} + g) * 4 + 1),
               now() - (${DAYS - d - dayOffset} * interval '1 day') + (g % 86400) * interval '1 second' + interval '2 seconds',
               'inventory', 'xml', ${b.compression}, 'application/x-compress-zlib', false, ${b.decoded}, ${b.body},
               case when g % 50 = 0 then 'held' when g % 193 = 0 then 'rejected' else 'stored' end
        from generate_series(1, ${N}) g`;
    }
    await sql`select setval('submissions_id_seq', ${(DAYS + 2) * N + 8})`;
    await sql`
      insert into inventories (device_id, full_submission_id, format, has_view, updated_at)
      select g, ${last}::bigint * ${N} + g, 'xml', false, now() from generate_series(1, ${N}) g
      on conflict (device_id) do update set full_submission_id = excluded.full_submission_id, has_view = false`;
  });
  if (onlyDay === undefined) {
    await step('outbox (a GLPI outage: 0.5 % pending, old), usage, audit, security events', async () => {
      await sql`
        insert into outbox (submission_id, device_id, deviceid, state, next_attempt_at, created_at)
        select ${invFirst}::bigint * ${N} + g, g, 'LT-' || lpad(g::text, greatest(5, length(g::text)), '0') || '-2025-01-01-00-00-00', 'pending', now(), now() - interval '6 days'
        from generate_series(1, ${N}) g where g % 200 = 7`;
      await sql`
        insert into key_version_usage (key_version_id, deviceid, remote_addr, device_id, requests, first_used, last_used)
        select key_version_id, deviceid, remote_addr, max(device_id), count(*), min(received_at), max(received_at)
        from registrations where key_version_id is not null group by key_version_id, deviceid, remote_addr`;
      await sql`
        insert into audit_log (at, actor, action, target_type, target_id, before, after, reason)
        select now() - (g % 400) * interval '1 day', 'operator:alice', 'device.approve', 'device', 'LT-' || g,
               '{"state":"quarantined"}', '{"state":"approved"}', 'scale' from generate_series(1, ${N}) g`;
      await sql`
        insert into security_events (at, kind, remote_addr, details)
        select now() - (g % 400) * interval '1 day', 'invalid_credential', '192.0.2.' || (g % 250), '{"reason":"bad secret"}'
        from generate_series(1, ${Math.max(1, Math.floor(N / 2))}) g`;
    });
  }
}

/**
 * The first build, as a bulk load: the registrations' and submissions' non-unique indexes dropped during it
 * and built once after (sorted, not row by row), foreign-key triggers off (the rows are consistent by
 * construction), no commit flush. Then what autovacuum would have done by then on a live fleet: GIN
 * pending lists (trigram search, MACs) merged, visibility maps set for index-only scans; submissions (the
 * bodies, most of the size) only analyzed.
 */
async function initialBuild(url: string, sql: postgres.Sql): Promise<void> {
  const bulk = postgres(url, {
    onnotice: () => {},
    max: 1,
    connection: { session_replication_role: 'replica', maintenance_work_mem: '512MB', synchronous_commit: 'off' },
  });
  try {
    const later = await bulk<{ name: string; def: string }[]>`
      select indexname as name, indexdef as def from pg_indexes
      where schemaname = current_schema() and tablename in ('registrations', 'submissions')
        and indexdef not like 'CREATE UNIQUE INDEX%'`;
    for (const i of later) await bulk.unsafe(`drop index ${i.name}`);
    await build(bulk);
    await step(`the ${later.length} indexes dropped for the load`, async () => {
      for (const i of later) await bulk.unsafe(i.def);
    });
  } finally {
    await bulk.end();
  }
  await step('vacuum analyze (submissions: analyze)', async () => {
    await sql`vacuum analyze devices, registrations, key_version_usage, inventories, inventory_sections, outbox, audit_log, security_events`;
    await sql`analyze`;
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timeCall(
  label: string,
  fn: (i: number) => Promise<void>,
): Promise<{ label: string; p50: number; p95: number }> {
  for (let i = 0; i < 3; i++) await fn(i);
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    times.push(ms(t0));
  }
  times.sort((a, b) => a - b);
  const r = { label, p50: pct(times, 50), p95: pct(times, 95) };
  out(
    `  ${label.padEnd(66)} p50 ${r.p50.toFixed(1).padStart(7)} ms   p95 ${r.p95.toFixed(1).padStart(7)} ms ${r.p95 < TARGET_MS ? 'ok' : 'OVER TARGET'}`,
  );
  return r;
}

async function main(): Promise<void> {
  const t0 = process.hrtime.bigint();
  out(`scale: ${N} devices, ${DAYS} days of requests, ${INV_DAYS} days of inventory bodies, database ${DB}`);
  const server = postgres(SERVER_URL, { onnotice: () => {}, max: 1 });
  if (!REUSE) {
    await server.unsafe(`drop database if exists ${DB}`);
    await server.unsafe(`create database ${DB}`);
  }
  const url = scaleUrl();
  const config = loadConfig({
    DATABASE_URL: url,
    LOG_LEVEL: 'warn',
    AGENT_AUTH: 'required',
    BOOTSTRAP_ADMIN_TOKEN: ADMIN_TOKEN,
  });
  const logger = createLogger({ level: 'warn', pretty: false });
  const deps = await createDeps(config, logger, { role: 'server', migrate: true });
  const sql = postgres(url, { onnotice: () => {}, max: 2 });
  let httpServer: http.Server | null = null;
  try {
    if (!REUSE) {
      out('build:');
      await initialBuild(url, sql);
    }
    const size = async () =>
      (await sql<{ n: number }[]>`select pg_database_size(current_database())::bigint as n`)[0]!.n;
    const counts = async () =>
      (
        await sql<{ r: number; s: number }[]>`
          select (select count(*) from registrations)::int as r, (select count(*) from submissions)::int as s`
      )[0]!;
    const c0 = await counts();
    out(`  ${c0.r} registrations, ${c0.s} submissions, database ${mb(await size())}`);

    const token = (
      await deps.admin.createOperator(
        { name: `scale-${randomBytes(4).toString('hex')}`, role: 'admin' },
        { name: 'scale', remoteAddr: null },
      )
    ).token;
    // Steady state: the background pass has summarised the full inventories of the devices the pages open.
    const sample = Array.from({ length: SAMPLES + 3 }, (_, i) => 1 + ((i * 7919) % N));
    const unsummarised = sample.map((d) => 1 + ((d + 5003) % N));
    for (const d of sample) {
      const [inv] = await sql<{ s: number }[]>`select full_submission_id as s from inventories where device_id = ${d}`;
      await saveSummary(sql as never, d, inv!.s, await summarizeSubmission(sql as never, inv!.s));
    }
    httpServer = http.createServer(buildApp(deps));
    await new Promise<void>((resolve) => httpServer!.listen(0, '127.0.0.1', resolve));
    const port = (httpServer.address() as AddressInfo).port;
    const get = async (path: string, auth = true): Promise<{ status: number; headers: http.IncomingHttpHeaders }> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path, headers: auth ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
            res.resume();
            res.on('end', () =>
              res.statusCode === 200
                ? resolve({ status: 200, headers: res.headers })
                : reject(new Error(`${path}: ${res.statusCode}`)),
            );
          })
          .on('error', reject);
      });

    const q = N >= 8730 ? 'LT-0872' : 'LT-0087';
    const tagCount = Math.floor(N / 4);
    const offset = Math.min(5000, Math.floor(tagCount / 2));
    // The cursor that starts the page at `offset`: the one the page just before it answers with.
    const cursorAt = (await get(`/api/v1/devices?tag=paris&limit=50&offset=${offset - 50}`)).headers[
      'x-next-cursor'
    ] as string;
    out(`calls (${SAMPLES} sequential requests each, after 3 warm-up):`);
    const results = [
      await timeCall('GET /api/v1/devices?state=quarantined&limit=50', () =>
        get('/api/v1/devices?state=quarantined&limit=50').then(() => {}),
      ),
      await timeCall(`GET /api/v1/devices?q=${q}&limit=50`, () =>
        get(`/api/v1/devices?q=${q}&limit=50`).then(() => {}),
      ),
      await timeCall(`GET /api/v1/devices?tag=paris&limit=50&offset=${offset}`, () =>
        get(`/api/v1/devices?tag=paris&limit=50&offset=${offset}`).then(() => {}),
      ),
      await timeCall(`GET /api/v1/devices?tag=paris&limit=50&cursor=… (same page)`, () =>
        get(`/api/v1/devices?tag=paris&limit=50&cursor=${cursorAt}`).then(() => {}),
      ),
      await timeCall('GET /api/v1/devices/:id (not viewed since its last full inventory)', (i) =>
        get(`/api/v1/devices/id:${sample[i]!}`).then(() => {}),
      ),
      await timeCall('GET /api/v1/devices/:id (summary not prepared yet: pending)', (i) =>
        get(`/api/v1/devices/id:${unsummarised[i]!}`).then(() => {}),
      ),
      await timeCall('GET /api/v1/keys/paris/usage', () => get('/api/v1/keys/paris/usage').then(() => {})),
      await timeCall('GET /api/v1/keys/lyon/usage?limit=1000 (rotated key)', () =>
        get('/api/v1/keys/lyon/usage?limit=1000').then(() => {}),
      ),
      await timeCall('rotation check (lyon v1 closes within 24 h)', async () => {
        await deps.admin.expiringVersionsInUse(86400);
      }),
      await timeCall('GET /api/v1/audit?limit=100', () => get('/api/v1/audit?limit=100').then(() => {})),
      await timeCall('GET /metrics', () => get('/metrics', false).then(() => {})),
    ];
    const closing = await deps.admin.expiringVersionsInUse(86400);
    out(`  rotation check found: ${JSON.stringify(closing)}`);
    const over = results.filter((r) => r.p95 >= TARGET_MS);
    const explain: Record<string, string> = {
      [`GET /api/v1/devices?q=${q}&limit=50`]: `select id from devices where agentgate_device_search_text(name, serial, uuid, deviceid, macs) ilike '%${q}%' order by last_seen desc, id desc limit 50`,
      [`GET /api/v1/devices?tag=paris&limit=50&offset=${offset}`]: `select id from devices where assigned_tag = 'paris' order by last_seen desc, id desc limit 50 offset ${offset}`,
      'GET /api/v1/devices?state=quarantined&limit=50': `select id from devices where state = 'quarantined' order by last_seen desc, id desc limit 50`,
      'rotation check (lyon v1 closes within 24 h)': `with closing as materialized (select v.id, v.key_id, v.version, v.expires_at, k.name from key_versions v join registration_keys k on k.id = v.key_id where v.expires_at > now() and v.expires_at <= now() + interval '1 day'), newer as materialized (select c.id as closing_id, u.deviceid, u.last_used from closing c join key_versions v on v.key_id = c.key_id and v.version > c.version join key_version_usage u on u.key_version_id = v.id) select c.name, c.version, count(distinct u.deviceid) from closing c join key_version_usage u on u.key_version_id = c.id where not exists (select 1 from newer n where n.closing_id = c.id and n.deviceid = u.deviceid and n.last_used >= u.last_used) group by c.name, c.version`,
    };
    for (const r of over) {
      out(`EXPLAIN for ${r.label} (over ${TARGET_MS} ms):`);
      const text = explain[r.label];
      if (!text) {
        out('  (no single statement: see the call)');
        continue;
      }
      for (const line of await sql.unsafe<{ 'QUERY PLAN': string }[]>(`explain (analyze, buffers) ${text}`))
        out(`  ${line['QUERY PLAN']}`);
    }

    // Ingest-path cost of key usage: a repeated (version, device, address) is counted in memory; a first
    // one of the day is one upsert.
    const tracker = createKeyUsageTracker({ sql: sql as never, logger });
    const now = new Date();
    let t = process.hrtime.bigint();
    for (let i = 0; i < 200; i++)
      await tracker.seen({
        keyVersionId: 1,
        deviceid: `scale-new-${i}`,
        remoteAddr: '127.0.0.1',
        deviceId: null,
        at: now,
      });
    const firstOfDay = ms(t) / 200;
    t = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++)
      await tracker.seen({
        keyVersionId: 1,
        deviceid: `scale-new-${i % 200}`,
        remoteAddr: '127.0.0.1',
        deviceId: null,
        at: now,
      });
    const repeated = (ms(t) * 1000) / 100_000;
    await tracker.stop();
    out(
      `key usage on the ingest path: ${firstOfDay.toFixed(2)} ms for the first request of a (version, device, address) a day, ${repeated.toFixed(2)} µs for the others`,
    );

    if (REUSE) {
      out(`SCALE_REUSE=1: no retention passes; database ${DB} kept`);
      return;
    }
    const settings = {
      registrationSeconds: parseDuration(process.env.SCALE_REGISTRATION_RETENTION ?? '14d'),
      submissionSeconds: parseDuration(process.env.SCALE_SUBMISSION_RETENTION ?? '3d'),
    };
    const passAt = (offsetDays: number) =>
      createRetention({
        sql: deps.db.sql,
        lock: true,
        clock: { now: () => new Date(Date.now() + offsetDays * 86400_000) },
        logger,
        ...settings,
      }).runOnce();
    out(
      `retention (registrations ${settings.registrationSeconds / 86400} d, submissions ${settings.submissionSeconds / 86400} d):`,
    );
    const before = await size();
    const p1 = await passAt(0);
    await sql`vacuum analyze`;
    const after1 = await size();
    const c1 = await counts();
    out(
      `  pass 1: ${p1!.seconds.toFixed(1)} s, deleted ${p1!.submissions} submissions and ${p1!.registrations} registrations in ${p1!.batches} statements; ${c1.r} registrations, ${c1.s} submissions left`,
    );
    out(`  database ${mb(before)} before, ${mb(after1)} after (space kept for reuse: plain VACUUM)`);
    out('  a day later (one more day of traffic):');
    await build(sql, 1, DAYS);
    await sql`analyze`;
    const p2 = await passAt(1);
    await sql`vacuum analyze`;
    const after2 = await size();
    out(
      `  pass 2: ${p2!.seconds.toFixed(1)} s, deleted ${p2!.submissions} submissions and ${p2!.registrations} registrations; database ${mb(after2)} (${after2 >= after1 ? '+' : ''}${(((after2 - after1) / after1) * 100).toFixed(1)} % from pass 1)`,
    );
    out(`total ${(ms(t0) / 1000).toFixed(0)} s`);
  } finally {
    if (httpServer) await new Promise<void>((resolve) => httpServer!.close(() => resolve()));
    await sql.end();
    await deps.close();
    if (!KEEP) await server.unsafe(`drop database if exists ${DB}`);
    else out(`kept database ${DB} (SCALE_KEEP=1)`);
    await server.end();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
