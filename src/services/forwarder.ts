/**
 * Forwarding accepted inventories to GLPI, at least once, through the outbox (src/store/outbox-store.ts).
 *
 * What is sent: an approved device's inventory submissions (never network-discovery/inventory messages:
 * they describe other devices and arrive without a device the gateway vetted). Rows are written in the
 * transaction that accepted the inventory, or in the approval that released it — then, per device, the
 * newest held FULL inventory first and the partials that followed it; older held inventories, superseded
 * by that full one, are skipped.
 *
 * How: workers (UPSTREAM_WORKERS in each gateway, or `agent-gate forward`; any number of replicas) claim due
 * rows with FOR UPDATE SKIP LOCKED, only the oldest unsent row of each device, so a device never has two
 * inventories in flight and GLPI gets them in arrival order. Each is POSTed to UPSTREAM_URL as received:
 *
 *   POST <UPSTREAM_URL>
 *   Content-Type: <as the agent sent it>      (application/x-compress-zlib when a redaction re-encoded a raw-deflate body)
 *   User-Agent: <the agent's>                  GLPI-Agent-ID: <the agent's, when it sent one>
 *   X-Forwarded-For: <the agent's address>     Authorization: Basic … | Bearer … (UPSTREAM_USER / UPSTREAM_CLIENT_ID)
 *   <the stored bytes>
 *
 * Answers: 2xx = delivered. Network errors, timeouts, 5xx and 429 are retried without limit, exponential
 * back-off (5 s × 2^attempt, at most 10 min apart) with jitter, so nothing accepted is lost while GLPI is
 * down. Anything else (4xx, 3xx: redirects are not followed) is retried the same way until
 * UPSTREAM_MAX_ATTEMPTS attempts, then the row is a dead letter with GLPI's answer kept (last_status,
 * last_error, last_response), visible and retryable (admin API, `agent-gate outbox`). A dead letter does not
 * hold back its device's later inventories.
 *
 * At least once: a worker that crashes (or loses the database) after GLPI answered but before the row is
 * marked leaves it in flight; when its lease ends (timeout + 60 s) another worker sends it again. That is
 * the only duplicate: marks apply only to the claim that made them, and a row is never claimed twice at once.
 */
import zlib from 'node:zlib';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { insertAudit } from '../store/auth-store.js';
import type { Queryable, Sql } from '../store/db.js';
import {
  type ClaimedRow,
  type OutboxItem,
  type OutboxState,
  OUTBOX_STATES,
  claimDue,
  deleteOutboxItem,
  listOutbox,
  lockOutboxItem,
  markDead,
  markDelivered,
  markRetry,
  outboxStats,
  requeueOutboxItem,
} from '../store/outbox-store.js';
import type { Actor } from './admin.js';
import { createPoller } from './poller.js';

export const UPSTREAM_TIMEOUT_MS = 60_000;
const BACKOFF_BASE_SECONDS = 5;
const BACKOFF_CAP_SECONDS = 600;
/** Kept of GLPI's answer. */
const RESPONSE_KEEP = 2000;
/** A token is renewed this long before GLPI says it expires. */
const TOKEN_MARGIN_MS = 30_000;

export type ForwarderConfig = Pick<
  Config,
  | 'upstreamUrl'
  | 'upstreamUser'
  | 'upstreamPassword'
  | 'upstreamClientId'
  | 'upstreamClientSecret'
  | 'upstreamMaxAttempts'
  | 'upstreamWorkers'
>;

export interface ForwarderDeps {
  sql: Sql;
  clock: Clock;
  logger: Logger;
  config: ForwarderConfig;
  metrics?: Metrics;
  /** Per request to GLPI; 60 s unless a test shortens it. */
  timeoutMs?: number;
  /** Idle polling interval of the worker. */
  pollMs?: number;
}

/** Delay before the next attempt after `attempts` failed ones: 5 s × 2^(attempts-1), capped, minus up to 20 % jitter. */
export function forwardBackoffMs(attempts: number, random = Math.random()): number {
  const base =
    Math.min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** Math.max(0, Math.min(attempts - 1, 20))) * 1000;
  return Math.round(base * (1 - 0.2 * random));
}

/**
 * GLPI 11's token endpoint for an inventory URL, as the GLPI Agent derives it (PROTOCOL §3.9): the path cut
 * at the last "marketplace" or "plugins", trailing slashes stripped, "/api.php/token" appended, query kept.
 * One deviation: a path through /front/ (…/front/inventory.php) is cut there too, since <base>/api.php/token
 * is where GLPI 11 serves tokens.
 */
