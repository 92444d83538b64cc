/**
 * What a page of devices came through, for the queue's columns: the credential each is pinned to (key,
 * client or certificate) and, from its latest authenticated request, the key version, how it authenticated
 * and the GLPI Agent proxies on the way. One query per page (registrations_device_idx for the latest).
 */
import type { Queryable } from './db.js';
import { proxyChain } from './read-store.js';

export interface DeviceCredential {
  id: number;
  /** the registration key the device is pinned to, and the version its latest request used */
  keyName: string | null;
  keyVersion: number | null;
  clientId: string | null;
  certFingerprint: string | null;
  certSubject: string | null;
  /** key:basic, client:basic, client:bearer, client:certificate or cert (its latest request) */
  authType: string | null;
  /** the proxies its latest request came through ([]: direct) */
  proxyChain: string[];
}

export async function deviceCredentials(sql: Queryable, ids: number[]): Promise<DeviceCredential[]> {
  if (ids.length === 0) return [];
  return sql<DeviceCredential[]>`
    select d.id, k.name as "keyName", v.version as "keyVersion", c.client_id as "clientId",
           cc.fingerprint as "certFingerprint", cc.subject as "certSubject", r.auth_type as "authType",
           coalesce(${proxyChain(sql, sql`r.proxy_id`)}, '{}') as "proxyChain"
    from devices d
    left join registration_keys k on k.id = d.registered_key_id
    left join agent_clients c on c.id = d.registered_client_pk
    left join client_certificates cc on cc.id = d.registered_cert_id
    left join lateral (
      select auth_type, key_version_id, proxy_id from registrations
      where device_id = d.id and auth_type is not null
      order by received_at desc limit 1) r on true
    left join key_versions v on v.id = r.key_version_id
    where d.id = any(${ids}::bigint[])`;
}
