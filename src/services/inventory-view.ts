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
import type { InventorySummary } from '../store/read-store.js';

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

/** OS, hardware, software count… of an inventory view (the same fields read-store's pageInventory builds in SQL). */
export function summarize(view: Record<string, unknown>): InventorySummary {
  const first = (v: unknown) => (Array.isArray(v) ? v[0] : v) as Record<string, unknown> | undefined;
  const os = first(view.operatingsystem);
  const bios = first(view.bios);
  const hw = first(view.hardware);
  const count = (v: unknown) => (Array.isArray(v) ? v.length : v ? 1 : 0);
  return {
    os: os?.full_name ?? os?.name ?? null,
    manufacturer: bios?.smanufacturer ?? null,
    model: bios?.smodel ?? null,
    serial: bios?.ssn ?? null,
    uuid: hw?.uuid ?? null,
    memoryMb: hw?.memory ?? null,
    softwareCount: count(view.softwares),
    networkCount: count(view.networks),
    sections: Object.keys(view).sort(),
  };
}

/** Where inventory views are built: parse-pool.ts (worker threads for large ones), or inlineViews. */
export interface InventoryViews {
  /** The view of a stored submission as JSON text, ready to store. */
  viewJson(body: Buffer, compression: string, format: string): Promise<string>;
  /**
   * The summary of a stored submission's view, made where the view is built: a 60 MB inventory's view is
   * ~60 MB of JSON text, which the event loop would otherwise parse again (~300 ms, ~250 MB of heap).
   */
  summary(body: Buffer, compression: string, format: string): Promise<InventorySummary>;
}

/** On the event loop: for callers without a parse pool (the pool's own small-body path does the same). */
export const inlineViews: InventoryViews = {
  viewJson: (body, compression, format) => Promise.resolve(JSON.stringify(viewFromBody(body, compression, format))),
  summary: (body, compression, format) => Promise.resolve(summarize(viewFromBody(body, compression, format))),
};
