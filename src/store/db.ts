/**
 * The database connection: PostgreSQL from DATABASE_URL, or an embedded PGlite under DATA_DIR served on a
 * loopback port, so that every query in the project goes through postgres.js either way. The embedded
 * server writes DATA_DIR/embedded.json so that a CLI started beside a running gateway joins it instead of
 * opening the same files twice (which would corrupt them).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import postgres from 'postgres';

export type Sql = postgres.Sql<Record<string, never>>;
/** What a query function needs: the pool or an open transaction. */
export type Queryable = Sql | postgres.TransactionSql<Record<string, never>>;

export interface Database {
  sql: Sql;
  /** 'postgres' for DATABASE_URL, 'embedded' when this process runs PGlite, 'embedded-shared' when it joined another's. */
  mode: 'postgres' | 'embedded' | 'embedded-shared';
  describe: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  /** Largest pool for a real PostgreSQL. */
  max?: number;
  /** A server refuses to share an embedded database with another server; the CLI may join one. */
  role: 'server' | 'cli';
}

/**
 * Reconnect delay (seconds) after the n-th failed connection in a row: 0.1, 0.2, 0.4, 0.8, then 1 s, with a
 * little jitter below. The driver's default (3^n/100 s, up to 20 s) kept agents waiting for up to 20 s
 * after PostgreSQL came back (first success 4.7 s, one inventory 16.7 s, measured in issue 16); capped at
 * 1 s, the first success follows the database's return within about a second, at a cost of one connection
 * attempt per second per pooled connection while it is away.
 */
export function reconnectBackoff(retries: number): number {
  return Math.min(0.1 * 2 ** Math.max(0, retries - 1), 1) * (0.8 + Math.random() * 0.2);
}

const PG_OPTIONS = {
  onnotice: () => {},
  connect_timeout: 10,
  backoff: reconnectBackoff,
  idle_timeout: 60,
  // int8 (bigserial ids, counts) as JS numbers: ours stay far below 2^53.
  types: { int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
};

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) {
    const sql = postgres(opts.databaseUrl, { ...PG_OPTIONS, max: opts.max ?? 10 }) as unknown as Sql;
    return { sql, mode: 'postgres', describe: redactUrl(opts.databaseUrl), close: () => sql.end({ timeout: 5 }) };
  }
  return openEmbedded(opts);
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable URL)';
  }
}

interface EmbeddedInfo {
  pid: number;
  host: string;
  port: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(2000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

function connectEmbedded(host: string, port: number): Sql {
  // PGlite runs one query at a time: a single connection keeps transactions whole.
  return postgres({ host, port, user: 'postgres', database: 'postgres', max: 1, ...PG_OPTIONS }) as unknown as Sql;
}

async function openEmbedded(opts: OpenOptions): Promise<Database> {
  const dataDir = path.resolve(opts.dataDir);
  const infoFile = path.join(dataDir, 'embedded.json');
  const running = readInfo(infoFile);
  if (running && running.pid !== process.pid && alive(running.pid) && (await canConnect(running.host, running.port))) {
    if (opts.role === 'server') {
      throw new Error(
        `the embedded database in ${dataDir} is in use by process ${running.pid}; set DATABASE_URL to run several gateways`,
      );
    }
    const sql = connectEmbedded(running.host, running.port);
    return {
      sql,
      mode: 'embedded-shared',
      describe: `embedded PGlite of process ${running.pid} (${dataDir})`,
      close: () => sql.end({ timeout: 5 }),
    };
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  // pg_trgm serves device search ("contains"); migration 0012 indexes with it when it is there.
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const db = await PGlite.create(path.join(dataDir, 'pgdata'), { extensions: { pg_trgm } });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 8 });
  await server.start();
  const [host, portText] = server.getServerConn().split(':');
  const info: EmbeddedInfo = { pid: process.pid, host: host ?? '127.0.0.1', port: Number(portText) };
  fs.writeFileSync(infoFile, JSON.stringify(info));
  const sql = connectEmbedded(info.host, info.port);
  return {
    sql,
    mode: 'embedded',
    describe: `embedded PGlite in ${dataDir}`,
    async close() {
      await sql.end({ timeout: 5 });
      await server.stop();
      await db.close();
      if (readInfo(infoFile)?.pid === process.pid) fs.rmSync(infoFile, { force: true });
    },
  };
}

function readInfo(file: string): EmbeddedInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as EmbeddedInfo;
    return typeof info.pid === 'number' && typeof info.port === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}
