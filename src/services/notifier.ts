/**
 * Webhook notifications, delivered at least once. emit() writes one delivery row per configured URL in the
 * caller's transaction (an outbox: once what caused the event is committed, its notification cannot be
 * lost); a worker in each gateway claims due rows (FOR UPDATE SKIP LOCKED, so replicas never send the same
 * attempt twice) and POSTs them. 2xx = delivered; network errors, timeouts (10 s), 408, 429 and 5xx are
 * retried with exponential back-off and jitter (5 s × 2^attempt, at most 1 h apart) until
 * WEBHOOK_MAX_ATTEMPTS; other answers (3xx — redirects are not followed — and 4xx) are final. A delivery
 * that is given up stays in webhook_deliveries with last_status / last_error.
 *
 * What a receiver gets:
 *
 *   POST <url>
 *   Content-Type: application/json
 *   User-Agent: agent-gate-webhook
 *   X-AgentGate-Event: device.quarantined
 *   X-AgentGate-Delivery: 42                 (the same on every retry of this delivery: deduplicate on it)
 *   X-AgentGate-Timestamp: 1767225600        (unix seconds of this attempt)
 *   X-AgentGate-Signature: sha256=<hex>
 *
 *   {"id":"42","event":"device.quarantined","createdAt":"2026-01-01T00:00:00.000Z","data":{…}}
 *
 * How a receiver verifies it: compute HMAC-SHA256 with WEBHOOK_SECRET as the key over
 * `<X-AgentGate-Timestamp>.<raw request body>` (the bytes as received, before any JSON parsing), hex-encode
 * it, and compare it with the part of X-AgentGate-Signature after "sha256=" in constant time (e.g.
 * crypto.timingSafeEqual). Refuse timestamps more than a few minutes from your clock (replays), and ignore a
 * delivery id already processed (retries after a lost answer).
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { Config, WebhookEventName } from '../config.js';
import type { Clock } from '../clock.js';
import type { Metrics } from '../metrics.js';
import type { Queryable, Sql } from '../store/db.js';
import {
  type DeliveryRow,
  claimDueDeliveries,
  countPendingDeliveries,
  insertDeliveries,
  markDelivered,
  markFailed,
} from '../store/webhook-store.js';
import { createPoller } from './poller.js';

export const WEBHOOK_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_SECONDS = 5;
const BACKOFF_CAP_SECONDS = 3600;
/** How long a claimed delivery is left to its worker before another may take it (longer than any attempt). */
const LEASE_MS = 60_000;

export interface NotifierDeps {
  sql: Sql;
  clock: Clock;
  logger: Logger;
  config: Pick<Config, 'webhookUrls' | 'webhookSecret' | 'webhookEvents' | 'webhookMaxAttempts'>;
  metrics?: Metrics;
  /** Per attempt; 10 s unless a test shortens it. */
  timeoutMs?: number;
  /** Idle polling interval of the worker. */
  pollMs?: number;
  /** Most deliveries claimed (and sent in parallel) at once. */
  batchSize?: number;
}

/** `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the X-AgentGate-Signature header. */
export function webhookSignature(secret: string, timestamp: string | number, body: string | Buffer): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/** Delay before the next attempt after `attempts` failed ones: 5 s × 2^(attempts-1), capped, minus up to 20 % jitter. */
export function backoffMs(attempts: number, random = Math.random()): number {
  const base = Math.min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** Math.max(0, attempts - 1)) * 1000;
  return Math.round(base * (1 - 0.2 * random));
}

interface AttemptResult {
  ok: boolean;
  retry: boolean;
  status: number | null;
  error: string;
}

