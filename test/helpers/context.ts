/**
 * A gateway wired exactly as in production, against the real PostgreSQL, in a schema of its own (so test
 * files run side by side), with a clock the test can move. close() drops the schema.
 */
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import postgres from 'postgres';
import request from 'supertest';
import type { Express } from 'express';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Clock } from '../../src/clock.js';
import { type Deps, createDeps } from '../../src/deps.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { TEST_DATABASE_URL } from './env.js';
import { type CapturedRequest, bodyOf, headersOf } from './fixtures.js';

export class TestClock implements Clock {
  constructor(private t = Date.now()) {}
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(d: Date): void {
    this.t = d.getTime();
  }
}

export interface TestContext {
  deps: Deps;
  app: Express;
  sql: Deps['db']['sql'];
  clock: TestClock;
  databaseUrl: string;
  close(): Promise<void>;
}

export async function createSchema(): Promise<{ url: string; drop: () => Promise<void> }> {
  // The creation time in the name lets global setup drop only schemas that earlier, dead runs left behind.
  const schema = `agtest_${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = postgres(TEST_DATABASE_URL, { onnotice: () => {}, max: 1 });
  await admin.unsafe(`create schema "${schema}"`);
  const url = `${TEST_DATABASE_URL}${TEST_DATABASE_URL.includes('?') ? '&' : '?'}search_path=${schema}`;
  return {
    url,
    async drop() {
      await admin.unsafe(`drop schema if exists "${schema}" cascade`);
      await admin.end();
    },
  };
}

/** Admission limits no ordinary test comes near (the admission tests set their own). */
export const GENEROUS_ADMISSION = {
  RATE_LIMIT_DEVICE_PER_HOUR: '1000000',
  RATE_LIMIT_KEY_PER_MINUTE: '1000000',
  INVENTORY_BUDGET_PER_SECOND: '1000000',
  SPIKE_NEW_DEVICES_PER_KEY: '1000000',
  SPIKE_NEW_DEVICES_PER_SUBNET: '1000000',
};

export async function createTestContext(env: Record<string, string> = {}): Promise<TestContext> {
  const schema = await createSchema();
  const clock = new TestClock();
  // Abuse limits are generous here: one test makes more bad requests from 127.0.0.1 than an attacker would
  // need to trip them. The limit tests set their own.
  const config = loadConfig({
    DATABASE_URL: schema.url,
    AGENT_AUTH: 'off',
    LOG_LEVEL: 'silent',
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
    RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '1000000',
    ...GENEROUS_ADMISSION,
    ...env,
  });
  const logger = createLogger({ level: config.logLevel, pretty: false });
  const deps = await createDeps(config, logger, { role: 'server', migrate: true, clock });
  const app = buildApp(deps);
  return {
    deps,
    app,
    sql: deps.db.sql,
    clock,
    databaseUrl: schema.url,
    async close() {
      await deps.close();
      await schema.drop();
    },
  };
}

/** A real listening gateway (startServer, port 0 on 127.0.0.1) on a schema of its own; close() drops both. */
export async function startTestServer(
  env: Record<string, string>,
): Promise<{ server: RunningServer; close: () => Promise<void> }> {
  const schema = await createSchema();
  const config = loadConfig({
    DATABASE_URL: schema.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    ...GENEROUS_ADMISSION,
    ...env,
  });
  let server: RunningServer;
  try {
    server = await startServer(config, createLogger({ level: config.logLevel, pretty: false }));
  } catch (err) {
    await schema.drop();
    throw err;
  }
  let closed: Promise<void> | undefined;
  return { server, close: () => (closed ??= server.close().finally(() => schema.drop())) };
}

/** Collects any response body as raw bytes (supertest would otherwise try to parse it). */
export function rawBody(res: NodeJS.ReadableStream, cb: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
  res.on('error', (e: Error) => cb(e, Buffer.alloc(0)));
}

export interface AgentResponse {
  status: number;
  headers: Record<string, string>;
  raw: Buffer;
  /** Body decoded as the agents would: zlib/gzip by Content-Type, else as is. */
  text: string;
}

export function decodeAnswer(contentType: string | undefined, raw: Buffer): string {
  if (contentType === 'application/x-compress-zlib') return zlib.inflateSync(raw).toString('utf8');
  if (contentType === 'application/x-compress-gzip') return zlib.gunzipSync(raw).toString('utf8');
  return raw.toString('utf8');
}

/** Sends one request as an agent would (method, path, query, headers, exact body bytes). */
export async function send(
  app: Express,
  r: { method: string; path: string; query?: string; headers?: Record<string, string>; body?: Buffer },
): Promise<AgentResponse> {
  const url = r.query ? `${r.path}?${r.query}` : r.path;
  let req =
    r.method === 'GET'
      ? request(app).get(url)
      : r.method === 'POST'
        ? request(app).post(url)
        : request(app)[r.method.toLowerCase() as 'put'](url);
  for (const [k, v] of Object.entries(r.headers ?? {})) req = req.set(k, v);
  // serialize(identity): superagent would JSON-encode a Buffer sent as application/json.
  if (r.body && r.body.length > 0) req = req.serialize((b: unknown) => b as string).send(r.body);
  const res = await req.buffer(true).parse(rawBody as never);
  const raw = Buffer.isBuffer(res.body) ? res.body : Buffer.alloc(0);
  const headers = res.headers as Record<string, string>;
  return { status: res.status, headers, raw, text: decodeAnswer(headers['content-type'], raw) };
}

/** Replays a captured agent request. */
export function replay(
  app: Express,
  r: CapturedRequest,
  opts: { headers?: Record<string, string>; keepAuthorization?: boolean } = {},
): Promise<AgentResponse> {
  return send(app, {
    method: r.method,
    path: r.path,
    query: r.query,
    headers: { ...headersOf(r, opts), ...opts.headers },
    body: bodyOf(r),
  });
}
