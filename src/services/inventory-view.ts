/**
 * The inventory view: the device's content in the JSON protocol's shape (lower-case sections). Built from a
 * stored raw submission only when needed — a partial to merge, a reviewer looking — never on the ingest path.
 */
import zlib from 'node:zlib';
import { type Compression, jsonText, xmlText } from '../protocol/decode.js';
import { lowerKeys } from '../protocol/identity.js';
import { parseXmlDocument } from '../protocol/xml.js';
import { sanitizeJson } from '../protocol/message.js';

export function decodeStoredBody(body: Buffer, compression: string): Buffer {
  switch (compression as Compression) {
    case 'zlib':
      return zlib.inflateSync(body);
    case 'gzip':
      return zlib.gunzipSync(body);
    case 'deflate':
      return zlib.inflateRawSync(body);
    default:
      return body;
  }
}

/** Content sections of a stored inventory body, lower-cased; tag copied to the root like the JSON protocol. */
export function viewFromBody(body: Buffer, compression: string, format: string): Record<string, unknown> {
  const decoded = decodeStoredBody(body, compression);
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
