/**
 * Queries for credentials: registration keys and their versions, agent clients and bearer tokens,
 * operators, the audit log and security events. Secrets arrive here already hashed.
 */
import type { Queryable } from './db.js';

export interface KeyVersionMatch {
  keyId: number;
  keyName: string;
  tag: string | null;
  versionId: number;
  version: number;
  maxDevices: number;
  /** When this match stops being valid (key or version expiry), if ever. */
  validUntil: Date | null;
}

/** A key version that verifies now: key active and unexpired, version unexpired. */
export async function findValidKeyVersion(sql: Queryable, hash: Buffer, now: Date): Promise<KeyVersionMatch | null> {
  const [row] = await sql<KeyVersionMatch[]>`
    select k.id as "keyId", k.name as "keyName", k.tag, v.id as "versionId", v.version, k.max_devices as "maxDevices",
           least(k.expires_at, v.expires_at) as "validUntil"
    from key_versions v join registration_keys k on k.id = v.key_id
    where v.secret_hash = ${hash} and k.active
      and (k.expires_at is null or k.expires_at > ${now})
      and (v.expires_at is null or v.expires_at > ${now})`;
  return row ?? null;
}

export interface KeyRow {
  id: number;
  name: string;
  active: boolean;
  expiresAt: Date | null;
  maxDevices: number;
  devicesUsed: number;
  tag: string | null;
  comment: string | null;
  createdBy: string;
  createdAt: Date;
  /** Frozen for auto-approval (by the spike detector or an admin), and why. */
  frozenAt: Date | null;
  frozenReason: string | null;
}

export interface KeyVersionRow {
  id: number;
  keyId: number;
  version: number;
  prefix: string;
  createdAt: Date;
  expiresAt: Date | null;
}

const KEY_COLUMNS = (sql: Queryable) => sql`
  id, name, active, expires_at as "expiresAt", max_devices as "maxDevices", devices_used as "devicesUsed", tag, comment,
  created_by as "createdBy", created_at as "createdAt", frozen_at as "frozenAt", frozen_reason as "frozenReason"`;

export async function countKeys(sql: Queryable): Promise<number> {
  const [r] = await sql<{ n: number }[]>`select count(*)::int as n from registration_keys`;
  return r!.n;
}

export async function insertKey(
  sql: Queryable,
  k: {
    name: string;
    expiresAt: Date | null;
    maxDevices: number;
    tag: string | null;
    comment: string | null;
    createdBy: string;
    at: Date;
  },
): Promise<KeyRow> {
  const [row] = await sql<KeyRow[]>`
    insert into registration_keys (name, expires_at, max_devices, tag, comment, created_by, created_at)
    values (${k.name}, ${k.expiresAt}, ${k.maxDevices}, ${k.tag}, ${k.comment}, ${k.createdBy}, ${k.at})
    returning ${KEY_COLUMNS(sql)}`;
  return row!;
}

export async function insertKeyVersion(
  sql: Queryable,
  v: { keyId: number; version: number; prefix: string; hash: Buffer; at: Date },
): Promise<KeyVersionRow> {
  const [row] = await sql<KeyVersionRow[]>`
    insert into key_versions (key_id, version, prefix, secret_hash, created_at)
    values (${v.keyId}, ${v.version}, ${v.prefix}, ${v.hash}, ${v.at})
    returning id, key_id as "keyId", version, prefix, created_at as "createdAt", expires_at as "expiresAt"`;
  return row!;
}

export async function findKeyByName(
  sql: Queryable,
  name: string,
  opts: { forUpdate?: boolean } = {},
): Promise<KeyRow | null> {
  const [row] = await sql<
    KeyRow[]
  >`select ${KEY_COLUMNS(sql)} from registration_keys where name = ${name} ${opts.forUpdate ? sql`for update` : sql``}`;
  return row ?? null;
}

export async function listKeys(sql: Queryable): Promise<KeyRow[]> {
  return sql<KeyRow[]>`select ${KEY_COLUMNS(sql)} from registration_keys order by name`;
}

export async function listKeyVersions(sql: Queryable, keyId: number): Promise<KeyVersionRow[]> {
  return sql<KeyVersionRow[]>`
    select id, key_id as "keyId", version, prefix, created_at as "createdAt", expires_at as "expiresAt"
    from key_versions where key_id = ${keyId} order by version`;
}

