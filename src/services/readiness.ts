/**
 * What /readyz reports: whether this process can do its job — the database reachable with every migration
 * applied, Redis as the limits need it — and not whether every dependency is perfect. The probe itself
 * (src/http/health.ts) only encodes the answer.
 *
 * - Probed, not queried per request: a background probe (every PROBE_INTERVAL_MS, started with the first
 *   check) runs the checks, each bounded by CHECK_TIMEOUT_MS, and /readyz answers the last result. So a
 *   database that hangs (connections open, nothing answered) cannot hold the readiness probe, and a
 *   balancer's probes never pile queries up: while a check is still unanswered no second one is sent, it
 *   reads "unreachable (no answer)".
 * - Redis away with RATE_LIMIT_REDIS_FAILURE=memory is `degraded`, and ready: the limits continue per
 *   process and every agent is served (failing every replica's probe at once would pull them all). With
 *   `closed` limited requests are refused, so it is not ready.
 * - Stopping (SIGTERM): not ready at once, whatever the checks say, so balancers move traffic away while
 *   the gateway still serves (SHUTDOWN_DRAIN).
 */
import type { Redis } from 'ioredis';
import type { Sql } from '../store/db.js';
import { pendingMigrations } from '../store/migrate.js';

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, string>;
}

export const PROBE_INTERVAL_MS = 1000;
export const CHECK_TIMEOUT_MS = 750;

export interface ReadinessDeps {
  sql: Sql;
  redis: Redis | null;
  /** RATE_LIMIT_REDIS_FAILURE: what a missing Redis means for this process. */
  redisFailure?: 'memory' | 'closed';
  intervalMs?: number;
  timeoutMs?: number;
  /** True while the agent path considers the database away (services/db-health.ts). */
  agentPathDown?: () => boolean;
  /** The local spool, shown in the details (it does not make the process unready: it is how it copes). */
  spool?: (() => { messages: number; bytes: number; oldest: string | null }) | null;
}

const TIMED_OUT = Symbol('timed out');

/**
 * One check at a time: a check whose previous run is still unanswered is not sent again (a hung database
 * would otherwise collect one query per probe); either way the caller waits at most `timeoutMs`.
 */
function boundedCheck<T>(run: () => Promise<T>, timeoutMs: number) {
  let inFlight: Promise<T> | null = null;
  return async (): Promise<T | typeof TIMED_OUT> => {
    inFlight ??= run().finally(() => (inFlight = null));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([inFlight, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

export function createReadiness(deps: ReadinessDeps) {
  const intervalMs = deps.intervalMs ?? PROBE_INTERVAL_MS;
  const timeoutMs = deps.timeoutMs ?? CHECK_TIMEOUT_MS;
  const redisFailure = deps.redisFailure ?? 'memory';
  const migrations = boundedCheck(() => pendingMigrations(deps.sql), timeoutMs);
  const redisPing = deps.redis ? boundedCheck(() => deps.redis!.ping(), timeoutMs) : null;

  let last: ReadinessReport | null = null;
  let probing: Promise<ReadinessReport> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopping = false;

  async function database(): Promise<string> {
    try {
      const pending = await migrations();
      if (pending === TIMED_OUT) return 'unreachable (no answer)';
      if (pending !== 0) return `${pending} migrations pending`;
      // Ready only once the agent path also sees the database again (it probes on its own while it is
      // down): one state for both, so a balancer never sends agents that would still be deferred.
      return deps.agentPathDown?.() ? 'unreachable (agent path recovering)' : 'ok';
    } catch {
      return 'unreachable';
    }
  }

  async function redis(): Promise<string> {
    if (!redisPing) return 'not configured (in-memory)';
    let ok: boolean;
    try {
      ok = (await redisPing()) !== TIMED_OUT;
    } catch {
      ok = false;
    }
    if (ok) return 'ok';
    return redisFailure === 'memory' ? 'degraded' : 'unreachable';
  }

  async function runChecks(): Promise<ReadinessReport> {
    const [db, r] = await Promise.all([database(), redis()]);
    const checks: Record<string, string> = { database: db, redis: r };
    const spool = deps.spool?.();
    if (spool)
      checks.spool =
        spool.messages === 0
          ? 'empty'
          : `${spool.messages} message(s), ${spool.bytes} bytes, oldest ${spool.oldest ?? '?'}: replayed once the database answers`;
    return { ready: db === 'ok' && r !== 'unreachable', checks };
  }

  /** One probe at a time; its result becomes the answer of /readyz. */
  function probe(): Promise<ReadinessReport> {
    probing ??= runChecks()
      .then((report) => (last = report))
      .finally(() => (probing = null));
    return probing;
  }

  function start(): void {
    if (timer) return;
    timer = setInterval(() => void probe(), intervalMs);
    timer.unref();
  }

  function withShutdown(report: ReadinessReport): ReadinessReport {
    if (!stopping) return report;
    return { ready: false, checks: { ...report.checks, shutdown: 'stopping' } };
  }

  return {
    /** Migrations not yet applied (an unreachable database throws). */
    pendingMigrations: () => pendingMigrations(deps.sql),

    /**
     * The last probe's report (the first call starts the probing and waits for the first result, itself
     * bounded by the check timeout): answers within about `timeoutMs` whatever the database does.
     */
    async check(): Promise<ReadinessReport> {
      start();
      return withShutdown(last ?? (await probe()));
    },

    /** SIGTERM: not ready from now on. */
    markStopping(): void {
      stopping = true;
    },

    get stopping(): boolean {
      return stopping;
    },

    /** Stops the background probe (the deps are closing). */
    close(): void {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

export type Readiness = ReturnType<typeof createReadiness>;
