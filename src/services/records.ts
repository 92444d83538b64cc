/**
 * Read access to devices and registrations for the CLI, the admin API and the console.
 */
import { AppError } from '../errors.js';
import type { Sql } from '../store/db.js';
import { DEVICE_SORTS, type DeviceSort, type SortDir, defaultDir } from '../store/device-sort.js';
import {
  type DeviceCursor,
  type DeviceFilter,
  countDevicesByState,
  listDevices,
  listDevicesPage,
  listRegistrations,
} from '../store/read-store.js';

/** A device page's cursor as the API hands it out: opaque, URL-safe; it names the order it belongs to. */
export function encodeDeviceCursor(c: DeviceCursor, sort: DeviceSort, dir: SortDir): string {
  return Buffer.from(JSON.stringify({ s: sort, d: dir, k: c.key, i: c.id })).toString('base64url');
}

const CURSOR_KEY_MAX = 1024;

export function decodeDeviceCursor(text: string): DeviceCursor & { sort: DeviceSort; dir: SortDir } {
  const raw = Buffer.from(text, 'base64url').toString('utf8');
  // The cursors of earlier versions (last_seen|id, in the default order) still work across an upgrade.
  const old = /^([0-9: .+-]{10,40})\|(\d{1,15})$/.exec(raw);
  if (old) return { key: old[1]!, id: Number(old[2]), sort: 'lastSeen', dir: 'desc' };
  let o: unknown;
  try {
    o = JSON.parse(raw);
  } catch {
    o = null;
  }
  const c = (typeof o === 'object' && o !== null ? o : {}) as Record<string, unknown>;
  if (
    !(DEVICE_SORTS as readonly unknown[]).includes(c.s) ||
    (c.d !== 'asc' && c.d !== 'desc') ||
    typeof c.k !== 'string' ||
    c.k.length > CURSOR_KEY_MAX ||
    !Number.isSafeInteger(c.i) ||
    (c.i as number) < 1
  )
    throw new AppError('bad_request', 'cursor is not one this server gave');
  return { key: c.k, id: c.i as number, sort: c.s as DeviceSort, dir: c.d };
}
import { withCredentials } from './device-credentials.js';
import { withDuplicates } from './lookalikes.js';

export { DEVICE_STATES, type DeviceState } from '../store/agent-store.js';
export { DEVICE_SORTS, type DeviceSort, type SortDir } from '../store/device-sort.js';

/**
 * How an operator names a device, the same in the CLI, the admin API and the console: `id:15` (or `#15`) is
 * the row id 15, `deviceid:X` is the deviceid X, and anything else is a deviceid as written — so `15` is the
 * device whose deviceid is "15", never row 15. In a JSON body a number (not a string) is a row id. A
 * deviceid is chosen by the agent, so a bare value is never guessed to be an id.
 */
export type DeviceRef = { id: number } | { deviceid: string };

export function parseDeviceRef(ref: string | number): DeviceRef {
  if (typeof ref === 'number') return { id: ref };
  const id = /^(?:id:|#)(\d{1,15})$/i.exec(ref);
  if (id) return { id: Number(id[1]) };
  if (/^(?:id:|#)/i.test(ref)) return { id: -1 }; // id:abc names no row (ids are whole numbers)
  return { deviceid: ref.startsWith('deviceid:') ? ref.slice('deviceid:'.length) : ref };
}

/** The device a reference names, or null. (An empty deviceid or id 0 names none: never "no filter".) */
export async function findDevice(sql: Sql, ref: string | number) {
  const r = parseDeviceRef(ref);
  if ('id' in r ? !(r.id >= 1) : r.deviceid === '') return null;
  const rows = await listDevices(sql, { ...r, limit: 1 });
  return rows[0] ?? null;
}

export function createRecords(sql: Sql) {
  const device = (ref: string | number) => findDevice(sql, ref);
  return {
    /** A page of devices, each with its look-alikes (`duplicates`), `agent`, `credential` and `proxyChain`. */
    devices: async (f: DeviceFilter) => withCredentials(sql, await withDuplicates(sql, await listDevices(sql, f))),
    /**
     * One page, in the order asked (default: last seen, newest first), and the cursor of the next (null when
     * this page is not full). A cursor only continues the order it was given for.
     */
    async devicesPage(f: DeviceFilter & { cursor?: string; sort?: DeviceSort; dir?: SortDir }) {
      const { cursor, ...filter } = f;
      const sort = f.sort ?? 'lastSeen';
      const dir = f.dir ?? defaultDir(sort);
      const after = cursor ? decodeDeviceCursor(cursor) : undefined;
      if (after && (after.sort !== sort || after.dir !== dir))
        throw new AppError(
          'bad_request',
          `cursor continues sort=${after.sort}&dir=${after.dir}, not sort=${sort}&dir=${dir}: ask with the same order, or start again without the cursor`,
        );
      const page = await listDevicesPage(sql, { ...filter, sort, dir, after });
      const full = page.devices.length === (f.limit ?? 1000);
      const devices = await withCredentials(sql, await withDuplicates(sql, page.devices));
      return { devices, nextCursor: full && page.next ? encodeDeviceCursor(page.next, sort, dir) : null };
    },
    device,
    /** The deviceid a credential is bound to: a known device's, or the given deviceid for a device not seen yet. */
    async resolveDeviceid(ref: string): Promise<string> {
      const parsed = parseDeviceRef(ref);
      const known = (await device(ref))?.deviceid;
      if (known) return known;
      if ('id' in parsed) throw new AppError('not_found', `No device with id ${ref.replace(/^(id:|#)/i, '')}`);
      return parsed.deviceid;
    },
    registrations: (f: { deviceid?: string; limit?: number }) => listRegistrations(sql, f),
    devicesByState: () => countDevicesByState(sql),
  };
}

export type Records = ReturnType<typeof createRecords>;
