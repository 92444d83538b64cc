/**
 * Queries of the GLPI outbox (migration 0006). Rows are written in the transaction that accepts an
 * inventory (recordMessage's `o` CTE) or releases it (transitionDevice → enqueueReleased), claimed by
 * workers with FOR UPDATE SKIP LOCKED — only the oldest unsent row of each device, so a device never has
 * two rows in flight and its rows go in id order — then marked delivered, rescheduled or dead.
 */
import type { Queryable, Sql } from './db.js';

export const OUTBOX_STATES = ['pending', 'in_flight', 'delivered', 'dead'] as const;
export type OutboxState = (typeof OUTBOX_STATES)[number];

/**
 * Enqueues what an approval released, in arrival order, starting at the newest FULL inventory among them:
 * older held inventories (full or partial) are superseded by it and skipped, so GLPI first gets the
 * complete device, then the partials that followed it. With no full inventory among them, every released
 * inventory goes, in order. Network-task messages (netdiscovery/netinventory) are never forwarded.
 * A submission that already has an outbox row (sent before an undo) is not enqueued twice.
 */
export async function enqueueReleased(
  tx: Queryable,
  deviceId: number,
  deviceid: string,
  submissionIds: number[],
  at: Date,
): Promise<number> {
  if (submissionIds.length === 0) return 0;
  const rows = await tx`
    with r as (select id, partial from submissions where id in ${tx(submissionIds)} and device_id = ${deviceId} and kind = 'inventory'),
    f as (select coalesce(max(id), 0) as id from r where not partial)
    insert into outbox (submission_id, device_id, deviceid, next_attempt_at, created_at)
    select r.id, ${deviceId}, ${deviceid}, ${at}, ${at} from r, f
    where r.id >= f.id and not exists (select 1 from outbox o where o.submission_id = r.id)
    order by r.id
    returning id`;
  return rows.length;
}

/**
 * A device leaves `approved`: rows not yet claimed stop. Those of submissions held again (an undone
 * approval) are removed — the next approval enqueues them again; the others of a rejected device become
 * dead letters (visible, retryable once it is approved again). Rows of a device back in quarantine or
 * conflict wait: the worker only claims rows of approved devices.
 */
export async function settleOutboxOnLeave(
  tx: Queryable,
  deviceId: number,
  to: string,
  heldAgain: number[],
  at: Date,
): Promise<void> {
  if (heldAgain.length > 0) await tx`delete from outbox where submission_id in ${tx(heldAgain)} and state = 'pending'`;
  if (to === 'rejected') {
    await tx`update outbox set state = 'dead', next_attempt_at = null, last_error = ${`device rejected before delivery (${at.toISOString()})`}
             where device_id = ${deviceId} and state = 'pending'`;
  }
}

export interface ClaimedRow {
  id: number;
  submissionId: number;
  deviceId: number;
  deviceid: string;
  /** Attempts so far, counting the one just claimed (also the claim's token: marks check it). */
  attempts: number;
  createdAt: Date;
  body: Buffer;
  contentType: string | null;
  compression: string;
  format: string;
  userAgent: string | null;
  agentId: string | null;
  remoteAddr: string | null;
  /** The device's tag (that of the registration key or client it is pinned to): what GLPI gets with UPSTREAM_TAG=key. */
  tag: string | null;
}

/**
 * Claims up to `limit` due rows in one short transaction: the oldest unsent row of each approved device
 * (pending and due, or in flight past its lease), locked with SKIP LOCKED so concurrent workers never take
 * the same row, then marked in_flight until `leaseUntil`. Returns them with the body and the headers of
 * the registration they arrived with.
 */
export async function claimDue(sql: Sql, o: { now: Date; leaseUntil: Date; limit: number }): Promise<ClaimedRow[]> {
  const claimed = await sql.begin(async (tx) => {
    const due = await tx<{ id: number }[]>`
      select o.id from outbox o
      where o.state in ('pending', 'in_flight') and o.next_attempt_at <= ${o.now}
        and not exists (select 1 from outbox e where e.device_id = o.device_id and e.state in ('pending', 'in_flight') and e.id < o.id)
        and exists (select 1 from devices d where d.id = o.device_id and d.state = 'approved')
      order by o.next_attempt_at, o.id
      limit ${o.limit}
      for update of o skip locked`;
    if (due.length === 0) return [];
    return tx<ClaimedRow[]>`
      update outbox o set state = 'in_flight', attempts = o.attempts + 1, next_attempt_at = ${o.leaseUntil}
      from submissions s left join registrations r on r.id = s.registration_id, devices d
      where o.id in ${tx(due.map((d) => d.id))} and s.id = o.submission_id and d.id = o.device_id
      returning o.id, o.submission_id as "submissionId", o.device_id as "deviceId", o.deviceid, o.attempts, o.created_at as "createdAt",
                s.body, s.content_type as "contentType", s.compression, s.format,
                r.user_agent as "userAgent", r.agent_id as "agentId", r.remote_addr as "remoteAddr", d.assigned_tag as tag`;
  });
  return ([...claimed] as ClaimedRow[]).sort((a, b) => a.id - b.id);
}

