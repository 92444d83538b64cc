/**
 * Retention: what a fleet sends is kept for a bounded time, so the database stops growing once the fleet is
 * steady (issue 17). A pass deletes, in this order, submissions past SUBMISSION_RETENTION (never a device's
 * latest full inventory and the partials after it, nothing held, nothing GLPI has not got), registrations
 * past REGISTRATION_RETENTION (never one a kept submission points at), and, only with AUDIT_RETENTION set,
 * old audit log entries and security events.
 *
 * Deletion is by bounded batches (housekeeping-store.ts), each one short statement, not by time partitions:
 * submissions.registration_id, inventories.full_submission_id and outbox.submission_id are foreign keys that
 * a partitioned table (whose keys must include the partition column) cannot take, and what is kept is per
 * device, not per month (a device's latest full inventory may be a year old). The space freed is reused by
 * autovacuum, so at a steady fleet the size stays flat from one pass to the next.
 *
 * One replica at a time runs a pass (a PostgreSQL session advisory lock; others count the pass as skipped).
 * The embedded database is single-process: no lock there, and the pass shares the one connection.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Sql } from '../store/db.js';
import type { Queryable } from '../store/db.js';
import {
  type BatchResult,
  CURSOR_START,
  type RetentionCursor,
  deleteAuditBatch,
  deleteRegistrationsBatch,
  deleteSubmissionsBatch,
  releaseRetentionLock,
  tryRetentionLock,
} from '../store/housekeeping-store.js';

export interface RetentionSettings {
  registrationSeconds: number;
  submissionSeconds: number;
  /** unset: audit log and security events are kept forever */
  auditSeconds?: number;
}

export interface RetentionDeps extends RetentionSettings {
  sql: Sql;
  /** Take the advisory lock on a reserved connection (PostgreSQL); false for the embedded database. */
  lock: boolean;
  clock: Clock;
  logger: Logger;
  metrics?: {
    retentionDeleted(table: string, n: number): void;
    retentionPass(outcome: 'done' | 'skipped' | 'failed', seconds?: number): void;
  };
  /** Rows looked at per statement: registrations/audit, and submissions (each carries a body). */
  batch?: number;
  submissionBatch?: number;
  /** Time between passes (the first runs a minute after start). */
  intervalMs?: number;
}

export interface RetentionReport {
  submissions: number;
  registrations: number;
  auditLog: number;
  securityEvents: number;
  /** statements run */
  batches: number;
  seconds: number;
}

export const RETENTION_BATCH = 5000;
export const RETENTION_SUBMISSION_BATCH = 1000;

export function createRetention(deps: RetentionDeps) {
  const batch = deps.batch ?? RETENTION_BATCH;
  const submissionBatch = deps.submissionBatch ?? RETENTION_SUBMISSION_BATCH;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;

  /** Runs `step` from the start until a batch looks at fewer rows than asked (nothing left past the cursor). */
  async function drain(
    size: number,
    step: (after: RetentionCursor) => Promise<BatchResult>,
    counted: { batches: number },
  ): Promise<number> {
    let after = CURSOR_START;
    let deleted = 0;
    while (!stopped) {
      const r = await step(after);
      counted.batches++;
      deleted += r.deleted;
      if (r.scanned < size) break;
      after = r.next;
    }
    return deleted;
  }

  async function pass(q: Queryable): Promise<Omit<RetentionReport, 'seconds'>> {
    const now = deps.clock.now().getTime();
    const counted = { batches: 0 };
    const subBefore = new Date(now - deps.submissionSeconds * 1000);
    const regBefore = new Date(now - deps.registrationSeconds * 1000);
    // Submissions first: the registrations they held on to can then go in the same pass.
    const submissions = await drain(
      submissionBatch,
      (after) => deleteSubmissionsBatch(q, subBefore, after, submissionBatch),
      counted,
    );
    const registrations = await drain(batch, (after) => deleteRegistrationsBatch(q, regBefore, after, batch), counted);
    let auditLog = 0;
    let securityEvents = 0;
    if (deps.auditSeconds !== undefined) {
      const auditBefore = new Date(now - deps.auditSeconds * 1000);
      auditLog = await drain(batch, () => deleteAuditBatch(q, 'audit_log', auditBefore, batch), counted);
      securityEvents = await drain(batch, () => deleteAuditBatch(q, 'security_events', auditBefore, batch), counted);
    }
    return { submissions, registrations, auditLog, securityEvents, batches: counted.batches };
  }

  /** One pass; null when another replica holds the lock. */
  async function runOnce(): Promise<RetentionReport | null> {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      let report: Omit<RetentionReport, 'seconds'> | null;
      if (deps.lock) {
        const conn = await deps.sql.reserve();
        try {
          if (!(await tryRetentionLock(conn))) report = null;
          else
            try {
              report = await pass(conn);
            } finally {
              await releaseRetentionLock(conn);
            }
        } finally {
          conn.release();
        }
      } else report = await pass(deps.sql);
      if (!report) {
        deps.metrics?.retentionPass('skipped');
        deps.logger.debug('retention pass skipped: another gateway is running one');
        return null;
      }
      const full: RetentionReport = { ...report, seconds: seconds() };
      deps.metrics?.retentionDeleted('submissions', full.submissions);
      deps.metrics?.retentionDeleted('registrations', full.registrations);
      deps.metrics?.retentionDeleted('audit_log', full.auditLog);
      deps.metrics?.retentionDeleted('security_events', full.securityEvents);
      deps.metrics?.retentionPass('done', full.seconds);
      deps.logger.info(
        { ...full, seconds: Math.round(full.seconds * 1000) / 1000 },
        `retention pass: deleted ${full.submissions} submission(s), ${full.registrations} registration(s), ${full.auditLog + full.securityEvents} audit row(s)`,
      );
      return full;
    } catch (err) {
      deps.metrics?.retentionPass('failed', seconds());
      throw err;
    }
  }

  function schedule(ms: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      running = runOnce()
        .catch((err: unknown) => deps.logger.warn({ err }, 'retention pass failed'))
        .finally(() => {
          running = null;
          schedule(deps.intervalMs ?? 3600_000);
        });
    }, ms);
    timer.unref();
  }

  return {
    runOnce,
    /** Passes every hour, the first a minute after start. */
    start(): void {
      stopped = false;
      schedule(60_000);
    },
    /** Stops between two batches and waits for the pass in flight. */
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await Promise.allSettled([running]);
    },
  };
}

export type Retention = ReturnType<typeof createRetention>;
