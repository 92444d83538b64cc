/**
 * What the fault tests share: a gateway process (`agent-gate serve`, as deployed) on a schema of its own,
 * simulated agents built from the real captures (each inventory carries a marker so that every
 * acknowledged one can be found again, row by row), a pausable TCP proxy to take PostgreSQL or Redis away
 * from ONE gateway without touching the shared servers, and the checks of what an agent may be answered.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import postgres from 'postgres';
import { type Proc, startGateway } from '../../scripts/lib/processes.js';
import { GENEROUS_ADMISSION, createSchema } from '../helpers/context.js';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/env.js';
import { eventually } from '../helpers/eventually.js';
import { loadScenario } from '../helpers/fixtures.js';
import { listenLoopback } from '../helpers/raw-http.js';
import { TEST_ADMIN_TOKEN, TEST_FAULT_SECRET } from '../helpers/secrets.js';

export const SECRET = TEST_FAULT_SECRET;
const ADMIN_TOKEN = TEST_ADMIN_TOKEN;

/**
 * For the shape of a scenario only (how long the load runs before and after a fault, the pace of the load
 * itself): waiting for something the gateway does goes through eventually().
 */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Redis database of the shared server that the other tests do not use (they flush DB 5). */
export const FAULTS_REDIS_URL = process.env.FAULTS_REDIS_URL ?? TEST_REDIS_URL.replace(/\/\d+$/, '') + '/11';

// ---------------------------------------------------------------------------------------------------------
// A pausable TCP proxy (loopback only)

export type PauseMode = 'refuse' | 'blackhole';

/**
 * Forwards 127.0.0.1:<port> to a real server. pause('refuse') cuts every open connection and resets new
 * ones at once (a server that went down); pause('blackhole') keeps sockets open but forwards nothing and
 * holds new connections silently (a partition). resume() forwards again (held bytes are flushed).
 */
export class TcpProxy {
  private server: net.Server;
  private pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private mode: PauseMode | null = null;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = net.createServer((client) => this.onClient(client));
  }

  async start(): Promise<number> {
    this.port = await listenLoopback(this.server);
    return this.port;
  }

  get paused(): PauseMode | null {
    return this.mode;
  }

  private onClient(client: net.Socket): void {
    client.on('error', () => {});
    if (this.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    const pair = { client, upstream };
    this.pairs.add(pair);
    const forget = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', forget);
    upstream.on('close', forget);
    if (this.mode === 'blackhole') this.hold(pair);
    else this.flow(pair);
  }

  private flow({ client, upstream }: { client: net.Socket; upstream: net.Socket }): void {
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Nothing is read from either side (so nothing is forwarded) until flow() again; the bytes wait in the kernel. */
  private hold({ client, upstream }: { client: net.Socket; upstream: net.Socket }): void {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  }

  pause(mode: PauseMode): void {
    this.mode = mode;
    for (const pair of [...this.pairs]) {
      if (mode === 'refuse') {
        pair.client.resetAndDestroy();
        pair.upstream.destroy();
      } else this.hold(pair);
    }
  }

  resume(): void {
    const was = this.mode;
    this.mode = null;
    if (was === 'blackhole') for (const pair of this.pairs) this.flow(pair);
  }

  async close(): Promise<void> {
    this.mode = 'refuse';
    for (const { client, upstream } of [...this.pairs]) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** host:port of a postgres:// or redis:// URL. */
export function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) };
}

/** The same URL with host:port replaced (the proxy), query (search_path, application_name) kept. */
export function throughPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

// ---------------------------------------------------------------------------------------------------------
// A gateway process on a schema of its own

export interface FaultGateway {
  proc: Proc;
  port: number;
  /** The gateway's own local spool (SPOOL_DIR), never the shared DATA_DIR. */
  spoolDir: string;
  /** postgres.js application_name of the gateway's connections: pg_stat_activity finds them, and only them. */
  appName: string;
  /** A direct connection to the shared PostgreSQL (not through any proxy), for checks and faults. */
  admin: postgres.Sql;
  /** The schema, for queries from `admin`. */
  schema: string;
  /** The gateway's database URL (its schema) without any proxy: for CLI processes beside it. */
  databaseUrl: string;
  logFile: string;
  /** Lines of the gateway's log at level error (50) or above. */
  errorLogs(): Record<string, unknown>[];
  /** Lines of the gateway's log, parsed. */
  logs(): Record<string, unknown>[];
  /** SIGKILL: the process dies at once, as in a crash (nothing flushed, no shutdown). */
  kill(): Promise<void>;
  /** Starts `agent-gate serve` again on the same schema, spool and environment (proc and port change). */
  respawn(): Promise<void>;
  /** A second `agent-gate serve` on the same schema and environment, with its own spool and log (a replica). */
  replica(): Promise<Proc>;
  close(): Promise<void>;
}

