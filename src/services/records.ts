/**
 * Read access to devices and registrations for the CLI, the admin API and the console.
 */
import { AppError } from '../errors.js';
import type { Sql } from '../store/db.js';
import {
  type DeviceCursor,
  type DeviceFilter,
  countDevicesByState,
  listDevices,
  listDevicesPage,
  listRegistrations,
} from '../store/read-store.js';

/** A device page's cursor as the API hands it out: opaque, URL-safe. */
export function encodeDeviceCursor(c: DeviceCursor): string {
  return Buffer.from(`${c.at}|${c.id}`).toString('base64url');
}

export function decodeDeviceCursor(text: string): DeviceCursor {
  const m = /^([0-9: .+-]{10,40})\|(\d{1,15})$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  if (!m) throw new AppError('bad_request', 'cursor is not one this server gave');
  return { at: m[1]!, id: Number(m[2]) };
}
import { withCredentials } from './device-credentials.js';
import { withDuplicates } from './lookalikes.js';

export { DEVICE_STATES, type DeviceState } from '../store/agent-store.js';

export function createRecords(sql: Sql) {
  /** A device by numeric id or by deviceid (operators use both). */
  async function device(ref: string) {
    const byId = /^\d{1,15}$/.test(ref) ? await listDevices(sql, { id: Number(ref), limit: 1 }) : [];
    const rows = byId.length ? byId : await listDevices(sql, { deviceid: ref, limit: 1 });
    return rows[0] ?? null;
  }
  return {
    /** A page of devices, each with its look-alikes (`duplicates`), `agent`, `credential` and `proxyChain`. */
    devices: async (f: DeviceFilter) => withCredentials(sql, await withDuplicates(sql, await listDevices(sql, f))),
    /** One page and the cursor of the next (null when this page is not full). */
    async devicesPage(f: DeviceFilter & { cursor?: string }) {
      const { cursor, ...filter } = f;
      const page = await listDevicesPage(sql, { ...filter, after: cursor ? decodeDeviceCursor(cursor) : undefined });
      const full = page.devices.length === (f.limit ?? 1000);
      const devices = await withCredentials(sql, await withDuplicates(sql, page.devices));
      return { devices, nextCursor: full && page.next ? encodeDeviceCursor(page.next) : null };
    },
    device,
    /** The deviceid a credential is bound to: a known device's, or the given deviceid for a device not seen yet. */
    async resolveDeviceid(ref: string): Promise<string> {
      return (await device(ref))?.deviceid ?? ref;
    },
    registrations: (f: { deviceid?: string; limit?: number }) => listRegistrations(sql, f),
    devicesByState: () => countDevicesByState(sql),
  };
}

export type Records = ReturnType<typeof createRecords>;
