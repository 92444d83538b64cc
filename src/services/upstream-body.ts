/**
 * The bytes an outbox row is sent to GLPI with: the stored bytes as received, unless UPSTREAM_TAG=key and the
 * device's credential (the registration key or client it is pinned to) has a tag. Then the inventory's tag
 * is replaced by that one (src/protocol/inventory-tag.ts, on the decoded document) and the document is
 * re-encoded in the agent's compression: zlib at the default level (`78 9C`, the only zlib FusionInventory
 * reads), gzip as gzip, plain as plain; a raw-deflate body becomes zlib, as a redaction does. That is the one
 * documented exception to "forwarded as received". A document that already carries exactly that tag goes
 * as stored. Inflating and deflating run on the libuv pool; the rewrite itself is synchronous and pure.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Config } from '../config.js';
import { setInventoryTag } from '../protocol/inventory-tag.js';
import type { ClaimedRow } from '../store/outbox-store.js';

const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const gunzip = promisify(zlib.gunzip);
const deflate = promisify(zlib.deflate);
const gzip = promisify(zlib.gzip);

export type UpstreamBody =
  | { body: Buffer; contentType: string; tag: 'as-sent' | 'kept' | 'replaced' }
  /** The credential's tag could not be set unambiguously: not sent (the agent's own tag must not go instead). */
  | { refused: string };

/** The Content-Type to send: the agent's, unless the body was re-encoded from raw deflate as zlib (or none was sent). */
export function forwardContentType(row: Pick<ClaimedRow, 'contentType' | 'compression' | 'format'>): string {
  const media = (row.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (row.contentType && !(row.compression === 'zlib' && media === 'application/x-compress-deflate'))
    return row.contentType;
  if (row.compression === 'zlib') return 'application/x-compress-zlib';
  if (row.compression === 'gzip') return 'application/x-compress-gzip';
  return row.format === 'json' ? 'application/json' : 'application/xml';
}

async function decode(row: ClaimedRow): Promise<Buffer> {
  switch (row.compression) {
    case 'zlib':
      return inflate(row.body);
    case 'deflate':
      return inflateRaw(row.body);
    case 'gzip':
      return gunzip(row.body);
    default:
      return row.body;
  }
}

async function encode(decoded: Buffer, compression: string): Promise<{ body: Buffer; compression: string }> {
  if (compression === 'zlib' || compression === 'deflate') return { body: await deflate(decoded), compression: 'zlib' };
  if (compression === 'gzip') return { body: await gzip(decoded), compression: 'gzip' };
  return { body: decoded, compression: 'none' };
}

/** What to POST for `row` (see the module header). */
export async function upstreamBody(row: ClaimedRow, mode: Config['upstreamTag']): Promise<UpstreamBody> {
  const asStored = { body: row.body, contentType: forwardContentType(row) };
  if (mode === 'agent' || row.tag === null) return { ...asStored, tag: 'as-sent' };
  if (row.format !== 'xml' && row.format !== 'json') return { refused: `cannot set the tag of a ${row.format} body` };
  let decoded: Buffer;
  try {
    decoded = await decode(row);
  } catch {
    return { refused: `the stored ${row.compression} body does not decompress` };
  }
  const r = setInventoryTag(decoded, row.format, row.tag);
  if (!r.ok) return { refused: `cannot set the tag ${JSON.stringify(row.tag)}: ${r.reason}` };
  if (!r.changed) return { ...asStored, tag: 'kept' };
  const out = await encode(r.decoded, row.compression);
  return { body: out.body, contentType: forwardContentType({ ...row, compression: out.compression }), tag: 'replaced' };
}