/**
 * `agent-gate serve` with AGENT_AUTH=required (the bootstrap key, Basic), generous limits, on a fresh schema.
 * `viaPort`: connect to PostgreSQL through that port (a proxy) instead of directly.
 */
export async function startFaultGateway(
  opts: { viaPort?: number; env?: Record<string, string> } = {},
): Promise<FaultGateway> {
  const schema = await createSchema();
  const schemaName = /search_path=([^&]+)/.exec(schema.url)![1]!;
  const appName = `agentgate_fault_${crypto.randomBytes(4).toString('hex')}`;
  let url = `${schema.url}&application_name=${appName}`;
  if (opts.viaPort) url = throughPort(url, opts.viaPort);
  const logFile = path.join(os.tmpdir(), `${appName}.log`);
  const spoolDir = path.join(os.tmpdir(), `${appName}-spool`);
  const admin = postgres(TEST_DATABASE_URL, { onnotice: () => {}, max: 2 });
  const env = {
    DATABASE_URL: url,
    REDIS_URL: '',
    AGENT_AUTH: 'required',
    BOOTSTRAP_SECRET: SECRET,
    BOOTSTRAP_ADMIN_TOKEN: ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
    RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '1000000',
    SPOOL_DIR: spoolDir,
    ...GENEROUS_ADMISSION,
    ...opts.env,
  };
  let proc: Proc;
  try {
    proc = await startGateway(env, { logFile });
  } catch (err) {
    await admin.end();
    await schema.drop();
    throw err;
  }
  const logFiles = [logFile];
  const logs = () => {
    let text = '';
    for (const f of logFiles) {
      try {
        text += fs.readFileSync(f, 'utf8');
      } catch {
        // not written yet
      }
    }
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  let closed: Promise<void> | undefined;
  const replicas: Proc[] = [];
  const spoolDirs = [spoolDir];
  const gw: FaultGateway = {
    proc,
    port: proc.port,
    spoolDir,
    appName,
    admin,
    schema: schemaName,
    databaseUrl: schema.url,
    logFile,
    logs,
    errorLogs: () => logs().filter((l) => Number(l.level) >= 50),
    kill: () =>
      new Promise<void>((resolve) => {
        const child = gw.proc.child;
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
    async replica() {
      const n = logFiles.length;
      logFiles.push(`${logFile}.${n}`);
      const replicaSpool = `${spoolDir}-replica-${n}`;
      spoolDirs.push(replicaSpool);
      const p = await startGateway({ ...env, SPOOL_DIR: replicaSpool }, { logFile: logFiles.at(-1) });
      replicas.push(p);
      return p;
    },
    async respawn() {
      // A log file of its own, read after the first one's by logs().
      logFiles.push(`${logFile}.${logFiles.length}`);
      gw.proc = await startGateway(env, { logFile: logFiles.at(-1) });
      gw.port = gw.proc.port;
    },
    close: () =>
      (closed ??= (async () => {
        await Promise.all([gw.proc.stop(), ...replicas.map((r) => r.stop())]);
        await admin.end({ timeout: 5 });
        await schema.drop();
        for (const f of logFiles) fs.rmSync(f, { force: true });
        for (const d of spoolDirs) fs.rmSync(d, { recursive: true, force: true });
      })()),
  };
  return gw;
}

// ---------------------------------------------------------------------------------------------------------
// Simulated agents

export type AgentKind = 'fi' | 'ga';
export type Step = 'prolog' | 'contact' | 'inventory';

interface Template {
  path: string;
  headers: Record<string, string>;
  text: string;
  deviceid: string;
}

const SKIP_HEADERS = new Set(['host', 'content-length', 'authorization']);

function template(scenario: string, file: string): Template {
  const r = loadScenario(scenario).find((x) => x.file === file)!;
  return {
    path: r.path,
    headers: Object.fromEntries(r.headers.filter(([k]) => !SKIP_HEADERS.has(k.toLowerCase()))),
    text: r.decoded_text,
    deviceid: r.classified.deviceid!,
  };
}

const TEMPLATES: Record<AgentKind, Partial<Record<Step, Template>>> = {
  fi: {
    prolog: template('fusioninventory-plain', '0001-post-prolog.json'),
    inventory: template('fusioninventory-plain', '0002-post-inventory.json'),
  },
  ga: {
    prolog: template('glpi-second-run', '0001-post-prolog.json'),
    contact: template('glpi-second-run', '0006-post-contact.json'),
    inventory: template('glpi-second-run', '0003-post-inventory.json'),
  },
};

/** The steps of one run, as the real agents do them (PROTOCOL §3.1, §3.3). */
export const RUN: Record<AgentKind, Step[]> = { fi: ['prolog', 'inventory'], ga: ['prolog', 'contact', 'inventory'] };

export interface SimAgent {
  kind: AgentKind;
  deviceid: string;
  agentId: string | null;
  authorization: string;
}

export function makeAgents(count: number, tag: string): SimAgent[] {
  return Array.from({ length: count }, (_, i) => {
    const kind: AgentKind = i % 2 === 0 ? 'fi' : 'ga';
    return {
      kind,
      deviceid: `fault-${tag}-${kind}-${String(i).padStart(3, '0')}-2026-11-22-19-06-45`,
      agentId: kind === 'ga' ? `${crypto.randomUUID()}` : null,
      authorization: `Basic ${Buffer.from(`agent${i}:${SECRET}`).toString('base64')}`,
    };
  });
}

export interface Message {
  agent: SimAgent;
  step: Step;
  /** Inventories only: a unique value carried in the body (ACCESSLOG/LOGDATE) to find its row again. */
  marker: string | null;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

let seq = 0;

/** One message of one agent, zlib-compressed like the capture; inventories carry a fresh marker. */
export function message(agent: SimAgent, step: Step): Message {
  const t = TEMPLATES[agent.kind][step]!;
  let text = t.text.split(t.deviceid).join(agent.deviceid);
  let marker: string | null = null;
  if (step === 'inventory') {
    marker = `mark-${process.pid}-${++seq}-${crypto.randomBytes(4).toString('hex')}`;
    text =
      agent.kind === 'fi'
        ? text.replace(/<LOGDATE>[^<]*<\/LOGDATE>/, `<LOGDATE>${marker}</LOGDATE>`)
        : text.replace(/"logdate": "[^"]*"/, `"logdate": "${marker}"`);
    if (!text.includes(marker)) throw new Error('fixture has no LOGDATE to carry the marker');
  }
  const headers: Record<string, string> = { ...t.headers, Authorization: agent.authorization };
  if (agent.agentId) headers['GLPI-Agent-ID'] = agent.agentId;
  return { agent, step, marker, path: t.path, headers, body: zlib.deflateSync(Buffer.from(text, 'utf8')) };
}

/** The marker of a stored body (as the gateway stored it: zlib, gzip or plain). */
export function markerOf(body: Buffer, compression: string): string | null {
  const raw =
    compression === 'zlib' || compression === 'deflate'
      ? zlib.inflateSync(body)
      : compression === 'gzip'
        ? zlib.gunzipSync(body)
        : body;
  const text = raw.toString('utf8');
  return /<LOGDATE>(mark-[^<]+)<\/LOGDATE>|"logdate"\s*:\s*"(mark-[^"]+)"/.exec(text)?.slice(1).find(Boolean) ?? null;
}

// ---------------------------------------------------------------------------------------------------------
// HTTP as the agents do it: a new connection per message, Content-Length, bounded wait

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
  ms: number;
}

export type Outcome = Answer | { error: string; ms: number };

export function isAnswer(o: Outcome): o is Answer {
  return 'status' in o;
}

/**
 * Sends one request on its own connection (unless `agent` says otherwise); never throws. `chunks`/`overMs`:
 * the body is written in that many pieces spread over that time (a slow agent link); `onStarted` is called
 * once the connection is open and the body is on its way.
 */
export function post(
  port: number,
  m: { path: string; headers: Record<string, string>; body: Buffer },
  opts: { timeoutMs?: number; chunks?: number; overMs?: number; onStarted?: () => void; agent?: http.Agent } = {},
): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(o);
    };
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: m.path,
        agent: opts.agent ?? false,
        headers: { ...m.headers, 'Content-Length': String(m.body.length) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          finish({ status: res.statusCode ?? 0, headers: res.headers, raw: Buffer.concat(parts), ms: Date.now() - t0 }),
        );
        res.on('error', (e) =>
          finish({ error: `response: ${(e as NodeJS.ErrnoException).code ?? e.message}`, ms: Date.now() - t0 }),
        );
      },
    );
    const timer = setTimeout(() => {
      finish({ error: 'timeout', ms: Date.now() - t0 });
      req.destroy();
    }, opts.timeoutMs ?? 20_000);
    req.on('error', (e) => finish({ error: (e as NodeJS.ErrnoException).code ?? e.message, ms: Date.now() - t0 }));
    const chunks = opts.chunks ?? 1;
    if (chunks <= 1) {
      req.end(m.body);
      opts.onStarted?.();
      return;
    }
    const size = Math.ceil(m.body.length / chunks);
    const gap = (opts.overMs ?? 1000) / chunks;
    let i = 0;
    const writeNext = () => {
      if (done) return;
      const piece = m.body.subarray(i * size, (i + 1) * size);
      i++;
      if (i >= chunks || piece.length === 0) req.end(piece);
      else {
        req.write(piece);
        setTimeout(writeNext, gap);
      }
    };
    req.once('socket', (s) => {
      const go = () => {
        opts.onStarted?.();
        writeNext();
      };
      if (s.connecting) s.once('connect', go);
      else go();
    });
    req.flushHeaders();
  });
}

