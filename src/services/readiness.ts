/**
 * What /readyz reports: the database reachable with every migration applied, and Redis reachable when one
 * is configured. The probe itself (src/http/health.ts) only encodes the answer.
 */
import type { Redis } from 'ioredis';
import type { Sql } from '../store/db.js';
import { pendingMigrations } from '../store/migrate.js';

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, string>;
}

export function createReadiness(deps: {
  sql: Sql;
  redis: Redis | null;
  /** The local spool, shown in the details (it does not make the process unready: it is how it copes). */
  spool?: (() => { messages: number; bytes: number; oldest: string | null }) | null;
}) {
  return {
    /** Migrations not yet applied (an unreachable database throws). */
    pendingMigrations: () => pendingMigrations(deps.sql),

    async check(): Promise<ReadinessReport> {
      const checks: Record<string, string> = {};
      try {
        const pending = await pendingMigrations(deps.sql);
        checks.database = pending === 0 ? 'ok' : `${pending} migrations pending`;
      } catch {
        checks.database = 'unreachable';
      }
      if (deps.redis) {
        try {
          await deps.redis.ping();
          checks.redis = 'ok';
        } catch {
          checks.redis = 'unreachable';
        }
      } else {
        checks.redis = 'not configured (in-memory)';
      }
      const spool = deps.spool?.();
      if (spool)
        checks.spool =
          spool.messages === 0
            ? 'empty'
            : `${spool.messages} message(s), ${spool.bytes} bytes, oldest ${spool.oldest ?? '?'}: replayed once the database answers`;
      return { ready: checks.database === 'ok' && checks.redis !== 'unreachable', checks };
    },
  };
}

export type Readiness = ReturnType<typeof createReadiness>;
