/**
 * Request bodies as the agents send them: compression is announced only by Content-Type (any case, any
 * parameters), confirmed by magic bytes, and sniffed when the label is unknown or wrong. Inflation is capped
 * (a zip bomb stops at INFLATE_LIMIT) and runs on the libuv pool so a big body does not stall other agents.
 */
import { promisify } from 'node:util';
import { isUtf8 } from 'node:buffer';
import zlib from 'node:zlib';
import { AppError } from '../errors.js';

export type Compression = 'zlib' | 'gzip' | 'deflate' | 'none';
export type BodyFormat = 'xml' | 'json' | 'unknown';

const inflateAsync = promisify(zlib.inflate);
const SYNC_INFLATE_MAX = 4096;
const gunzipAsync = promisify(zlib.gunzip);
const inflateRawAsync = promisify(zlib.inflateRaw);

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

/** Decompresses with a hard output cap. Truncated or corrupt streams are a 400, an over-cap body a 413. */
export async function inflateBody(body: Buffer, compression: Compression, limit: number): Promise<Buffer> {
  if (compression === 'none') {
    if (body.length > limit) throw tooLarge(limit);
    return body;
  }
  const opts = { maxOutputLength: limit, info: true } as const;
  let out: { buffer: Buffer; engine: zlib.Zlib };
  try {
    // Small bodies (PROLOG, CONTACT, partials) inflate faster inline than through the thread pool.
    if (body.length <= SYNC_INFLATE_MAX && compression === 'zlib') out = infoOf(zlib.inflateSync(body, opts));
    else if (compression === 'zlib') out = infoOf(await inflateAsync(body, opts));
    else if (compression === 'gzip') out = infoOf(await gunzipAsync(body, opts));
    else out = infoOf(await inflateRawAsync(body, opts));
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limit, err);
    throw new AppError('bad_request', `Invalid ${compression} body: cannot decompress`, { cause: err });
  }
  // Security: the compressed stream must end where the body ends. Bytes after it (or a second gzip member,
  // which Node joins and PHP's gzdecode does not read) would be stored and forwarded without being judged.
  const consumed = compression === 'gzip' ? await firstGzipMemberLength(body, limit) : out.engine.bytesWritten;
  if (consumed !== body.length)
    throw new AppError('bad_request', `Invalid ${compression} body: data after the end of the compressed stream`);
  return out.buffer;
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
  // Off the event loop, like the gunzip itself (a second pass: gzip is rare, the agents send zlib).
  const raw = infoOf(await inflateRawAsync(body.subarray(at), { maxOutputLength: limit, info: true }));
  return at + raw.engine.bytesWritten + 8;
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