/** Ends every still-open version of a key at `expiresAt` (never extends one that ends sooner). */
export async function expireOpenVersions(sql: Queryable, keyId: number, expiresAt: Date): Promise<void> {
  await sql`
    update key_versions set expires_at = ${expiresAt}
    where key_id = ${keyId} and (expires_at is null or expires_at > ${expiresAt})`;
}

export async function updateKey(sql: Queryable, id: number, patch: { active?: boolean }): Promise<void> {
  if (patch.active !== undefined) await sql`update registration_keys set active = ${patch.active} where id = ${id}`;
}

/** Takes one device slot of a key, atomically; false when the key's max_devices is reached. */
export async function takeKeyDeviceSlot(sql: Queryable, keyId: number): Promise<boolean> {
  const rows = await sql`
    update registration_keys set devices_used = devices_used + 1
    where id = ${keyId} and (max_devices = 0 or devices_used < max_devices) returning id`;
  return rows.length === 1;
}

export interface VersionUsageRow {
  version: number;
  prefix: string;
  expiresAt: Date | null;
  deviceid: string | null;
  deviceId: number | null;
  remoteAddr: string | null;
  requests: number;
  lastUsed: Date;
}

/** Where a key usage page ends: the version, and (last_used as PostgreSQL prints it, row id) in it. */
export interface UsageCursor {
  version: number;
  at: string;
  id: number;
}

/**
 * Which devices and addresses used one version of a key, and when last, most recently first: one page
 * from key_version_usage (never the registrations history). `after` continues a page within this version.
 */
export async function keyVersionUsagePage(
  sql: Queryable,
  v: { id: number; version: number; prefix: string; expiresAt: Date | null },
  after: { at: string; id: number } | null,
  limit: number,
): Promise<(VersionUsageRow & { cursor: UsageCursor })[]> {
  const rows = await sql<(Omit<VersionUsageRow, 'version' | 'prefix' | 'expiresAt'> & { at: string; id: number })[]>`
    select u.deviceid, u.device_id as "deviceId", u.remote_addr as "remoteAddr", u.requests::int as requests,
           u.last_used as "lastUsed", u.last_used::text as at, u.id
    from key_version_usage u
    where u.key_version_id = ${v.id}
      ${after ? sql`and (u.last_used, u.id) < (${after.at}::text::timestamptz, ${after.id}::bigint)` : sql``}
    order by u.last_used desc, u.id desc
    limit ${limit}`;
  return rows.map(({ at, id, ...r }) => ({
    version: v.version,
    prefix: v.prefix,
    expiresAt: v.expiresAt,
    ...r,
    cursor: { version: v.version, at, id },
  }));
}

export interface KeyUsageDelta {
  keyVersionId: number;
  deviceid: string | null;
  remoteAddr: string | null;
  deviceId: number | null;
  /** requests to add */
  requests: number;
  firstAt: Date;
  lastAt: Date;
}

/**
 * Adds counted requests to key_version_usage, one statement for many rows (the ingest path's usage
 * tracker, services/key-usage.ts). Rows are written in key order so two replicas never deadlock.
 */
export async function addKeyUsage(sql: Queryable, rows: KeyUsageDelta[]): Promise<void> {
  if (rows.length === 0) return;
  const sorted = [...rows].sort(
    (a, b) =>
      a.keyVersionId - b.keyVersionId ||
      (a.deviceid ?? '').localeCompare(b.deviceid ?? '') ||
      (a.remoteAddr ?? '').localeCompare(b.remoteAddr ?? ''),
  );
  await sql`
    insert into key_version_usage (key_version_id, deviceid, remote_addr, device_id, requests, first_used, last_used)
    select * from unnest(${sorted.map((r) => r.keyVersionId)}::bigint[], ${sorted.map((r) => r.deviceid)}::text[],
                         ${sorted.map((r) => r.remoteAddr)}::text[], ${sorted.map((r) => r.deviceId)}::bigint[],
                         ${sorted.map((r) => r.requests)}::bigint[],
                         ${sorted.map((r) => r.firstAt.toISOString())}::text[]::timestamptz[],
                         ${sorted.map((r) => r.lastAt.toISOString())}::text[]::timestamptz[])
    on conflict on constraint key_version_usage_uniq do update set
      requests = key_version_usage.requests + excluded.requests,
      first_used = least(key_version_usage.first_used, excluded.first_used),
      last_used = greatest(key_version_usage.last_used, excluded.last_used),
      device_id = coalesce(excluded.device_id, key_version_usage.device_id)`;
}

