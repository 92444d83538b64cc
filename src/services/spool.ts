/**
 * The local spool: inventories read while PostgreSQL is unreachable or too slow are appended here, made
 * durable (fsync of the file, and of the directory when a file appears or goes), and only then answered
 * with the success the agent would have had. A replayer gives them to the normal handle path in arrival
 * order once the database answers; each carries a unique message key stored with its registration, so a
 * crash between the replay's commit and the spool's deletion cannot record it twice.
 *
 * On disk: SPOOL_DIR (0700) holds segment files `seg-NNNNNNNNNN.spool` (0600), appended to and never
 * rewritten, each a sequence of records:
 *
 *     "AGS1" | payload length (u32 BE) | CRC-32 of the payload (u32 BE) | payload
 *     payload = JSON header length (u32 BE) | JSON header (UTF-8) | body bytes (as received)
 *
 * A record torn by a crash mid-append (short, or its checksum wrong) is detected, logged and skipped,
 * never replayed half; reading resumes at the next record that checks out. A segment is deleted once
 * every record in it was replayed. `spool.lock` says which process owns the directory: it is taken at the
 * first append (or at start when segments are waiting) and given back when the spool is empty again, so
 * processes that never spool never contend for it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

// ---------------------------------------------------------------------------------------------------------
// Record format (pure; unit-tested)

const MAGIC = Buffer.from('AGS1', 'latin1');
const FRAME = 12;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zlib and PNG use). */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One record: frame, then the JSON header and the body. */
export function encodeRecord(header: object, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const payload = Buffer.allocUnsafe(4 + json.length + body.length);
  payload.writeUInt32BE(json.length, 0);
  json.copy(payload, 4);
  body.copy(payload, 4 + json.length);
  const frame = Buffer.allocUnsafe(FRAME);
  MAGIC.copy(frame, 0);
  frame.writeUInt32BE(payload.length, 4);
  frame.writeUInt32BE(crc32(payload), 8);
  return Buffer.concat([frame, payload]);
}

export interface DecodedRecord<H = Record<string, unknown>> {
  /** Where the record starts in the segment, and its whole length (frame included). */
  offset: number;
  length: number;
  header: H;
  body: Buffer;
}

export interface SkippedBytes {
  offset: number;
  length: number;
  reason: 'torn tail' | 'checksum mismatch' | 'bad frame' | 'bad header';
}

function payloadAt(buf: Buffer, offset: number): { payload: Buffer } | { bad: SkippedBytes['reason'] } {
  if (buf.length - offset < FRAME) return { bad: 'torn tail' };
  if (!buf.subarray(offset, offset + 4).equals(MAGIC)) return { bad: 'bad frame' };
  const len = buf.readUInt32BE(offset + 4);
  if (len < 4) return { bad: 'bad frame' };
  if (offset + FRAME + len > buf.length) return { bad: 'torn tail' };
  const payload = buf.subarray(offset + FRAME, offset + FRAME + len);
  if (crc32(payload) !== buf.readUInt32BE(offset + 8)) return { bad: 'checksum mismatch' };
  return { payload };
}

function splitPayload<H>(payload: Buffer): { header: H; body: Buffer } | null {
  const jlen = payload.readUInt32BE(0);
  if (4 + jlen > payload.length) return null;
  try {
    const header = JSON.parse(payload.subarray(4, 4 + jlen).toString('utf8')) as H;
    if (typeof header !== 'object' || header === null) return null;
    // A copy: the segment buffer it came from is not kept alive by a record.
    return { header, body: Buffer.from(payload.subarray(4 + jlen)) };
  } catch {
    return null;
  }
}

/** One record at `offset` of a segment read back (replay), or null if it does not check out any more. */
export function decodeRecordAt<H = Record<string, unknown>>(buf: Buffer, offset = 0): DecodedRecord<H> | null {
  const got = payloadAt(buf, offset);
  if (!('payload' in got)) return null;
  const parts = splitPayload<H>(got.payload);
  return parts && { offset, length: FRAME + got.payload.length, ...parts };
}

/**
 * Every record of a segment that checks out, in order, and the byte ranges that do not (a torn tail, a
 * damaged record): after a bad range, reading resumes at the next magic that starts a valid record.
 */
