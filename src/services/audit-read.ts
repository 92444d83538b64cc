/**
 * The audit log as people read it (GET /api/v1/audit, the console): filters by actor, action and time,
 * paged by id (`before`: the id of the last entry of the page seen).
 */
import { AppError } from '../errors.js';
import type { Sql } from '../store/db.js';
import { type AuditFilter, listAuditEntries } from '../store/audit-read-store.js';
import { AUDIT_ACTIONS } from './admin.js';

export function createAuditRead(sql: Sql) {
  return {
    async list(f: AuditFilter) {
      if (f.action && !(AUDIT_ACTIONS as readonly string[]).includes(f.action))
        throw new AppError('bad_request', `action must be one of ${AUDIT_ACTIONS.join(', ')}`);
      return listAuditEntries(sql, f);
    },
  };
}

export type AuditRead = ReturnType<typeof createAuditRead>;
