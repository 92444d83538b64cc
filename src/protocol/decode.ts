/**
 * Request bodies as the agents send them: compression is announced only by Content-Type (any case, any
 * parameters), confirmed by magic bytes, and sniffed when the label is unknown or wrong. Inflation is capped
 * (a zip bomb stops at INFLATE_LIMIT), incremental (every decoded byte is charged to the caller's budget as
 * it is produced) and runs on the libuv pool so a big body does not stall other agents. */
import { isUtf8 } from 'node:buffer';
import zlib from 'node:zlib';
import { AppError } from '../errors.js';

export type Compression = 'zlib' | 'gzip' | 'deflate' | 'none';
export type BodyFormat = 'xml' | 'json' | 'unknown';

/**
 * A zlib body up to this size (compressed) is inflated inline, in one call, when it decodes to at most
 * SYNC_OUTPUT_MAX: an agent's PROLOG or CONTACT, and a desktop's whole inventory (18 KB zlib → 230 KB).
 * Through the thread pool such a body cost more than its inflation: pieces, callbacks and stream events,
 * each waiting for a turn of a busy event loop (~10 ms of a 45 ms inventory request under the bench's
 * load). One that decodes to more (a server's inventory, a bomb) is streamed instead, from the start: at
 * most SYNC_OUTPUT_MAX of inline work is thrown away (about a millisecond).
 */
const SYNC_INFLATE_MAX = 64 * 1024;
const SYNC_OUTPUT_MAX = 1024 * 1024;

/** Media type without parameters, lower-cased ("Application/x-compress-zlib; x=y" → "application/x-compress-zlib"). */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

function looksZlib(b: Buffer): boolean {
  // RFC 1950: CM=8 (deflate), CINFO ≤ 7, header checksum divisible by 31.
  return b.length >= 2 && (b[0]! & 0x0f) === 8 && b[0]! >> 4 <= 7 && ((b[0]! << 8) | b[1]!) % 31 === 0;
}

function looksGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Which decoder a body needs: the label when the bytes agree with it, else what the bytes say. */
export function detectCompression(contentType: string | undefined, body: Buffer): Compression {
  const type = mediaType(contentType);
  if (type === 'application/x-compress-zlib' && looksZlib(body)) return 'zlib';
  if (type === 'application/x-compress-gzip' && looksGzip(body)) return 'gzip';
  if (type === 'application/x-compress-deflate') return looksZlib(body) ? 'zlib' : 'deflate';
  if (looksGzip(body)) return 'gzip';
  if (looksZlib(body)) return 'zlib';
  return 'none';
}

/**
 * Called with each run of decoded bytes as the inflater produces them (a budget of decoded bytes in flight):
 * a returned promise holds the inflater, which reads no further input until it settles, and its rejection
 * aborts the inflation with that error.
 */
export type ChargeDecoded = (bytes: number) => Promise<void> | undefined | void;

/** Output a piece of input may produce before the budget is asked again (zlib can reach ~1000:1). */
const PIECE_OUTPUT = 1024 * 1024;
const MIN_PIECE = 1024;
const MAX_PIECE = 64 * 1024;

/**
 * Decompresses with a hard output cap. Truncated or corrupt streams are a 400, an over-cap body a 413.
 * Incremental: the input is fed in pieces sized so that each yields about PIECE_OUTPUT bytes at the ratio
 * seen so far, and `charge` is told of every decoded byte before the next piece is fed, so a bomb is charged
 * (and can be held, or stopped at the cap) as it inflates, never after. Runs on the libuv pool.
 */
export async function inflateBody(
  body: Buffer,
  compression: Compression,
  limit: number,
  charge: ChargeDecoded = () => undefined,
): Promise<Buffer> {
  return joinParts(await inflateBodyParts(body, compression, limit, charge));
}

/**
 * inflateBody without the final join: the decoded bytes as the inflater produced them, in order. Joining
 * 60 MB into one buffer is a single copy of ~100 ms or more on the event loop (and, until the parts are
 * collected, the body held twice); a large body's parts are moved to a parse worker as they are and joined
 * there (parse-pool.ts). Each part's ArrayBuffer belongs to this body alone (never Node's shared pool), so
 * the parts can be transferred — except for `compression` 'none', where the one part is the body itself.
 */