export function decodeRecords<H = Record<string, unknown>>(
  buf: Buffer,
): { records: DecodedRecord<H>[]; skipped: SkippedBytes[] } {
  const records: DecodedRecord<H>[] = [];
  const skipped: SkippedBytes[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const got = payloadAt(buf, offset);
    const parts = 'payload' in got ? splitPayload<H>(got.payload) : null;
    if ('payload' in got && parts) {
      const length = FRAME + got.payload.length;
      records.push({ offset, length, ...parts });
      offset += length;
      continue;
    }
    const reason: SkippedBytes['reason'] = 'bad' in got ? got.bad : 'bad header';
    // Resynchronise: the next place a whole valid record starts, else the rest is lost.
    let next = buf.indexOf(MAGIC, offset + 1);
    while (next >= 0 && !('payload' in payloadAt(buf, next))) next = buf.indexOf(MAGIC, next + 1);
    const end = next < 0 ? buf.length : next;
    skipped.push({ offset, length: end - offset, reason });
    offset = end;
  }
  return { records, skipped };
}

// ---------------------------------------------------------------------------------------------------------
// The spool

/** What a spooled message carries besides its body (see agent-service.ts replaySpooled). */
export interface SpoolHeader {
  v: 1;
  /** The message key stored with the registration: replay is exactly once. */
  key: string;
  deviceid: string;
  kind: string;
  receivedAt: string;
  /**
   * Whose share of SPOOL_MAX the message is charged to: the credential (`key:<id>`, `client:<id>`…), or the
   * source address without one (admission.ts tenantOf). Absent (older records): a share of their own.
   */
  owner?: string;
  [k: string]: unknown;
}

export class SpoolFull extends Error {
  constructor(
    readonly bytes: number,
    /** Set when the spool had room but not within this owner's share. */
    readonly share?: number,
  ) {
    super(share === undefined ? `spool full (${bytes} bytes)` : `spool share full (${bytes} of ${share} bytes)`);
    this.name = 'SpoolFull';
  }
}

/**
 * Share of SPOOL_MAX one owner may hold: SPOOL_MAX / n, n the owners with messages in the spool (this one
 * counted), and at most half while it is alone, so that during an outage one key holder cannot fill the
 * spool that every other credential's agents need: what it leaves is always there for the others.
 */
export function spoolShare(maxBytes: number, owners: number): number {
  return Math.floor(maxBytes / Math.max(2, owners));
}

const NO_OWNER = '(none)';

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  logger: Logger;
  /** Replays one message; throws when it must be tried again later (the database is still away). */
  replay(header: SpoolHeader, body: Buffer): Promise<void>;
  /** Whether a replay failure means "try again later" (the database away) rather than "this message is bad". */
  isTransient(err: unknown): boolean;
  /** A segment is closed for appends past this size, so replayed ones can be deleted during a long backlog. */
  segmentBytes?: number;
  /** Pause between replay attempts while the database is away. */
  retryMs?: number;
}

export interface SpoolStats {
  messages: number;
  bytes: number;
  /** Oldest waiting message, as received (ISO), or null. */
  oldest: string | null;
  replaying: boolean;
}

interface Entry {
  segment: number;
  offset: number;
  length: number;
  owner: string;
  deviceid: string;
  key: string;
  receivedAt: string;
  attempts: number;
}

interface Segment {
  seq: number;
  file: string;
  /** Records of it still to replay. */
  pending: number;
  /** Open for appends (only the newest one). */
  fh: fs.promises.FileHandle | null;
  size: number;
}

