/**
 * Group commit: many concurrent agent records share transactions, each caller learns its own outcome, and a
 * bad record never takes the others down with it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRecordBatcher } from '../../src/store/batcher.js';
import { type TestContext, createTestContext } from '../helpers/context.js';
import { messageRecord } from '../helpers/records.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx.close();
});

const prolog = (deviceid: string, kind = 'prolog') => messageRecord(deviceid, { kind });

it('commits every concurrent record and gives each caller its own ids', async () => {
  const batcher = createRecordBatcher(ctx.sql, { maxBatch: 16, concurrency: 2 });
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => batcher.record(prolog(`batch-${i % 20}`))));
  expect(new Set(results.map((r) => r.registrationId)).size).toBe(60);
  const [c] = await ctx.sql<{ regs: number; devices: number }[]>`
    select (select count(*)::int from registrations where deviceid like 'batch-%') as regs,
           (select count(*)::int from devices where deviceid like 'batch-%') as devices`;
  expect(c).toEqual({ regs: 60, devices: 20 });
  // Devices seen several times were created once and then updated, never duplicated.
  expect(results.filter((r) => r.inserted).length).toBe(20);
});

it('a record the database refuses fails alone; its batch-mates are written', async () => {
  const batcher = createRecordBatcher(ctx.sql, { maxBatch: 16, concurrency: 1 });
  const outcomes = await Promise.allSettled([
    batcher.record(prolog('mate-1')),
    batcher.record(prolog('mate-2')),
    batcher.record(prolog('mate-3', 'not-a-kind')), // violates the registrations.kind check
    batcher.record(prolog('mate-4')),
  ]);
  expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  const rows = await ctx.sql<
    { deviceid: string }[]
  >`select deviceid from registrations where deviceid like 'mate-%' order by deviceid`;
  expect(rows.map((r) => r.deviceid)).toEqual(['mate-1', 'mate-2', 'mate-4']);
  await batcher.drain();
});
