/**
 * Suspected clones and identity changes. A device is put in `conflict` when the same deviceid now reports
 * another hardware UUID or serial than before, or when a UUID or serial already known under another
 * deviceid arrives with a new deviceid (an imaged machine, or a reinstall: a person decides which).
 * Junk values never get here: identity extraction already dropped them.
 */
import type { Identity } from '../protocol/identity.js';
import type { Queryable } from '../store/db.js';
import { findIdentityMatches } from '../store/review-store.js';

export interface Conflict {
  withId: number | null;
  details: Record<string, unknown>;
}

export async function findConflict(sql: Queryable, deviceid: string, id: Identity): Promise<Conflict | null> {
  if (!id.uuid && !id.serial) return null;
  const matches = await findIdentityMatches(sql, deviceid, id.uuid, id.serial);
  const self = matches.find((m) => m.deviceid === deviceid);
  const incoming = { deviceid, uuid: id.uuid, serial: id.serial, name: id.name, macs: id.macs };
  if (self) {
    const changed = (['uuid', 'serial'] as const).filter(
      (f) => self[f] !== null && id[f] !== null && self[f].toLowerCase() !== id[f].toLowerCase(),
    );
    if (changed.length > 0) {
      return {
        withId: self.id,
        details: { reason: 'identity changed under the same deviceid', fields: changed, known: pick(self), incoming },
      };
    }
    return null; // a device already on record keeps its own identity: no clash with others
  }
  const other = matches.find((m) => m.deviceid !== deviceid);
  if (!other) return null;
  const fields = (['uuid', 'serial'] as const).filter(
    (f) => other[f] !== null && id[f] !== null && other[f].toLowerCase() === id[f].toLowerCase(),
  );
  return {
    withId: other.id,
    details: { reason: 'hardware already known under another deviceid', fields, known: pick(other), incoming },
  };
}

function pick(d: {
  id: number;
  deviceid: string;
  uuid: string | null;
  serial: string | null;
  name: string | null;
  macs: string[];
}) {
  return { id: d.id, deviceid: d.deviceid, uuid: d.uuid, serial: d.serial, name: d.name, macs: d.macs };
}
