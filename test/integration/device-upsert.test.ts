/**
 * The device upsert of the per-message statement: identity fields follow every message, last_seen follows
 * an inventory exactly and a PROLOG/CONTACT once it is LAST_SEEN_RESOLUTION ahead of the record, and a
 * message that changes no indexed column leaves the device's index entries alone (a HOT update).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { recordMessage } from '../../src/store/agent-store.js';
import { type TestContext, createTestContext } from '../helpers/context.js';
import { messageRecord } from '../helpers/records.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx.close();
});

const T0 = new Date('2026-12-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

const message = (deviceid: string, seenAt: Date, o: { inventory?: boolean; name?: string; addr?: string } = {}) =>
  messageRecord(deviceid, {
    seenAt,
    name: o.name ?? 'pc-1',
    serial: 'SER-1',
    macs: ['aa:bb:cc:dd:ee:01'],
    addr: o.addr ?? '10.0.0.1',
    ...(o.inventory ? { inventory: true } : {}),
  });

const row = async (deviceid: string) =>
  (
    await ctx.sql<{ name: string; lastSeen: Date; lastInventoryAt: Date | null; lastRemoteAddr: string }[]>`
      select name, last_seen as "lastSeen", last_inventory_at as "lastInventoryAt", last_remote_addr as "lastRemoteAddr"
             from devices where deviceid = ${deviceid}`
  )[0]!;

it('moves last_seen for an inventory at once and for a PROLOG once it is a minute ahead; the rest at once', async () => {
  const id = 'upsert-coarse-1';
  await recordMessage(ctx.sql, message(id, at(0)));
  expect((await row(id)).lastSeen).toEqual(at(0));

  // A PROLOG 10 s later: the address and the name follow, last_seen stays.
  await recordMessage(ctx.sql, message(id, at(10), { addr: '10.0.0.2', name: 'pc-1-renamed' }));
  expect(await row(id)).toMatchObject({ lastSeen: at(0), lastRemoteAddr: '10.0.0.2', name: 'pc-1-renamed' });

  // An inventory: last_seen and last_inventory_at are its time, whatever the gap.
  await recordMessage(ctx.sql, message(id, at(20), { inventory: true }));
  expect(await row(id)).toMatchObject({ lastSeen: at(20), lastInventoryAt: at(20), name: 'pc-1' });

  // A PROLOG a minute after the recorded last_seen moves it.
  await recordMessage(ctx.sql, message(id, at(80)));
  expect((await row(id)).lastSeen).toEqual(at(80));

  // Never backwards: a late inventory stamped earlier keeps the later last_seen.
  await recordMessage(ctx.sql, message(id, at(70), { inventory: true }));
  expect(await row(id)).toMatchObject({ lastSeen: at(80), lastInventoryAt: at(70) });
});

it('a PROLOG that changes no indexed column is a HOT update: no index gets an entry', async () => {
  const id = 'upsert-hot-1';
  await recordMessage(ctx.sql, message(id, at(0)));
  // pg_stat_xact_user_tables counts updates, HOT ones apart, not yet flushed to the shared statistics
  // (earlier transactions of this connection included): the difference across the two messages.
  const counts = await ctx.sql.begin(async (tx) => {
    const read = async () =>
      (
        await tx<{ upd: number; hot: number }[]>`
          select n_tup_upd::int as upd, n_tup_hot_upd::int as hot from pg_stat_xact_user_tables where relid = 'devices'::regclass`
      )[0] ?? { upd: 0, hot: 0 };
    const before = await read();
    await recordMessage(tx, message(id, at(5)));
    await recordMessage(tx, message(id, at(6), { addr: '10.0.0.9' }));
    const after = await read();
    return { upd: after.upd - before.upd, hot: after.hot - before.hot };
  });
  expect(counts).toEqual({ upd: 2, hot: 2 });
  expect((await row(id)).lastRemoteAddr).toBe('10.0.0.9');
});