/** The receiver's host, for logs: webhook URLs may carry a token in their path. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(bad url)';
  }
}

export function createNotifier(deps: NotifierDeps) {
  const { sql, clock, logger, metrics } = deps;
  const urls = deps.config.webhookUrls ?? [];
  const events = new Set<string>(deps.config.webhookEvents);
  const secret = deps.config.webhookSecret ?? '';
  const maxAttempts = deps.config.webhookMaxAttempts;
  const timeoutMs = deps.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const pollMs = deps.pollMs ?? 2000;
  const batchSize = deps.batchSize ?? 20;

  const poller = createPoller({
    name: 'webhook worker',
    logger,
    pollMs,
    batchSize: () => batchSize,
    runOnce: () => runOnce(),
  });
  let abort = new AbortController();
  /** emit() calls in flight, so stop() can let them finish before the pool closes. */
  const emitting = new Set<Promise<unknown>>();

  async function attempt(row: DeliveryRow): Promise<AttemptResult> {
    const body = JSON.stringify({
      id: String(row.id),
      event: row.event,
      createdAt: row.createdAt.toISOString(),
      data: row.payload,
    });
    const timestamp = String(Math.floor(clock.now().getTime() / 1000));
    try {
      const res = await fetch(row.url, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'agent-gate-webhook',
          'X-AgentGate-Event': row.event,
          'X-AgentGate-Delivery': String(row.id),
          'X-AgentGate-Timestamp': timestamp,
          'X-AgentGate-Signature': webhookSignature(secret, timestamp, body),
        },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), abort.signal]),
      });
      if (res.ok) {
        await res.body?.cancel();
        return { ok: true, retry: false, status: res.status, error: '' };
      }
      // The answer's body only matters for the error message: the start of it (read within the same timeout).
      const text = (await res.text().catch(() => '')).slice(0, 200);
      const retry = res.status >= 500 || res.status === 429 || res.status === 408;
      return {
        ok: false,
        retry,
        status: res.status,
        error: `HTTP ${res.status}${text ? `: ${text.replace(/\s+/g, ' ')}` : ''}`,
      };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const error =
        e.name === 'TimeoutError'
          ? `timeout after ${timeoutMs / 1000} s`
          : abort.signal.aborted
            ? 'aborted: gateway shutting down'
            : `${e.message}${e.cause ? `: ${e.cause.code ?? e.cause.message}` : ''}`;
      return { ok: false, retry: true, status: null, error };
    }
  }

  async function deliver(row: DeliveryRow): Promise<void> {
    const r = await attempt(row);
    const at = clock.now();
    const log = { delivery: row.id, event: row.event, receiver: hostOf(row.url), attempt: row.attempts };
    if (r.ok) {
      await markDelivered(sql, row.id, r.status!, at);
      metrics?.webhookDelivery(row.event, 'delivered');
      logger.debug(log, 'webhook delivered');
    } else if (r.retry && row.attempts < maxAttempts) {
      const next = new Date(at.getTime() + backoffMs(row.attempts));
      await markFailed(sql, row.id, { status: r.status, error: r.error, nextAttemptAt: next });
      metrics?.webhookDelivery(row.event, 'retry');
      logger.warn({ ...log, error: r.error, nextAttemptAt: next }, 'webhook delivery failed; will retry');
    } else {
      await markFailed(sql, row.id, { status: r.status, error: r.error, nextAttemptAt: null });
      metrics?.webhookDelivery(row.event, 'failed');
      logger.error({ ...log, error: r.error }, 'webhook delivery given up: see webhook_deliveries.last_error');
    }
  }

  /** Sends every due delivery once (up to one batch); returns how many were attempted. */
  async function runOnce(): Promise<number> {
    if (urls.length === 0) return 0;
    const now = clock.now();
    const rows = await claimDueDeliveries(sql, {
      now,
      leaseUntil: new Date(now.getTime() + LEASE_MS),
      limit: batchSize,
      urls,
      maxAttempts,
    });
    const results = await Promise.allSettled(rows.map(deliver));
    for (const r of results) {
      // The row stays claimed until its lease ends, then it is sent again: at least once holds.
      if (r.status === 'rejected') logger.error({ err: r.reason }, 'webhook delivery result not recorded');
    }
    if (metrics) metrics.setWebhookPending(await countPendingDeliveries(sql));
    return rows.length;
  }

  return {
    /**
     * Records `event` for every configured URL (nothing if webhooks are off or the event is not in
     * WEBHOOK_EVENTS). Pass the transaction that makes the event true, so both commit or neither does.
     */
    async emit(q: Queryable, event: WebhookEventName, data: Record<string, unknown>): Promise<void> {
      if (urls.length === 0 || !events.has(event)) return;
      const at = clock.now();
      const p = insertDeliveries(
        q,
        urls.map((url) => ({ event, payload: data, url, at })),
      );
      emitting.add(p);
      try {
        await p;
      } finally {
        emitting.delete(p);
      }
      poller.kick();
    },

    /** Starts the delivery worker (no-op without WEBHOOK_URLS). */
    start(): void {
      if (urls.length === 0 || !poller.stopped) return;
      abort = new AbortController();
      logger.info({ receivers: urls.map(hostOf), events: [...events], maxAttempts }, 'webhooks: delivering events');
      poller.start();
    },

    /** Stops the worker: attempts in flight are cut (and retried later, by whichever gateway runs next). */
    async stop(): Promise<void> {
      abort.abort();
      await Promise.allSettled([poller.stop(), ...emitting]);
    },

    runOnce,
  };
}

export type Notifier = ReturnType<typeof createNotifier>;
