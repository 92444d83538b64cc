/**
 * Forwarding accepted inventories to GLPI, at least once, through the outbox (src/store/outbox-store.ts).
 *
 * What is sent: an approved device's inventory submissions (never network-discovery/inventory messages:
 * they describe other devices and arrive without a device the gateway vetted). Rows are written in the
 * transaction that accepted the inventory, or in the approval that released it — then, per device, the
 * newest held FULL inventory first and the partials that followed it; older held inventories, superseded
 * by that full one, are skipped.
 *
 * How: the outbox worker (outbox-worker.ts; UPSTREAM_WORKERS in each gateway, or `agent-gate forward`; any
 * number of replicas) claims due rows with FOR UPDATE SKIP LOCKED, only the oldest unsent row of each device, so a device never has two
 * inventories in flight and GLPI gets them in arrival order. Each is POSTed to UPSTREAM_URL as received
 * (but for the tag: with UPSTREAM_TAG=key, the device credential's tag replaces the agent's, upstream-body.ts):
 *
 *   POST <UPSTREAM_URL>
 *   Content-Type: <as the agent sent it>      (application/x-compress-zlib when a redaction re-encoded a raw-deflate body)
 *   User-Agent: <the agent's>                  GLPI-Agent-ID: <the agent's, when it sent one>
 *   X-Forwarded-For: <the agent's address>     Authorization: Basic … | Bearer … (UPSTREAM_USER / UPSTREAM_CLIENT_ID)
 *   <the stored bytes>
 *
 * Answers: 2xx = delivered. Network errors, timeouts, 5xx and 429 are retried without limit, exponential
 * back-off (5 s × 2^(attempt-1), at most 10 min apart) with jitter, so nothing accepted is lost while GLPI is
 * down. Anything else (4xx, 3xx: redirects are not followed) is retried the same way until
 * UPSTREAM_MAX_ATTEMPTS attempts, then the row is a dead letter with GLPI's answer kept (last_status,
 * last_error, last_response), visible and retryable (admin API, `agent-gate outbox`). A dead letter does not
 * hold back its device's later inventories.
 *
 * At least once: a worker that crashes (or loses the database) after GLPI answered but before the row is
 * marked leaves it in flight; when its lease ends (2 × timeout + 60 s) another worker sends it again. That
 * is the only duplicate: marks apply only to the claim that made them (fenced by attempt), and a row is
 * never claimed twice at once.
 *
 * Decided by the database: whether rows are written is the `forwarding` switch (outbox-store.ts), which
 * every forwarding process turns on as it starts (enable()), so an approval from any process enqueues;
 * the workers find new rows by polling (every second when idle). GLPI down: the circuit breaker
 * (breaker.ts) pauses the workers behind one probe. UPSTREAM_RATE (upstream-rate.ts) paces the sends,
 * shared through Redis. Each forwarding process keeps a row in `forwarders` (`agent-gate forward status`).
 */
import os from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { type AuditAction, insertAudit } from '../store/auth-store.js';
import type { Queryable, Sql } from '../store/db.js';
import {
  type ClaimedRow,
  type OutboxItem,
  type OutboxState,
  OUTBOX_STATES,
  type BackfillResult,
  type ForwarderRow,
  type ForwardingSwitch,
  backfillOutbox,
  claimDue,
  deleteForwarder,
  deleteOutboxItem,
  disableForwarding,
  dueAgainAfterOutage,
  enableForwarding,
  listForwarders,
  listOutbox,
  readForwarding,
  upsertForwarder,
  lockOutboxItem,
  markDead,
  markDelivered,
  markRetry,
  outboxStats,
  requeueOutboxItem,
} from '../store/outbox-store.js';
import type { Actor } from './admin.js';
import { type BreakerState, createBreaker } from './breaker.js';
import { createGlpiUpstream } from './glpi-upstream.js';
import { createRateGate } from './upstream-rate.js';
import { type AttemptResult, type Backoff, backoffMs, createOutboxWorker, hostOf } from './outbox-worker.js';

/** The outbox's states (filters name them; the admin API documents them). */
export { OUTBOX_STATES };

export { forwardContentType, upstreamTokenUrl } from './glpi-upstream.js';

export const UPSTREAM_TIMEOUT_MS = 60_000;
/** 5 s, 10 s, 20 s… at most 10 min apart. */
export const FORWARD_BACKOFF: Backoff = { baseMs: 5000, capMs: 600_000 };