export function upstreamTokenUrl(upstreamUrl: string): string {
  const u = new URL(upstreamUrl);
  let p = u.pathname;
  const cut = Math.max(p.lastIndexOf('marketplace'), p.lastIndexOf('plugins'));
  if (cut >= 0) p = p.slice(0, cut);
  else if (p.includes('/front/')) p = p.slice(0, p.indexOf('/front/'));
  u.pathname = `${p.replace(/\/+$/, '')}/api.php/token`;
  return u.toString();
}

/** The Content-Type to send: the agent's, unless a redaction re-encoded a raw-deflate body as zlib (or none was sent). */
export function forwardContentType(row: Pick<ClaimedRow, 'contentType' | 'compression' | 'format'>): string {
  const media = (row.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (row.contentType && !(row.compression === 'zlib' && media === 'application/x-compress-deflate'))
    return row.contentType;
  if (row.compression === 'zlib') return 'application/x-compress-zlib';
  if (row.compression === 'gzip') return 'application/x-compress-gzip';
  return row.format === 'json' ? 'application/json' : 'application/xml';
}

interface AttemptResult {
  outcome: 'delivered' | 'retry' | 'refused';
  status: number | null;
  error: string | null;
  response: string | null;
}

class UpstreamError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retry: boolean,
    readonly response: string | null = null,
  ) {
    super(message);
  }
}

