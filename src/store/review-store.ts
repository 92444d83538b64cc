/**
 * Queries of the review workflow: identity matches for conflict detection, the primitives of a state
 * transition (the state machine itself is services/device-state.ts), history, and what a device page shows.
 */
import type { Queryable } from './db.js';
import type { DeviceState } from './agent-store.js';
import { proxyChain } from './read-store.js';

export interface IdentityMatch {
  id: number;
  deviceid: string;
  uuid: string | null;
  serial: string | null;
  name: string | null;
  macs: string[];
  state: DeviceState;
  /** The credential that registered the device (its pin): a registration key, a per-agent client or a certificate. */
  registeredKeyId: number | null;
  registeredClientPk: number | null;
  registeredCertId: number | null;
}

const MATCH_COLUMNS = (sql: Queryable) =>
  sql`id, deviceid, uuid, serial, name, macs, state, registered_key_id as "registeredKeyId", registered_client_pk as "registeredClientPk",
      registered_cert_id as "registeredCertId"`;

/**
 * The identity judgement's one read of an agent message, in one statement (one round trip on one pooled
 * connection): the device under this deviceid first, then up to 9 devices elsewhere with the same UUID or
 * serial (none when both are null), and with `bound` the active per-agent client created for the deviceid
 * (clients create --device), which alone may speak for it.
 */
export async function readIdentity(
  sql: Queryable,
  deviceid: string,
  uuid: string | null,
  serial: string | null,
  bound: boolean,
): Promise<{ matches: IdentityMatch[]; boundClient: number | null }> {
  const rows = await sql<(IdentityMatch & { boundClient: number | null })[]>`
    select b.bound as "boundClient", d.*
    from (select ${
      bound
        ? sql`(select id from agent_clients where deviceid = ${deviceid} and revoked_at is null order by id desc limit 1)`
        : sql`null::bigint`
    } as bound) b
    left join lateral (
      select ${MATCH_COLUMNS(sql)} from devices
      where deviceid = ${deviceid}
         ${uuid ? sql`or uuid = ${uuid}` : sql``}
         ${serial ? sql`or serial = ${serial}` : sql``}
      order by (deviceid = ${deviceid}) desc, id
      limit 10
    ) d on true`;
  const matches: IdentityMatch[] = [];
  for (const { boundClient: _, ...m } of rows) if (m.id !== null) matches.push(m);
  return { matches, boundClient: rows[0]?.boundClient ?? null };
}

/** The device on record under this deviceid, with its pin. */
export async function findDeviceByDeviceid(sql: Queryable, deviceid: string): Promise<IdentityMatch | null> {
  const [row] = await sql<IdentityMatch[]>`select ${MATCH_COLUMNS(sql)} from devices where deviceid = ${deviceid}`;
  return row ?? null;
}

/** Locks a device's row for a state change; null when there is no such device. */
export async function lockDeviceState(tx: Queryable, deviceId: number) {
  const [cur] = await tx<
    { id: number; deviceid: string; state: DeviceState }[]
  >`select id, deviceid, state from devices where id = ${deviceId} for update`;
  return cur ?? null;
}

/** Sets the state; the conflict columns are kept only while the device is in conflict. */
export async function setDeviceState(
  tx: Queryable,
  deviceId: number,
  to: DeviceState,
  reason: string | null,
  at: Date,
) {
  await tx`update devices set state = ${to}, state_changed_at = ${at}, state_reason = ${reason},
             conflict_with = case when ${to} = 'conflict' then conflict_with else null end,
             conflict_details = case when ${to} = 'conflict' then conflict_details else null end
           where id = ${deviceId}`;
}

export async function insertTransition(
  tx: Queryable,
  t: { deviceId: number; at: Date; from: DeviceState; to: DeviceState; actor: string; reason: string | null },
) {
  await tx`insert into device_transitions (device_id, at, from_state, to_state, actor, reason)
           values (${t.deviceId}, ${t.at}, ${t.from}, ${t.to}, ${t.actor}, ${t.reason})`;
}

/** Held submissions become released or rejected; their ids, in arrival order. */
export async function settleHeldSubmissions(
  tx: Queryable,
  deviceId: number,
  to: 'released' | 'rejected',
): Promise<number[]> {
  const rows = await tx<{ id: number }[]>`
    update submissions set state = ${to} where device_id = ${deviceId} and state = 'held' returning id`;
  return rows.map((r) => r.id).sort((a, b) => a - b);
}

/** Released or rejected submissions are held again (a decision undone); their ids. */
export async function holdDecidedSubmissions(tx: Queryable, deviceId: number): Promise<number[]> {
  const rows = await tx<{ id: number }[]>`
    update submissions set state = 'held' where device_id = ${deviceId} and state in ('released', 'rejected') returning id`;
  return rows.map((r) => r.id).sort((a, b) => a - b);
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

/** Why a device is where it is, and the credential it registered with. */
export async function deviceDecisionContext(sql: Queryable, deviceId: number) {
  const [row] = await sql<
    {
      conflictWith: number | null;
      conflictDetails: unknown;
      stateReason: string | null;
      keyName: string | null;
      clientId: string | null;
      certFingerprint: string | null;
      assignedTag: string | null;
    }[]
  >`
    select d.conflict_with as "conflictWith", d.conflict_details as "conflictDetails", d.state_reason as "stateReason",
           k.name as "keyName", c.client_id as "clientId", cc.fingerprint as "certFingerprint", d.assigned_tag as "assignedTag"
    from devices d left join registration_keys k on k.id = d.registered_key_id left join agent_clients c on c.id = d.registered_client_pk
    left join client_certificates cc on cc.id = d.registered_cert_id
    where d.id = ${deviceId}`;
  return row;
}

/** The addresses a device's requests came from, most recent first. */
export async function deviceSources(sql: Queryable, deviceId: number) {
  return sql<{ remoteAddr: string; requests: number; lastSeen: Date }[]>`
    select remote_addr as "remoteAddr", count(*)::int as requests, max(received_at) as "lastSeen"
    from registrations where device_id = ${deviceId} and remote_addr is not null
    group by remote_addr order by max(received_at) desc limit 20`;
}

/**
 * Moves a device's pin to another credential (a reviewer's audited act): a key, or a client (a certificate
 * pin is dropped). The device's tag becomes that credential's (what GLPI gets with UPSTREAM_TAG=key).
 */
export async function setDevicePin(
  tx: Queryable,
  deviceId: number,
  pin: { keyId: number | null; clientPk: number | null; tag: string | null },
): Promise<void> {
  await tx`
    update devices set registered_key_id = ${pin.keyId}, registered_client_pk = ${pin.clientPk}, registered_cert_id = null,
                       assigned_tag = ${pin.tag}
    where id = ${deviceId}`;
}

/**
 * The proxy chains a device's messages came through (GLPI-Proxy-ID), most recent first: each with its
 * requests and when last. Direct messages are not listed; [] when every message came direct.
 */
export async function deviceProxies(sql: Queryable, deviceId: number) {
  return sql<{ proxyChain: string[]; requests: number; firstSeen: Date; lastSeen: Date }[]>`
    select chain as "proxyChain", count(*)::int as requests, min(received_at) as "firstSeen", max(received_at) as "lastSeen"
    from (select ${proxyChain(sql, sql`proxy_id`)} as chain, received_at
          from registrations where device_id = ${deviceId} and proxy_id is not null) r
    where cardinality(chain) > 0
    group by chain order by max(received_at) desc limit 20`;
}
