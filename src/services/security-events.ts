/**
 * Security events as the security team reads them (CLI `security-events list`, GET /api/v1/security-events,
 * the console's page): failed agent credentials and token requests, and credentials used for a device they
 * do not speak for. The credential an event names is what `key` filters on and what security.spike counts.
 */
import { AppError } from '../errors.js';
import type { Sql } from '../store/db.js';
import { type SecurityEventFilter, listSecurityEvents } from '../store/security-event-store.js';

/** Every type of security event the gateway records. */
export const SECURITY_EVENT_TYPES = [
  'invalid_credential',
  'invalid_client',
  'client_device_mismatch',
  'device_credential_mismatch',
  'invalid_operator_token',
  'invalid_metrics_token',
] as const;

/** Failed credentials: what security.spike counts. */
export const FAILED_CREDENTIAL_TYPES: ReadonlySet<string> = new Set(['invalid_credential', 'invalid_client']);

/** The credential an event's details name (the same expression as the store's `credential` column). */
export function credentialOf(details: Record<string, unknown>): string | null {
  const s = (v: unknown) => (typeof v === 'string' && v ? v : null);
  const user = s(details.user);
  return (
    s(details.credential) ?? s(details.clientId) ?? (user?.startsWith('agc_') ? user : null) ?? s(details.fingerprint)
  );
}

export function createSecurityEvents(sql: Sql) {
  return {
    types: SECURITY_EVENT_TYPES,
    async list(f: SecurityEventFilter) {
      if (f.kind && !(SECURITY_EVENT_TYPES as readonly string[]).includes(f.kind))
        throw new AppError('bad_request', `type must be one of ${SECURITY_EVENT_TYPES.join(', ')}`);
      if (f.address && !/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(f.address))
        throw new AppError('bad_request', 'address must be an IP address or a CIDR such as 10.1.0.0/16');
      return listSecurityEvents(sql, f);
    },
  };
}

export type SecurityEvents = ReturnType<typeof createSecurityEvents>;