export async function inflateBodyParts(
  body: Buffer,
  compression: Compression,
  limit: number,
  charge: ChargeDecoded = () => undefined,
): Promise<Buffer[]> {
  if (compression === 'none') {
    if (body.length > limit) throw tooLarge(limit);
    await charge(body.length);
    return [body];
  }
  if (body.length <= SYNC_INFLATE_MAX && compression === 'zlib') {
    const inline = inflateInline(body, limit);
    if (inline) {
      await charge(inline.length);
      return [inline];
    }
  }
  const decoded = await inflateStream(body, compression, limit, charge);
  // Security: the compressed stream must end where the body ends. Bytes after it (or a second gzip member,
  // which Node joins and PHP's gzdecode does not read) would be stored and forwarded without being judged.
  const consumed = compression === 'gzip' ? await firstGzipMemberLength(body, limit) : decoded.consumed;
  if (consumed !== body.length) throw trailingData(compression);
  return decoded.parts;
}

/**
 * A small zlib body inflated in one call, or null when it decodes to more than SYNC_OUTPUT_MAX (and the
 * limit allows more): then it is streamed. Its result is a buffer of its own once larger than Node's pool
 * threshold (4 KB), so it can be moved to a parse worker like the streamed parts (only bodies decoding to
 * more than SHARED_PARSE_MIN, 32 KB, ever are).
 */
function inflateInline(body: Buffer, limit: number): Buffer | null {
  const cap = Math.min(limit, SYNC_OUTPUT_MAX);
  let out: { buffer: Buffer; engine: zlib.Zlib };
  try {
    out = infoOf(zlib.inflateSync(body, { maxOutputLength: cap, info: true }));
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      if (cap < limit) return null;
      throw tooLarge(limit, err);
    }
    throw new AppError('bad_request', 'Invalid zlib body: cannot decompress', { cause: err });
  }
  if (out.engine.bytesWritten !== body.length) throw trailingData('zlib');
  return out.buffer;
}

/** The decoded parts as one buffer (the part itself when there is one). */
export function joinParts(parts: readonly Buffer[]): Buffer {
  if (parts.length === 1) return parts[0]!;
  return Buffer.concat(parts);
}

/** Total length of decoded parts. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

function trailingData(compression: Compression): AppError {
  return new AppError('bad_request', `Invalid ${compression} body: data after the end of the compressed stream`);
}

/**
 * The inflater's output buffer: each one filled is one callback on the event loop. Node's default (16 KB)
 * made a 60 MB body ~3 800 callbacks; 256 KB makes it ~240 (a small body still gets one buffer).
 */
const OUTPUT_CHUNK = 256 * 1024;

function createEngine(compression: Compression): zlib.Inflate | zlib.Gunzip | zlib.InflateRaw {
  const opts = { chunkSize: OUTPUT_CHUNK };
  if (compression === 'zlib') return zlib.createInflate(opts);
  if (compression === 'gzip') return zlib.createGunzip(opts);
  return zlib.createInflateRaw(opts);
}

