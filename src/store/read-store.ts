/**
 * Read queries for operators (CLI, admin API, console): devices and registrations, newest first.
 */
import type { Sql } from './db.js';

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
  tag: string | null;
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
  limit?: number;
}

export async function listDevices(sql: Sql, f: DeviceFilter): Promise<DeviceRecord[]> {
  return sql<DeviceRecord[]>`
    select id, deviceid, state, name, serial, uuid, msn, asset_tag as "assetTag", manufacturer, model, macs, ips, os, tag,
           agent_id as "agentId", agent_version as "agentVersion", first_seen as "firstSeen", last_seen as "lastSeen",
           last_remote_addr as "lastRemoteAddr", last_inventory_at as "lastInventoryAt"
    from devices
    where true
      ${f.state ? sql`and state = ${f.state}` : sql``}
      ${f.deviceid ? sql`and deviceid = ${f.deviceid}` : sql``}
      ${f.id ? sql`and id = ${f.id}` : sql``}
    order by last_seen desc, id desc
    limit ${f.limit ?? 1000}`;
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
  message: string | null;
  receivedAt: Date;
}

export async function listRegistrations(sql: Sql, f: { deviceid?: string; limit?: number }): Promise<RegistrationRecord[]> {
  return sql<RegistrationRecord[]>`
    select id, deviceid, device_id as "deviceId", kind, format, compression, partial, outcome, status, method, path,
           body_size as "bodySize", decoded_size as "decodedSize", remote_addr as "remoteAddr", user_agent as "userAgent",
           agent_id as "agentId", message, received_at as "receivedAt"
    from registrations
    where true ${f.deviceid ? sql`and deviceid = ${f.deviceid}` : sql``}
    order by id desc
    limit ${f.limit ?? 50}`;
}
