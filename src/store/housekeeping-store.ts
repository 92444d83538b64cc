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
