/**
 * The inventory view: the device's content in the JSON protocol's shape (lower-case sections). Built from a
 * stored raw submission only when needed — a partial to merge, a reviewer looking — never on the ingest path.
 * Building it is proportional to the inventory: the gateway does it in a parse worker (parse-pool.ts
 * `viewJson`), which calls viewFromBody; viewFromBody itself is synchronous.
 */
import zlib from 'node:zlib';
import { type Compression, jsonText, xmlText } from '../protocol/decode.js';
import { lowerKeys } from '../protocol/identity.js';
import { parseXmlDocument } from '../protocol/xml.js';
import { sanitizeJson } from '../protocol/message.js';

/** INFLATE_LIMIT's default; the gateway passes its own. */
const DEFAULT_LIMIT = 64 * 1024 * 1024;

/** The stored bytes decoded (they were capped on the way in; `limit` caps them again, as INFLATE_LIMIT). */
export function decodeStoredBody(body: Buffer, compression: string, limit = DEFAULT_LIMIT): Buffer {
  const opts = { maxOutputLength: limit };
  switch (compression as Compression) {
    case 'zlib':
      return zlib.inflateSync(body, opts);
    case 'gzip':
      return zlib.gunzipSync(body, opts);
    case 'deflate':
      return zlib.inflateRawSync(body, opts);
    default:
      return body;
  }
}

/** Content sections of a stored inventory body, lower-cased; tag copied to the root like the JSON protocol. */
export function viewFromBody(
  body: Buffer,
  compression: string,
  format: string,
  limit = DEFAULT_LIMIT,
): Record<string, unknown> {
  const decoded = decodeStoredBody(body, compression, limit);
  if (format === 'json') {
    const msg = JSON.parse(jsonText(decoded)) as { content?: Record<string, unknown> };
    sanitizeJson(msg);
    return msg.content ?? {};
  }
  const doc = parseXmlDocument(xmlText(decoded).text) as { REQUEST?: { CONTENT?: unknown } };
  const content = lowerKeys(doc.REQUEST?.CONTENT ?? {});
  return typeof content === 'object' && content !== null && !Array.isArray(content)
    ? (content as Record<string, unknown>)
    : {};
}

/** Where inventory views are built: parse-pool.ts (worker threads for large ones), or inlineViews. */
export interface InventoryViews {
  /** The view of a stored submission as JSON text, ready to store. */
  viewJson(body: Buffer, compression: string, format: string, opts?: { offThread?: boolean }): Promise<string>;
}

/** On the event loop: for callers without a parse pool (the pool's own small-body path does the same). */
export const inlineViews: InventoryViews = {
  viewJson: (body, compression, format) => Promise.resolve(JSON.stringify(viewFromBody(body, compression, format))),
};
