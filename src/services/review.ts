/**
 * The security team's decisions: approve or reject one device, a list, or every device matching a filter
 * (a filter decision is a dry run that reports the count until it is confirmed with that count), and undo
 * a decision within UNDO_WINDOW. Each decision locks the device, records the transition, settles the
 * held submissions (released in order on approval, kept then purged on rejection) and writes the audit log.
 */
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Sql } from '../store/db.js';
import type { DeviceState } from '../store/agent-store.js';
import { findClient, findKeyByName, insertAudit } from '../store/auth-store.js';
import { type DeviceFilter, listDevices, listRegistrations } from '../store/read-store.js';
import {
  deviceDecisionContext,
  deviceHistory,
  deviceProxies,
  deviceSources,
  findDeviceByDeviceid,
  setDevicePin,
  lastTransition,
  purgeRejectedSubmissions,
  submissionCounts,
} from '../store/review-store.js';
import { transitionDevice } from './device-state.js';
import { type InventorySummary, pageInventory } from '../store/read-store.js';
import type { Actor } from './admin.js';
import { SMALL_BODY, summarizeSubmission } from './inventory-summary.js';
import { type InventoryViews, inlineViews } from './inventory-view.js';
import type { Notifier } from './notifier.js';
import { type Duplicate, withDuplicates } from './lookalikes.js';
import { findDevice } from './records.js';

export const UNDO_WINDOW_SECONDS = 15 * 60;
export const MAX_BULK = 1000;

export type Decision = 'approve' | 'reject';

const TARGET: Record<Decision, DeviceState> = { approve: 'approved', reject: 'rejected' };

/**
 * `tag=paris,state=quarantined,key=site-a,subnet=10.1.0.0/16,q=lab` → a device filter. `tag` is the
 * registration key's tag; `claimedTag` the tag the agent sends (not verified).
 */
export function parseFilter(text: string): DeviceFilter {
  const f: DeviceFilter = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(tag|claimedTag|state|key|subnet|q|deviceid)=(.+)$/.exec(part);
    if (!m)
      throw new AppError(
        'bad_request',
        `Filter parts look like tag=paris, claimedTag=paris, state=quarantined, key=NAME, subnet=CIDR, q=TEXT, deviceid=ID (not "${part.slice(0, 40)}")`,
      );
    const [, k, v] = m as unknown as [string, keyof DeviceFilter, string];
    if (k === 'subnet' && !/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(v))
      throw new AppError('bad_request', 'subnet must be a CIDR such as 10.1.0.0/16');
    (f as Record<string, unknown>)[k] = v;
  }
  if (Object.keys(f).length === 0) throw new AppError('bad_request', 'An empty filter would match every device');
  return f;
}