export async function get(
  port: number,
  pathName: string,
  timeoutMs = 10_000,
): Promise<{ status: number; text: string; ms: number } | { error: string }> {
  const t0 = Date.now();
  try {
    const res = await fetch(`http://127.0.0.1:${port}${pathName}`, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text(), ms: Date.now() - t0 };
  } catch (err) {
    return { error: (err as Error).name === 'TimeoutError' ? 'timeout' : String((err as Error).cause ?? err) };
  }
}

/** Whether /readyz answers 200 within `withinMs` (false, not a throw: the tests print their summary first). */
export async function waitReady(port: number, withinMs: number): Promise<boolean> {
  return eventually(
    async () => {
      const r = await get(port, '/readyz', 5000);
      if (!('status' in r) || r.status !== 200) throw new Error(`/readyz: ${JSON.stringify(r)}`);
      return true;
    },
    { timeout: withinMs, interval: 200 },
  ).catch(() => false);
}

/**
 * How many TCP connections on local port `port` the process `pid` has accepted (Linux: its socket fds that
 * are established connections on that port). A connection the kernel completed but the process has not
 * accepted yet has no fd: this tells "the gateway holds the request" from "the client is connected".
 */
export function acceptedConnections(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …; st 01 = ESTABLISHED
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[1]!.endsWith(local) && f[3] === '01' && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}

