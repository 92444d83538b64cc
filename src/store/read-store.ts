/**
 * Read queries for operators (CLI, admin API, console): devices and registrations, newest first.
 */
import type postgres from 'postgres';
import type { Queryable, Sql } from './db.js';
import { type DeviceCursor, type DeviceOrder, deviceOrder } from './device-sort.js';

export type { DeviceCursor } from './device-sort.js';

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

/**
 * The text device search ("contains") matches: name, serial, UUID, deviceid and MACs in one expression, the
 * one the trigram index is built on (migration 0014), so that one ILIKE is one index scan.
 */
const SEARCH_TEXT = (sql: Queryable) => sql`agentgate_device_search_text(name, serial, uuid, deviceid, macs)`;

/**
 * An ILIKE pattern for "contains this text", literally: LIKE's wildcards and escape are escaped, and control
 * characters (the fields' separator in SEARCH_TEXT among them) dropped, so a match stays within one field.
 */
export function containsPattern(text: string): string {
  const literal = text.replace(/[\u0000-\u001f\u007f]/g, '').replace(/[\\%_]/g, (c) => `\\${c}`);
  return `%${literal}%`;
}

/**
 * Devices matching the filter, in the order asked (store/device-sort.ts; most recently seen first by
 * default), one page: by `offset`, or after a cursor (keyset: the cost of a page does not grow with how
 * deep it is). `next` is the cursor of the page's last row. Every filter has an index in the default order
 * (migration 0012), and `q` ("contains") a trigram one (0014); other orders sort the matching rows.
 */
export async function listDevicesPage(
  sql: Sql,
  f: DeviceFilter & DeviceOrder,
): Promise<{ devices: DeviceRecord[]; next: DeviceCursor | null }> {
  const order = deviceOrder(sql, f);
  const rows = await sql<(DeviceRecord & { cursorKey: string })[]>`
    select id, deviceid, state, name, serial, uuid, msn, asset_tag as "assetTag", manufacturer, model, macs, ips, os,
           assigned_tag as tag, tag as "claimedTag", ${MISMATCH(sql)} as "claimedTagMismatch", agent_id as "agentId", agent_version as "agentVersion", first_seen as "firstSeen", last_seen as "lastSeen",
           last_remote_addr as "lastRemoteAddr", last_inventory_at as "lastInventoryAt", ${order.cursorColumn}
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
      ${f.q ? sql`and ${SEARCH_TEXT(sql)} ilike ${containsPattern(f.q)}` : sql``}
      ${f.firstSeenFrom ? sql`and first_seen >= ${f.firstSeenFrom}` : sql``}
      ${f.firstSeenTo ? sql`and first_seen < ${f.firstSeenTo}` : sql``}
      ${order.after}
    ${order.orderBy}
    limit ${f.limit ?? 1000} ${f.after ? sql`` : sql`offset ${f.offset ?? 0}`}`;
  const last = rows[rows.length - 1];
  const devices = rows.map(({ cursorKey: _c, ...d }) => d);
  return { devices, next: last ? { key: last.cursorKey, id: last.id } : null };
}

export async function listDevices(sql: Sql, f: DeviceFilter): Promise<DeviceRecord[]> {
  return (await listDevicesPage(sql, f)).devices;
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

/** The device page's inventory summary (services/inventory-summary.ts computes the same from a parsed view). */
export interface InventorySummary {
  os: unknown;
  manufacturer: unknown;
  model: unknown;
  serial: unknown;
  uuid: unknown;
  memoryMb: unknown;
  softwareCount: number | null;
  networkCount: number | null;
  sections: string[];
  /** true while the summary of the latest full inventory is still being prepared (shown: the device's own columns) */
  pending?: boolean;
}

export interface PageInventory {
  /** the summary of the merged view (partials merged after the full one), computed in SQL, when there is a view */
  fromView: InventorySummary | null;
  /** the summary the background pass wrote, and whether it describes the latest full inventory */
  summary: InventorySummary | null;
  fresh: boolean;
  fullSubmissionId: number | null;
  /** decoded size of the latest full inventory (small ones may be summarised on the spot) */
  fullDecodedSize: number | null;
}

/**
 * What the device page shows of the inventory, without sending a view or a body to the process: the
 * summary of the merged view is built in SQL (first element of a list section, counts of lists, keys).
 */
export async function pageInventory(sql: Queryable, deviceId: number): Promise<PageInventory | null> {
  // Only the small sections are read: the software and network counts come from inventory_sections.items.
  const [row] = await sql<PageInventory[]>`
    with i as (select * from inventories where device_id = ${deviceId}),
    v as (
      select jsonb_object_agg(section, case jsonb_typeof(content) when 'array' then content -> 0 else content end)
               filter (where section in ('operatingsystem', 'bios', 'hardware')) as first,
             jsonb_object_agg(section, case jsonb_typeof(content) when 'array' then items when 'null' then 0 else 1 end)
               filter (where section in ('softwares', 'networks')) as counts,
             to_jsonb(array_agg(section order by section)) as sections
      from inventory_sections where device_id = ${deviceId} and (select has_view from i)
    )
    select case when not i.has_view then null else jsonb_build_object(
             'os', coalesce(v.first #> '{operatingsystem,full_name}', v.first #> '{operatingsystem,name}'),
             'manufacturer', v.first #> '{bios,smanufacturer}', 'model', v.first #> '{bios,smodel}',
             'serial', v.first #> '{bios,ssn}', 'uuid', v.first #> '{hardware,uuid}', 'memoryMb', v.first #> '{hardware,memory}',
             'softwareCount', coalesce((v.counts ->> 'softwares')::int, 0),
             'networkCount', coalesce((v.counts ->> 'networks')::int, 0),
             'sections', coalesce(v.sections, '[]'::jsonb)) end as "fromView",
           i.summary, i.summary_submission_id is not distinct from i.full_submission_id as fresh,
           i.full_submission_id as "fullSubmissionId", s.decoded_size as "fullDecodedSize"
    from i cross join v left join submissions s on s.id = i.full_submission_id`;
  return row ?? null;
}

/** Full inventories whose summary is still to be prepared (no view, summary of an older one or none). */
export async function summaryTodo(
  sql: Queryable,
  limit: number,
): Promise<{ deviceId: number; submissionId: number }[]> {
  return sql<{ deviceId: number; submissionId: number }[]>`
    select device_id as "deviceId", full_submission_id as "submissionId" from inventories
    where full_submission_id is not null and not has_view and summary_submission_id is distinct from full_submission_id
    order by device_id limit ${limit}`;
}

/** Stores a summary, unless a newer full inventory arrived meanwhile (then the next pass does that one). */
export async function saveSummary(
  sql: Queryable,
  deviceId: number,
  submissionId: number,
  summary: InventorySummary,
): Promise<void> {
  await sql`
    update inventories set summary = ${sql.json(summary as never)}, summary_submission_id = ${submissionId}
    where device_id = ${deviceId} and full_submission_id = ${submissionId}`;
}