export type ForwarderConfig = Pick<
  Config,
  | 'upstreamUrl'
  | 'upstreamUser'
  | 'upstreamPassword'
  | 'upstreamClientId'
  | 'upstreamClientSecret'
  | 'upstreamMaxAttempts'
  | 'upstreamWorkers'
  | 'upstreamRate'
  | 'upstreamTag'
>;

/** How often a forwarding process refreshes its row in `forwarders`. */
export const HEARTBEAT_MS = 30_000;

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
  /** UPSTREAM_RATE is shared through it when set. */
  redis?: Redis | null;
  /** This process in `forwarders` (default host:pid). */
  name?: string;
}

/** Delay before the next attempt after `attempts` failed ones: 5 s × 2^(attempts-1), capped, minus up to 20 % jitter. */
export function forwardBackoffMs(attempts: number, random = Math.random()): number {
  return backoffMs(attempts, FORWARD_BACKOFF, random);
}

/** What the outbox keeps of an attempt. */
const record = (r: AttemptResult) => ({ status: r.status, error: r.error, response: r.response ?? null });

export function createForwarder(deps: ForwarderDeps) {
  const { sql, clock, logger, metrics, config } = deps;
  const url = config.upstreamUrl;
  const timeoutMs = deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
  const maxAttempts = config.upstreamMaxAttempts;
  let workers = config.upstreamWorkers;

  const upstream = url
    ? createGlpiUpstream({
        url,
        config,
        clock,
        logger,
        signal: (): AbortSignal => worker.signal(),
        networkError: (err): string => worker.networkError(err),
        onTag: (result) => metrics?.upstreamTag(result),
      })
    : null;
  const name = deps.name ?? `${os.hostname()}:${process.pid}`;
  const startedAt = clock.now();
  const rate = createRateGate({
    rate: config.upstreamRate ?? 0,
    redis: deps.redis ?? null,
    key: `agentgate:upstream-rate:${hostOf(url)}`,
    logger,
  });
  let breakerSince: Date | null = null;

  const row = (): ForwarderRow => ({
    name,
    upstreamHost: hostOf(url),
    workers,
    breaker: breaker.state,
    breakerSince,
    lastError: breaker.lastError,
    startedAt,
    seenAt: clock.now(),
  });
  const heartbeat = () =>
    upsertForwarder(sql, row()).catch((err: unknown) => logger.warn({ err }, 'forwarder: heartbeat not recorded'));

  const breaker = createBreaker({
    clock,
    onChange(state: BreakerState, error: string | null) {
      breakerSince = clock.now();
      metrics?.forwardBreaker(state);
      if (state === 'open') {
        logger.error(
          { upstream: hostOf(url), error },
          'GLPI unreachable: forwarding paused behind one probe at a time (circuit breaker open)',
        );
      } else {
        logger.warn({ upstream: hostOf(url) }, 'GLPI answers again: forwarding resumes (circuit breaker closed)');
        // What backed off on its own during the outage is due now, in per-device order as always.
        dueAgainAfterOutage(sql, clock.now()).then(
          () => worker.kick(),
          (err: unknown) => logger.warn({ err }, 'forwarder: rows not made due again after the outage'),
        );
      }
      void heartbeat();
    },
  });

  const worker = createOutboxWorker<ClaimedRow>({
    name: 'forwarder',
    logger,
    clock,
    queue: {
      claim: (c) => claimDue(sql, c),
      markDelivered: (row, r, at) => markDelivered(sql, row, record(r), at),
      markRetry: (row, r, next) => markRetry(sql, row, record(r), next),
      markGivenUp: (row, r) => markDead(sql, row, record(r)),
    },
    send: async (row): Promise<AttemptResult> => {
      await rate.take(worker.abortSignal());
      return upstream!.send(row);
    },
    timeoutMs,
    /** Long enough that a live worker always finishes (token call + send + mark) before another may take the row. */
    leaseMs: 2 * timeoutMs + 60_000,
    pollMs: deps.pollMs ?? 1000,
    backoff: FORWARD_BACKOFF,
    limits: { transient: Infinity, refused: maxAttempts },
    concurrency: () => workers,
    describe: (row) => ({ outbox: row.id, deviceid: row.deviceid, submission: row.submissionId }),
    messages: {
      delivered: 'inventory forwarded to GLPI',
      retry: 'forwarding to GLPI failed; will retry',
      'give-up': 'GLPI refused an inventory: dead letter (agent-gate outbox list --state dead)',
    },
    onRecorded: (_row, verdict) => metrics?.outboxAttempt(verdict === 'give-up' ? 'dead' : verdict),
    breaker,
  });
  let heartbeatTimer: NodeJS.Timeout | null = null;

  async function audit(tx: Queryable, action: AuditAction, before: OutboxItem, after: unknown, actor: Actor) {
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

    /**
     * Turns the database's forwarding switch on (a process with UPSTREAM_URL does as it starts, workers
     * or not): from then on every approval and accepted inventory of an approved device is enqueued,
     * whichever process records it.
     */
    async enable(): Promise<ForwardingSwitch> {
      const s = await enableForwarding(sql, name, clock.now());
      return s;
    },

    /** Starts the worker (no-op without UPSTREAM_URL or with no workers); `n` overrides UPSTREAM_WORKERS. */
    start(n?: number): void {
      if (n !== undefined) workers = n;
      if (!upstream || workers < 1 || !worker.stopped) return;
      logger.info(
        { upstream: hostOf(url), auth: upstream.auth, workers, maxAttempts, rate: rate.rate || 'unlimited' },
        'forwarding accepted inventories to GLPI',
      );
      metrics?.forwardBreaker(breaker.state);
      void heartbeat();
      heartbeatTimer = setInterval(() => void heartbeat(), HEARTBEAT_MS);
      heartbeatTimer.unref();
      worker.start();
    },

    /** Stops the worker: sends in flight are cut (and sent again after their lease, by whichever worker runs next). */
    async stop(): Promise<void> {
      const running = !worker.stopped;
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      heartbeatTimer = null;
      await worker.stop();
      if (running) await deleteForwarder(sql, name).catch(() => {});
    },

    /** The circuit breaker of this process. */
    get breaker(): { state: BreakerState; lastError: string | null; nextProbeAt: Date | null } {
      return { state: breaker.state, lastError: breaker.lastError, nextProbeAt: breaker.nextProbeAt };
    },

    /** The switch, the outbox, and every forwarding process with its breaker (`agent-gate forward status`). */
    async status(): Promise<{
      forwarding: ForwardingSwitch;
      outbox: Awaited<ReturnType<typeof outboxStats>>;
      forwarders: (ForwarderRow & { alive: boolean })[];
    }> {
      const now = clock.now().getTime();
      const [forwarding, outbox, rows] = await Promise.all([
        readForwarding(sql),
        outboxStats(sql, clock.now()),
        listForwarders(sql),
      ]);
      return {
        forwarding,
        outbox,
        forwarders: rows.map((r) => ({ ...r, alive: now - r.seenAt.getTime() < 3 * HEARTBEAT_MS })),
      };
    },

    /**
     * Enqueues the inventories of approved devices accepted since `since` that were never put in the outbox
     * (accepted before forwarding was on). Idempotent; audited. Refused while forwarding is off.
     */
    async backfill(since: Date, actor: Actor): Promise<BackfillResult & { since: Date }> {
      const r = await sql.begin(async (tx) => {
        if (!(await readForwarding(tx)).enabled)
          throw new AppError(
            'conflict',
            'Forwarding is not enabled in this database: start a gateway (or `agent-gate forward`) with UPSTREAM_URL first',
          );
        const result = await backfillOutbox(tx, since, clock.now());
        await insertAudit(tx, {
          at: clock.now(),
          actor: actor.name,
          action: 'outbox.backfill',
          targetType: 'outbox',
          targetId: null,
          remoteAddr: actor.remoteAddr,
          before: null,
          after: { since: since.toISOString(), ...result },
          reason: null,
        });
        return result;
      });
      if (r.enqueued > 0) worker.kick();
      return { since, ...r };
    },

    /** Turns the switch off: nothing new is enqueued (what waits stays, and is still sent). Audited. */
    async disable(actor: Actor): Promise<ForwardingSwitch> {
      return sql.begin(async (tx) => {
        const before = await readForwarding(tx);
        const after = await disableForwarding(tx);
        await insertAudit(tx, {
          at: clock.now(),
          actor: actor.name,
          action: 'forwarding.disable',
          targetType: 'forwarding',
          targetId: null,
          remoteAddr: actor.remoteAddr,
          before,
          after,
          reason: null,
        });
        return after;
      });
    },

    /** Sends every due row once (up to `limit`, one per device, in parallel); returns how many were attempted. */
    runOnce: (limit?: number): Promise<number> => (upstream ? worker.runOnce(limit) : Promise.resolve(0)),

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
