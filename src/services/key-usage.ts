/**
 * Key usage on the ingest path, for `secrets usage` and the rotation check (key_version_usage: one row per
 * key version, deviceid and address). The hot path pays ~nothing: a request is counted in memory, and the
 * database is written at once only the first time this process sees a (version, device, address) that
 * day — so a device moving to a new version is visible to the rotation check immediately — while the
 * counts of later requests are added in one statement every FLUSH_MS (and before usage is read here).
 * A process that dies loses at most FLUSH_MS of counts, never a "last used" of the day.
 */
import type { Logger } from 'pino';
import type { Sql } from '../store/db.js';
import { type KeyUsageDelta, addKeyUsage } from '../store/auth-store.js';

export const FLUSH_MS = 30_000;

export interface KeyUse {
  keyVersionId: number;
  deviceid: string | null;
  remoteAddr: string | null;
  deviceId: number | null;
  at: Date;
}

interface Entry extends Omit<KeyUsageDelta, 'requests'> {
  /** requests counted here and not yet written */
  pending: number;
  /** UTC day of the last write ('' = write at the next request) */
  writtenDay: string;
}

export function createKeyUsageTracker(deps: { sql: Sql; logger: Logger; flushMs?: number }) {
  const entries = new Map<string, Entry>();
  let timer: NodeJS.Timeout | null = null;
  let flushing: Promise<void> | null = null;

  const day = (d: Date) => d.toISOString().slice(0, 10);

  /** Writes what the entries counted; on failure the counts go back, to be written next time. */
  async function write(batch: Entry[]): Promise<void> {
    const rows = batch.map((e) => ({ ...e, requests: e.pending }));
    for (const e of batch) {
      e.pending = 0;
      e.writtenDay = day(e.lastAt);
    }
    try {
      await addKeyUsage(deps.sql, rows);
    } catch (err) {
      batch.forEach((e, i) => {
        e.pending += rows[i]!.requests;
        e.writtenDay = '';
      });
      deps.logger.warn({ err }, 'key usage could not be recorded; retried at the next flush');
    }
  }

  async function flushNow(): Promise<void> {
    const due = [...entries.values()].filter((e) => e.pending > 0);
    if (due.length > 0) await write(due);
    // Keep memory to the devices of the day: an entry with nothing pending from an earlier day goes.
    const today = day(new Date());
    for (const [k, e] of entries) if (e.pending === 0 && e.writtenDay !== today) entries.delete(k);
  }

  return {
    /** Counts one request; resolves once a first-of-the-day row is written (never rejects). */
    async seen(u: KeyUse): Promise<void> {
      const k = `${u.keyVersionId}\u0000${u.deviceid ?? '\u0001'}\u0000${u.remoteAddr ?? '\u0001'}`;
      let e = entries.get(k);
      if (!e) {
        e = { ...u, firstAt: u.at, lastAt: u.at, pending: 0, writtenDay: '' };
        entries.set(k, e);
      }
      e.pending++;
      if (u.at > e.lastAt) e.lastAt = u.at;
      e.deviceId ??= u.deviceId;
      if (e.writtenDay !== day(u.at)) await write([e]);
    },
    /** Writes every pending count now (before usage is read, and at shutdown). */
    async flush(): Promise<void> {
      // A flush in flight took its snapshot earlier: wait for it, then write what came since.
      while (flushing) await flushing;
      flushing = flushNow().finally(() => (flushing = null));
      return flushing;
    },
    start(): void {
      timer ??= setInterval(() => void this.flush(), deps.flushMs ?? FLUSH_MS);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      await this.flush();
    },
  };
}

export type KeyUsageTracker = ReturnType<typeof createKeyUsageTracker>;
