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
import { type IdentityMatch, readIdentity } from '../store/review-store.js';
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

/** What the identity judgement of a message starts from: its verdict on the hardware, and the pins. */
export interface IdentityJudgement {
  conflict: Conflict | null;
  /** The device on record under the message's deviceid, with its pin. */
  known: IdentityMatch | null;
  /** With `bound`: the active client created for the deviceid, which alone may speak for it. */
  boundClient: number | null;
}

/**
 * Identity judgement of a message, from one read (store readIdentity): the device on record and, when the
 * message carries hardware sections (`id`), whether they contradict it or belong to a device under another
 * deviceid. `full`: a complete inventory, where a section left out means the value is gone; a partial one
 * leaves unchanged sections out.
 */
export async function judgeMessage(
  sql: Queryable,
  deviceid: string,
  id: Identity | null,
  opts: { full: boolean; sections?: ReadonlySet<string>; bound: boolean },
): Promise<IdentityJudgement> {
  const read = await readIdentity(sql, deviceid, id?.uuid ?? null, id?.serial ?? null, opts.bound);
  const self = read.matches.find((m) => m.deviceid === deviceid) ?? null;
  return {
    ...(id ? conflictOf(read.matches, self, deviceid, id, opts) : { conflict: null }),
    known: self,
    boundClient: read.boundClient,
  };
}

/** The conflict of a message's hardware with the devices it matches (the device under its deviceid first). */
function conflictOf(
  matches: IdentityMatch[],
  self: IdentityMatch | null,
  deviceid: string,
  id: Identity,
  opts: { full: boolean; sections?: ReadonlySet<string> },
): { conflict: Conflict | null } {
  const incoming = { deviceid, uuid: id.uuid, serial: id.serial, name: id.name, macs: id.macs };
  if (self) {
    const fields = contradictions(self, id, opts.full, opts.sections ?? new Set());
    if (fields.length === 0) return { conflict: null };
    return {
      conflict: {
        withId: self.id,
        details: { reason: 'identity changed under the same deviceid', fields, known: pick(self), incoming },
      },
    };
  }
  if (!id.uuid && !id.serial) return { conflict: null };
  const other = matches.find((m) => m.deviceid !== deviceid);
  if (!other) return { conflict: null };
  const fields = (['uuid', 'serial'] as const).filter(
    (f) => other[f] !== null && id[f] !== null && other[f].toLowerCase() === id[f].toLowerCase(),
  );
  return {
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
