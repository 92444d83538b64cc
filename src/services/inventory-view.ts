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
import { summarize } from '../protocol/summary.js';

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

/** The stored body as text (the decoded bytes are not held past this call: the parse may collect them). */
function storedText(body: Buffer, compression: string, format: string, limit: number): string {
  const decoded = decodeStoredBody(body, compression, limit);
  return format === 'json' ? jsonText(decoded) : xmlText(decoded).text;
}

/** The content sections as the document has them (XML: upper-case names, not yet lower-cased). */
function rawContent(body: Buffer, compression: string, format: string, limit: number): Record<string, unknown> {
  const text = storedText(body, compression, format, limit);
  let content: unknown;
  if (format === 'json') {
    const msg = JSON.parse(text) as { content?: unknown };
    sanitizeJson(msg);
    content = msg.content;
  } else content = (parseXmlDocument(text) as { REQUEST?: { CONTENT?: unknown } }).REQUEST?.CONTENT;
  return typeof content === 'object' && content !== null && !Array.isArray(content)
    ? (content as Record<string, unknown>)
    : {};
}

/** Content sections of a stored inventory body, lower-cased; tag copied to the root like the JSON protocol. */
export function viewFromBody(
  body: Buffer,
  compression: string,
  format: string,
  limit = DEFAULT_LIMIT,
): Record<string, unknown> {
  const content = rawContent(body, compression, format, limit);
  return format === 'json' ? content : (lowerKeys(content) as Record<string, unknown>);
}

/** The sections summarize reads whole; every other section is only counted (or named). */
const SUMMARY_SECTIONS = new Set(['operatingsystem', 'bios', 'hardware']);

/**
 * summarize(viewFromBody(…)) without building the whole view: the top-level names are lower-cased (the
 * last of two that fold together wins, as in lowerKeys) and only the sections summarize reads are copied.
 * For a 60 MB XML inventory this spares a second tree as large as the document.
 */
export function summaryFromBody(
  body: Buffer,
  compression: string,
  format: string,
  limit = DEFAULT_LIMIT,
): InventorySummary {
  const content = rawContent(body, compression, format, limit);
  if (format === 'json') return summarize(content);
  const shallow: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(content)) {
    if (k === '__proto__') continue;
    const key = k.toLowerCase();
    shallow[key] = SUMMARY_SECTIONS.has(key) ? lowerKeys(v) : v;
  }
  return summarize(shallow);
}

export { summarize };

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
  summary: (body, compression, format) => Promise.resolve(summaryFromBody(body, compression, format)),
};
