/**
 * Queries of the webhook outbox: deliveries are written in the transaction of what caused them, claimed by
 * a worker (several replicas may poll at once: FOR UPDATE SKIP LOCKED hands each row to one of them), then
 * marked delivered, rescheduled or given up.
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

export async function markDelivered(sql: Queryable, id: number, status: number, at: Date): Promise<void> {
  await sql`update webhook_deliveries set delivered_at = ${at}, next_attempt_at = null, last_status = ${status}, last_error = null where id = ${id}`;
}

/** Records a failed attempt; `nextAttemptAt` null = no more attempts (the row stays, undelivered, with its error). */
export async function markFailed(
  sql: Queryable,
  id: number,
  f: { status: number | null; error: string; nextAttemptAt: Date | null },
): Promise<void> {
  await sql`update webhook_deliveries set last_status = ${f.status}, last_error = ${f.error}, next_attempt_at = ${f.nextAttemptAt}
            where id = ${id} and delivered_at is null`;
}

/** Undelivered rows still to be tried (including those being sent right now). */
export async function countPendingDeliveries(sql: Queryable): Promise<number> {
  const [row] = await sql<
    { n: number }[]
  >`select count(*)::int as n from webhook_deliveries where delivered_at is null and next_attempt_at is not null`;
  return row?.n ?? 0;
}
