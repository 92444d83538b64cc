/**
 * The database connection: PostgreSQL from DATABASE_URL, or an embedded PGlite under DATA_DIR served on a
 * Unix socket inside DATA_DIR, so that every query in the project goes through postgres.js either way. The
 * embedded server writes DATA_DIR/embedded.json so that a CLI started beside a running gateway joins it
 * instead of opening the same files twice (which would corrupt them).
 *
 * The embedded database is private to the gateway's user: PGlite has no authentication, so nothing of it
 * is on TCP, and DATA_DIR is 0700 with its files 0600 (the socket, embedded.json, the database files).
 * Another local account can neither connect nor read the files.
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
  /** Told what is happening while the embedded database starts (its first start takes a while). */
  progress?: (message: string, fields: Record<string, unknown>) => void;
}

/** Where the embedded database keeps its files inside DATA_DIR. */
const PGDATA = 'pgdata';

/** Whether DATA_DIR holds an embedded database (one that a gateway or `migrate` created there). */
export function embeddedDatabaseExists(dataDir: string): boolean {
  return fs.existsSync(path.join(path.resolve(dataDir), PGDATA, 'PG_VERSION'));
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
  /** The Unix socket PGlite is served on, inside DATA_DIR. */
  socket: string;
}

const SOCKET_NAME = 'embedded.sock';
/** What the gateway itself keeps in DATA_DIR; a directory holding anything else is not tightened. */
const OURS = new Set([PGDATA, 'embedded.json', SOCKET_NAME]);
/** sun_path holds 108 bytes on Linux (104 on macOS): longer socket paths cannot be bound. */
const MAX_SOCKET_PATH = 100;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socket }, () => {
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

function connectEmbedded(socket: string): Sql {
  // PGlite runs one query at a time: a single connection keeps transactions whole.
  return postgres({ path: socket, user: 'postgres', database: 'postgres', max: 1, ...PG_OPTIONS }) as unknown as Sql;
}

/**
 * DATA_DIR for the embedded database: created 0700, or an existing one tightened to 0700 when it holds only
 * the gateway's own files (older versions created it 0755). An existing directory that other users may
 * enter and that holds anything else (a home directory, /tmp) is refused rather than changed: chmod-ing a
 * shared directory would break its other users, and leaving it open would expose the database.
 */
export function preparePrivateDir(dir: string): { tightened: boolean } {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    return { tightened: false };
  }
  if (!st.isDirectory()) throw new Error(`DATA_DIR ${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new Error(
      `DATA_DIR ${dir} belongs to uid ${st.uid}, not to the gateway's user (uid ${uid}): the embedded database must be private to the gateway's user`,
    );
  if ((st.mode & 0o077) === 0) return { tightened: false };
  const foreign = fs.readdirSync(dir).filter((name) => !OURS.has(name));
  if (foreign.length > 0)
    throw new Error(
      `DATA_DIR ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}) and holds files that are not the embedded database's (${foreign.slice(0, 3).join(', ')}): run chmod 700 on it, or set DATA_DIR to a directory of its own`,
    );
  fs.chmodSync(dir, 0o700);
  return { tightened: true };
}

/** Takes group and other permissions off every file and directory under `dir` (databases from older versions). */
function privateTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    const mode = fs.statSync(p).mode & 0o777;
    if (mode & 0o077) fs.chmodSync(p, mode & 0o700);
    if (entry.isDirectory()) privateTree(p);
  }
}

async function openEmbedded(opts: OpenOptions): Promise<Database> {
  const dataDir = path.resolve(opts.dataDir);
  const infoFile = path.join(dataDir, 'embedded.json');
  const running = readInfo(infoFile);
  if (running && running.pid !== process.pid && alive(running.pid) && (await canConnect(running.socket))) {
    if (opts.role === 'server') {
      throw new Error(
        `the embedded database in ${dataDir} is in use by process ${running.pid}; set DATABASE_URL to run several gateways`,
      );
    }
    const sql = connectEmbedded(running.socket);
    return {
      sql,
      mode: 'embedded-shared',
      describe: `embedded PGlite of process ${running.pid} (${dataDir})`,
      close: () => sql.end({ timeout: 5 }),
    };
  }
  const socket = path.join(dataDir, SOCKET_NAME);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH)
    throw new Error(
      `DATA_DIR ${dataDir} is too long for the embedded database's Unix socket (${socket} must stay under ${MAX_SOCKET_PATH} bytes): choose a shorter DATA_DIR`,
    );
  const { tightened } = preparePrivateDir(dataDir);
  // PGlite creates the database (initdb) on the first start: many seconds of nothing to see otherwise.
  const firstStart = !embeddedDatabaseExists(dataDir);
  const started = Date.now();
  opts.progress?.(
    firstStart
      ? `initialising the embedded database in ${dataDir} (first start, ~20 s)…`
      : `opening the embedded database in ${dataDir}…`,
    { dataDir, firstStart },
  );
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  // pg_trgm serves device search ("contains"); migration 0012 indexes with it when it is there.
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const db = await PGlite.create(path.join(dataDir, PGDATA), { extensions: { pg_trgm } });
  // PGlite writes its files with the modes of its emulated file system (0666/0755, whatever the umask):
  // made owner-only at every start. Files it creates later keep its modes, but sit inside DATA_DIR (0700),
  // which no other account can enter.
  privateTree(dataDir);
  // A socket left by a process that died (the check above found nobody behind it) would block the bind.
  fs.rmSync(socket, { force: true });
  const server = new PGLiteSocketServer({ db, path: socket, maxConnections: 8 });
  await server.start();
  fs.chmodSync(socket, 0o600);
  const info: EmbeddedInfo = { pid: process.pid, socket };
  fs.writeFileSync(infoFile, JSON.stringify(info), { mode: 0o600 });
  fs.chmodSync(infoFile, 0o600);
  const sql = connectEmbedded(socket);
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  opts.progress?.(`embedded database ${firstStart ? 'initialised' : 'open'} in ${seconds} s`, {
    dataDir,
    firstStart,
    seconds,
  });
  return {
    sql,
    mode: 'embedded',
    describe: `embedded PGlite in ${dataDir}${tightened ? ' (DATA_DIR was open to other users: now 0700)' : ''}`,
    async close() {
      await sql.end({ timeout: 5 });
      await server.stop();
      await db.close();
      if (readInfo(infoFile)?.pid === process.pid) {
        fs.rmSync(infoFile, { force: true });
        fs.rmSync(socket, { force: true });
      }
    },
  };
}

function readInfo(file: string): EmbeddedInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as EmbeddedInfo;
    return typeof info.pid === 'number' && typeof info.socket === 'string' ? info : undefined;
  } catch {
    return undefined;
  }
}