export function createReview(deps: {
  sql: Sql;
  clock: Clock;
  notifier?: Pick<Notifier, 'emit'>;
  /** UPSTREAM_URL set: approvals enqueue what they release for GLPI. */ forward?: boolean;
  /** The background pass that prepares inventory summaries: told when a page found one missing. */
  summaries?: { kick(): void };
  /** Builds inventory views (in a parse worker for large ones); default: on the event loop. */
  views?: InventoryViews;
}) {
  const { sql, clock } = deps;
  const views = deps.views ?? inlineViews;

  /** A device by reference: `id:15`/`#15` the row id, anything else a deviceid (records.ts parseDeviceRef). */
  const resolve = (ref: string | number) => findDevice(sql, ref);

  async function decideIds(ids: number[], decision: Decision, reason: string | null, actor: Actor) {
    const at = clock.now();
    return sql.begin(async (tx) => {
      const results = [];
      for (const id of [...ids].sort((a, b) => a - b)) {
        const r = await transitionDevice(tx, id, TARGET[decision], actor.name, reason, at, { forward: deps.forward });
        if (!r) continue;
        results.push(r);
        if (r.changed)
          await insertAudit(tx, {
            at,
            actor: actor.name,
            action: `device.${decision}`,
            targetType: 'device',
            targetId: r.deviceid,
            remoteAddr: actor.remoteAddr,
            before: { state: r.from },
            after: { state: r.to, releasedSubmissions: r.releasedSubmissions },
            reason,
          });
        // In the decision's transaction: the webhook is recorded exactly when the decision is.
        if (r.changed)
          await deps.notifier?.emit(tx, decision === 'approve' ? 'device.approved' : 'device.rejected', {
            id: r.id,
            deviceid: r.deviceid,
            from: r.from,
            to: r.to,
            actor: actor.name,
            reason,
          });
      }
      return results;
    });
  }

  return {
    resolve,

    /** Decides devices named by id or deviceid; unknown references are an error before anything changes. */
    async decide(refs: (string | number)[], decision: Decision, reason: string | null, actor: Actor) {
      if (refs.length === 0) throw new AppError('bad_request', 'Name at least one device');
      if (refs.length > MAX_BULK) throw new AppError('bad_request', `At most ${MAX_BULK} devices at once`);
      const devices = await Promise.all(refs.map(async (ref) => [ref, await resolve(ref)] as const));
      const unknown = devices.filter(([, d]) => !d).map(([ref]) => ref);
      if (unknown.length > 0) throw new AppError('not_found', `Unknown device(s): ${unknown.slice(0, 10).join(', ')}`);
      return decideIds(
        devices.map(([, d]) => d!.id),
        decision,
        reason,
        actor,
      );
    },

    /** Without `confirmCount` a dry run: the matching devices. With it, decides them if the count still matches. */
    async decideByFilter(
      filter: DeviceFilter,
      decision: Decision,
      reason: string | null,
      actor: Actor,
      confirmCount?: number,
    ) {
      const matching = await listDevices(sql, { ...filter, limit: MAX_BULK + 1 });
      if (matching.length > MAX_BULK)
        throw new AppError('bad_request', `More than ${MAX_BULK} devices match: narrow the filter`);
      if (confirmCount === undefined)
        return {
          dryRun: true as const,
          count: matching.length,
          devices: matching.map((d) => ({ id: d.id, deviceid: d.deviceid, name: d.name, state: d.state })),
        };
      if (confirmCount !== matching.length)
        throw new AppError(
          'conflict',
          `The filter now matches ${matching.length} devices, not ${confirmCount}: review again`,
        );
      return {
        dryRun: false as const,
        count: matching.length,
        results: await decideIds(
          matching.map((d) => d.id),
          decision,
          reason,
          actor,
        ),
      };
    },

    /** Reverts the last decision a person made on a device, within UNDO_WINDOW_SECONDS. */
    async undo(ref: string, actor: Actor) {
      const device = await resolve(ref);
      if (!device) throw new AppError('not_found', 'No such device');
      const last = await lastTransition(sql, device.id);
      if (!last || last.actor === 'system' || !last.from)
        throw new AppError('conflict', 'There is no decision to undo');
      if (clock.now().getTime() - last.at.getTime() > UNDO_WINDOW_SECONDS * 1000)
        throw new AppError('conflict', `Decisions can be undone for ${UNDO_WINDOW_SECONDS / 60} minutes only`);
      const at = clock.now();
      return sql.begin(async (tx) => {
        const r = await transitionDevice(tx, device.id, last.from!, actor.name, `undo of ${last.to}`, at, {
          forward: deps.forward,
        });
        await insertAudit(tx, {
          at,
          actor: actor.name,
          action: 'device.undo',
          targetType: 'device',
          targetId: device.deviceid,
          remoteAddr: actor.remoteAddr,
          before: { state: last.to },
          after: { state: last.from },
          reason: null,
        });
        if (r?.changed)
          await deps.notifier?.emit(tx, 'device.undone', {
            id: r.id,
            deviceid: r.deviceid,
            from: r.from,
            to: r.to,
            actor: actor.name,
            reason: `undo of ${last.to}`,
          });
        return r;
      });
    },

    /**
     * Pins a device to another credential — a registration key by name, or a per-agent client by id — the
     * explicit, audited way to move a device (see conflicts.ts). Its state is not changed: a device held in
     * conflict for its credential is then approved or rejected as usual.
     */
    async rebind(ref: string, to: { key?: string; client?: string }, reason: string | null, actor: Actor) {
      if (Boolean(to.key) === Boolean(to.client)) throw new AppError('bad_request', 'Give either a key or a client');
      const device = await resolve(ref);
      if (!device) throw new AppError('not_found', 'No such device');
      const at = clock.now();
      return sql.begin(async (tx) => {
        let pin: { keyId: number | null; clientPk: number | null; tag: string | null };
        if (to.key) {
          const key = await findKeyByName(tx, to.key);
          if (!key) throw new AppError('not_found', `No registration key named "${to.key}"`);
          pin = { keyId: key.id, clientPk: null, tag: key.tag };
        } else {
          const client = await findClient(tx, to.client!);
          if (!client || client.revokedAt) throw new AppError('not_found', `No active client ${to.client}`);
          pin = { keyId: null, clientPk: client.id, tag: client.tag };
        }
        const before = await findDeviceByDeviceid(tx, device.deviceid);
        await setDevicePin(tx, device.id, pin);
        await insertAudit(tx, {
          at,
          actor: actor.name,
          action: 'device.rebind',
          targetType: 'device',
          targetId: device.deviceid,
          remoteAddr: actor.remoteAddr,
          before: {
            keyId: before?.registeredKeyId ?? null,
            clientPk: before?.registeredClientPk ?? null,
            certId: before?.registeredCertId ?? null,
          },
          after: {
            keyId: pin.keyId,
            clientPk: pin.clientPk,
            key: to.key ?? null,
            clientId: to.client ?? null,
            tag: pin.tag,
          },
          reason,
        });
        return {
          id: device.id,
          deviceid: device.deviceid,
          key: to.key ?? null,
          clientId: to.client ?? null,
          tag: pin.tag,
        };
      });
    },

    /**
     * Purges what rejected devices sent once it is older than the retention (counted from the rejection),
     * with one audit entry per run that purged anything.
     */
    async purgeRejected(retentionSeconds: number) {
      const at = clock.now();
      return sql.begin(async (tx) => {
        const purged = await purgeRejectedSubmissions(tx, new Date(at.getTime() - retentionSeconds * 1000));
        const total = purged.reduce((n, p) => n + p.n, 0);
        if (total > 0)
          await insertAudit(tx, {
            at,
            actor: 'system:retention',
            action: 'submissions.purge',
            targetType: 'submissions',
            targetId: null,
            remoteAddr: null,
            before: null,
            after: { submissions: total, devices: purged },
            reason: `rejected more than ${Math.round(retentionSeconds / 86400)} day(s) ago`,
          });
        return { submissions: total, devices: purged };
      });
    },

    /** Everything a reviewer needs to decide on one device. */
    async show(ref: string) {
      const device = await resolve(ref);
      if (!device) return null;
      const extra = await deviceDecisionContext(sql, device.id);
      const sources = await deviceSources(sql, device.id);
      const conflictWith = extra?.conflictWith ? await resolve(extra.conflictWith) : null;
      const duplicates: Duplicate[] = (await withDuplicates(sql, [device]))[0]?.duplicates ?? [];
      return {
        ...device,
        ...extra,
        /** devices that share a serial, UUID, MAC or name with this one (lookalikes.ts) */
        duplicates,
        conflictWithDevice: conflictWith,
        inventory: await inventorySummary(device),
        history: await deviceHistory(sql, device.id),
        submissions: await submissionCounts(sql, device.id),
        sources,
        /** the GLPI Agent proxy chains its messages came through, most recent first ([]: always direct) */
        proxies: await deviceProxies(sql, device.id),
        registrations: await listRegistrations(sql, { deviceid: device.deviceid, limit: 20 }),
      };
    },
  };

  /**
   * OS, hardware, software count…: from the merged view (summarised in SQL), else from the summary ingest
   * (or the background pass) wrote; never a large body parsed here (see services/inventory-summary.ts).
   */
  async function inventorySummary(device: {
    id: number;
    os: string | null;
    manufacturer: string | null;
    model: string | null;
    serial: string | null;
    uuid: string | null;
  }): Promise<InventorySummary | null> {
    const inv = await pageInventory(sql, device.id);
    if (!inv) return null;
    if (inv.fromView) return inv.fromView;
    if (inv.summary && inv.fresh) return inv.summary;
    if (inv.fullSubmissionId === null) return inv.summary;
    if (inv.fullDecodedSize !== null && inv.fullDecodedSize <= SMALL_BODY)
      return summarizeSubmission(sql, inv.fullSubmissionId, views);
    deps.summaries?.kick();
    return {
      os: device.os,
      manufacturer: device.manufacturer,
      model: device.model,
      serial: device.serial,
      uuid: device.uuid,
      memoryMb: null,
      softwareCount: null,
      networkCount: null,
      sections: [],
      pending: true,
    };
  }
}

export type Review = ReturnType<typeof createReview>;
