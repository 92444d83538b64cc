/**
 * Webhook notifications, delivered at least once. emit() writes one delivery row per configured URL in the
 * caller's transaction (an outbox: once what caused the event is committed, its notification cannot be
 * lost); the outbox worker (outbox-worker.ts) in each gateway claims due rows (FOR UPDATE SKIP LOCKED, so
 * replicas never send the same attempt twice; marks fenced by attempt) and this module says what to POST
 * and what an answer means. 2xx = delivered; network errors, timeouts (10 s), 408, 429 and 5xx are retried
 * with exponential back-off and jitter (5 s × 2^(attempt-1), at most 1 h apart) until WEBHOOK_MAX_ATTEMPTS;
 * other answers (3xx — redirects are not followed — and 4xx) are final. A delivery that is given up stays
 * in webhook_deliveries with last_status / last_error.
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
import {
  type AttemptResult,
  type Backoff,
  classifyStatus,
  createOutboxWorker,
  hostOf,
  httpErrorText,
} from './outbox-worker.js';
import { FAILED_CREDENTIAL_TYPES, credentialOf } from './security-events.js';

export const WEBHOOK_TIMEOUT_MS = 10_000;
/** 5 s, 10 s, 20 s… at most 1 h apart. */
export const WEBHOOK_BACKOFF: Backoff = { baseMs: 5000, capMs: 3_600_000 };
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

/** Worth another attempt: the receiver is busy or broken, not refusing. */
const retryable = (status: number) => status >= 500 || status === 429 || status === 408;

export function createNotifier(deps: NotifierDeps) {
  const { sql, clock, logger, metrics } = deps;
  const urls = deps.config.webhookUrls ?? [];
  const events = new Set<string>(deps.config.webhookEvents);
  const secret = deps.config.webhookSecret ?? '';
  const maxAttempts = deps.config.webhookMaxAttempts;
  const batchSize = deps.batchSize ?? 20;
  /** emit() calls in flight, so stop() can let them finish before the pool closes. */
  const emitting = new Set<Promise<unknown>>();

  async function send(row: DeliveryRow): Promise<AttemptResult> {
    const body = JSON.stringify({
      id: String(row.id),
      event: row.event,
      createdAt: row.createdAt.toISOString(),
      data: row.payload,
    });
    const timestamp = String(Math.floor(clock.now().getTime() / 1000));
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
      signal: worker.signal(),
    });
    const outcome = classifyStatus(res.status, retryable);
    if (outcome === 'delivered') {
      await res.body?.cancel();
      return { outcome, status: res.status, error: null };
    }
    // The answer's body only matters for the error message: the start of it (read within the same timeout).
    const text = await res.text().catch(() => '');
    return { outcome, status: res.status, error: httpErrorText(res.status, text) };
  }

  const worker = createOutboxWorker<DeliveryRow>({
    name: 'webhook worker',
    logger,
    clock,
    queue: {
      claim: (c) => claimDueDeliveries(sql, { ...c, urls, maxAttempts }),
      markDelivered: (row, r, at) => markDelivered(sql, row, r.status!, at),
      markRetry: (row, r, next) => markFailed(sql, row, { status: r.status, error: r.error, nextAttemptAt: next }),
      markGivenUp: (row, r) => markFailed(sql, row, { status: r.status, error: r.error, nextAttemptAt: null }),
    },
    send,
    timeoutMs: deps.timeoutMs ?? WEBHOOK_TIMEOUT_MS,
    leaseMs: LEASE_MS,
    pollMs: deps.pollMs ?? 2000,
    backoff: WEBHOOK_BACKOFF,
    limits: { transient: maxAttempts, refused: 1 },
    concurrency: () => batchSize,
    describe: (row) => ({ delivery: row.id, event: row.event, receiver: hostOf(row.url) }),
    messages: {
      delivered: 'webhook delivered',
      retry: 'webhook delivery failed; will retry',
      'give-up': 'webhook delivery given up: see webhook_deliveries.last_error',
    },
    onRecorded: (row, verdict) => metrics?.webhookDelivery(row.event, verdict === 'give-up' ? 'failed' : verdict),
    afterRun: async () => metrics?.setWebhookPending(await countPendingDeliveries(sql)),
  });

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
      worker.kick();
    },

    /** Starts the delivery worker (no-op without WEBHOOK_URLS). */
    start(): void {
      if (urls.length === 0 || !worker.stopped) return;
      logger.info({ receivers: urls.map(hostOf), events: [...events], maxAttempts }, 'webhooks: delivering events');
      worker.start();
    },

    /** Stops the worker: attempts in flight are cut (and retried later, by whichever gateway runs next). */
    async stop(): Promise<void> {
      await Promise.allSettled([worker.stop(), ...emitting]);
    },

    /** Sends every due delivery once (up to one batch); returns how many were attempted. */
    runOnce: (): Promise<number> => (urls.length === 0 ? Promise.resolve(0) : worker.runOnce()),
  };
}

export type Notifier = ReturnType<typeof createNotifier>;

/**
 * security.spike: failed credentials (invalid_credential, invalid_client) counted per source address and
 * per credential they name (a client id, a certificate fingerprint) within SPIKE_WINDOW, in the shared
 * counters (Redis with REDIS_URL, so every replica adds to the same totals). When a count passes
 * SECURITY_SPIKE_FAILURES — exactly once per window and subject — an error log line and a `security.spike`
 * webhook: `{scope: "address" | "credential", subject, failures, threshold, windowSeconds, lastType}`.
 */
export interface SecuritySpikeDeps {
  count(scope: string): Promise<number>;
  threshold: number;
  windowSeconds: number;
  logger: Logger;
  emit(event: 'security.spike', data: Record<string, unknown>): Promise<void>;
}

export function createSecuritySpike(deps: SecuritySpikeDeps) {
  async function check(scope: 'address' | 'credential', subject: string, lastType: string): Promise<void> {
    const n = await deps.count(`${scope}:${subject}`);
    if (n !== deps.threshold + 1) return;
    const data = {
      scope,
      subject,
      failures: n,
      threshold: deps.threshold,
      windowSeconds: deps.windowSeconds,
      lastType,
    };
    deps.logger.error(
      data,
      `SECURITY SPIKE: ${n} failed credentials ${scope === 'address' ? 'from' : 'naming'} ${subject} within ${deps.windowSeconds}s`,
    );
    await deps.emit('security.spike', data);
  }
  return {
    /** Called for every security event recorded; only failed credentials count. */
    async observe(kind: string, e: { remoteAddr: string | null; details: Record<string, unknown> }): Promise<void> {
      if (!FAILED_CREDENTIAL_TYPES.has(kind)) return;
      if (e.remoteAddr) await check('address', e.remoteAddr, kind);
      const credential = credentialOf(e.details);
      if (credential) await check('credential', credential, kind);
    },
  };
}