export interface AttemptRecord {
  status: number | null;
  error: string | null;
  response: string | null;
}

/** Marks apply only while the row is still this claim's (same attempt, still in flight). */
export async function markDelivered(
  sql: Queryable,
  row: Pick<ClaimedRow, 'id' | 'attempts'>,
  r: AttemptRecord,
  at: Date,
): Promise<boolean> {
  const done =
    await sql`update outbox set state = 'delivered', delivered_at = ${at}, next_attempt_at = null, last_status = ${r.status},
                           last_error = null, last_response = ${r.response}
                         where id = ${row.id} and state = 'in_flight' and attempts = ${row.attempts}`;
  return done.count > 0;
}

export async function markRetry(
  sql: Queryable,
  row: Pick<ClaimedRow, 'id' | 'attempts'>,
  r: AttemptRecord,
  next: Date,
): Promise<boolean> {
  const done =
    await sql`update outbox set state = 'pending', next_attempt_at = ${next}, last_status = ${r.status}, last_error = ${r.error},
                           last_response = ${r.response}
                         where id = ${row.id} and state = 'in_flight' and attempts = ${row.attempts}`;
  return done.count > 0;
}

export async function markDead(
  sql: Queryable,
  row: Pick<ClaimedRow, 'id' | 'attempts'>,
  r: AttemptRecord,
): Promise<boolean> {
  const done =
    await sql`update outbox set state = 'dead', next_attempt_at = null, last_status = ${r.status}, last_error = ${r.error},
                           last_response = ${r.response}
                         where id = ${row.id} and state = 'in_flight' and attempts = ${row.attempts}`;
  return done.count > 0;
}

export interface OutboxItem {
  id: number;
  submissionId: number;
  deviceId: number;
  deviceid: string;
  kind: string;
  partial: boolean;
  bytes: number;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  lastResponse: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

const ITEM_COLUMNS = (q: Queryable) => q`
  o.id, o.submission_id as "submissionId", o.device_id as "deviceId", o.deviceid, s.kind, s.partial, length(s.body)::int as bytes,
  o.state, o.attempts, o.next_attempt_at as "nextAttemptAt", o.last_status as "lastStatus", o.last_error as "lastError",
  o.last_response as "lastResponse", o.created_at as "createdAt", o.delivered_at as "deliveredAt"`;

/** Newest first. */
export async function listOutbox(
  sql: Queryable,
  f: { state?: OutboxState; deviceid?: string; limit: number },
): Promise<OutboxItem[]> {
  return sql<OutboxItem[]>`
    select ${ITEM_COLUMNS(sql)} from outbox o join submissions s on s.id = o.submission_id
    where true ${f.state ? sql`and o.state = ${f.state}` : sql``} ${f.deviceid ? sql`and o.deviceid = ${f.deviceid}` : sql``}
    order by o.id desc limit ${f.limit}`;
}

export async function lockOutboxItem(tx: Queryable, id: number): Promise<OutboxItem | null> {
  const [row] = await tx<OutboxItem[]>`
    select ${ITEM_COLUMNS(tx)} from outbox o join submissions s on s.id = o.submission_id where o.id = ${id} for update of o`;
  return row ?? null;
}

/** Due now again with a fresh count of attempts (the last answer is kept until the next one). */
export async function requeueOutboxItem(tx: Queryable, id: number, at: Date): Promise<void> {
  await tx`update outbox set state = 'pending', attempts = 0, next_attempt_at = ${at} where id = ${id}`;
}

export async function deleteOutboxItem(tx: Queryable, id: number): Promise<void> {
  await tx`delete from outbox where id = ${id}`;
}

export interface OutboxStats {
  /** Rows by state, delivered excepted (that count only grows). */
  byState: Record<'pending' | 'in_flight' | 'dead', number>;
  /** Age of the oldest row not yet delivered nor dead, in seconds (0 when none). */
  oldestPendingSeconds: number;
}

export async function outboxStats(sql: Queryable, now: Date): Promise<OutboxStats> {
  const rows = await sql<{ state: string; n: number; oldest: Date | null }[]>`
    select state, count(*)::int as n, min(created_at) as oldest from outbox where state in ('pending', 'in_flight', 'dead') group by state`;
  const byState = { pending: 0, in_flight: 0, dead: 0 };
  let oldest: number | null = null;
  for (const r of rows) {
    byState[r.state as keyof typeof byState] = r.n;
    if (r.state !== 'dead' && r.oldest) oldest = Math.min(oldest ?? Infinity, r.oldest.getTime());
  }
  return { byState, oldestPendingSeconds: oldest === null ? 0 : Math.max(0, (now.getTime() - oldest) / 1000) };
}
