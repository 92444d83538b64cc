/**
 * Housekeeping: delivered webhook and outbox rows are kept for a while (to answer "was it sent?") and then
 * deleted, so the outboxes do not grow without end. Undelivered and dead rows are never touched here.
 */
import type { Queryable } from './db.js';

export async function purgeDelivered(sql: Queryable, before: Date): Promise<{ webhooks: number; outbox: number }> {
  const [w] = await sql<{ n: number }[]>`
    with gone as (delete from webhook_deliveries where delivered_at is not null and delivered_at < ${before} returning 1)
    select count(*)::int as n from gone`;
  const [o] = await sql<{ n: number }[]>`
    with gone as (delete from outbox where state = 'delivered' and delivered_at < ${before} returning 1)
    select count(*)::int as n from gone`;
  return { webhooks: w!.n, outbox: o!.n };
}

/**
 * Retention (services/retention.ts) deletes in bounded batches: each call below is ONE short statement that
 * looks at the next `batch` rows older than the cut-off, in (time, id) order from `after`, deletes those
 * retention may delete, and returns the cursor to go on from. A batch holds its row locks only for itself,
 * so ingest never waits behind a long transaction, and rows kept on purpose are stepped over, not rescanned.
 */
export interface RetentionCursor {
  /** received_at/at of the last row looked at, as PostgreSQL prints it (keeps microseconds). */
  at: string;
  id: number;
}

export const CURSOR_START: RetentionCursor = { at: '-infinity', id: 0 };

export interface BatchResult {
  /** rows looked at (0: nothing older than the cut-off is left past the cursor) */
  scanned: number;
  deleted: number;
  next: RetentionCursor;
}

function batchResult(
  row: { scanned: number; deleted: number; at: string | null; id: number | null } | undefined,
  after: RetentionCursor,
): BatchResult {
  return {
    scanned: row?.scanned ?? 0,
    deleted: row?.deleted ?? 0,
    next: row?.at ? { at: row.at, id: row.id! } : after,
  };
}

/**
 * Submissions received before `before` except what a device still needs or what is not settled: its latest
 * full inventory (inventories.full_submission_id) and the partial inventories after it, anything held for a
 * decision or kept as rejected (REJECTED_RETENTION purges those, audited), and anything with an outbox row
 * not delivered (pending, in flight or dead: GLPI has not got it). Delivered outbox rows go with their
 * submission (on delete cascade).
 */
export async function deleteSubmissionsBatch(
  sql: Queryable,
  before: Date,
  after: RetentionCursor,
  batch: number,
): Promise<BatchResult> {
  const [row] = await sql<{ scanned: number; deleted: number; at: string | null; id: number | null }[]>`
    with cand as (
      select id, received_at from submissions
      where received_at < ${before} and (received_at, id) > (${after.at}::text::timestamptz, ${after.id}::bigint)
      order by received_at, id limit ${batch}
    ), gone as (
      delete from submissions s using cand c
      where s.id = c.id and s.state in ('stored', 'released')
        and not exists (
          select 1 from inventories i
          where i.device_id = s.device_id
            and (i.full_submission_id = s.id
                 or (s.kind = 'inventory' and s.partial and s.id > coalesce(i.full_submission_id, 0))))
        and not exists (select 1 from outbox o where o.submission_id = s.id and o.state <> 'delivered')
      returning 1
    ), last as (select received_at, id from cand order by received_at desc, id desc limit 1)
    select (select count(*) from cand)::int as scanned, (select count(*) from gone)::int as deleted,
           (select received_at::text from last) as at, (select id from last) as id`;
  return batchResult(row, after);
}

/**
 * Registrations received before `before`, except those a stored submission still points at (the outbox
 * forwards with the registration's User-Agent and address): they go once their submission has gone.
 */
export async function deleteRegistrationsBatch(
  sql: Queryable,
  before: Date,
  after: RetentionCursor,
  batch: number,
): Promise<BatchResult> {
  const [row] = await sql<{ scanned: number; deleted: number; at: string | null; id: number | null }[]>`
    with cand as (
      select id, received_at from registrations
      where received_at < ${before} and (received_at, id) > (${after.at}::text::timestamptz, ${after.id}::bigint)
      order by received_at, id limit ${batch}
    ), gone as (
      delete from registrations r using cand c
      where r.id = c.id and not exists (select 1 from submissions s where s.registration_id = r.id)
      returning 1
    ), last as (select received_at, id from cand order by received_at desc, id desc limit 1)
    select (select count(*) from cand)::int as scanned, (select count(*) from gone)::int as deleted,
           (select received_at::text from last) as at, (select id from last) as id`;
  return batchResult(row, after);
}

/** Audit log entries or security events older than `before` (only with AUDIT_RETENTION set). */
export async function deleteAuditBatch(
  sql: Queryable,
  table: 'audit_log' | 'security_events',
  before: Date,
  batch: number,
): Promise<BatchResult> {
  const t = sql(table);
  const [row] = await sql<{ deleted: number }[]>`
    with cand as (select id from ${t} where at < ${before} order by at, id limit ${batch}),
    gone as (delete from ${t} x using cand c where x.id = c.id returning 1)
    select (select count(*) from gone)::int as deleted`;
  const deleted = row?.deleted ?? 0;
  return { scanned: deleted, deleted, next: CURSOR_START };
}

/**
 * One replica at a time: a session advisory lock, held on a connection reserved for the pass. The second
 * key is the schema, so gateways of different deployments sharing one database (one schema each) do not
 * hold each other up.
 */
const RETENTION_LOCK_KEY = 0x4147_5254; // "AGRT"

export async function tryRetentionLock(sql: Queryable): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`
    select pg_try_advisory_lock(${RETENTION_LOCK_KEY}::int, hashtext(current_schema())) as ok`;
  return row!.ok;
}

export async function releaseRetentionLock(sql: Queryable): Promise<void> {
  await sql`select pg_advisory_unlock(${RETENTION_LOCK_KEY}::int, hashtext(current_schema()))`;
}
