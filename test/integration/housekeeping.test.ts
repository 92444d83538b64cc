/**
 * Delivered webhook and outbox rows are deleted once old; undelivered and dead ones are kept.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { purgeDelivered } from '../../src/store/housekeeping-store.js';
import { type TestContext, createTestContext } from '../helpers/context.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx.close();
});

it('purges only what was delivered before the cut-off', async () => {
  const old = new Date('2026-01-01T00:00:00Z');
  const recent = new Date('2026-06-01T00:00:00Z');
  await ctx.sql`
    insert into webhook_deliveries (event, payload, url, attempts, next_attempt_at, delivered_at, created_at) values
      ('device.approved', '{}', 'http://127.0.0.1:9/h', 1, null, ${old}, ${old}),
      ('device.approved', '{}', 'http://127.0.0.1:9/h', 1, null, ${recent}, ${recent}),
      ('device.approved', '{}', 'http://127.0.0.1:9/h', 3, ${old}, null, ${old})`;
  const [d] = await ctx.sql<
    { id: number }[]
  >`insert into devices (deviceid, first_seen, last_seen) values ('hk-1', ${old}, ${old}) returning id`;
  const [sub] = await ctx.sql<{ id: number }[]>`
    insert into submissions (device_id, received_at, kind, format, compression, partial, decoded_size, body)
    values (${d!.id}, ${old}, 'inventory', 'xml', 'none', false, 1, ${Buffer.from('<REQUEST/>')}) returning id`;
  await ctx.sql`
    insert into outbox (submission_id, device_id, deviceid, state, created_at, delivered_at) values
      (${sub!.id}, ${d!.id}, 'hk-1', 'delivered', ${old}, ${old}),
      (${sub!.id}, ${d!.id}, 'hk-1', 'delivered', ${recent}, ${recent}),
      (${sub!.id}, ${d!.id}, 'hk-1', 'dead', ${old}, null)`;
  const cutoff = new Date('2026-03-01T00:00:00Z');
  const purged = await purgeDelivered(ctx.sql, cutoff);
  expect(purged).toEqual({ webhooks: 1, outbox: 1 });
  const outbox = await ctx.sql<{ state: string }[]>`select state from outbox order by id`;
  expect(outbox.map((r) => r.state)).toEqual(['delivered', 'dead']);
  const left = await ctx.sql<
    { delivered: boolean }[]
  >`select delivered_at is not null as delivered from webhook_deliveries order by id`;
  expect(left.map((r) => r.delivered)).toEqual([true, false]);
});