/** GLPI's answer as text, decompressed when it says it is (its JSON answers to GLPI Agents are zlib). */
async function answerText(res: Response): Promise<string> {
  const raw = Buffer.from(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
  const type = (res.headers.get('content-type') ?? '').toLowerCase();
  let text: string;
  try {
    text = type.startsWith('application/x-compress-zlib')
      ? zlib.inflateSync(raw, { maxOutputLength: 1 << 20 }).toString('utf8')
      : type.startsWith('application/x-compress-gzip')
        ? zlib.gunzipSync(raw, { maxOutputLength: 1 << 20 }).toString('utf8')
        : raw.toString('utf8');
  } catch {
    text = raw.subarray(0, RESPONSE_KEEP).toString('utf8');
  }
  return text.slice(0, RESPONSE_KEEP);
}

function hostOf(url: string | undefined): string {
  try {
    return url ? new URL(url).host : '(none)';
  } catch {
    return '(bad url)';
  }
}

export function createForwarder(deps: ForwarderDeps) {
  const { sql, clock, logger, metrics, config } = deps;
  const url = config.upstreamUrl;
  const timeoutMs = deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
  const pollMs = deps.pollMs ?? 1000;
  /** Long enough that a live worker always finishes (token call + send + mark) before another may take the row. */
  const leaseMs = 2 * timeoutMs + 60_000;
  const maxAttempts = config.upstreamMaxAttempts;
  const auth: 'none' | 'basic' | 'oauth2' = config.upstreamClientId ? 'oauth2' : config.upstreamUser ? 'basic' : 'none';
  const tokenUrl = url && auth === 'oauth2' ? upstreamTokenUrl(url) : null;

  let workers = config.upstreamWorkers;
  const poller = createPoller({
    name: 'forwarder',
    logger,
    pollMs,
    batchSize: () => workers,
    runOnce: () => runOnce(),
  });
  let abort = new AbortController();
  let token: { value: string; expiresAt: number } | null = null;
  let tokenRequest: Promise<string> | null = null;

  const signal = () => AbortSignal.any([AbortSignal.timeout(timeoutMs), abort.signal]);

  async function requestToken(): Promise<string> {
    let res: Response;
    try {
      res = await fetch(tokenUrl!, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'agent-gate' },
        body: JSON.stringify({
          grant_type: 'client_credentials',
          client_id: config.upstreamClientId,
          client_secret: config.upstreamClientSecret,
          scope: 'inventory',
        }),
        signal: signal(),
      });
    } catch (err) {
      throw new UpstreamError(`token request failed: ${networkError(err)}`, null, true);
    }
    const text = await answerText(res);
    if (!res.ok)
      throw new UpstreamError(
        `token endpoint answered HTTP ${res.status}`,
        res.status,
        res.status >= 500 || res.status === 429,
        text,
      );
    let body: { token_type?: unknown; access_token?: unknown; expires_in?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      /* checked below */
    }
    if (body.token_type !== 'Bearer' || typeof body.access_token !== 'string' || body.access_token === '') {
      throw new UpstreamError('token endpoint answered without a Bearer access_token', res.status, false, text);
    }
    const expiresIn = /^\d+$/.test(String(body.expires_in ?? '')) ? Number(body.expires_in) : 60;
    token = { value: body.access_token, expiresAt: clock.now().getTime() + expiresIn * 1000 - TOKEN_MARGIN_MS };
    logger.debug({ tokenUrl: hostOf(tokenUrl!), expiresIn }, 'forwarder: GLPI access token obtained');
    return token.value;
  }

  /** The cached token while it is valid, else one new token (concurrent sends share the request). */
  async function bearer(): Promise<{ value: string; fresh: boolean }> {
    if (token && clock.now().getTime() < token.expiresAt) return { value: token.value, fresh: false };
    tokenRequest ??= requestToken().finally(() => (tokenRequest = null));
    return { value: await tokenRequest, fresh: true };
  }

  function networkError(err: unknown): string {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError') return `timeout after ${timeoutMs / 1000} s`;
    if (abort.signal.aborted) return 'aborted: forwarder stopping';
    return `${e.message}${e.cause ? `: ${e.cause.code ?? e.cause.message}` : ''}`;
  }

  async function post(row: ClaimedRow, authorization: string | null): Promise<Response> {
    const headers: Record<string, string> = {
      'Content-Type': forwardContentType(row),
      'User-Agent': row.userAgent ?? 'agent-gate',
    };
    if (row.agentId) headers['GLPI-Agent-ID'] = row.agentId;
    if (row.remoteAddr) headers['X-Forwarded-For'] = row.remoteAddr;
    if (authorization) headers.Authorization = authorization;
    try {
      return await fetch(url!, {
        method: 'POST',
        redirect: 'manual',
        headers,
        body: row.body as Uint8Array<ArrayBuffer>,
        signal: signal(),
      });
    } catch (err) {
      throw new UpstreamError(networkError(err), null, true);
    }
  }

  async function attempt(row: ClaimedRow): Promise<AttemptResult> {
    try {
      let res: Response;
      if (auth === 'oauth2') {
        const t = await bearer();
        res = await post(row, `Bearer ${t.value}`);
        if (res.status === 401 && !t.fresh) {
          // The cached token was refused (revoked, GLPI restarted): one new token, one more try.
          await res.body?.cancel();
          token = null;
          res = await post(row, `Bearer ${(await bearer()).value}`);
        }
      } else {
        res = await post(
          row,
          auth === 'basic'
            ? `Basic ${Buffer.from(`${config.upstreamUser}:${config.upstreamPassword}`).toString('base64')}`
            : null,
        );
      }
      const response = await answerText(res);
      if (res.ok) return { outcome: 'delivered', status: res.status, error: null, response };
      const retry = res.status >= 500 || res.status === 429;
      const location = res.headers.get('location');
      const error = `HTTP ${res.status}${location ? ` (redirect to ${location.slice(0, 200)}: set UPSTREAM_URL to it)` : ''}`;
      return { outcome: retry ? 'retry' : 'refused', status: res.status, error, response };
    } catch (err) {
      if (err instanceof UpstreamError)
        return {
          outcome: err.retry ? 'retry' : 'refused',
          status: err.status,
          error: err.message,
          response: err.response,
        };
      return { outcome: 'retry', status: null, error: networkError(err), response: null };
    }
  }

  async function deliver(row: ClaimedRow): Promise<void> {
    const r = await attempt(row);
    const at = clock.now();
    const log = { outbox: row.id, deviceid: row.deviceid, submission: row.submissionId, attempt: row.attempts };
    if (r.outcome === 'delivered') {
      await markDelivered(sql, row, r, at);
      metrics?.outboxAttempt('delivered');
      logger.debug({ ...log, status: r.status }, 'inventory forwarded to GLPI');
    } else if (r.outcome === 'retry' || row.attempts < maxAttempts) {
      const next = new Date(at.getTime() + forwardBackoffMs(row.attempts));
      await markRetry(sql, row, r, next);
      metrics?.outboxAttempt('retry');
      logger.warn(
        { ...log, status: r.status, error: r.error, nextAttemptAt: next },
        'forwarding to GLPI failed; will retry',
      );
    } else {
      await markDead(sql, row, r);
      metrics?.outboxAttempt('dead');
      logger.error(
        { ...log, status: r.status, error: r.error, response: r.response?.slice(0, 200) },
        'GLPI refused an inventory: dead letter (agent-gate outbox list --state dead)',
      );
    }
  }

  /** Sends every due row once (up to `limit`, one per device, in parallel); returns how many were attempted. */
  async function runOnce(limit = Math.max(1, workers)): Promise<number> {
    if (!url) return 0;
    const now = clock.now();
    const rows = await claimDue(sql, { now, leaseUntil: new Date(now.getTime() + leaseMs), limit });
    const results = await Promise.allSettled(rows.map(deliver));
    for (const r of results) {
      // The row stays in flight until its lease ends, then it is sent again: at least once holds.
      if (r.status === 'rejected') logger.error({ err: r.reason }, 'forwarding result not recorded');
    }
    return rows.length;
  }

  async function audit(tx: Queryable, action: string, before: OutboxItem, after: unknown, actor: Actor) {
    await insertAudit(tx, {
      at: clock.now(),
      actor: actor.name,
      action,
      targetType: 'outbox',
      targetId: String(before.id),
      remoteAddr: actor.remoteAddr,
      before: {
        state: before.state,
        attempts: before.attempts,
        deviceid: before.deviceid,
        submissionId: before.submissionId,
        lastStatus: before.lastStatus,
        lastError: before.lastError,
      },
      after,
      reason: null,
    });
  }

  /** Locks one row for an admin action that only pending and dead rows allow. */
  async function lockForChange(tx: Queryable, id: number, what: string): Promise<OutboxItem> {
    const item = await lockOutboxItem(tx, id);
    if (!item) throw new AppError('not_found', `No outbox item ${id}`);
    if (item.state === 'in_flight')
      throw new AppError('conflict', `Outbox item ${id} is being sent right now: ${what} it later`);
    if (item.state === 'delivered') throw new AppError('conflict', `Outbox item ${id} was already delivered`);
    return item;
  }

  return {
    /** Whether UPSTREAM_URL is set. */
    enabled: Boolean(url),

    /** Starts the worker (no-op without UPSTREAM_URL or with no workers); `n` overrides UPSTREAM_WORKERS. */
    start(n?: number): void {
      if (n !== undefined) workers = n;
      if (!url || workers < 1 || !poller.stopped) return;
      abort = new AbortController();
      logger.info({ upstream: hostOf(url), auth, workers, maxAttempts }, 'forwarding accepted inventories to GLPI');
      poller.start();
    },

    /** Stops the worker: sends in flight are cut (and sent again after their lease, by whichever worker runs next). */
    async stop(): Promise<void> {
      abort.abort();
      await poller.stop();
    },

    runOnce,

    stats: () => outboxStats(sql, clock.now()),

    async list(f: { state?: string; deviceid?: string; limit?: number }): Promise<OutboxItem[]> {
      if (f.state !== undefined && !(OUTBOX_STATES as readonly string[]).includes(f.state))
        throw new AppError('bad_request', `state must be one of ${OUTBOX_STATES.join(', ')}`);
      return listOutbox(sql, {
        state: f.state as OutboxState | undefined,
        deviceid: f.deviceid,
        limit: f.limit ?? 100,
      });
    },

    /** A dead (or waiting) row is due again now, with UPSTREAM_MAX_ATTEMPTS fresh attempts. Audited. */
    async retry(id: number, actor: Actor): Promise<OutboxItem> {
      return sql.begin(async (tx) => {
        const item = await lockForChange(tx, id, 'retry');
        await requeueOutboxItem(tx, id, clock.now());
        await audit(tx, 'outbox.retry', item, { state: 'pending', attempts: 0 }, actor);
        return (await lockOutboxItem(tx, id))!;
      });
    },

    /** Removes a dead (or waiting) row: it will not be sent. The submission itself stays. Audited. */
    async drop(id: number, actor: Actor): Promise<{ id: number; dropped: true }> {
      return sql.begin(async (tx) => {
        const item = await lockForChange(tx, id, 'drop');
        await deleteOutboxItem(tx, id);
        await audit(tx, 'outbox.drop', item, null, actor);
        return { id, dropped: true as const };
      });
    },
  };
}

export type Forwarder = ReturnType<typeof createForwarder>;
