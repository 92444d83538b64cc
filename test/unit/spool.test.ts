/**
 * The spool's file format (length + CRC-32 framing, torn tails, damaged records) and the spool itself on a
 * temporary directory: arrival order, exactly the records that check out, modes, a crash mid-append.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import {
  type SpoolHeader,
  SpoolFull,
  crc32,
  createSpool,
  decodeRecordAt,
  decodeRecords,
  encodeRecord,
} from '../../src/services/spool.js';
import { eventually } from '../helpers/eventually.js';

const header = (i: number, deviceid = `dev-${i % 3}`): SpoolHeader => ({
  v: 1,
  key: `key-${i}`,
  deviceid,
  kind: 'inventory',
  receivedAt: new Date(1_700_000_000_000 + i).toISOString(),
});
const body = (i: number) => Buffer.from(`<?xml version="1.0"?><REQUEST><N>${i}</N>${'x'.repeat(i * 7)}</REQUEST>`);

describe('spool record format', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });

  it('reads back every record, header and body, in order', () => {
    const buf = Buffer.concat([0, 1, 2, 3].map((i) => encodeRecord(header(i), body(i))));
    const { records, skipped } = decodeRecords<SpoolHeader>(buf);
    expect(skipped).toEqual([]);
    expect(records.map((r) => r.header.key)).toEqual(['key-0', 'key-1', 'key-2', 'key-3']);
    expect(records.map((r) => r.body.toString())).toEqual([0, 1, 2, 3].map((i) => body(i).toString()));
    expect(records.reduce((n, r) => n + r.length, 0)).toBe(buf.length);
    expect(decodeRecordAt<SpoolHeader>(buf, records[2]!.offset)?.header.key).toBe('key-2');
  });

  it('detects a record torn at any byte (crash mid-append) and never returns half of it', () => {
    const whole = [0, 1].map((i) => encodeRecord(header(i), body(i)));
    const last = encodeRecord(header(2), body(2));
    for (let cut = 1; cut < last.length; cut++) {
      const buf = Buffer.concat([...whole, last.subarray(0, cut)]);
      const { records, skipped } = decodeRecords<SpoolHeader>(buf);
      expect(records.map((r) => r.header.key)).toEqual(['key-0', 'key-1']);
      expect(skipped).toHaveLength(1);
      expect(skipped[0]).toMatchObject({ offset: whole[0]!.length + whole[1]!.length, length: cut });
      expect(['torn tail', 'bad frame']).toContain(skipped[0]!.reason);
    }
  });

  it('skips a damaged record by its checksum and resumes at the next good one', () => {
    const recs = [0, 1, 2].map((i) => encodeRecord(header(i), body(i)));
    const buf = Buffer.concat(recs);
    const at = recs[0]!.length + recs[1]!.length - 5; // inside record 1's body
    buf[at] = buf[at]! ^ 0xff;
    const { records, skipped } = decodeRecords<SpoolHeader>(buf);
    expect(records.map((r) => r.header.key)).toEqual(['key-0', 'key-2']);
    expect(skipped).toEqual([{ offset: recs[0]!.length, length: recs[1]!.length, reason: 'checksum mismatch' }]);
    expect(decodeRecordAt(buf, recs[0]!.length)).toBeNull();
  });

  it('resynchronises after a damaged length field', () => {
    const recs = [0, 1, 2].map((i) => encodeRecord(header(i), body(i)));
    const buf = Buffer.concat(recs);
    buf.writeUInt32BE(0x7fffffff, recs[0]!.length + 4); // record 1 claims to be 2 GB long
    const { records, skipped } = decodeRecords<SpoolHeader>(buf);
    expect(records.map((r) => r.header.key)).toEqual(['key-0', 'key-2']);
    expect(skipped).toHaveLength(1);
  });

  it('treats garbage as skipped bytes, not records', () => {
    const { records, skipped } = decodeRecords(Buffer.from('not a spool at all'));
    expect(records).toEqual([]);
    expect(skipped).toEqual([{ offset: 0, length: 18, reason: 'bad frame' }]);
  });
});

describe('spool on disk', () => {
  const dirs: string[] = [];
  const logger = pino({ level: 'silent' });
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'agentgate-spool-'));
    dirs.push(d);
    return path.join(d, 'spool');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('replays in arrival order, exactly the appended messages, then removes its files', async () => {
    const dir = tmp();
    const replayed: string[] = [];
    let databaseAway = true;
    const spool = createSpool({
      dir,
      maxBytes: 1 << 20,
      logger,
      retryMs: 10,
      isTransient: (err) => (err as Error).message === 'away',
      replay: async (h) => {
        if (databaseAway) throw new Error('away');
        replayed.push(h.key);
      },
    });
    await spool.recover();
    await Promise.all([0, 1, 2, 3, 4].map((i) => spool.append(header(i), body(i))));
    expect(spool.stats().messages).toBe(5);
    expect(spool.hasDevice('dev-1')).toBe(true);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.spool'));
    expect(files).toHaveLength(1);
    expect(fs.statSync(path.join(dir, files[0]!)).mode & 0o777).toBe(0o600);
    spool.start();
    databaseAway = false;
    await eventually(() => expect(spool.stats()).toMatchObject({ messages: 0, bytes: 0 }));
    expect(replayed).toEqual(['key-0', 'key-1', 'key-2', 'key-3', 'key-4']);
    expect(spool.hasDevice('dev-1')).toBe(false);
    await eventually(() => expect(fs.readdirSync(dir)).toEqual([]));
    await spool.close();
  });

  it('refuses past SPOOL_MAX', async () => {
    const spool = createSpool({
      dir: tmp(),
      maxBytes: 600,
      logger,
      isTransient: () => true,
      replay: () => Promise.reject(new Error('away')),
    });
    await spool.append(header(1), body(1));
    await expect(spool.append(header(60), body(60))).rejects.toBeInstanceOf(SpoolFull);
    expect(spool.stats().messages).toBe(1);
    await spool.close();
  });

  it('gives each owner a share of SPOOL_MAX: half while alone, SPOOL_MAX / n with n owners spooling', async () => {
    const spool = createSpool({
      dir: tmp(),
      maxBytes: 10_000,
      logger,
      isTransient: () => true,
      replay: () => Promise.reject(new Error('away')),
    });
    const rec = (i: number, owner: string) => spool.append({ ...header(i), owner }, Buffer.alloc(900, 0x78));
    const size = encodeRecord({ ...header(0), owner: 'key:1' }, Buffer.alloc(900, 0x78)).length;
    // The flooder alone: up to half of SPOOL_MAX, then refused with its share named.
    let a = 0;
    for (; a < 20; a++) {
      const err = await rec(a, 'key:1').then(
        () => null,
        (e: unknown) => e,
      );
      if (err) {
        expect(err).toBeInstanceOf(SpoolFull);
        expect((err as SpoolFull).share).toBe(5000);
        break;
      }
    }
    expect(a).toBe(Math.floor(5000 / size));
    // Another credential still finds room, and so does a third (their shares are SPOOL_MAX / n).
    await rec(100, 'key:2');
    await rec(101, 'client:7');
    await expect(rec(102, 'key:1')).rejects.toBeInstanceOf(SpoolFull); // over its share of a third
    expect(spool.stats().messages).toBe(a + 2);
    await spool.close();
  });

  it('after a crash mid-append, the next process replays the whole records and skips the torn one', async () => {
    const dir = tmp();
    const first = createSpool({
      dir,
      maxBytes: 1 << 20,
      logger,
      isTransient: () => true,
      replay: () => Promise.reject(new Error('away')),
    });
    for (const i of [0, 1, 2]) await first.append(header(i), body(i));
    await first.close(); // the process "dies": files stay
    const seg = path.join(
      dir,
      fs.readdirSync(dir).find((f) => f.endsWith('.spool'))!,
    );
    const torn = encodeRecord(header(3), body(3));
    fs.appendFileSync(seg, torn.subarray(0, torn.length - 9)); // the 4th append never finished
    const replayed: string[] = [];
    const second = createSpool({
      dir,
      maxBytes: 1 << 20,
      logger,
      isTransient: () => false,
      replay: async (h, b) => {
        replayed.push(`${h.key}:${b.length}`);
      },
    });
    await second.recover();
    expect(second.stats().messages).toBe(3);
    second.start();
    await eventually(() => expect(second.stats().messages).toBe(0));
    expect(replayed).toEqual([0, 1, 2].map((i) => `key-${i}:${body(i).length}`));
    // New appends after recovery go to a fresh segment, never after the torn bytes.
    await second.append(header(9), body(9));
    await eventually(() => expect(replayed).toContain(`key-9:${body(9).length}`));
    await second.close();
  });

  it('a second spool on the same directory is refused while the first holds messages', async () => {
    const dir = tmp();
    const opts = {
      dir,
      maxBytes: 1 << 20,
      logger,
      isTransient: () => true,
      replay: () => Promise.reject(new Error('x')),
    };
    const a = createSpool(opts);
    const b = createSpool(opts);
    await a.append(header(1), body(1));
    await expect(b.append(header(2), body(2))).rejects.toThrow(/in use by process/);
    await a.close();
    await b.close();
  });
});
