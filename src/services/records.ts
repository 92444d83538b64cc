/**
 * Read access to devices and registrations for the CLI, the admin API and the console.
 */
import type { Sql } from '../store/db.js';
import { type DeviceFilter, listDevices, listRegistrations } from '../store/read-store.js';

export const DEVICE_STATES = ['quarantined', 'approved', 'rejected', 'conflict'] as const;

export function createRecords(sql: Sql) {
  return {
    devices: (f: DeviceFilter) => listDevices(sql, f),
    registrations: (f: { deviceid?: string; limit?: number }) => listRegistrations(sql, f),
  };
}