const SEGMENT_RE = /^seg-(\d{10})\.spool$/;
const LOCK_FILE = 'spool.lock';
/** A message that fails this often for a reason other than the database being away is set aside. */
const MAX_BAD_ATTEMPTS = 3;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function createSpool(opts: SpoolOptions) {
  const dir = path.resolve(opts.dir);
  const segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
  const retryMs = opts.retryMs ?? 250;
  const log = opts.logger;
  const token = crypto.randomBytes(8).toString('hex');

  const queue: Entry[] = [];
  const segments = new Map<number, Segment>();
  const perDevice = new Map<string, number>();
  const deviceWaiters = new Map<string, (() => void)[]>();
  let bytes = 0; // reserved + written, not yet replayed
  let messages = 0; // appended (or recovered), not yet replayed
  let reserved = 0; // appended, not yet written
  let nextSeq = 1;
  let active: Segment | null = null;
  let locked = false;
  let closed = false;
  // File operations (appends, deletions) one at a time.
  let fileOps: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = fileOps.then(fn, fn);
    fileOps = run.catch(() => {});
    return run;
  };
  let pending: {
    buf: Buffer;
    entry: Omit<Entry, 'segment' | 'offset'>;
    resolve: () => void;
    reject: (e: unknown) => void;
  }[] = [];
  let flushing = false;
  let replaying: Promise<void> | null = null;
  let retryTimer: NodeJS.Timeout | null = null;

  function ensureDir(): void {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const mode = fs.statSync(dir).mode & 0o777;
    if (mode !== 0o700) {
      fs.chmodSync(dir, 0o700);
      log.warn({ dir, was: mode.toString(8) }, 'spool directory was not 0700: tightened');
    }
  }

  /** Takes the directory for this process, or throws when another live process owns it. */
  function lock(): void {
    if (locked) return;
    ensureDir();
    const file = path.join(dir, LOCK_FILE);
    const mine = JSON.stringify({ pid: process.pid, token });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, mine, { flag: 'wx', mode: 0o600 });
        locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let owner: { pid?: number; token?: string } = {};
      try {
        owner = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof owner;
      } catch {
        // unreadable: a crash while writing it; taken over below
      }
      if (typeof owner.pid === 'number' && owner.token !== token && alive(owner.pid))
        throw new Error(`the spool ${dir} is in use by process ${owner.pid}`);
      fs.rmSync(file, { force: true });
    }
    throw new Error(`could not take the spool lock in ${dir}`);
  }

  function unlockIfEmpty(): void {
    if (!locked || queue.length > 0 || reserved > 0 || active || pending.length > 0) return;
    fs.rmSync(path.join(dir, LOCK_FILE), { force: true });
    locked = false;
  }

  function segmentFile(seq: number): string {
    return path.join(dir, `seg-${String(seq).padStart(10, '0')}.spool`);
  }

  function addDevice(deviceid: string): void {
    perDevice.set(deviceid, (perDevice.get(deviceid) ?? 0) + 1);
  }

  /** Bytes in the spool per owner (see SpoolHeader.owner and spoolShare). */
  const perOwner = new Map<string, number>();
  function charge(owner: string, n: number): void {
    const left = (perOwner.get(owner) ?? 0) + n;
    if (left > 0) perOwner.set(owner, left);
    else perOwner.delete(owner);
  }

  function dropDevice(deviceid: string): void {
    const n = (perDevice.get(deviceid) ?? 1) - 1;
    if (n > 0) return void perDevice.set(deviceid, n);
    perDevice.delete(deviceid);
    const waiters = deviceWaiters.get(deviceid);
    deviceWaiters.delete(deviceid);
    for (const w of waiters ?? []) w();
  }

  /** Segments that were written by an earlier process (or this one before a restart): read them back in order. */
  async function recover(): Promise<void> {
    if (!fs.existsSync(dir)) return;
    const files = fs
      .readdirSync(dir)
      .map((f) => SEGMENT_RE.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    if (files.length === 0) return;
    lock();
    for (const seq of files) {
      const file = segmentFile(seq);
      const buf = await fs.promises.readFile(file);
      const { records, skipped } = decodeRecords<SpoolHeader>(buf);
      for (const s of skipped)
        log.warn(
          { segment: path.basename(file), offset: s.offset, bytes: s.length, reason: s.reason },
          `spool: ${s.reason} at offset ${s.offset} (${s.length} bytes) skipped, never replayed`,
        );
      const seg: Segment = { seq, file, pending: 0, fh: null, size: buf.length };
      for (const r of records) {
        const h = r.header;
        if (typeof h.key !== 'string' || typeof h.deviceid !== 'string') {
          log.warn({ segment: path.basename(file), offset: r.offset }, 'spool: record without key skipped');
          continue;
        }
        const owner = typeof h.owner === 'string' ? h.owner : NO_OWNER;
        queue.push({
          segment: seq,
          offset: r.offset,
          length: r.length,
          owner,
          deviceid: h.deviceid,
          key: h.key,
          receivedAt: String(h.receivedAt),
          attempts: 0,
        });
        seg.pending++;
        bytes += r.length;
        messages++;
        addDevice(h.deviceid);
        charge(owner, r.length);
      }
      segments.set(seq, seg);
      nextSeq = Math.max(nextSeq, seq + 1);
      if (seg.pending === 0) await removeSegment(seg);
    }
    if (queue.length > 0)
      log.warn(
        { messages: queue.length, bytes, dir },
        `spool: ${queue.length} message(s) left by an earlier process, replayed as soon as the database answers`,
      );
    unlockIfEmpty();
  }

  async function removeSegment(seg: Segment): Promise<void> {
    segments.delete(seg.seq);
    if (seg.fh) await seg.fh.close().catch(() => {});
    seg.fh = null;
    await fs.promises.rm(seg.file, { force: true });
    await fsyncDir(dir);
  }

  async function openActive(): Promise<Segment> {
    if (active && active.size < segmentBytes) return active;
    if (active) {
      // Closed for appends; deleted once replayed.
      await active.fh?.close();
      active.fh = null;
      if (active.pending === 0) await removeSegment(active);
      active = null;
    }
    const seq = nextSeq++;
    const file = segmentFile(seq);
    const fh = await fs.promises.open(file, 'wx', 0o600);
    await fsyncDir(dir); // the new file's name is durable before anything in it is acknowledged
    const seg: Segment = { seq, file, pending: 0, fh, size: 0 };
    segments.set(seq, seg);
    active = seg;
    return seg;
  }

  /** Writes everything appended so far in one write + one fsync (group commit for the disk). */
  function flush(): void {
    if (flushing || pending.length === 0) return;
    flushing = true;
    const batch = pending;
    pending = [];
    void exclusive(async () => {
      const seg = await openActive();
      const start = seg.size;
      await seg.fh!.writev(
        batch.map((p) => p.buf),
        start,
      );
      await seg.fh!.sync();
      let offset = start;
      for (const p of batch) {
        queue.push({ ...p.entry, segment: seg.seq, offset });
        offset += p.buf.length;
        seg.pending++;
      }
      seg.size = offset;
    }).then(
      () => {
        for (const p of batch) {
          reserved -= p.buf.length;
          p.resolve();
        }
        flushing = false;
        flush();
        kick();
      },
      (err: unknown) => {
        for (const p of batch) {
          reserved -= p.buf.length;
          bytes -= p.buf.length;
          messages--;
          dropDevice(p.entry.deviceid);
          charge(p.entry.owner, -p.buf.length);
          p.reject(err);
        }
        log.error({ err, dir }, 'spool: could not write to disk');
        flushing = false;
        // A failed write may have left part of a record: never append after it.
        if (active) {
          void active.fh?.close().catch(() => {});
          active.fh = null;
          if (active.pending === 0) segments.delete(active.seq);
          active = null;
        }
        flush();
      },
    );
  }

  async function replayOne(e: Entry): Promise<'done' | 'later'> {
    const seg = segments.get(e.segment)!;
    const fh = await fs.promises.open(seg.file, 'r');
    let rec: DecodedRecord<SpoolHeader> | null;
    try {
      const buf = Buffer.allocUnsafe(e.length);
      const { bytesRead } = await fh.read(buf, 0, e.length, e.offset);
      rec = bytesRead === e.length ? decodeRecordAt<SpoolHeader>(buf) : null;
    } finally {
      await fh.close();
    }
    if (!rec) {
      log.error(
        { key: e.key, segment: path.basename(seg.file), offset: e.offset },
        'spool: record unreadable, skipped',
      );
      return 'done';
    }
    try {
      await opts.replay(rec.header, rec.body);
      return 'done';
    } catch (err) {
      if (opts.isTransient(err)) return 'later';
      e.attempts++;
      if (e.attempts < MAX_BAD_ATTEMPTS) {
        log.warn({ err, key: e.key, deviceid: e.deviceid }, 'spool: replay failed, tried again');
        return 'later';
      }
      // Set aside, never dropped: an operator can look at it (and the next start does not replay it).
      const aside = path.join(dir, `failed-${e.key}.record`);
      await fs.promises.writeFile(aside, encodeRecord(rec.header, rec.body), { mode: 0o600 });
      log.error(
        { err, key: e.key, deviceid: e.deviceid, file: aside },
        'spool: message could not be replayed; set aside',
      );
      return 'done';
    }
  }

  async function replayAll(): Promise<void> {
    while (!closed && queue.length > 0) {
      const e = queue[0]!;
      const verdict = await replayOne(e);
      if (verdict === 'later') {
        scheduleRetry();
        return;
      }
      queue.shift();
      bytes -= e.length;
      messages--;
      dropDevice(e.deviceid);
      charge(e.owner, -e.length);
      const seg = segments.get(e.segment);
      if (seg && --seg.pending === 0) {
        await exclusive(async () => {
          // The newest segment is deleted too once all of it is replayed; the next append starts a fresh one.
          if (seg.pending !== 0 || !segments.has(seg.seq)) return;
          if (seg === active) active = null;
          await removeSegment(seg);
        });
      }
    }
    await exclusive(() => Promise.resolve(unlockIfEmpty()));
  }

  function scheduleRetry(): void {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      kick();
    }, retryMs);
    retryTimer.unref();
  }

  /** Starts the replayer unless it runs already. */
  function kick(): void {
    if (closed || replaying || queue.length === 0) return;
    replaying = replayAll()
      .catch((err: unknown) => {
        log.error({ err }, 'spool: replay stopped');
        scheduleRetry();
      })
      .finally(() => {
        replaying = null;
      });
  }

  return {
    dir,
    /** Reads back what an earlier process left (call once, before serving). */
    recover,
    /** Starts replaying (and keeps retrying while the database is away). */
    start: kick,

    /**
     * Appends one message and resolves once it is on disk (file and directory fsync'ed). Throws SpoolFull
     * past SPOOL_MAX, or the disk's error.
     */
    append(header: SpoolHeader, body: Buffer): Promise<void> {
      if (closed) return Promise.reject(new Error('spool closed'));
      const buf = encodeRecord(header, body);
      if (bytes + buf.length > opts.maxBytes) return Promise.reject(new SpoolFull(bytes));
      const owner = header.owner ?? NO_OWNER;
      const held = perOwner.get(owner) ?? 0;
      const share = spoolShare(opts.maxBytes, perOwner.size + (held === 0 ? 1 : 0));
      if (held + buf.length > share) return Promise.reject(new SpoolFull(held, share));
      try {
        lock();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      bytes += buf.length;
      reserved += buf.length;
      messages++;
      addDevice(header.deviceid);
      charge(owner, buf.length);
      return new Promise<void>((resolve, reject) => {
        pending.push({
          buf,
          entry: {
            length: buf.length,
            owner,
            deviceid: header.deviceid,
            key: header.key,
            receivedAt: header.receivedAt,
            attempts: 0,
          },
          resolve,
          reject,
        });
        flush();
      });
    },

    /** The device has messages in the spool: its newer ones go there too, so they are recorded after them. */
    hasDevice: (deviceid: string) => perDevice.has(deviceid),

    /** Resolves true once the device has nothing left in the spool, false if that takes longer than `ms`. */
    waitDevice(deviceid: string, ms: number): Promise<boolean> {
      if (!perDevice.has(deviceid)) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(!perDevice.has(deviceid)), ms);
        const list = deviceWaiters.get(deviceid) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
        deviceWaiters.set(deviceid, list);
      });
    },

    /** At least `fraction` of SPOOL_MAX is used. */
    fuller: (fraction: number) => bytes >= opts.maxBytes * fraction,

    stats(): SpoolStats {
      return {
        messages,
        bytes,
        oldest: queue[0]?.receivedAt ?? pending[0]?.entry.receivedAt ?? null,
        replaying: replaying !== null,
      };
    },

    /** Stops replaying and closes files; what is not replayed stays on disk for the next start. */
    async close(): Promise<void> {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      await replaying;
      await exclusive(async () => {
        if (active?.fh) await active.fh.close().catch(() => {});
        if (active) active.fh = null;
      });
      if (locked && queue.length === 0 && reserved === 0 && active === null) unlockIfEmpty();
      else if (locked) {
        // Kept on disk for the next start; the lock is given back so the next process can take it at once.
        fs.rmSync(path.join(dir, LOCK_FILE), { force: true });
        locked = false;
      }
    },
  };
}

export type Spool = ReturnType<typeof createSpool>;
