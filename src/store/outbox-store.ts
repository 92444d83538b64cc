/**
 * Queries of the GLPI outbox (migration 0006). Rows are written in the transaction that accepts an
 * inventory (recordMessage's `o` CTE) or releases it (transitionDevice → enqueueReleased), claimed by
 * workers with FOR UPDATE SKIP LOCKED — only the oldest unsent row of each device, so a device never has
 * two rows in flight and its rows go in id order — then marked delivered, rescheduled or dead.
 *
 * Whether rows are written at all is the database's `forwarding.enabled` switch (migration 0011), read in
 * the writing statement itself, never the writing process's UPSTREAM_URL: an approval from a shell without
 * it still enqueues for the gateways that forward.
 */
import type { Queryable, Sql } from './db.js';

/** SQL condition: forwarding is switched on in this database. */
export const FORWARDING_ON = (q: Queryable) => q`exists (select 1 from forwarding where enabled)`;

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
      and ${FORWARDING_ON(tx)}
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

// ---------------------------------------------------------------------------------------------------------
// The forwarding switch, the backfill, and the forwarders' own rows (migration 0011)

export interface ForwardingSwitch {
  enabled: boolean;
  enabledAt: Date | null;
  enabledBy: string | null;
}

export async function readForwarding(sql: Queryable): Promise<ForwardingSwitch> {
  const [row] = await sql<ForwardingSwitch[]>`
    select enabled, enabled_at as "enabledAt", enabled_by as "enabledBy" from forwarding`;
  return row ?? { enabled: false, enabledAt: null, enabledBy: null };
}

/** Switches forwarding on (kept as it was when already on: the first enabling time stays). */
export async function enableForwarding(sql: Queryable, by: string, at: Date): Promise<ForwardingSwitch> {
  await sql`update forwarding set enabled = true, enabled_at = ${at}, enabled_by = ${by} where not enabled`;
  return readForwarding(sql);
}

export async function disableForwarding(sql: Queryable): Promise<ForwardingSwitch> {
  await sql`update forwarding set enabled = false`;
  return readForwarding(sql);
}

export interface BackfillResult {
  /** Devices that got rows. */
  devices: number;
  /** Rows written. */
  enqueued: number;
  /** Older inventories skipped: superseded by a newer full one of the same device. */
  superseded: number;
}

/**
 * Enqueues the forwardable inventories of approved devices received since `since` that have no outbox row,
 * per device as an approval would (from the newest full inventory on, older ones superseded), and only
 * those newer than anything of the device already in the outbox, so that GLPI still gets each device's
 * inventories in arrival order. Idempotent: a second run finds nothing.
 */
export async function backfillOutbox(tx: Queryable, since: Date, at: Date): Promise<BackfillResult> {
  const [row] = await tx<BackfillResult[]>`
    with c as (
      select s.id, s.device_id, s.partial, d.deviceid from submissions s join devices d on d.id = s.device_id
      where d.state = 'approved' and s.kind = 'inventory' and s.state in ('stored', 'released')
        and s.received_at >= ${since}
        and s.id > coalesce((select max(o.submission_id) from outbox o where o.device_id = s.device_id), 0)
    ),
    f as (select device_id, coalesce(max(id) filter (where not partial), 0) as id from c group by device_id),
    ins as (
      insert into outbox (submission_id, device_id, deviceid, next_attempt_at, created_at)
      select c.id, c.device_id, c.deviceid, ${at}, ${at} from c join f using (device_id)
      where c.id >= f.id
      order by c.device_id, c.id
      returning device_id
    )
    select (select count(distinct device_id) from ins)::int as devices, (select count(*) from ins)::int as enqueued,
           ((select count(*) from c) - (select count(*) from ins))::int as superseded`;
  return row!;
}

/** Rows that backed off on their own while GLPI was away are due again now (the breaker closed). */
export async function dueAgainAfterOutage(sql: Queryable, now: Date): Promise<number> {
  const r = await sql`
    update outbox set next_attempt_at = ${now}
    where state = 'pending' and attempts > 0 and next_attempt_at > ${now}
      and (last_status is null or last_status >= 500 or last_status = 429)`;
  return r.count;
}

export interface ForwarderRow {
  name: string;
  upstreamHost: string;
  workers: number;
  breaker: 'closed' | 'open';
  breakerSince: Date | null;
  lastError: string | null;
  startedAt: Date;
  seenAt: Date;
}

export async function upsertForwarder(sql: Queryable, f: ForwarderRow): Promise<void> {
  await sql`
    insert into forwarders (name, upstream_host, workers, breaker, breaker_since, last_error, started_at, seen_at)
    values (${f.name}, ${f.upstreamHost}, ${f.workers}, ${f.breaker}, ${f.breakerSince}, ${f.lastError}, ${f.startedAt}, ${f.seenAt})
    on conflict (name) do update set upstream_host = excluded.upstream_host, workers = excluded.workers,
      breaker = excluded.breaker, breaker_since = excluded.breaker_since, last_error = excluded.last_error,
      seen_at = excluded.seen_at`;
}

export async function deleteForwarder(sql: Queryable, name: string): Promise<void> {
  await sql`delete from forwarders where name = ${name}`;
}

export async function listForwarders(sql: Queryable): Promise<ForwarderRow[]> {
  return sql<ForwarderRow[]>`
    select name, upstream_host as "upstreamHost", workers, breaker, breaker_since as "breakerSince",
           last_error as "lastError", started_at as "startedAt", seen_at as "seenAt"
    from forwarders order by name`;
}
