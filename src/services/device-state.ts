/**
 * The device state machine, in one place: what each move between quarantined, approved, rejected and
 * conflict does to the device's held submissions and to its GLPI outbox. Every decision path — a person
 * (review.ts), a policy (policies.ts), an undo — goes through `transitionDevice`, inside the caller's
 * transaction, with the device row locked first so two decisions on one device serialise.
 *
 * - to approved: held submissions are released (and, with forwarding, enqueued for GLPI in this transaction);
 * - to rejected: held submissions are rejected (purged after REJECTED_RETENTION); what an approved device
 *   still had waiting in the outbox becomes dead letters;
 * - back to quarantined/conflict from a decision (undo): what that decision released or rejected is held
 *   again, and what was not sent yet is taken back from the outbox.
 */
import type { Queryable } from '../store/db.js';
import type { DeviceState } from '../store/agent-store.js';
import { enqueueReleased, settleOutboxOnLeave } from '../store/outbox-store.js';
import {
  holdDecidedSubmissions,
  insertTransition,
  lockDeviceState,
  setDeviceState,
  settleHeldSubmissions,
} from '../store/review-store.js';

export interface TransitionResult {
  id: number;
  deviceid: string;
  from: DeviceState;
  to: DeviceState;
  changed: boolean;
  releasedSubmissions: number;
}

const DECIDED: ReadonlySet<DeviceState> = new Set(['approved', 'rejected']);

/**
 * Moves one device to a state and records the transition. With `forward` (UPSTREAM_URL set), what an
 * approval releases is put in the GLPI outbox in the same transaction. null: no such device.
 */
export async function transitionDevice(
  tx: Queryable,
  deviceId: number,
  to: DeviceState,
  actor: string,
  reason: string | null,
  at: Date,
  opts: { forward?: boolean } = {},
): Promise<TransitionResult | null> {
  const cur = await lockDeviceState(tx, deviceId);
  if (!cur) return null;
  const result = { id: cur.id, deviceid: cur.deviceid, from: cur.state, to };
  if (cur.state === to) return { ...result, changed: false, releasedSubmissions: 0 };
  await setDeviceState(tx, deviceId, to, reason, at);
  await insertTransition(tx, { deviceId, at, from: cur.state, to, actor, reason });
  let settled: number[] = [];
  if (to === 'approved' || to === 'rejected') {
    settled = await settleHeldSubmissions(tx, deviceId, to === 'approved' ? 'released' : 'rejected');
    if (to === 'approved' && opts.forward) await enqueueReleased(tx, deviceId, cur.deviceid, settled, at);
    if (cur.state === 'approved') await settleOutboxOnLeave(tx, deviceId, to, [], at);
  } else if (DECIDED.has(cur.state)) {
    settled = await holdDecidedSubmissions(tx, deviceId);
    if (cur.state === 'approved') await settleOutboxOnLeave(tx, deviceId, to, settled, at);
  }
  return { ...result, changed: true, releasedSubmissions: settled.length };
}