/** Streams `input` through an inflater in budgeted pieces; `keep` false only counts (the gzip member check). */
async function inflateStream(
  input: Buffer,
  compression: Compression,
  limit: number,
  charge: ChargeDecoded,
  keep = true,
): Promise<{ parts: Buffer[]; consumed: number }> {
  const engine = createEngine(compression);
  const chunks: Buffer[] = [];
  let produced = 0;
  let failure: Error | null = null;
  let uncharged = 0;
  const check = () => {
    const f = failure; // set by the listeners above
    if (f) throw f;
  };
  let ended = false;
  const ending = new Promise<void>((resolve) => engine.once('end', () => resolve()));
  engine.on('data', (chunk: Buffer) => {
    if (failure) return;
    produced += chunk.length;
    if (produced > limit) {
      failure = tooLarge(limit);
      return;
    }
    if (keep) chunks.push(chunk);
    uncharged += chunk.length;
  });
  // Charged once per piece (its output has all arrived when its write completes), and at the end.
  const chargeNow = async () => {
    const n = uncharged;
    uncharged = 0;
    if (n > 0) await charge(n);
  };
  engine.once('end', () => (ended = true));
  const errored = new Promise<never>((_, reject) =>
    engine.once('error', (err) =>
      reject(new AppError('bad_request', `Invalid ${compression} body: cannot decompress`, { cause: err })),
    ),
  );
  errored.catch(() => {});
  const write = (piece: Buffer) =>
    Promise.race([new Promise<void>((resolve) => engine.write(piece, () => resolve())), errored]);
  try {
    let at = 0;
    while (at < input.length && !ended) {
      const ratio = at > 0 ? Math.max(1, produced / at) : 1032; // deflate at most: a first piece of 1 KB
      const size = Math.min(MAX_PIECE, Math.max(MIN_PIECE, Math.floor(PIECE_OUTPUT / ratio)));
      await write(input.subarray(at, at + size));
      at += size;
      check();
      await chargeNow(); // when the budget says wait, no more input until it has room
    }
    if (!ended) engine.end();
    await Promise.race([ending, errored]);
    check();
    await chargeNow();
    // Not joined (see inflateBodyParts). zlib allocates each output buffer (OUTPUT_CHUNK, never Node's
    // shared pool) for this engine alone, and the engine is destroyed below: the parts can be moved.
    return { parts: chunks, consumed: engine.bytesWritten };
  } finally {
    engine.removeAllListeners('data');
    engine.destroy();
  }
}

/** zlib's convenience methods with `info: true` answer {buffer, engine}; their typings say Buffer. */
function infoOf(v: unknown): { buffer: Buffer; engine: zlib.Zlib } {
  return v as { buffer: Buffer; engine: zlib.Zlib };
}

/** Length of the first member of a gzip body (RFC 1952): header, deflate data, 8-byte trailer. */
async function firstGzipMemberLength(body: Buffer, limit: number): Promise<number> {
  const flags = body[3] ?? 0;
  let at = 10;
  if (flags & 0x04) at += 2 + body.readUInt16LE(at); // FEXTRA
  for (const bit of [0x08, 0x10]) if (flags & bit) at = body.indexOf(0, at) + 1; // FNAME, FCOMMENT
  if (flags & 0x02) at += 2; // FHCRC
  // A second pass that only counts (gzip is rare, the agents send zlib): nothing kept, nothing charged.
  const raw = await inflateStream(body.subarray(at), 'deflate', limit, () => undefined, false);
  return at + raw.consumed + 8;
}

function tooLarge(limit: number, cause?: unknown): AppError {
  return new AppError('payload_too_large', `Decompressed body exceeds ${limit} bytes`, { cause, details: { limit } });
}

/** JSON or XML by the first meaningful byte (after a UTF-8 BOM and white space). */
export function sniffFormat(decoded: Buffer): BodyFormat {
  let i = decoded.length >= 3 && decoded[0] === 0xef && decoded[1] === 0xbb && decoded[2] === 0xbf ? 3 : 0;
  while (
    i < decoded.length &&
    (decoded[i] === 0x20 || decoded[i] === 0x0a || decoded[i] === 0x0d || decoded[i] === 0x09)
  )
    i++;
  if (decoded[i] === 0x7b) return 'json';
  if (decoded[i] === 0x3c) return 'xml';
  return 'unknown';
}

/** Text of an XML body: UTF-8 when valid, ISO-8859-1 otherwise (as GLPI does). */
export function xmlText(decoded: Buffer): { text: string; encoding: 'utf-8' | 'latin1' } {
  if (isUtf8(decoded)) return { text: stripBom(decoded.toString('utf8')), encoding: 'utf-8' };
  return { text: decoded.toString('latin1'), encoding: 'latin1' };
}

function stripBom(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

/** Text of a JSON body: must be UTF-8 (RFC 8259). */
export function jsonText(decoded: Buffer): string {
  if (!isUtf8(decoded)) throw new AppError('bad_request', 'JSON body is not valid UTF-8');
  return stripBom(decoded.toString('utf8'));
}
