/**
 * Look-alikes: devices that share a serial, a UUID, a MAC or a name with another device — three machines
 * called "vm" with the same MACs, a cloned disk image, an agent reinstalled under a new deviceid. Each
 * device object the API and the CLI return carries `duplicates: [{id, deviceid, shared}]`, found with one
 * indexed query per page (store/lookalike-store.ts).
 *
 * Values that many unrelated machines report are ignored, as GLPI ignores them: the junk serials, UUIDs and
 * MACs of GLPI's default blacklist (glpi-project/glpi, src/Blacklist.php, Blacklist::getDefaults()) are
 * dropped from the device record on arrival already (protocol/identity.ts); the few of GLPI's defaults that
 * identity.ts does not drop are listed here, so they can never make two devices look alike. GLPI's name
 * blacklist has no default entry; an empty name never matches.
 */
import type { Sql } from '../store/db.js';
import { type Ignored, findLookalikes } from '../store/lookalike-store.js';

/** GLPI default blacklist entries that identity.ts keeps on the record (compared lower-case). */
export const LOOKALIKE_IGNORED: Ignored = {
  serials: ['sn-123456fvgv3i0b8o5n6n7k'],
  uuids: [],
  // "Fireware" adapters (GLPI: e2:e6:16:20:0a:35, d2:0a:2d:a0:04:be, d2:6b:25:2f:2c:e7) and an empty MAC.
  macs: ['e2:e6:16:20:0a:35', 'd2:0a:2d:a0:04:be', 'd2:6b:25:2f:2c:e7', ''],
  names: [],
};

export type SharedField = 'serial' | 'uuid' | 'mac' | 'name';

export interface Duplicate {
  id: number;
  deviceid: string;
  /** what the two devices have in common */
  shared: SharedField[];
  state: string;
  name: string | null;
}

/** Adds `duplicates` to each device (one query for the whole list). */
export async function withDuplicates<T extends { id: number }>(
  sql: Sql,
  devices: T[],
): Promise<(T & { duplicates: Duplicate[] })[]> {
  const rows = await findLookalikes(
    sql,
    devices.map((d) => d.id),
    LOOKALIKE_IGNORED,
  );
  const by = new Map<number, Duplicate[]>();
  for (const r of rows) {
    const list = by.get(r.forId) ?? [];
    list.push({ id: r.id, deviceid: r.deviceid, shared: r.shared as SharedField[], state: r.state, name: r.name });
    by.set(r.forId, list);
  }
  return devices.map((d) => ({ ...d, duplicates: by.get(d.id) ?? [] }));
}
