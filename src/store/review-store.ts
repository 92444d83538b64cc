/**
 * Queries of the review workflow: identity matches for conflict detection, state transitions with their
 * history, and the held submissions that a decision releases or rejects.
 */
import type { Queryable } from './db.js';
import type { DeviceState } from './agent-store.js';
import { enqueueReleased, settleOutboxOnLeave } from './outbox-store.js';

export interface IdentityMatch {
  id: number;
  deviceid: string;
  uuid: string | null;
  serial: string | null;
  name: string | null;
  macs: string[];
  state: DeviceState;
}

/** The device with this deviceid, and devices elsewhere with the same UUID or serial. */
export async function findIdentityMatches(
  sql: Queryable,
  deviceid: string,
  uuid: string | null,
  serial: string | null,
): Promise<IdentityMatch[]> {
  return sql<IdentityMatch[]>`
    select id, deviceid, uuid, serial, name, macs, state from devices
    where deviceid = ${deviceid}
       ${uuid ? sql`or uuid = ${uuid}` : sql``}
       ${serial ? sql`or serial = ${serial}` : sql``}
    order by (deviceid = ${deviceid}) desc, id
    limit 10`;
}

export interface TransitionResult {
  id: number;
  deviceid: string;
  from: DeviceState;
  to: DeviceState;
  changed: boolean;
  releasedSubmissions: number;
}

/**
 * Moves one device to a state (locking it), records the transition and settles its held submissions. With
 * `forward` (UPSTREAM_URL set), what an approval releases is put in the GLPI outbox in the same transaction.
 */
export async function transitionDevice(
  tx: Queryable,
  deviceId: number,
  to: DeviceState,
  actor: string,
  reason: string | null,
  at: Date,
  opts: { forward?: boolean } = {},
): Promise<TransitionResult | null> {
  const [cur] = await tx<
    { id: number; deviceid: string; state: DeviceState }[]
  >`select id, deviceid, state from devices where id = ${deviceId} for update`;
  if (!cur) return null;
  if (cur.state === to)
    return { id: cur.id, deviceid: cur.deviceid, from: cur.state, to, changed: false, releasedSubmissions: 0 };
  await tx`update devices set state = ${to}, state_changed_at = ${at}, state_reason = ${reason},
             conflict_with = case when ${to} = 'conflict' then conflict_with else null end,
             conflict_details = case when ${to} = 'conflict' then conflict_details else null end
           where id = ${deviceId}`;
  await tx`insert into device_transitions (device_id, at, from_state, to_state, actor, reason) values (${deviceId}, ${at}, ${cur.state}, ${to}, ${actor}, ${reason})`;
  let settled = 0;
  if (to === 'approved' || to === 'rejected') {
    const rows = await tx<
      { id: number }[]
    >`update submissions set state = ${to === 'approved' ? 'released' : 'rejected'} where device_id = ${deviceId} and state = 'held' returning id`;
    settled = rows.length;
    if (to === 'approved' && opts.forward)
      await enqueueReleased(
        tx,
        deviceId,
        cur.deviceid,
        rows.map((r) => r.id),
        at,
      );
    if (cur.state === 'approved') await settleOutboxOnLeave(tx, deviceId, to, [], at);
  } else if (cur.state === 'rejected' || cur.state === 'approved') {
    // Undo of a decision: what it released or rejected is held again.
    const rows = await tx<
      { id: number }[]
    >`update submissions set state = 'held' where device_id = ${deviceId} and state in ('released', 'rejected') returning id`;
    settled = rows.length;
    if (cur.state === 'approved')
      await settleOutboxOnLeave(
        tx,
        deviceId,
        to,
        rows.map((r) => r.id),
        at,
      );
  }
  return { id: cur.id, deviceid: cur.deviceid, from: cur.state, to, changed: true, releasedSubmissions: settled };
}

/** Deletes submissions rejected with their device before `before`; returns how many, per device. */
export async function purgeRejectedSubmissions(
  sql: Queryable,
  before: Date,
): Promise<{ deviceid: string; n: number }[]> {
  return sql<{ deviceid: string; n: number }[]>`
    with gone as (
      delete from submissions s using devices d
      where s.device_id = d.id and s.state = 'rejected' and coalesce(d.state_changed_at, s.received_at) < ${before}
      returning d.deviceid)
    select deviceid, count(*)::int as n from gone group by deviceid order by deviceid`;
}

export async function deviceHistory(sql: Queryable, deviceId: number) {
  return sql<{ at: Date; from: string | null; to: string; actor: string; reason: string | null }[]>`
    select at, from_state as "from", to_state as "to", actor, reason from device_transitions where device_id = ${deviceId} order by id`;
}

export async function lastTransition(sql: Queryable, deviceId: number) {
  const [row] = await sql<{ id: number; at: Date; from: DeviceState | null; to: DeviceState; actor: string }[]>`
    select id, at, from_state as "from", to_state as "to", actor from device_transitions where device_id = ${deviceId} order by id desc limit 1`;
  return row ?? null;
}

export async function submissionCounts(sql: Queryable, deviceId: number) {
  return sql<{ state: string; kind: string; n: number; bytes: number }[]>`
    select state, kind, count(*)::int as n, coalesce(sum(length(body)), 0)::int as bytes from submissions where device_id = ${deviceId} group by state, kind order by state, kind`;
}