/**
 * Versions closing within `horizon` that devices used without having used a newer version of the key
 * since: read from key_version_usage, so it costs nothing while no version is closing. While one is, it reads
 * that version's rows and the newer versions' rows only (two index scans), never the whole usage table:
 * the anti-join against every usage row took 150-190 ms at 100k devices mid-rotation, this 60-80 ms.
 */
export async function expiringVersionsInUse(
  sql: Queryable,
  now: Date,
  horizon: Date,
): Promise<{ keyName: string; version: number; expiresAt: Date; devices: number }[]> {
  return sql<{ keyName: string; version: number; expiresAt: Date; devices: number }[]>`
    with closing as materialized (
      select v.id, v.key_id, v.version, v.expires_at, k.name
      from key_versions v join registration_keys k on k.id = v.key_id
      where v.expires_at > ${now} and v.expires_at <= ${horizon}
    ), newer as materialized (
      select c.id as closing_id, u.deviceid, u.last_used
      from closing c
      join key_versions v on v.key_id = c.key_id and v.version > c.version
      join key_version_usage u on u.key_version_id = v.id
    )
    select c.name as "keyName", c.version, c.expires_at as "expiresAt", count(distinct u.deviceid)::int as devices
    from closing c
    join key_version_usage u on u.key_version_id = c.id
    where not exists (
      select 1 from newer n where n.closing_id = c.id and n.deviceid = u.deviceid and n.last_used >= u.last_used)
    group by c.name, c.version, c.expires_at`;
}