export async function metric(port: number, name: string): Promise<string | undefined> {
  const r = await get(port, '/metrics');
  if (!('status' in r)) return undefined;
  return new RegExp(`^${name} (\\S+)$`, 'm').exec(r.text)?.[1];
}

// ---------------------------------------------------------------------------------------------------------
// What an agent may be answered

export function decoded(a: Answer): string {
  const type = String(a.headers['content-type'] ?? '');
  if (type === 'application/x-compress-zlib') return zlib.inflateSync(a.raw).toString('utf8');
  if (type === 'application/x-compress-gzip') return zlib.gunzipSync(a.raw).toString('utf8');
  return a.raw.toString('utf8');
}

export type Verdict = 'ok' | 'deferred' | 'unavailable';
/** What is wrong with an answer: "<agent kind> <step> <deviceid>: <what>". */
export type Problem = `${string}: ${string}`;

/**
 * Judges one answer to a message: a proper 200 ("ok", or "deferred" = the protocol-native "not now" of
 * PROTOCOL §5), or a 503 in the agent's own format and compression; anything else is a problem (returned
 * as a string). A GLPI Agent's PROLOG may be answered in XML or JSON (it understands both there).
 */
export function judge(m: Message, o: Outcome): Verdict | Problem {
  const where = `${m.agent.kind} ${m.step} ${m.agent.deviceid}`;
  if (!isAnswer(o)) return `${where}: no answer (${o.error} after ${o.ms} ms)`;
  const type = String(o.headers['content-type'] ?? '');
  let text: string;
  try {
    text = decoded(o);
  } catch {
    return `${where}: ${o.status} body not decodable as its Content-Type ${type}`;
  }
  const brief: Problem = `${where}: ${o.status} ${type} ${JSON.stringify(text.slice(0, 200))}`;
  if (type !== 'application/x-compress-zlib') return `${brief} — not compressed like the request`;
  if (/\bat .+:\d+:\d+\)?|Error:/.test(text)) return `${brief} — leaks a stack or an error`;
  const xml = text.startsWith('<?xml');
  const wantXml = m.agent.kind === 'fi' ? true : m.step === 'prolog' ? null : false;
  if (wantXml !== null && xml !== wantXml) return `${brief} — not in the agent's format`;
  let json: Record<string, unknown> | null = null;
  if (!xml) {
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return `${brief} — neither XML nor JSON`;
    }
  }
  if (o.status === 503) {
    if (xml)
      return /^<\?xml[^>]*\?>\s*<REPLY><ERROR>[^<]+<\/ERROR><\/REPLY>\s*$/.test(text)
        ? 'unavailable'
        : `${brief} — not an XML error reply`;
    return json!.status === 'error' && typeof json!.message === 'string'
      ? 'unavailable'
      : `${brief} — not a JSON error`;
  }
  if (o.status !== 200) return `${brief} — neither 200 nor 503`;
  if (m.step === 'prolog') {
    if (xml)
      return /<RESPONSE>SEND<\/RESPONSE>/.test(text)
        ? 'ok'
        : /<PROLOG_FREQ>\d+<\/PROLOG_FREQ>/.test(text)
          ? 'deferred'
          : `${brief} — unusable PROLOG reply`;
    return json!.status === 'ok' ? 'ok' : `${brief} — unusable PROLOG reply`;
  }
  if (m.step === 'contact') {
    if (json!.status !== 'ok') return `${brief} — CONTACT not ok`;
    return Array.isArray(json!.disabled) && (json!.disabled as string[]).includes('inventory') ? 'deferred' : 'ok';
  }
  if (xml) return /<REPLY>/.test(text) ? 'ok' : `${brief} — unusable inventory reply`;
  return json!.status === 'ok' ? 'ok' : `${brief} — inventory not ok`;
}

