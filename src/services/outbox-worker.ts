/**
 * The outbox worker behind webhooks (notifier.ts) and forwarding to GLPI (forwarder.ts): one loop that
 * claims due rows with a lease, sends them side by side, classifies each outcome (delivered, retry, give
 * up), records it, backs off exponentially with jitter, and reports every recorded attempt (metrics, logs
 * naming only the receiver's host). A feature supplies what a row is, how to send it, which answers are
 * worth retrying and its store's queries; the SQL stays in src/store/.
 *
 * Invariant: a row is marked only by the claim that holds it. Every claim counts an attempt and every mark
 * is fenced by that attempt number, so a worker whose lease ended while it was sending, and whose row
 * another worker claimed again, can neither overwrite the newer attempt's result nor cut its lease short:
 * its result is dropped (and logged). At least once still holds: a row whose worker died or stalled is due
 * again when its lease ends.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { createPoller } from './poller.js';

/** What an attempt's outcome means: delivered, worth trying again (network, timeout, 5xx…), or refused. */
export type Outcome = 'delivered' | 'transient' | 'refused';
/** What the worker makes of it: mark delivered, reschedule, or give up (undelivered / dead letter). */
export type Verdict = 'delivered' | 'retry' | 'give-up';

export interface AttemptResult {
  outcome: Outcome;
  status: number | null;
  error: string | null;
  /** The start of the receiver's answer, for features that keep it. */
  response?: string | null;
}

/** What a claim holds: the row and the attempt it counted, which fences every mark. */
export interface Claim {
  id: number;
  attempts: number;
}

/** A feature's queries (src/store/). Marks return false when the row is no longer at `row.attempts`. */
export interface OutboxQueue<R extends Claim> {
  claim(o: { now: Date; leaseUntil: Date; limit: number }): Promise<R[]>;
  markDelivered(row: R, r: AttemptResult, at: Date): Promise<boolean>;
  markRetry(row: R, r: AttemptResult, next: Date): Promise<boolean>;
  markGivenUp(row: R, r: AttemptResult, at: Date): Promise<boolean>;
}

/** Exponential back-off: `baseMs` × 2^(attempts-1), at most `capMs`. */
export interface Backoff {
  baseMs: number;
  capMs: number;
}

/** Attempts after which a row is given up, by outcome (Infinity = never). */
export interface RetryLimits {
  transient: number;
  refused: number;
}

/** Delay before the next attempt after `attempts` failed ones, minus up to 20 % jitter. */
export function backoffMs(attempts: number, b: Backoff, random = Math.random()): number {
  const exponent = Math.max(0, Math.min(attempts - 1, 30));
  return Math.round(Math.min(b.capMs, b.baseMs * 2 ** exponent) * (1 - 0.2 * random));
}

export function verdictOf(outcome: Outcome, attempts: number, limits: RetryLimits): Verdict {
  if (outcome === 'delivered') return 'delivered';
  return attempts < limits[outcome] ? 'retry' : 'give-up';
}

/** 2xx = delivered; `retryable` statuses are transient; anything else (3xx, other 4xx) is a refusal. */
export function classifyStatus(status: number, retryable: (status: number) => boolean): Outcome {
  if (status >= 200 && status < 300) return 'delivered';
  return retryable(status) ? 'transient' : 'refused';
}

/** `HTTP <status>`, then `: <detail>` on one line (at most 200 characters of it) when there is one. */
export function httpErrorText(status: number, detail?: string | null): string {
  const d = (detail ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);
  return `HTTP ${status}${d ? `: ${d}` : ''}`;
}

/** The text of a request that got no answer: a timeout, a stop, or the network error and its cause. */
export function networkErrorText(err: unknown, timeoutMs: number, stopping: string | null): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `timeout after ${timeoutMs / 1000} s`;
  if (stopping) return `aborted: ${stopping} stopping`;
  return `${e.message}${e.cause ? `: ${e.cause.code ?? e.cause.message}` : ''}`;
}

/** The receiver's host, for logs: URLs may carry a token in their path or credentials. */
export function hostOf(url: string | null | undefined): string {
  if (!url) return '(none)';
  try {
    return new URL(url).host;
  } catch {
    return '(bad url)';
  }
}

