/**
 * Retention (services/retention.ts): what a pass deletes and what it never deletes — a device's latest full
 * inventory and the partials after it, held submissions, submissions GLPI has not got (pending, in flight,
 * dead), registrations a kept submission points at — in batches small enough here that the cursor has to
 * step over kept rows; one replica at a time; counted in the metrics.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createRetention } from '../../src/services/retention.js';
import { backfillOutbox } from '../../src/store/outbox-store.js';
import { type TestContext, createTestContext } from '../helpers/context.js';

const DAY = 86400_000;
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx.close();
});

const ago = (days: number) => new Date(ctx.clock.now().getTime() - days * DAY);

async function device(deviceid: string, state: string): Promise<number> {
  const [d] = await ctx.sql<{ id: number }[]>`
    insert into devices (deviceid, state, first_seen, last_seen) values (${deviceid}, ${state}, ${ago(200)}, ${ago(1)})
    returning id`;
  return d!.id;
}

async function registration(deviceId: number | null, days: number): Promise<number> {
  const [r] = await ctx.sql<{ id: number }[]>`
    insert into registrations (received_at, device_id, deviceid, method, path, kind, format, compression, body_size,
                               decoded_size, outcome, status)
    values (${ago(days)}, ${deviceId}, 'x', 'POST', '/', 'inventory', 'xml', 'zlib', 10, 10, 'accepted', 200)
    returning id`;
  return r!.id;
}

async function submission(
  deviceId: number | null,
  days: number,
  o: { partial?: boolean; state?: string; kind?: string; withRegistration?: boolean } = {},
): Promise<number> {
  const reg = o.withRegistration ? await registration(deviceId, days) : null;
  const [s] = await ctx.sql<{ id: number }[]>`
    insert into submissions (device_id, registration_id, received_at, kind, format, compression, partial, decoded_size, body, state)
    values (${deviceId}, ${reg}, ${ago(days)}, ${o.kind ?? 'inventory'}, 'xml', 'none', ${o.partial ?? false}, 10,
            ${Buffer.from('<REQUEST/>')}, ${o.state ?? 'stored'})
    returning id`;
  return s!.id;
}

async function reference(deviceId: number, fullSubmissionId: number): Promise<void> {
  await ctx.sql`
    insert into inventories (device_id, full_submission_id, format, updated_at)
    values (${deviceId}, ${fullSubmissionId}, 'xml', now())`;
}

async function outbox(submissionId: number, deviceId: number, state: string): Promise<void> {
  await ctx.sql`
    insert into outbox (submission_id, device_id, deviceid, state, created_at, delivered_at)
    values (${submissionId}, ${deviceId}, 'x', ${state}, ${ago(40)}, ${state === 'delivered' ? ago(40) : null})`;
}

const remaining = async (table: 'submissions' | 'registrations', ids: number[]) =>
  (await ctx.sql<{ id: number }[]>`select id from ${ctx.sql(table)} where id = any(${ids}::bigint[]) order by id`).map(
    (r) => r.id,
  );

function retention(o: { batch: number; auditSeconds?: number }) {
  return createRetention({
    sql: ctx.sql,
    lock: true,
    clock: ctx.clock,
    logger: createLogger({ level: 'silent', pretty: false }),
    metrics: ctx.deps.metrics,
    registrationSeconds: 90 * 86400,
    submissionSeconds: 30 * 86400,
    auditSeconds: o.auditSeconds,
    batch: o.batch,
    submissionBatch: o.batch,
  });
}

describe('a retention pass', () => {
  it('keeps what devices need and what is not settled, deletes the rest', async () => {
    // An approved device: two old full inventories, partials around them, a network-task message.
    const a = await device('ret-a', 'approved');
    const aFull1 = await submission(a, 60, { withRegistration: true });
    const aPartialBefore = await submission(a, 55, { partial: true });
    const aFull2 = await submission(a, 50, { withRegistration: true });
    const aPartialAfter = await submission(a, 45, { partial: true, withRegistration: true });
    const aNet = await submission(null, 40, { kind: 'netinventory' });
    const aRecent = await submission(a, 2);
    await reference(a, aFull2);
    // A quarantined device's held inventories, however old; a rejected device's (REJECTED_RETENTION's).
    const q = await device('ret-q', 'quarantined');
    const qHeld = await submission(q, 80, { state: 'held', withRegistration: true });
    const r = await device('ret-r', 'rejected');
    const rKept = await submission(r, 80, { state: 'rejected' });
    // Forwarding: pending, in flight and dead rows hold their submission; a delivered one does not.
    const f = await device('ret-f', 'approved');
    const fLatest = await submission(f, 1);
    await reference(f, fLatest);
    const fPending = await submission(f, 40, { withRegistration: true });
    const fInFlight = await submission(f, 39);
    const fDead = await submission(f, 38);
    const fDelivered = await submission(f, 37);
    await outbox(fPending, f, 'pending');
    await outbox(fInFlight, f, 'in_flight');
    await outbox(fDead, f, 'dead');
    await outbox(fDelivered, f, 'delivered');
    // Registrations alone: old ones go, recent ones stay.
    const regOld = await registration(a, 100);
    const regOld2 = await registration(null, 95);
    const regRecent = await registration(a, 10);
    const regHeldOnTo = (
      await ctx.sql<{ id: number }[]>`select registration_id as id from submissions where id = ${qHeld}`
    )[0]!.id;
    const regOfDeleted = (
      await ctx.sql<{ id: number }[]>`select registration_id as id from submissions where id = ${aFull1}`
    )[0]!.id;
    await ctx.sql`update registrations set received_at = ${ago(120)} where id in (${regHeldOnTo}, ${regOfDeleted})`;

    const report = await retention({ batch: 2 }).runOnce();
    expect(report).toMatchObject({ submissions: 4, registrations: 3, auditLog: 0, securityEvents: 0 });
    expect(report!.batches).toBeGreaterThan(4);

    const all = [aFull1, aPartialBefore, aFull2, aPartialAfter, aNet, aRecent, qHeld, rKept, fLatest];
    expect(await remaining('submissions', [...all, fPending, fInFlight, fDead, fDelivered])).toEqual(
      [aFull2, aPartialAfter, aRecent, qHeld, rKept, fLatest, fPending, fInFlight, fDead].sort((x, y) => x - y),
    );
    // The delivered outbox row went with its submission; the others are untouched.
    expect(
      (await ctx.sql<{ state: string }[]>`select state from outbox where device_id = ${f} order by id`).map(
        (o) => o.state,
      ),
    ).toEqual(['pending', 'in_flight', 'dead']);
    // Old registrations went (the one of a deleted submission in the same pass); the held one's stays.
    expect(await remaining('registrations', [regOld, regOld2, regRecent, regHeldOnTo, regOfDeleted])).toEqual(
      [regRecent, regHeldOnTo].sort((x, y) => x - y),
    );
    // The reference inventory still points at its submission.
    const [inv] = await ctx.sql<
      { id: number }[]
    >`select full_submission_id as id from inventories where device_id = ${a}`;
    expect(inv!.id).toBe(aFull2);

    // A second pass finds nothing more.
    expect(await retention({ batch: 1000 }).runOnce()).toMatchObject({ submissions: 0, registrations: 0 });
  });

  it('keeps an unsettled submission (and its registration) across passes, and deletes it once GLPI has it', async () => {
    const g = await device('ret-g', 'approved');
    await reference(g, await submission(g, 1));
    const pending = await submission(g, 40, { withRegistration: true });
    await outbox(pending, g, 'pending');
    const [reg] = await ctx.sql<{ id: number }[]>`select registration_id as id from submissions where id = ${pending}`;
    await ctx.sql`update registrations set received_at = ${ago(100)} where id = ${reg!.id}`;
    // A quarantined device approved since: its old held inventory was released and waits for GLPI.
    const h = await device('ret-h', 'approved');
    await reference(h, await submission(h, 2));
    const released = await submission(h, 70, { state: 'released' });
    await outbox(released, h, 'in_flight');

    for (let i = 0; i < 3; i++) await retention({ batch: 1 }).runOnce();
    expect(await remaining('submissions', [pending, released])).toEqual([pending, released]);
    expect(await remaining('registrations', [reg!.id])).toEqual([reg!.id]);

    // GLPI got them: the next pass deletes them, the registration with its submission.
    await ctx.sql`update outbox set state = 'delivered', delivered_at = ${ago(0)} where submission_id in (${pending}, ${released})`;
    await retention({ batch: 1 }).runOnce();
    expect(await remaining('submissions', [pending, released])).toEqual([]);
    expect(await remaining('registrations', [reg!.id])).toEqual([]);
  });

  it('never deletes what a backfill would still forward: forwarding off for weeks, then a pass, then backfill', async () => {
    // No outbox rows at all (forwarding was off): the device's latest full inventory and the partials after it.
    const b = await device('ret-b', 'approved');
    const full1 = await submission(b, 50);
    const partial1 = await submission(b, 45, { partial: true });
    const full2 = await submission(b, 40);
    const partial2 = await submission(b, 35, { partial: true });
    const partial3 = await submission(b, 33, { partial: true });
    await reference(b, full2);
    const report = await retention({ batch: 1 }).runOnce();
    expect(await remaining('submissions', [full1, partial1, full2, partial2, partial3])).toEqual([
      full2,
      partial2,
      partial3,
    ]);
    expect(report!.submissions).toBeGreaterThanOrEqual(2);
    // A backfill enqueues from the newest full inventory on: exactly what the pass kept, nothing superseded missing.
    await ctx.sql.begin(async (tx) => {
      await backfillOutbox(tx, ago(60), ctx.clock.now());
    });
    expect(
      (await ctx.sql<{ id: number }[]>`select submission_id as id from outbox where device_id = ${b} order by id`).map(
        (o) => o.id,
      ),
    ).toEqual([full2, partial2, partial3]);
  });

  it('keeps the audit log and security events unless AUDIT_RETENTION is set', async () => {
    await ctx.sql`
      insert into audit_log (at, actor, action, target_type) values
        (${ago(400)}, 'test', 'key.create', 'registration_key'), (${ago(10)}, 'test', 'key.create', 'registration_key')`;
    await ctx.sql`
      insert into security_events (at, kind, details) values (${ago(400)}, 'bad_secret', '{}'), (${ago(10)}, 'bad_secret', '{}')`;
    const count = async () => {
      const [r] = await ctx.sql<{ a: number; s: number }[]>`
        select (select count(*) from audit_log)::int as a, (select count(*) from security_events)::int as s`;
      return r!;
    };
    expect(await retention({ batch: 1 }).runOnce()).toMatchObject({ auditLog: 0, securityEvents: 0 });
    expect(await count()).toEqual({ a: 2, s: 2 });
    expect(await retention({ batch: 1, auditSeconds: 365 * 86400 }).runOnce()).toMatchObject({
      auditLog: 1,
      securityEvents: 1,
    });
    expect(await count()).toEqual({ a: 1, s: 1 });
  });

  it('runs on one replica at a time: a pass while another holds the lock is skipped and deletes nothing', async () => {
    const d = await device('ret-lock', 'approved');
    const old = await registration(d, 100);
    // Another "replica": a session of its own on the same schema, holding the retention lock.
    const other = postgres(ctx.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      await other`select pg_advisory_lock(${0x4147_5254}::int, hashtext(current_schema()))`;
      expect(await retention({ batch: 100 }).runOnce()).toBeNull();
      expect(await remaining('registrations', [old])).toEqual([old]);
      await other`select pg_advisory_unlock(${0x4147_5254}::int, hashtext(current_schema()))`;
    } finally {
      await other.end();
    }
    expect(await retention({ batch: 100 }).runOnce()).toMatchObject({ registrations: 1 });
    expect(await remaining('registrations', [old])).toEqual([]);
    const metrics = await ctx.deps.metrics.registry.metrics();
    expect(metrics).toMatch(/agentgate_retention_passes_total\{outcome="skipped"\} [1-9]/);
    expect(metrics).toMatch(/agentgate_retention_passes_total\{outcome="done"\} [1-9]/);
    expect(metrics).toMatch(/agentgate_retention_deleted_total\{table="registrations"\} [1-9]/);
  });
});
