/**
 * Security events (failed credentials, credentials used for another device…) as the security team reads
 * them: filtered by type, source address, credential and time, newest first, paged by id.
 */
import type { Queryable } from './db.js';

export interface SecurityEventRow {
  id: number;
  at: Date;
  kind: string;
  remoteAddr: string | null;
  deviceid: string | null;
  /** the credential the event names, if any: a client id, key:NAME / client:NAME / cert:NAME, a fingerprint */
  credential: string | null;
  details: Record<string, unknown> | null;
}

export interface SecurityEventFilter {
  since?: Date;
  until?: Date;
  kind?: string;
  /** exact address, or a CIDR */
  address?: string;
  /** text in the credential the event names */
  credential?: string;
  /** only events older than this id (the next page) */
  beforeId?: number;
  limit: number;
}

export async function listSecurityEvents(sql: Queryable, f: SecurityEventFilter): Promise<SecurityEventRow[]> {
  const credential = sql`coalesce(details->>'credential', details->>'clientId',
      case when details->>'user' like 'agc\\_%' then details->>'user' end, details->>'fingerprint')`;
  const cidr = f.address?.includes('/');
  return sql<SecurityEventRow[]>`
    select id, at, kind, remote_addr as "remoteAddr", deviceid, ${credential} as credential, details
    from security_events
    where true
      ${f.since ? sql`and at >= ${f.since}` : sql``}
      ${f.until ? sql`and at < ${f.until}` : sql``}
      ${f.kind ? sql`and kind = ${f.kind}` : sql``}
      ${f.address && cidr ? sql`and remote_addr is not null and remote_addr::inet <<= ${f.address}::cidr` : sql``}
      ${f.address && !cidr ? sql`and remote_addr = ${f.address}` : sql``}
      ${f.credential ? sql`and ${credential} ilike ${`%${f.credential.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}` : sql``}
      ${f.beforeId ? sql`and id < ${f.beforeId}` : sql``}
    order by id desc
    limit ${f.limit}`;
}
