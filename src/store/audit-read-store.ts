/**
 * The audit log as people read it: filtered by actor, action and time, newest first, paged by id.
 */
import type { Queryable } from './db.js';

export interface AuditFilter {
  actor?: string;
  action?: string;
  since?: Date;
  until?: Date;
  /** only entries older than this id (the next page) */
  beforeId?: number;
  limit: number;
}

export interface AuditRow {
  id: number;
  at: Date;
  actor: string;
  action: string;
  targetType: string;
  targetId: string | null;
  remoteAddr: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
}

export async function listAuditEntries(sql: Queryable, f: AuditFilter): Promise<AuditRow[]> {
  return sql<AuditRow[]>`
    select id, at, actor, action, target_type as "targetType", target_id as "targetId", remote_addr as "remoteAddr",
           before, after, reason
    from audit_log
    where true
      ${f.actor ? sql`and actor ilike ${`%${f.actor.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}` : sql``}
      ${f.action ? sql`and action = ${f.action}` : sql``}
      ${f.since ? sql`and at >= ${f.since}` : sql``}
      ${f.until ? sql`and at < ${f.until}` : sql``}
      ${f.beforeId ? sql`and id < ${f.beforeId}` : sql``}
    order by id desc
    limit ${f.limit}`;
}