export interface OutboxWorkerOptions<R extends Claim> {
  /** In logs and in the error text of an attempt cut by stop(): "webhook worker", "forwarder". */
  name: string;
  logger: Logger;
  clock: Clock;
  queue: OutboxQueue<R>;
  /** One attempt. May throw for a request that got no answer: recorded as transient, networkErrorText. */
  send(row: R): Promise<AttemptResult>;
  /** Per request (see signal()). */
  timeoutMs: number;
  /** How long a claimed row is left to its worker: longer than any live attempt, mark included. */
  leaseMs: number;
  /** Idle polling interval. */
  pollMs: number;
  backoff: Backoff;
  limits: RetryLimits;
  /** Rows claimed, and sent side by side, per run; read at each run. */
  concurrency: () => number;
  /** Log fields naming a row (never a full receiver URL). */
  describe(row: R): Record<string, unknown>;
  /** Log message per verdict. */
  messages: Record<Verdict, string>;
  /** Once per recorded attempt (not for a result dropped by the fence): metrics. */
  onRecorded?(row: R, verdict: Verdict): void;
  /** After each run, e.g. a gauge read from the database. */
  afterRun?(): Promise<void>;
  /**
   * A circuit breaker (forwarder.ts: breaker.ts): how many rows may be claimed now, what the claim gave,
   * and every attempt's outcome (results dropped by the fence included: GLPI's answer is news either way).
   */
  breaker?: {
    allowance(wanted: number): number;
    claimed(n: number): void;
    record(outcome: Outcome, error: string | null): void;
  };
}

export function createOutboxWorker<R extends Claim>(o: OutboxWorkerOptions<R>) {
  const { logger, clock, queue } = o;
  let abort = new AbortController();
  const poller = createPoller({
    name: o.name,
    logger,
    pollMs: o.pollMs,
    batchSize: o.concurrency,
    runOnce: () => runOnce(),
  });

  /** For each request of an attempt: cut at the timeout, or when the worker stops. */
  const signal = () => AbortSignal.any([AbortSignal.timeout(o.timeoutMs), abort.signal]);
  const networkError = (err: unknown) => networkErrorText(err, o.timeoutMs, abort.signal.aborted ? o.name : null);

  async function attempt(row: R): Promise<AttemptResult> {
    try {
      return await o.send(row);
    } catch (err) {
      return { outcome: 'transient', status: null, error: networkError(err) };
    }
  }

  /** Writes the verdict through the fence; false = another claim holds the row, nothing was changed. */
  async function record(row: R, r: AttemptResult, verdict: Verdict, at: Date, next: Date | null): Promise<boolean> {
    if (verdict === 'delivered') return queue.markDelivered(row, r, at);
    if (verdict === 'retry') return queue.markRetry(row, r, next!);
    return queue.markGivenUp(row, r, at);
  }

  async function deliver(row: R): Promise<void> {
    const r = await attempt(row);
    o.breaker?.record(r.outcome, r.error);
    const at = clock.now();
    const verdict = verdictOf(r.outcome, row.attempts, o.limits);
    const next = verdict === 'retry' ? new Date(at.getTime() + backoffMs(row.attempts, o.backoff)) : null;
    const log = { ...o.describe(row), attempt: row.attempts, status: r.status };
    if (!(await record(row, r, verdict, at, next))) {
      logger.warn(
        { ...log, verdict, error: r.error },
        `${o.name}: attempt outlived its lease and the row was claimed again; its result is dropped`,
      );
      return;
    }
    o.onRecorded?.(row, verdict);
    if (verdict === 'delivered') logger.debug(log, o.messages.delivered);
    else if (verdict === 'retry') logger.warn({ ...log, error: r.error, nextAttemptAt: next }, o.messages.retry);
    else logger.error({ ...log, error: r.error, response: r.response?.slice(0, 200) }, o.messages['give-up']);
  }

  /** Claims what is due (up to `limit`) and attempts each once, side by side; returns how many it claimed. */
  async function runOnce(wanted = Math.max(1, o.concurrency())): Promise<number> {
    const limit = o.breaker ? o.breaker.allowance(wanted) : wanted;
    if (limit === 0) {
      await o.afterRun?.();
      return 0;
    }
    const now = clock.now();
    let rows: R[] = [];
    try {
      rows = await queue.claim({ now, leaseUntil: new Date(now.getTime() + o.leaseMs), limit });
    } finally {
      o.breaker?.claimed(rows.length);
    }
    const results = await Promise.allSettled(rows.map(deliver));
    for (const r of results) {
      // The row stays claimed until its lease ends, then it is sent again: at least once holds.
      if (r.status === 'rejected') logger.error({ err: r.reason }, `${o.name}: attempt result not recorded`);
    }
    await o.afterRun?.();
    return rows.length;
  }

  return {
    get stopped(): boolean {
      return poller.stopped;
    },
    start(): void {
      if (!poller.stopped) return;
      abort = new AbortController();
      poller.start();
    },
    /** Stops polling; requests in flight are cut (their rows are attempted again later). */
    async stop(): Promise<void> {
      abort.abort();
      await poller.stop();
    },
    /** New work was committed: look soon. */
    kick: () => poller.kick(),
    runOnce,
    signal,
    /** Aborted when the worker stops (no timeout): for waits before a request. */
    abortSignal: (): AbortSignal => abort.signal,
    networkError,
  };
}

export type OutboxWorker = ReturnType<typeof createOutboxWorker>;
