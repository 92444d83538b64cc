/**
 * Who may speak for a device, and when its identity stops being its own. The gateway decides from what it
 * verified — the credential that authenticated the message, and the hardware already on record — never
 * from what the agent merely asserts (deviceids are hostnames plus a date: not secrets).
 *
 * - Pinning: a device is pinned to the credential that registered it (a registration key, all of its
 *   versions being one credential; a per-agent client, including a certificate whose CN is its client id;
 *   or a client certificate of its own, verified against TLS_CLIENT_CA), or to the client an
 *   admin created for it (clients create --device). A message for it through a client or certificate that
 *   is not its own is refused like a bad credential; a key-pinned device reached through another key or
 *   client goes to `conflict` and a person decides (or rebinds).
 * - Continuity: a full inventory whose hardware contradicts the device on record is `conflict`, never
 *   merged: a known UUID or serial now missing (junk values are dropped before this, so "replaced by junk"
 *   is "missing") or replaced by another, or physical MACs sharing none with the known ones. A partial
 *   inventory is judged only on what it carries.
 * - Clones: a UUID or serial already known under another deviceid, arriving with a new deviceid.
 */
import type { Identity } from '../protocol/identity.js';
import type { Queryable } from '../store/db.js';
import {
  type IdentityMatch,
  findBoundClient,
  findDeviceByDeviceid,
  findIdentityMatches,
} from '../store/review-store.js';
import type { AgentPrincipal } from './credentials.js';

export interface Conflict {
  withId: number | null;
  details: Record<string, unknown>;
}

/** What the pin of a known device says of a message through `principal`. */
export type PinVerdict = 'ok' | 'refuse' | 'conflict';

export function pinVerdict(
  known: IdentityMatch | null,
  boundClientPk: number | null,
  principal: AgentPrincipal | null,
): PinVerdict {
  if (principal === null) return 'ok'; // AGENT_AUTH=off: there is no credential to compare
  // A client an admin created for this deviceid (clients create --device) is the device's own credential,
  // from before its first message on: the shared key no longer speaks for it.
  if (boundClientPk !== null) return principal.type === 'client' && principal.id === boundClientPk ? 'ok' : 'refuse';
  if (known === null) return 'ok'; // a new device: pinned to this credential by its first message
  if (known.registeredClientPk !== null) {
    // A device registered by its own credential: nothing else may speak for it (identical 401).
    return principal.type === 'client' && principal.id === known.registeredClientPk ? 'ok' : 'refuse';
  }
  if (known.registeredCertId !== null) {
    // Registered through a client certificate of its own: likewise.
    return principal.type === 'cert' && principal.id === known.registeredCertId ? 'ok' : 'refuse';
  }
  if (known.registeredKeyId !== null) {
    return principal.type === 'key' && principal.id === known.registeredKeyId ? 'ok' : 'conflict';
  }
  return 'ok'; // registered with agent authentication off: no pin yet
}

export function credentialConflict(known: IdentityMatch, principal: AgentPrincipal): Conflict {
  return {
    withId: known.id,
    details: {
      reason: 'registered with another credential',
      fields: ['credential'],
      known: { keyId: known.registeredKeyId, clientPk: known.registeredClientPk, certId: known.registeredCertId },
      incoming: {
        type: principal.type,
        name: principal.name,
        clientId: principal.clientId,
        certFingerprint: principal.cert?.fingerprint ?? null,
      },
    },
  };
}

/** The device on record under `deviceid` (one indexed read), for its pin. */
export function knownDevice(sql: Queryable, deviceid: string): Promise<IdentityMatch | null> {
  return findDeviceByDeviceid(sql, deviceid);
}

/** The client created for `deviceid`, which alone may speak for it (one indexed read). */
export function boundClient(sql: Queryable, deviceid: string): Promise<number | null> {
  return findBoundClient(sql, deviceid);
}

/**
 * Identity judgement of a message that carries hardware sections. `full`: a complete inventory, where a
 * section left out means the value is gone; a partial one leaves unchanged sections out.
 */
export async function findConflict(
  sql: Queryable,
  deviceid: string,
  id: Identity,
  opts: { full: boolean; sections?: ReadonlySet<string> } = { full: false },
): Promise<{ conflict: Conflict | null; known: IdentityMatch | null }> {
  const matches = await findIdentityMatches(sql, deviceid, id.uuid, id.serial);
  const self = matches.find((m) => m.deviceid === deviceid) ?? null;
  const incoming = { deviceid, uuid: id.uuid, serial: id.serial, name: id.name, macs: id.macs };
  if (self) {
    const fields = contradictions(self, id, opts.full, opts.sections ?? new Set());
    if (fields.length === 0) return { conflict: null, known: self };
    return {
      known: self,
      conflict: {
        withId: self.id,
        details: { reason: 'identity changed under the same deviceid', fields, known: pick(self), incoming },
      },
    };
  }
  if (!id.uuid && !id.serial) return { conflict: null, known: null };
  const other = matches.find((m) => m.deviceid !== deviceid);
  if (!other) return { conflict: null, known: null };
  const fields = (['uuid', 'serial'] as const).filter(
    (f) => other[f] !== null && id[f] !== null && other[f].toLowerCase() === id[f].toLowerCase(),
  );
  return {
    known: null,
    conflict: {
      withId: other.id,
      details: { reason: 'hardware already known under another deviceid', fields, known: pick(other), incoming },
    },
  };
}

/** The identity fields of `id` that contradict the device on record. */
function contradictions(self: IdentityMatch, id: Identity, full: boolean, sections: ReadonlySet<string>): string[] {
  const fields: string[] = [];
  // Where each value lives: a partial that carries the section and lacks the value has dropped it.
  const home = { uuid: 'hardware', serial: 'bios' } as const;
  for (const f of ['uuid', 'serial'] as const) {
    const was = self[f];
    if (was === null) continue;
    const now = id[f];
    const carried = full || sections.has(home[f]);
    if (now === null ? carried : now.toLowerCase() !== was.toLowerCase()) fields.push(f);
  }
  // MACs: compared when the message carries interfaces (a full inventory always should).
  const carried = id.physicalMacs.length > 0 || full || sections.has('networks');
  if (carried && self.macs.length > 0) {
    const known = new Set(self.macs);
    if (!id.physicalMacs.some((m) => known.has(m))) fields.push('macs');
  }
  return fields;
}

function pick(d: IdentityMatch) {
  return { id: d.id, deviceid: d.deviceid, uuid: d.uuid, serial: d.serial, name: d.name, macs: d.macs };
}
