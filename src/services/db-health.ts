/**
 * Whether PostgreSQL answers, as this process last saw it. A request that found it away (an unavailable
 * error, or no answer within its deadline) marks it down; while it is down, agent requests do not wait for
 * it (credentials from the outage cache, inventories to the spool, PROLOG/CONTACT deferred) and one probe
 * (`select 1`) runs every PROBE_MS until it answers, which marks it up again.
 */
import type { Logger } from 'pino';
import { AppError, isDatabaseUnavailable } from '../errors.js';

export const PROBE_MS = 250;
/** A probe that takes longer than this counts as "not answering". */
export const PROBE_DEADLINE_MS = 1000;

/** Rejects with `unavailable` when `p` does not settle within `ms` (a silent network, a stuck pool). */
export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AppError('unavailable', 'Service temporarily unavailable')), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** An error that means "the database did not answer" (away, or past a deadline). */
export function isUnavailable(err: unknown): boolean {
  return (err instanceof AppError && err.code === 'unavailable') || isDatabaseUnavailable(err);
}

export function createDbHealth(deps: { probe: () => Promise<unknown>; logger: Logger }) {
  let downSince: number | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let waiters: (() => void)[] = [];

  async function probeOnce(): Promise<void> {
    timer = null;
    if (stopped || downSince === null) return;
    try {
      await withDeadline(deps.probe(), PROBE_DEADLINE_MS);
      markUp();
    } catch {
      if (!stopped) timer = setTimeout(() => void probeOnce(), PROBE_MS);
      timer?.unref();
    }
  }

  function markUp(): void {
    if (downSince === null) return;
    deps.logger.warn({ awayMs: Date.now() - downSince }, 'database answers again');
    downSince = null;
    const w = waiters;
    waiters = [];
    for (const fn of w) fn();
  }

  let confirming = false;

  function setDown(err: unknown): void {
    if (downSince !== null || stopped) return;
    downSince = Date.now();
    deps.logger.warn(
      { err: err instanceof AppError ? (err.cause ?? err.publicMessage) : err },
      'database unavailable: credentials from memory, inventories to the spool, PROLOG/CONTACT deferred',
    );
    if (!timer) timer = setTimeout(() => void probeOnce(), PROBE_MS);
    timer.unref();
  }

  return {
    get down(): boolean {
      return downSince !== null;
    },
    /**
     * A request found the database away. Neither a connection error nor a missed deadline says so for sure:
     * a killed connection is replaced at once by the driver, and one slow query on a busy machine is not an
     * outage. So the database is marked down only if a probe (on a fresh or healthy connection) fails too;
     * a single lost connection must not defer every PROLOG of the process. (Measured with connections killed
     * every 150-400 ms: marking down on the error itself deferred nearly every PROLOG while the database
     * answered.)
     */
    markDown(err: unknown): void {
      if (downSince !== null || stopped) return;
      if (confirming) return;
      confirming = true;
      withDeadline(deps.probe(), PROBE_DEADLINE_MS)
        .catch(() => setDown(err))
        .finally(() => {
          confirming = false;
        });
    },
    markUp,
    /** Resolves true once the database answers again (at once if it does), false after `ms`. */
    waitUp(ms: number): Promise<boolean> {
      if (downSince === null) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== done);
          resolve(false);
        }, ms);
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        waiters.push(done);
      });
    },
    stop(): void {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

export type DbHealth = ReturnType<typeof createDbHealth>;
