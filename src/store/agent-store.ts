/**
 * Writes of the agent path: device upsert, registration, raw submission and inventory view. Everything one
 * message writes goes in one statement (`recordMessage`), and device creation is `insert … on conflict`,
 * so concurrent first contacts of one device make exactly one row.
 */
import type postgres from 'postgres';
import type { Queryable as Tx } from './db.js';

export interface DeviceFacts {
  deviceid: string;
  initialState: 'quarantined' | 'approved';
  name?: string | null;
  uuid?: string | null;
  serial?: string | null;
  msn?: string | null;
  assetTag?: string | null;
  manufacturer?: string | null;
  model?: string | null;
  macs?: string[];
  ips?: string[];
  os?: string | null;
  tag?: string | null;
  agentId?: string | null;
  agentVersion?: string | null;
  remoteAddr: string | null;
  seenAt: Date;
  inventoryAt?: Date | null;
  /** The identity clashes with a known device: the device goes to (or starts in) `conflict`. */
  conflict?: { withId: number | null; details: Record<string, unknown> } | null;
  /** Set only when this call creates the device. */
  registeredKeyId?: number | null;
  registeredClientPk?: number | null;
  registeredCertId?: number | null;
  assignedTag?: string | null;
}

/** Every state a device can be in (the `devices.state` check constraint); the admin API lists them at /api/v1/meta. */
export const DEVICE_STATES = ['quarantined', 'approved', 'rejected', 'conflict'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export interface DeviceRow {
  id: number;
  state: DeviceState;
  inserted: boolean;
}

/**
 * What a message may change of a device on record: its identity fields, unless the message is itself a
 * conflict or the device is held in one — a device's record changes only from messages that speak for it,
 * and a reviewer compares the identity on record with the one that arrived.
 */
function identityUpdate(tx: Tx) {
  return tx`,
      name = case when devices.state = 'conflict' then devices.name else coalesce(excluded.name, devices.name) end,
      uuid = case when devices.state = 'conflict' then devices.uuid else coalesce(excluded.uuid, devices.uuid) end,
      serial = case when devices.state = 'conflict' then devices.serial else coalesce(excluded.serial, devices.serial) end,
      msn = case when devices.state = 'conflict' then devices.msn else coalesce(excluded.msn, devices.msn) end,
      asset_tag = case when devices.state = 'conflict' then devices.asset_tag else coalesce(excluded.asset_tag, devices.asset_tag) end,
      manufacturer = case when devices.state = 'conflict' then devices.manufacturer else coalesce(excluded.manufacturer, devices.manufacturer) end,
      model = case when devices.state = 'conflict' then devices.model else coalesce(excluded.model, devices.model) end,
      macs = case when devices.state = 'conflict' or cardinality(excluded.macs) = 0 then devices.macs else excluded.macs end,
      ips = case when devices.state = 'conflict' or cardinality(excluded.ips) = 0 then devices.ips else excluded.ips end,
      os = case when devices.state = 'conflict' then devices.os else coalesce(excluded.os, devices.os) end,
      tag = case when devices.state = 'conflict' then devices.tag else coalesce(excluded.tag, devices.tag) end,
      agent_id = case when devices.state = 'conflict' then devices.agent_id else coalesce(excluded.agent_id, devices.agent_id) end,
      agent_version = case when devices.state = 'conflict' then devices.agent_version else coalesce(excluded.agent_version, devices.agent_version) end`;
}

/**
 * How far a message's last_seen may be ahead of the one on record before the row takes it (messages that
 * carry an inventory always do). last_seen is in four indexes (the device lists' orders, migration 0012):
 * writing it makes the update non-HOT, so every index — the trigram and MAC GINs included — gets a new
 * entry. A PROLOG or CONTACT within this much of the recorded last_seen changes no indexed column and is a
 * HOT update (migration 0015 leaves room for it on the page).
 */
export const LAST_SEEN_RESOLUTION = '60 seconds';

/** The device upsert as a fragment (insert … on conflict … returning id, state, inserted). */
function deviceUpsert(tx: Tx, d: DeviceFacts) {
  return tx`
    insert into devices (deviceid, state, name, uuid, serial, msn, asset_tag, manufacturer, model, macs, ips, os, tag,
                         agent_id, agent_version, first_seen, last_seen, last_remote_addr, last_inventory_at,
                         registered_key_id, registered_client_pk, registered_cert_id, assigned_tag, state_changed_at,
                         conflict_with, conflict_details)
    values (${d.deviceid}, ${d.conflict ? 'conflict' : d.initialState}, ${d.name ?? null}, ${d.uuid ?? null}, ${d.serial ?? null}, ${d.msn ?? null},
            ${d.assetTag ?? null}, ${d.manufacturer ?? null}, ${d.model ?? null}, ${d.macs ?? []}::text[], ${d.ips ?? []}::text[],
            ${d.os ?? null}, ${d.tag ?? null}, ${d.agentId ?? null}, ${d.agentVersion ?? null}, ${d.seenAt}, ${d.seenAt},
            ${d.remoteAddr}, ${d.inventoryAt ?? null}, ${d.registeredKeyId ?? null}, ${d.registeredClientPk ?? null},
            ${d.registeredCertId ?? null}, ${d.assignedTag ?? null}, ${d.seenAt}, ${d.conflict?.withId ?? null},
            ${d.conflict ? tx.json(d.conflict.details as never) : null})
    on conflict (deviceid) do update set
      ${
        d.conflict
          ? // A conflicting message changes nothing of the record but its state: a person decides.
            tx`
      state = case when devices.state in ('rejected', 'conflict') then devices.state else 'conflict' end,
      state_changed_at = case when devices.state in ('rejected', 'conflict') then devices.state_changed_at else excluded.last_seen end,
      conflict_with = excluded.conflict_with, conflict_details = excluded.conflict_details`
          : tx`
      last_seen = case when excluded.last_inventory_at is not null
                         or excluded.last_seen >= devices.last_seen + ${LAST_SEEN_RESOLUTION}::interval
                       then greatest(devices.last_seen, excluded.last_seen) else devices.last_seen end,
      last_remote_addr = coalesce(excluded.last_remote_addr, devices.last_remote_addr),
      last_inventory_at = coalesce(excluded.last_inventory_at, devices.last_inventory_at)
      ${identityUpdate(tx)}`
      }
    returning id, state, (xmax = 0) as inserted`;
}

export interface RegistrationInput {
  receivedAt: Date;
  deviceId: number | null;
  deviceid: string | null;
  method: string;
  path: string;
  kind: string;
  format: 'xml' | 'json' | 'none';
  compression: string;
  bodySize: number;
  decodedSize: number;
  partial: boolean;
  remoteAddr: string | null;
  userAgent: string | null;
  agentId: string | null;
  proxyId: string | null;
  requestId: string | null;
  outcome: string;
  status: number;
  message: string | null;
  details: Record<string, unknown> | null;
  authType?: string | null;
  authUser?: string | null;
  keyId?: number | null;
  keyVersionId?: number | null;
  clientPk?: number | null;
  certFingerprint?: string | null;
  certSubject?: string | null;
  /** The tag the message claimed (inventory TAG, CONTACT tag). */
  claimedTag?: string | null;
  /** Unique per message (spooled inventories): a second record of the same message fails (MESSAGE_KEY_INDEX). */
  messageKey?: string | null;
}

/** The unique index behind RegistrationInput.messageKey; a violation of it means "already recorded". */
export const MESSAGE_KEY_INDEX = 'registrations_message_key_idx';

/** The error is the unique violation of a message key: the message was recorded already. */
export function isDuplicateMessage(err: unknown): boolean {
  const e = err as { code?: unknown; constraint_name?: unknown } | null;
  return e?.code === '23505' && e.constraint_name === MESSAGE_KEY_INDEX;
}

/**
 * The longest text kept in each registration column (characters; longer values are cut, never refused):
 * whatever a request carries in its path or headers is stored bounded. Documented in the README.
 */
export const REGISTRATION_TEXT_MAX = {
  deviceid: 255,
  method: 16,
  path: 256,
  kind: 32,
  format: 8,
  compression: 16,
  remoteAddr: 64,
  userAgent: 256,
  agentId: 128,
  proxyId: 256,
  requestId: 64,
  outcome: 32,
  message: 512,
  authType: 32,
  authUser: 128,
  certFingerprint: 64,
  certSubject: 1000,
} as const;

/** `s` cut to `max` characters (whole UTF-16 code points: a surrogate pair is never split). */
export function cut(s: string | null | undefined, max: number): string | null {
  if (s === null || s === undefined) return null;
  if (s.length <= max) return s;
  const end = /[\uD800-\uDBFF]/.test(s[max - 1]!) ? max - 1 : max;
  return s.slice(0, end);
}

function bounded(r: RegistrationInput): RegistrationInput {
  const m = REGISTRATION_TEXT_MAX;
  return {
    ...r,
    deviceid: cut(r.deviceid, m.deviceid),
    method: cut(r.method, m.method)!,
    path: cut(r.path, m.path)!,
    kind: cut(r.kind, m.kind)!,
    compression: cut(r.compression, m.compression)!,
    remoteAddr: cut(r.remoteAddr, m.remoteAddr),
    userAgent: cut(r.userAgent, m.userAgent),
    agentId: cut(r.agentId, m.agentId),
    proxyId: cut(r.proxyId, m.proxyId),
    requestId: cut(r.requestId, m.requestId),
    outcome: cut(r.outcome, m.outcome)!,
    message: cut(r.message, m.message),
    authType: cut(r.authType, m.authType),
    authUser: cut(r.authUser, m.authUser),
    certFingerprint: cut(r.certFingerprint, m.certFingerprint),
    certSubject: cut(r.certSubject, m.certSubject),
  };
}

function registrationInsert(
  tx: Tx,
  input: RegistrationInput,
  deviceId: postgres.Fragment,
  outcome: postgres.Fragment = tx`${cut(input.outcome, REGISTRATION_TEXT_MAX.outcome)}`,
) {
  const r = bounded(input);
  return tx`
    insert into registrations (received_at, device_id, deviceid, method, path, kind, format, compression, body_size,
                               decoded_size, partial, remote_addr, user_agent, agent_id, proxy_id, request_id, outcome,
                               status, message, details, auth_type, auth_user, key_id, key_version_id, client_pk,
                               cert_fingerprint, cert_subject, message_key, claimed_tag)
    values (${r.receivedAt}, ${deviceId}, ${r.deviceid}, ${r.method}, ${r.path}, ${r.kind}, ${r.format}, ${r.compression},
            ${r.bodySize}, ${r.decodedSize}, ${r.partial}, ${r.remoteAddr}, ${r.userAgent}, ${r.agentId}, ${r.proxyId},
            ${r.requestId}, ${outcome}, ${r.status}, ${r.message},
            ${r.details === null ? null : tx.json(r.details as never)}, ${r.authType ?? null}, ${r.authUser ?? null},
            ${r.keyId ?? null}, ${r.keyVersionId ?? null}, ${r.clientPk ?? null}, ${r.certFingerprint ?? null},
            ${r.certSubject ?? null}, ${r.messageKey ?? null}, ${r.claimedTag ?? null})
    returning id`;
}

export async function insertRegistration(tx: Tx, r: RegistrationInput): Promise<number> {
  const [row] = await tx<{ id: number }[]>`${registrationInsert(tx, r, tx`${r.deviceId}`)}`;
  return row!.id;
}

export interface SubmissionInput {
  receivedAt: Date;
  kind: string;
  format: string;
  compression: string;
  contentType: string | null;
  partial: boolean;
  decodedSize: number;
  body: Buffer;
}

export interface RecordInput {
  /** Upserted first when set; its id goes into the registration (and submission). */
  device: DeviceFacts | null;
  registration: RegistrationInput;
  /** The raw body to keep, for messages that carry data. */
  submission: SubmissionInput | null;
  /** The submission is the device's new full inventory. */
  fullInventory: boolean;
  /**
   * That full inventory's summary for the device page (InventorySummary), made at ingest; null leaves it to
   * the background pass (services/inventory-summary.ts).
   */
  summary?: Record<string, unknown> | null;
  /** Registration key whose devices_used counts this device if the statement creates it (unlimited keys). */
  countForKeyId?: number | null;
  /** An inventory that may be forwarded: an approved device's submission is also put in the outbox when the database's forwarding switch is on. */
  forward?: boolean;
}

export interface Recorded {
  deviceId: number | null;
  state: DeviceRow['state'] | null;
  /** The device's state before this message (null for a new device or none). */
  previousState: DeviceRow['state'] | null;
  inserted: boolean;
  registrationId: number;
  submissionId: number | null;
}

/**
 * Everything one agent message writes, as ONE statement (data-modifying CTEs): one round trip and one
 * commit on the hot path, atomic like a transaction.
 */
export async function recordMessage(tx: Tx, m: RecordInput): Promise<Recorded> {
  const s = m.submission;
  const deviceId = m.device ? tx`(select id from d)` : tx`${null}::bigint`;
  const state = m.device ? tx`(select state from d)` : tx`${'approved'}::text`;
  // An accepted message's outcome is what the device's state makes of it: accepted, quarantined, conflict, rejected.
  const outcome =
    m.registration.outcome === 'accepted'
      ? tx`case ${state} when 'approved' then 'accepted' else ${state} end`
      : tx`${m.registration.outcome}`;
  const [row] = await tx<Recorded[]>`
    with ${
      m.device
        ? tx`p as (select state from devices where deviceid = ${m.device.deviceid}),
    d as (${deviceUpsert(tx, m.device)}),
    t as (
      insert into device_transitions (device_id, at, from_state, to_state, actor, reason)
      select d.id, ${m.device.seenAt}, (select state from p), d.state, 'system',
             case when d.inserted then 'first contact' else 'identity conflict' end
      from d where d.inserted or d.state is distinct from (select state from p)),`
        : tx``
    }
    r as (${registrationInsert(tx, m.registration, deviceId, outcome)})
    ${
      s
        ? tx`, s as (
      insert into submissions (device_id, registration_id, received_at, kind, format, compression, content_type, partial, decoded_size,
                               body, state)
      select ${deviceId}, (select id from r), ${s.receivedAt}, ${s.kind}, ${s.format}, ${s.compression}, ${s.contentType}, ${s.partial},
             ${s.decodedSize}, ${s.body}, case ${state} when 'approved' then 'stored' else 'held' end
      where ${state} <> 'rejected'
      returning id)`
        : tx``
    }
    ${
      s && m.fullInventory && m.device
        ? tx`, i as (
      insert into inventories (device_id, full_submission_id, format, has_view, partials_merged, updated_at, summary,
                               summary_submission_id)
      select (select id from d), s.id, ${s.format}, false, 0, ${s.receivedAt},
             ${m.summary ? tx.json(m.summary as never) : null}, ${m.summary ? tx`s.id` : tx`null::bigint`} from s
      on conflict (device_id) do update set
        full_submission_id = excluded.full_submission_id, format = excluded.format, has_view = false,
        partials_merged = 0, updated_at = excluded.updated_at, summary = excluded.summary,
        summary_submission_id = excluded.summary_submission_id
      -- A held conflict never replaces the device's reference inventory: a person compares both first.
      where (select state from d) <> 'conflict'
      returning device_id),
    iv as (
      -- The view of the inventory it replaces goes with it (rebuilt from this one when first needed).
      delete from inventory_sections where device_id in (select device_id from i))`
        : tx``
    }
    ${
      s && m.device && m.forward
        ? tx`, o as (
      insert into outbox (submission_id, device_id, deviceid, next_attempt_at, created_at)
      select s.id, (select id from d), ${m.device.deviceid}, ${s.receivedAt}, ${s.receivedAt} from s
      where (select state from d) = 'approved' and exists (select 1 from forwarding where enabled))`
        : tx``
    }
    ${
      m.device && m.countForKeyId
        ? tx`, k as (
      update registration_keys set devices_used = devices_used + 1
      where id = ${m.countForKeyId} and coalesce((select inserted from d), false))`
        : tx``
    }
    select ${deviceId} as "deviceId", ${m.device ? tx`(select state from d)` : tx`null::text`} as state,
           ${m.device ? tx`(select state from p)` : tx`null::text`} as "previousState",
           ${m.device ? tx`coalesce((select inserted from d), false)` : tx`false`} as inserted,
           (select id from r) as "registrationId", ${s ? tx`(select id from s)` : tx`null::bigint`} as "submissionId"`;
  return row!;
}

export interface InventoryState {
  fullSubmissionId: number | null;
  hasView: boolean;
}

/** Locks the device's inventory row (and so its view's sections) for the merge that follows. */
export async function lockInventory(tx: Tx, deviceId: number): Promise<InventoryState | null> {
  const [row] = await tx<{ fullSubmissionId: number | null; hasView: boolean }[]>`
    select full_submission_id as "fullSubmissionId", has_view as "hasView"
    from inventories where device_id = ${deviceId} for update`;
  return row ?? null;
}

export async function loadSubmissionBody(
  tx: Tx,
  submissionId: number,
): Promise<{ body: Buffer; compression: string; format: string } | null> {
  const [row] = await tx<{ body: Buffer; compression: string; format: string }[]>`
    select body, compression, format from submissions where id = ${submissionId}`;
  return row ?? null;
}

/** JSON text (made in a parse worker, so the event loop never serialises it) or an object, as a jsonb parameter. */
function jsonParam(tx: Tx, value: Record<string, unknown> | string) {
  // ::text first: a parameter PostgreSQL types as jsonb is JSON-encoded again by the driver.
  return typeof value === 'string' ? tx`${value}::text::jsonb` : tx`${tx.json(value as never)}`;
}

/**
 * Writes a view's top-level keys as the device's sections (the caller deleted the old ones). `size` is each
 * value's decoded jsonb size, as mergePartialInventory writes it: the partial-growth limit adds these up.
 */
export async function insertInventorySections(
  tx: Tx,
  deviceId: number,
  view: Record<string, unknown> | string,
): Promise<void> {
  await tx`
    with v as (select ${jsonParam(tx, view)} as doc)
    insert into inventory_sections (device_id, section, content, size)
    select ${deviceId}, e.key, e.value, pg_column_size(e.value)
    from v, jsonb_each(v.doc) e where jsonb_typeof(v.doc) = 'object'`;
}

/** Stores the view built from the full inventory, one row per section; the inventory row is locked. */
export async function setInventoryView(
  tx: Tx,
  deviceId: number,
  view: Record<string, unknown> | string,
  at: Date,
): Promise<void> {
  await tx`
    with u as (update inventories set has_view = true, updated_at = ${at} where device_id = ${deviceId})
    delete from inventory_sections where device_id = ${deviceId}`;
  await insertInventorySections(tx, deviceId, view);
}

/** How many sections, and how many decoded bytes (jsonb before compression), a device's stored view holds. */
export interface ViewExtent {
  sections: number;
  bytes: number;
}

/**
 * Merges a partial inventory into the view: each section present replaces the stored one whole; a missing
 * section means "unchanged". hardware.lastloggeduser/datelastloggeduser survive a hardware section that
 * arrives without them (the agent drops them together with the users section). Only the partial's own
 * sections are written: the rest of the view (~140 KB for a desktop, mostly software) is not touched.
 * Returns the view's extent before and after, for the caller to refuse a partial that grows it too far
 * (rolling the transaction back).
 */
export async function mergePartialInventory(
  tx: Tx,
  deviceId: number,
  content: Record<string, unknown> | string,
  format: string,
  at: Date,
): Promise<{ before: ViewExtent; after: ViewExtent }> {
  // One statement: its final select reads the sections as they were before it (every part of a statement
  // sees the same snapshot), w returns what it wrote; one pass over the old sections (not four subqueries).
  const [row] = await tx<
    {
      sectionsBefore: number;
      bytesBefore: number;
      sectionsKept: number;
      bytesKept: number;
      sectionsWritten: number;
      bytesWritten: number;
    }[]
  >`
    with p as (select ${jsonParam(tx, content)} as doc),
    e as (select e.key, e.value
          from p cross join lateral jsonb_each(case jsonb_typeof(p.doc) when 'object' then p.doc else '{}' end) e),
    i as (
      insert into inventories (device_id, full_submission_id, format, has_view, partials_merged, updated_at)
      values (${deviceId}, null, ${format}, true, 1, ${at})
      on conflict (device_id) do update set
        has_view = true, partials_merged = inventories.partials_merged + 1, updated_at = excluded.updated_at
      returning device_id),
    w as (
      insert into inventory_sections (device_id, section, content, size)
      select device_id, key, content, pg_column_size(content)
      from (
        select i.device_id, e.key,
               case when e.key = 'hardware' then
                 jsonb_strip_nulls(jsonb_build_object(
                   'lastloggeduser', hw.content -> 'lastloggeduser',
                   'datelastloggeduser', hw.content -> 'datelastloggeduser')) || e.value
               else e.value end as content
        from i cross join e
        left join inventory_sections hw on hw.device_id = i.device_id and hw.section = 'hardware' and e.key = 'hardware'
      ) merged
      on conflict (device_id, section) do update set content = excluded.content, size = excluded.size
      returning size)
    select count(*)::int as "sectionsBefore",
           coalesce(sum(o.size), 0)::float8 as "bytesBefore",
           (count(*) filter (where e.key is null))::int as "sectionsKept",
           coalesce(sum(o.size) filter (where e.key is null), 0)::float8 as "bytesKept",
           (select count(*) from w)::int as "sectionsWritten",
           (select coalesce(sum(size), 0) from w)::float8 as "bytesWritten"
    from inventory_sections o left join e on e.key = o.section
    where o.device_id = ${deviceId}`;
  return {
    before: { sections: row!.sectionsBefore, bytes: row!.bytesBefore },
    after: { sections: row!.sectionsKept + row!.sectionsWritten, bytes: row!.bytesKept + row!.bytesWritten },
  };
}
