/**
 * A message record as the agent service hands it to the store (recordMessage, the batcher): an accepted
 * zlib XML PROLOG of an approved device by default, for tests that exercise the store directly.
 */
import type { RecordInput } from '../../src/store/agent-store.js';

export interface RecordOptions {
  /** When the message arrived (default: now). */
  seenAt?: Date;
  /** registrations.kind (default 'prolog', or 'inventory' with `inventory`). */
  kind?: string;
  /** An inventory: the device's last_inventory_at follows it. */
  inventory?: boolean;
  name?: string;
  serial?: string;
  macs?: string[];
  addr?: string;
}

export function messageRecord(deviceid: string, o: RecordOptions = {}): RecordInput {
  const seenAt = o.seenAt ?? new Date();
  const remoteAddr = o.addr ?? '127.0.0.1';
  return {
    device: {
      deviceid,
      initialState: 'approved',
      ...(o.name === undefined ? {} : { name: o.name }),
      ...(o.serial === undefined ? {} : { serial: o.serial }),
      ...(o.macs === undefined ? {} : { macs: o.macs }),
      remoteAddr,
      seenAt,
      ...(o.inventory ? { inventoryAt: seenAt } : {}),
    },
    registration: {
      receivedAt: seenAt,
      deviceId: null,
      deviceid,
      method: 'POST',
      path: '/',
      kind: o.kind ?? (o.inventory ? 'inventory' : 'prolog'),
      format: 'xml',
      compression: 'zlib',
      bodySize: 1,
      decodedSize: 1,
      partial: false,
      remoteAddr,
      userAgent: null,
      agentId: null,
      proxyId: null,
      requestId: null,
      outcome: 'accepted',
      status: 200,
      message: null,
      details: null,
    },
    submission: null,
    fullInventory: false,
  };
}