// ---------------------------------------------------------------------------------------------------------
// Row by row: every acknowledged inventory is in PostgreSQL

export interface Acked {
  deviceid: string;
  marker: string;
}

/** The acknowledged inventories that have no submission row (deviceid + marker in the stored body). */
export async function missingRows(admin: postgres.Sql, schema: string, acked: Acked[]): Promise<Acked[]> {
  if (acked.length === 0) return [];
  const deviceids = [...new Set(acked.map((a) => a.deviceid))];
  const rows = await admin.unsafe<{ deviceid: string; compression: string; body: Buffer }[]>(
    `select d.deviceid, s.compression, s.body from "${schema}".submissions s join "${schema}".devices d on d.id = s.device_id where d.deviceid = any($1) and s.kind = 'inventory'`,
    [deviceids],
  );
  const stored = new Set(rows.map((r) => `${r.deviceid}\u0000${markerOf(r.body, r.compression)}`));
  return acked.filter((a) => !stored.has(`${a.deviceid}\u0000${a.marker}`));
}

/** How many stored inventories carry each marker (a marker stored twice is a duplicate, not a loss). */
export async function storedMarkers(admin: postgres.Sql, schema: string): Promise<Map<string, number>> {
  const rows = await admin.unsafe<{ compression: string; body: Buffer }[]>(
    `select s.compression, s.body from "${schema}".submissions s where s.kind = 'inventory'`,
  );
  const out = new Map<string, number>();
  for (const r of rows) {
    const m = markerOf(r.body, r.compression);
    if (m) out.set(m, (out.get(m) ?? 0) + 1);
  }
  return out;
}