export interface ClientRow {
  id: number;
  clientId: string;
  name: string;
  secretHash: Buffer;
  secretPrefix: string;
  deviceid: string | null;
  /** The tag of the devices it registers (what GLPI gets with UPSTREAM_TAG=key); null = the agent's own. */
  tag: string | null;
  comment: string | null;
  createdBy: string;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

const CLIENT_COLUMNS = (sql: Queryable) => sql`
  id, client_id as "clientId", name, secret_hash as "secretHash", secret_prefix as "secretPrefix", deviceid, tag, comment,
  created_by as "createdBy", created_at as "createdAt", revoked_at as "revokedAt", last_used_at as "lastUsedAt"`;

export async function insertClient(
  sql: Queryable,
  c: {
    clientId: string;
    name: string;
    hash: Buffer;
    prefix: string;
    deviceid: string | null;
    tag: string | null;
    comment: string | null;
    createdBy: string;
    at: Date;
  },
): Promise<ClientRow> {
  const [row] = await sql<ClientRow[]>`
    insert into agent_clients (client_id, name, secret_hash, secret_prefix, deviceid, tag, comment, created_by, created_at)
    values (${c.clientId}, ${c.name}, ${c.hash}, ${c.prefix}, ${c.deviceid}, ${c.tag}, ${c.comment}, ${c.createdBy}, ${c.at})
    returning ${CLIENT_COLUMNS(sql)}`;
  return row!;
}

/**
 * A client created with a tag for a device that already exists (clients create --device --tag) speaks for
 * it from now on, so its tag becomes the device's: the client's tag wins over the key's. Returns the
 * device's tag before, or undefined when no such device exists yet.
 */
export async function assignDeviceTag(
  sql: Queryable,
  deviceid: string,
  tag: string,
): Promise<string | null | undefined> {
  const [row] = await sql<{ before: string | null }[]>`
    update devices d set assigned_tag = ${tag} from (select id, assigned_tag as before from devices where deviceid = ${deviceid} for update) p
    where d.id = p.id returning p.before`;
  return row ? row.before : undefined;
}

export async function findClient(sql: Queryable, clientId: string): Promise<ClientRow | null> {
  const [row] = await sql<ClientRow[]>`select ${CLIENT_COLUMNS(sql)} from agent_clients where client_id = ${clientId}`;
  return row ?? null;
}

export async function findClientByPk(sql: Queryable, pk: number): Promise<ClientRow | null> {
  const [row] = await sql<ClientRow[]>`select ${CLIENT_COLUMNS(sql)} from agent_clients where id = ${pk}`;
  return row ?? null;
}

export async function listClients(sql: Queryable): Promise<ClientRow[]> {
  return sql<ClientRow[]>`select ${CLIENT_COLUMNS(sql)} from agent_clients order by created_at desc, id desc`;
}

export async function revokeClient(sql: Queryable, pk: number, at: Date): Promise<void> {
  await sql`update agent_clients set revoked_at = coalesce(revoked_at, ${at}) where id = ${pk}`;
  await sql`delete from agent_tokens where client_pk = ${pk}`;
}

export async function touchClient(sql: Queryable, pk: number, at: Date): Promise<void> {
  await sql`update agent_clients set last_used_at = ${at} where id = ${pk}`;
}

export async function insertToken(
  sql: Queryable,
  t: { hash: Buffer; clientPk: number; at: Date; expiresAt: Date },
): Promise<void> {
  await sql`delete from agent_tokens where expires_at < ${t.at}`;
  await sql`insert into agent_tokens (token_hash, client_pk, created_at, expires_at) values (${t.hash}, ${t.clientPk}, ${t.at}, ${t.expiresAt})`;
}

/** A bearer token that is unexpired and whose client is not revoked. */
export async function findValidToken(
  sql: Queryable,
  hash: Buffer,
  now: Date,
): Promise<{ clientPk: number; expiresAt: Date } | null> {
  const [row] = await sql<{ clientPk: number; expiresAt: Date }[]>`
    select t.client_pk as "clientPk", t.expires_at as "expiresAt"
    from agent_tokens t join agent_clients c on c.id = t.client_pk
    where t.token_hash = ${hash} and t.expires_at > ${now} and c.revoked_at is null`;
  return row ?? null;
}

/** Operator roles, least powerful first (the `operators.role` check constraint). */
export const OPERATOR_ROLES = ['reviewer', 'admin'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export interface OperatorRow {
  id: number;
  name: string;
  role: OperatorRole;
  tokenPrefix: string;
  createdBy: string;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

const OPERATOR_COLUMNS = (sql: Queryable) => sql`
  id, name, role, token_prefix as "tokenPrefix", created_by as "createdBy", created_at as "createdAt",
  revoked_at as "revokedAt", last_used_at as "lastUsedAt"`;

export async function insertOperator(
  sql: Queryable,
  o: { name: string; role: OperatorRole; hash: Buffer; prefix: string; createdBy: string; at: Date },
): Promise<OperatorRow> {
  const [row] = await sql<OperatorRow[]>`
    insert into operators (name, role, token_hash, token_prefix, created_by, created_at)
    values (${o.name}, ${o.role}, ${o.hash}, ${o.prefix}, ${o.createdBy}, ${o.at})
    returning ${OPERATOR_COLUMNS(sql)}`;
  return row!;
}

export async function findOperatorByHash(sql: Queryable, hash: Buffer): Promise<OperatorRow | null> {
  const [row] = await sql<
    OperatorRow[]
  >`select ${OPERATOR_COLUMNS(sql)} from operators where token_hash = ${hash} and revoked_at is null`;
  return row ?? null;
}

export async function findOperatorByName(sql: Queryable, name: string): Promise<OperatorRow | null> {
  const [row] = await sql<OperatorRow[]>`select ${OPERATOR_COLUMNS(sql)} from operators where name = ${name}`;
  return row ?? null;
}

export async function listOperators(sql: Queryable): Promise<OperatorRow[]> {
  return sql<OperatorRow[]>`select ${OPERATOR_COLUMNS(sql)} from operators order by name`;
}

export async function countOperators(sql: Queryable): Promise<number> {
  const [r] = await sql<{ n: number }[]>`select count(*)::int as n from operators`;
  return r!.n;
}

export async function touchOperator(sql: Queryable, id: number, at: Date): Promise<void> {
  await sql`update operators set last_used_at = ${at} where id = ${id}`;
}

export async function revokeOperator(sql: Queryable, id: number, at: Date): Promise<void> {
  await sql`update operators set revoked_at = coalesce(revoked_at, ${at}) where id = ${id}`;
}

/**
 * Every action the audit log records: the one closed list that insertAudit is typed against, so a new kind of
 * audit row must be added here (and is then listed by the admin API at /api/v1/meta and in the console).
 */
export const AUDIT_ACTIONS = [
  // devices (review)
  'device.approve',
  'device.reject',
  'device.undo',
  'device.rebind',
  'device.tag',
  'submissions.purge',
  // registration keys
  'key.create',
  'key.rotate',
  'key.revoke',
  'key.activate',
  'key.freeze',
  'key.unfreeze',
  // agent clients and operators
  'client.create',
  'client.revoke',
  'cert.revoke',
  'operator.create',
  'operator.revoke',
  // auto-approval policies
  'policy.add',
  'policy.remove',
  'allowlist.import',
  // GLPI forwarding
  'outbox.retry',
  'outbox.drop',
  'outbox.backfill',
  'forwarding.disable',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  at: Date;
  actor: string;
  action: AuditAction;
  targetType: string;
  targetId: string | null;
  remoteAddr: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
}

export async function insertAudit(sql: Queryable, e: AuditEntry): Promise<void> {
  await sql`
    insert into audit_log (at, actor, action, target_type, target_id, remote_addr, before, after, reason)
    values (${e.at}, ${e.actor}, ${e.action}, ${e.targetType}, ${e.targetId}, ${e.remoteAddr},
            ${e.before == null ? null : sql.json(e.before as never)}, ${e.after == null ? null : sql.json(e.after as never)}, ${e.reason})`;
}

export async function listAudit(
  sql: Queryable,
  f: { limit: number; action?: string },
): Promise<(AuditEntry & { id: number })[]> {
  return sql<(AuditEntry & { id: number })[]>`
    select id, at, actor, action, target_type as "targetType", target_id as "targetId", remote_addr as "remoteAddr", before, after, reason
    from audit_log where true ${f.action ? sql`and action = ${f.action}` : sql``}
    order by id desc limit ${f.limit}`;
}

export async function insertSecurityEvent(
  sql: Queryable,
  e: { at: Date; kind: string; remoteAddr: string | null; deviceid: string | null; details: Record<string, unknown> },
): Promise<void> {
  await sql`
    insert into security_events (at, kind, remote_addr, deviceid, details)
    values (${e.at}, ${e.kind}, ${e.remoteAddr}, ${e.deviceid}, ${sql.json(e.details as never)})`;
}

export function listSecurityEvents(
  sql: Queryable,
  limit: number,
): Promise<
  { id: number; at: Date; kind: string; remoteAddr: string | null; deviceid: string | null; details: unknown }[]
> {
  return sql`select id, at, kind, remote_addr as "remoteAddr", deviceid, details from security_events order by id desc limit ${limit}` as never;
}

export interface CertificateFacts {
  /** SHA-256 of the DER certificate, lowercase hex without colons. */
  fingerprint: string;
  subject: string;
  issuer: string;
  serial: string | null;
  notBefore: Date | null;
  notAfter: Date | null;
}

export interface CertificateRow extends CertificateFacts {
  id: number;
  firstSeen: Date;
  lastSeen: Date;
  revokedAt: Date | null;
  revokedBy: string | null;
}

const CERT_COLUMNS = (sql: Queryable) => sql`
  id, fingerprint, subject, issuer, serial, not_before as "notBefore", not_after as "notAfter",
  first_seen as "firstSeen", last_seen as "lastSeen", revoked_at as "revokedAt", revoked_by as "revokedBy"`;

/**
 * A verified client certificate seen now: registered on first use, its last_seen moved forward otherwise
 * (one statement either way). A revoked row stays revoked.
 */
export async function seeCertificate(sql: Queryable, c: CertificateFacts, at: Date): Promise<CertificateRow> {
  const [row] = await sql<CertificateRow[]>`
    insert into client_certificates (fingerprint, subject, issuer, serial, not_before, not_after, first_seen, last_seen)
    values (${c.fingerprint}, ${c.subject}, ${c.issuer}, ${c.serial}, ${c.notBefore}, ${c.notAfter}, ${at}, ${at})
    on conflict (fingerprint) do update set last_seen = greatest(client_certificates.last_seen, excluded.last_seen)
    returning ${CERT_COLUMNS(sql)}`;
  return row!;
}

export async function findCertificate(
  sql: Queryable,
  fingerprint: string,
  opts: { forUpdate?: boolean } = {},
): Promise<CertificateRow | null> {
  const [row] = await sql<CertificateRow[]>`
    select ${CERT_COLUMNS(sql)} from client_certificates where fingerprint = ${fingerprint}
    ${opts.forUpdate ? sql`for update` : sql``}`;
  return row ?? null;
}

/** Every certificate seen, most recently seen first, with how many devices are pinned to it. */
export async function listCertificates(sql: Queryable): Promise<(CertificateRow & { devicesPinned: number })[]> {
  return sql<(CertificateRow & { devicesPinned: number })[]>`
    select ${CERT_COLUMNS(sql)},
           (select count(*)::int from devices d where d.registered_cert_id = client_certificates.id) as "devicesPinned"
    from client_certificates order by last_seen desc, id desc`;
}

export async function revokeCertificate(sql: Queryable, id: number, at: Date, by: string): Promise<void> {
  await sql`
    update client_certificates set revoked_at = coalesce(revoked_at, ${at}), revoked_by = coalesce(revoked_by, ${by})
    where id = ${id}`;
}
