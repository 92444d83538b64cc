/**
 * Read access to devices and registrations for the CLI, the admin API and the console.
 */
import type { Sql } from '../store/db.js';
import { type DeviceFilter, countDevicesByState, listDevices, listRegistrations } from '../store/read-store.js';
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
