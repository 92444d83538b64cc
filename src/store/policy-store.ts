/**
 * Queries for auto-approval policies: the ordered rules, the allowlists, and the device attributes rules
 * are evaluated on.
 */
import type { Queryable } from './db.js';
import type { DeviceState } from './agent-store.js';

export interface RuleRow {
  id: number;
  position: number;
  action: 'approve' | 'quarantine' | 'reject';
  match: Record<string, string>;
  comment: string | null;
  createdBy: string;
  createdAt: Date;
}

export async function listRules(sql: Queryable): Promise<RuleRow[]> {
  return sql<RuleRow[]>`
    select id, position, action, match, comment, created_by as "createdBy", created_at as "createdAt"
    from policy_rules order by position, id`;
}

export async function insertRule(
  sql: Queryable,
  r: {
    position: number | null;
    action: string;
    match: Record<string, string>;
    comment: string | null;
    createdBy: string;
    at: Date;
  },
): Promise<RuleRow> {
  // Without a position the rule goes last; with one, it goes there and later rules move down.
  if (r.position !== null) await sql`update policy_rules set position = position + 1 where position >= ${r.position}`;
  const [row] = await sql<RuleRow[]>`
    insert into policy_rules (position, action, match, comment, created_by, created_at)
    values (coalesce(${r.position}::int, (select coalesce(max(position), 0) + 1 from policy_rules)), ${r.action}, ${sql.json(r.match)}, ${r.comment}, ${r.createdBy}, ${r.at})
    returning id, position, action, match, comment, created_by as "createdBy", created_at as "createdAt"`;
  return row!;
}

export async function deleteRule(sql: Queryable, id: number): Promise<RuleRow | null> {
  const [row] = await sql<RuleRow[]>`
    delete from policy_rules where id = ${id}
    returning id, position, action, match, comment, created_by as "createdBy", created_at as "createdAt"`;
  return row ?? null;
}

export async function replaceAllowlist(sql: Queryable, name: string, kind: string, values: string[]): Promise<number> {
  await sql`delete from policy_allowlists where name = ${name} and kind = ${kind}`;
  if (values.length === 0) return 0;
  const rows = values.map((value) => ({ name, kind, value }));
  for (let i = 0; i < rows.length; i += 1000)
    await sql`insert into policy_allowlists ${sql(rows.slice(i, i + 1000))} on conflict do nothing`;
  const [c] = await sql<
    { n: number }[]
  >`select count(*)::int as n from policy_allowlists where name = ${name} and kind = ${kind}`;
  return c!.n;
}

export async function loadAllowlists(
  sql: Queryable,
): Promise<{ name: string; kind: 'serial' | 'uuid' | 'mac'; value: string }[]> {
  return sql`select name, kind, value from policy_allowlists` as never;
}

export async function allowlistSummary(sql: Queryable): Promise<{ name: string; kind: string; entries: number }[]> {
  return sql`select name, kind, count(*)::int as entries from policy_allowlists group by name, kind order by name, kind` as never;
}

export interface SubjectRow {
  id: number;
  deviceid: string;
  name: string | null;
  state: DeviceState;
  firstSeen: Date;
  key: string | null;
  keyFrozen: boolean;
  /** the tag of the registration key the device registered with; the tag the agent sends is not read here */
  tag: string | null;
  /** the recorded source address of the device's last request (never anything from a message body) */
  remoteAddr: string | null;
  serial: string | null;
  uuid: string | null;
  macs: string[];
  manufacturer: string | null;
  model: string | null;
  agentVersion: string | null;
}

/** Devices with what rules look at: by id, the quarantine queue, or everything first seen since a date. */
export async function loadSubjects(
  sql: Queryable,
  f: { id?: number; state?: DeviceState; firstSeenSince?: Date },
): Promise<SubjectRow[]> {
  return sql<SubjectRow[]>`
    select d.id, d.deviceid, d.name, d.state, d.first_seen as "firstSeen", k.name as key, (k.frozen_at is not null) as "keyFrozen",
           d.assigned_tag as tag, d.last_remote_addr as "remoteAddr", d.serial, d.uuid, d.macs,
           d.manufacturer, d.model, d.agent_version as "agentVersion"
    from devices d left join registration_keys k on k.id = d.registered_key_id
    where true
      ${f.id !== undefined ? sql`and d.id = ${f.id}` : sql``}
      ${f.state ? sql`and d.state = ${f.state}` : sql``}
      ${f.firstSeenSince ? sql`and d.first_seen >= ${f.firstSeenSince}` : sql``}
    order by d.id
    limit 20000`;
}

export async function setKeyFrozen(
  sql: Queryable,
  keyName: string,
  frozen: boolean,
  reason: string | null,
  at: Date,
): Promise<boolean> {
  const rows = frozen
    ? await sql`update registration_keys set frozen_at = coalesce(frozen_at, ${at}), frozen_reason = ${reason} where name = ${keyName} returning id`
    : await sql`update registration_keys set frozen_at = null, frozen_reason = null where name = ${keyName} returning id`;
  return rows.length === 1;
}
