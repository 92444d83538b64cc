/**
 * Read queries for operators (CLI, admin API, console): devices and registrations, newest first.
 */
import type postgres from 'postgres';
import type { Queryable, Sql } from './db.js';

export interface DeviceRecord {
  id: number;
  deviceid: string;
  state: string;
  name: string | null;
  serial: string | null;
  uuid: string | null;
  msn: string | null;
  assetTag: string | null;
  manufacturer: string | null;
  model: string | null;
  macs: string[];
  ips: string[];
  os: string | null;
  /** the tag of the registration key or client the device is pinned to (what policies' --tag match, what GLPI gets); null without one */
  tag: string | null;
  /** the tag the agent sends (inventory TAG): recorded and shown, never trusted */
  claimedTag: string | null;
  /** both tags are set and differ: the agent claims another tag (entity) than its credential's */
  claimedTagMismatch: boolean;
  agentId: string | null;
  agentVersion: string | null;
  firstSeen: Date;
  lastSeen: Date;
  lastRemoteAddr: string | null;
  lastInventoryAt: Date | null;
}

export interface DeviceFilter {
  state?: string;
  deviceid?: string;
  id?: number;
  ids?: number[];
  /** the registration key's tag (the device's `tag`) */
  tag?: string;
  /** the tag the agent sends */
  claimedTag?: string;
  /** only devices whose claimed tag differs from their tag (both set) */
  claimedTagMismatch?: boolean;
  /** name of the registration key that registered the device */
  key?: string;
  /** CIDR the last source address falls in */
  subnet?: string;
  /** free text: name, serial, UUID, MAC or deviceid contains it */
  q?: string;
  firstSeenFrom?: Date;
  firstSeenTo?: Date;
  limit?: number;
  offset?: number;
}

/** A device's claimed tag differs from the one the gateway gave it (both set). */
const MISMATCH = (sql: Queryable) => sql`coalesce(tag <> assigned_tag, false)`;

export async function listDevices(sql: Sql, f: DeviceFilter): Promise<DeviceRecord[]> {
  return sql<DeviceRecord[]>`
    select id, deviceid, state, name, serial, uuid, msn, asset_tag as "assetTag", manufacturer, model, macs, ips, os,
           assigned_tag as tag, tag as "claimedTag", ${MISMATCH(sql)} as "claimedTagMismatch", agent_id as "agentId", agent_version as "agentVersion", first_seen as "firstSeen", last_seen as "lastSeen",
           last_remote_addr as "lastRemoteAddr", last_inventory_at as "lastInventoryAt"
    from devices
    where true
      ${f.state ? sql`and state = ${f.state}` : sql``}
      ${f.deviceid ? sql`and deviceid = ${f.deviceid}` : sql``}
      ${f.id ? sql`and id = ${f.id}` : sql``}
      ${f.ids ? sql`and id = any(${f.ids}::bigint[])` : sql``}
      ${f.tag ? sql`and assigned_tag = ${f.tag}` : sql``}
      ${f.claimedTag ? sql`and tag = ${f.claimedTag}` : sql``}
      ${f.claimedTagMismatch ? sql`and ${MISMATCH(sql)}` : sql``}
      ${f.key ? sql`and registered_key_id = (select id from registration_keys where name = ${f.key})` : sql``}
      ${f.subnet ? sql`and last_remote_addr is not null and last_remote_addr::inet <<= ${f.subnet}::cidr` : sql``}
      ${f.q ? sql`and (name ilike ${`%${f.q}%`} or serial ilike ${`%${f.q}%`} or uuid ilike ${`%${f.q}%`} or deviceid ilike ${`%${f.q}%`} or array_to_string(macs, ' ') ilike ${`%${f.q.toLowerCase()}%`})` : sql``}
      ${f.firstSeenFrom ? sql`and first_seen >= ${f.firstSeenFrom}` : sql``}
      ${f.firstSeenTo ? sql`and first_seen < ${f.firstSeenTo}` : sql``}
    order by last_seen desc, id desc
    limit ${f.limit ?? 1000} offset ${f.offset ?? 0}`;
}

/** Devices per state, for the quarantine-queue gauge. */
export async function countDevicesByState(sql: Sql): Promise<{ state: string; n: number }[]> {
  return sql<{ state: string; n: number }[]>`select state, count(*)::int as n from devices group by state`;
}

export interface RegistrationRecord {
  id: number;
  deviceid: string | null;
  deviceId: number | null;
  kind: string;
  format: string;
  compression: string;
  partial: boolean;
  outcome: string;
  status: number;
  method: string;
  path: string;
  bodySize: number;
  decodedSize: number;
  remoteAddr: string | null;
  userAgent: string | null;
  agentId: string | null;
  /** GLPI-Proxy-ID: the GLPI Agent proxies the message came through, in header order; [] when direct */
  proxyChain: string[];
  message: string | null;
  receivedAt: Date;
  authType: string | null;
  authUser: string | null;
  keyName: string | null;
  keyVersion: number | null;
  clientId: string | null;
  /** SHA-256 of the client certificate the request came with (lowercase hex), and its subject. */
  certFingerprint: string | null;
  certSubject: string | null;
  /** the tag the message claimed (inventory TAG, CONTACT tag), or null */
  claimedTag: string | null;
}

/** At most this many proxies in a chain, each cut to PROXY_ID_MAX characters. */
export const PROXY_CHAIN_MAX = 16;
export const PROXY_ID_MAX = 128;

/**
 * GLPI-Proxy-ID as a list (text[]): each GLPI Agent proxy adds its agent id, comma-separated. Entries are
 * trimmed and empty ones dropped, in header order; '{}' when the message came direct. (The header itself is
 * recorded cut to 256 characters.)
 */
export function proxyChain(sql: Queryable, column: postgres.Fragment) {
  return sql`array(select left(btrim(e, E' \t'), ${PROXY_ID_MAX}) from unnest(string_to_array(${column}, ',')) with ordinality as u(e, n)
                   where btrim(e, E' \t') <> '' order by n limit ${PROXY_CHAIN_MAX})`;
}

export async function listRegistrations(
  sql: Sql,
  f: { deviceid?: string; limit?: number },
): Promise<RegistrationRecord[]> {
  const rows = await sql<RegistrationRecord[]>`
    select r.id, r.deviceid, r.device_id as "deviceId", r.kind, r.format, r.compression, r.partial, r.outcome, r.status, r.method,
           r.path, r.body_size as "bodySize", r.decoded_size as "decodedSize", r.remote_addr as "remoteAddr",
           r.user_agent as "userAgent", r.agent_id as "agentId", ${proxyChain(sql, sql`r.proxy_id`)} as "proxyChain", r.message, r.received_at as "receivedAt",
           r.auth_type as "authType", r.auth_user as "authUser", k.name as "keyName", v.version as "keyVersion",
           c.client_id as "clientId", r.cert_fingerprint as "certFingerprint", r.cert_subject as "certSubject",
           r.claimed_tag as "claimedTag"
    from registrations r
    left join registration_keys k on k.id = r.key_id
    left join key_versions v on v.id = r.key_version_id
    left join agent_clients c on c.id = r.client_pk
    where true ${f.deviceid ? sql`and r.deviceid = ${f.deviceid}` : sql``}
    order by r.id desc
    limit ${f.limit ?? 50}`;
  return rows;
}
