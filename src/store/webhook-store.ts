/**
 * Queries of the webhook outbox: deliveries are written in the transaction of what caused them, claimed by
 * a worker (several replicas may poll at once: FOR UPDATE SKIP LOCKED hands each row to one of them), then
 * marked delivered, rescheduled or given up. Each claim counts an attempt, and a mark applies only while the
 * row is still at the attempt its claim counted: a worker whose lease ended, and whose row was claimed
 * again, cannot overwrite the newer attempt's result nor move its lease (attempts only ever grow here).
 */
import type { Queryable, Sql } from './db.js';

export interface DeliveryRow {
  id: number;
  event: string;
  payload: Record<string, unknown>;
  url: string;
  /** Attempts so far, counting the one just claimed. */
  attempts: number;
  createdAt: Date;
}

export interface NewDelivery {
  event: string;
  payload: Record<string, unknown>;
  url: string;
  at: Date;
}

/** One row per receiver, due at once. */
export async function insertDeliveries(q: Queryable, rows: NewDelivery[]): Promise<void> {
  for (const r of rows) {
    await q`insert into webhook_deliveries (event, payload, url, next_attempt_at, created_at)
            values (${r.event}, ${q.json(r.payload as never)}, ${r.url}, ${r.at}, ${r.at})`;
  }
}

/**
 * Claims up to `limit` due deliveries to the given URLs in one short transaction: locks them (skipping rows
 * another replica holds), counts the attempt and pushes next_attempt_at to `leaseUntil`, so nobody else
 * takes them while they are being sent. A worker that dies mid-send leaves them due again at `leaseUntil`.
 */
export async function claimDueDeliveries(
  sql: Sql,
  o: { now: Date; leaseUntil: Date; limit: number; urls: string[]; maxAttempts: number },
): Promise<DeliveryRow[]> {
  if (o.urls.length === 0) return [];
  const claimed = await sql.begin(async (tx) => {
    const due = await tx<{ id: number }[]>`
      select id from webhook_deliveries
      where delivered_at is null and next_attempt_at is not null and next_attempt_at <= ${o.now}
        and attempts < ${o.maxAttempts} and url in ${tx(o.urls)}
      order by next_attempt_at, id
      limit ${o.limit}
      for update skip locked`;
    if (due.length === 0) return [];
    return tx<DeliveryRow[]>`
      update webhook_deliveries set attempts = attempts + 1, next_attempt_at = ${o.leaseUntil}
      where id in ${tx(due.map((d) => d.id))}
      returning id, event, payload, url, attempts, created_at as "createdAt"`;
  });
  return [...claimed] as DeliveryRow[];
}

/** The claim a mark belongs to: the row and the attempt number its claim counted. */
export type DeliveryClaim = Pick<DeliveryRow, 'id' | 'attempts'>;

/** Returns false (and changes nothing) when the row is no longer at `row.attempts` or already delivered. */
export async function markDelivered(sql: Queryable, row: DeliveryClaim, status: number, at: Date): Promise<boolean> {
  const done =
    await sql`update webhook_deliveries set delivered_at = ${at}, next_attempt_at = null, last_status = ${status}, last_error = null
                         where id = ${row.id} and attempts = ${row.attempts} and delivered_at is null`;
  return done.count > 0;
}

/**
 * Records a failed attempt; `nextAttemptAt` null = no more attempts (the row stays, undelivered, with its
 * error). Returns false (and changes nothing) when the row is no longer at `row.attempts` or was delivered.
 */
export async function markFailed(
  sql: Queryable,
  row: DeliveryClaim,
  f: { status: number | null; error: string | null; nextAttemptAt: Date | null },
): Promise<boolean> {
  const done =
    await sql`update webhook_deliveries set last_status = ${f.status}, last_error = ${f.error}, next_attempt_at = ${f.nextAttemptAt}
              where id = ${row.id} and attempts = ${row.attempts} and delivered_at is null`;
  return done.count > 0;
}

/** Undelivered rows still to be tried (including those being sent right now). */
export async function countPendingDeliveries(sql: Queryable): Promise<number> {
  const [row] = await sql<
    { n: number }[]
  >`select count(*)::int as n from webhook_deliveries where delivered_at is null and next_attempt_at is not null`;
  return row?.n ?? 0;
}
