/**
 * Reference servers for the benchmarks, run as their own process, the floors our ingest is measured against
 * in the same run:
 *   noop     express, reads the body, answers a fixed 200;
 *   inflate  the same plus a capped zlib inflate of the body;
 *   store    the honest floor of a gateway that records what it acknowledges: express.raw, zlib.inflateSync,
 *            and a queue flushed as ONE multi-row `insert … (received_at, size, body)` per flush (at most
 *            FLOOR_FLUSHES = 2 flushes in flight, body column `storage external`), each request answered only
 *            after the commit that holds its row. PostgreSQL at FLOOR_DATABASE_URL (the bench's own schema);
 *   read     the store floor that also reads what it stores, as cheaply as JavaScript can: the decoded body
 *            as one string, and JSON.parse of it when it is JSON (XML: the string only, no parse at all). A
 *            ceiling for any gateway that looks at the documents it records, not a gateway;
 *   trips    the store floor that first asks what a gateway keeping the guarantees must ask before
 *            it answers a PROLOG or CONTACT: one Redis round trip (an EVALSHA counting the device in a
 *            window: limits shared by replicas, REDIS_URL) and one PostgreSQL read of the device by its
 *            deviceid (who it is, pinned to what: an indexed select on a table of DEVICES rows). The
 *            deviceid is cut out of the decoded body with one regex, no parse. A ceiling for the
 *            registration messages of any gateway that keeps those guarantees, not a gateway.
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import express from 'express';
import postgres from 'postgres';
import { Redis } from 'ioredis';

const inflate = promisify(zlib.inflate);
const mode = process.argv[2] ?? 'noop';
const ANSWER = '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><RESPONSE>SEND</RESPONSE></REPLY>\n';
const FLOOR_FLUSHES = 2;
const FLOOR_BATCH = 64;
/** A fixed-window counter, the least a shared limit can do in one round trip. */
const COUNT_SCRIPT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;
const DEVICEID = /<DEVICEID>([^<]{1,255})<\/DEVICEID>|"deviceid"\s*:\s*"([^"]{1,255})"/;

interface Row {
  at: Date;
  body: Buffer;
  done: (err?: unknown) => void;
}

function storeQueue(sql: postgres.Sql) {
  const queue: Row[] = [];
  let inFlight = 0;
  function pump(): void {
    while (inFlight < FLOOR_FLUSHES && queue.length > 0) {
      const batch = queue.splice(0, FLOOR_BATCH);
      inFlight++;
      sql`insert into floor_store ${sql(
        batch.map((r) => ({ received_at: r.at, size: r.body.length, body: r.body })),
        'received_at',
        'size',
        'body',
      )}`
        .then(
          () => batch.forEach((r) => r.done()),
          (err: unknown) => batch.forEach((r) => r.done(err)),
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  }
  return (body: Buffer) =>
    new Promise<void>((resolve, reject) => {
      queue.push({
        at: new Date(),
        body,
        done: (err) => (err ? reject(err instanceof Error ? err : new Error('insert failed')) : resolve()),
      });
      pump();
    });
}

/**
 * The trips floor's two questions before the store: a Redis count and a device read, one round trip each
 * (a device seen for the first time is also inserted, as a gateway registers it: the warm-up's work).
 */
async function tripsOf(sql: postgres.Sql): Promise<(decoded: Buffer) => Promise<unknown>> {
  await sql`create table if not exists floor_devices (id serial primary key, deviceid text not null unique,
    state text not null default 'quarantined', key_id int)`;
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  redis.defineCommand('floorCount', { numberOfKeys: 1, lua: COUNT_SCRIPT });
  const count = (redis as unknown as { floorCount: (key: string, ms: number) => Promise<number> }).floorCount;
  return async (decoded) => {
    const m = DEVICEID.exec(decoded.toString('latin1'));
    const deviceid = m?.[1] ?? m?.[2] ?? '';
    await count.call(redis, `floor:${deviceid}`, 60_000);
    const rows = await sql`select id, state, key_id from floor_devices where deviceid = ${deviceid}`;
    if (rows.length === 0) await sql`insert into floor_devices (deviceid) values (${deviceid}) on conflict do nothing`;
    return rows;
  };
}

async function main(): Promise<void> {
  const app = express();
  app.use(express.raw({ type: () => true, limit: '64mb' }));
  let store: ((body: Buffer) => Promise<void>) | null = null;
  let ask: ((decoded: Buffer) => Promise<unknown>) | null = null;
  if (mode === 'store' || mode === 'read' || mode === 'trips') {
    // trips: the reads get connections of their own beside the flushes'.
    const max = mode === 'trips' ? FLOOR_FLUSHES * 2 : FLOOR_FLUSHES;
    const sql = postgres(process.env.FLOOR_DATABASE_URL!, { onnotice: () => {}, max });
    await sql`create table if not exists floor_store (id bigserial primary key, received_at timestamptz not null,
      size int not null, body bytea not null)`;
    await sql`alter table floor_store alter column body set storage external`;
    store = storeQueue(sql);
    if (mode === 'trips') ask = await tripsOf(sql);
  }
  app.all('/{*any}', async (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (mode === 'inflate' && body.length > 0) await inflate(body, { maxOutputLength: 64 * 1024 * 1024 });
    if (store) {
      // zlib bodies (0x78 header) are inflated; a plain one (a JSON CONTACT sent uncompressed) is stored as is.
      const decoded =
        body.length > 1 && body[0] === 0x78 ? zlib.inflateSync(body, { maxOutputLength: 64 * 1024 * 1024 }) : body;
      if (mode === 'read') {
        const text = decoded.toString('utf8');
        if (text.startsWith('{')) JSON.parse(text);
      }
      try {
        if (ask) await ask(decoded);
        await store(body);
      } catch {
        res.status(503).end();
        return;
      }
    }
    res.type('application/xml').send(ANSWER);
  });
  const server = app.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main().catch((err: unknown) => {
  process.stderr.write(`floor server failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
