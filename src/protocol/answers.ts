/**
 * Answers in the agent's own protocol and encoding. FusionInventory recognises a zlib answer only by the
 * default-level header 78 9C, and the GLPI Agent only by exactly `application/x-compress-zlib` (no
 * parameters), so compressed answers use zlib's defaults and that exact Content-Type — nothing else.
 */
import zlib from 'node:zlib';
import type { Compression } from './decode.js';
import type { WireFormat } from './message.js';

export interface EncodedAnswer {
  body: Buffer;
  contentType: string;
}

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** Tasks the gateway does not serve; listing them in CONTACT answers stops the agents' getConfig GETs. */
export const DISABLED_TASKS = [
  'collect',
  'deploy',
  'esx',
  'netdiscovery',
  'netinventory',
  'remoteinventory',
  'wakeonlan',
];

/** `tasks.inventory.version` must be non-empty or the GLPI Agent falls back to an extra PROLOG. */
export const INVENTORY_TASK_VERSION = '1.0';

/** Escapes element text (quotes need no escaping outside attributes). */
function escapeXml(s: string): string {
  return s.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!);
}

/** PROLOG answer. Without SEND the agents skip their inventory (the polite way to say "not now"). */
export function xmlProlog(prologFreqHours: number, send: boolean): string {
  return `${XML_DECLARATION}<REPLY><PROLOG_FREQ>${prologFreqHours}</PROLOG_FREQ>${send ? '<RESPONSE>SEND</RESPONSE>' : ''}</REPLY>\n`;
}

export function xmlAck(): string {
  return `${XML_DECLARATION}<REPLY><RESPONSE>SEND</RESPONSE></REPLY>\n`;
}

export function xmlError(message: string): string {
  return `${XML_DECLARATION}<REPLY><ERROR>${escapeXml(message)}</ERROR></REPLY>\n`;
}

export function jsonOk(expirationHours: number): string {
  return JSON.stringify({ status: 'ok', expiration: expirationHours });
}

/**
 * CONTACT answer. To say "not this run", inventory is listed in `disabled`, with a later `expiration`.
 * The GLPI Agent sends an extra legacy PROLOG unless a task it still plans has a `tasks` entry
 * (lib/GLPI/Agent.pm runTarget keeps entries of planned tasks only): inventory when it runs, else
 * remoteinventory, which the agent never drops (seen with GLPI Agent 1.12: no extra PROLOG then).
 */
export function jsonContact(expiration: number | string, opts: { inventory: boolean; message?: string }): string {
  const disabled = opts.inventory ? DISABLED_TASKS : ['inventory', ...DISABLED_TASKS];
  return JSON.stringify({
    status: 'ok',
    expiration,
    tasks: opts.inventory
      ? { inventory: { server: 'glpi', version: INVENTORY_TASK_VERSION } }
      : {
          inventory: { server: 'glpi', version: INVENTORY_TASK_VERSION },
          remoteinventory: { server: 'glpi', version: INVENTORY_TASK_VERSION },
        },
    disabled,
    ...(opts.message ? { message: opts.message } : {}),
  });
}

export function jsonError(message: string, expirationHours: number): string {
  return JSON.stringify({ status: 'error', message, expiration: expirationHours });
}

/** The quiet getConfig answer: "no job", so the agent logs nothing. */
export function getConfigAnswer(): string {
  return JSON.stringify({ configValidityPeriod: 600, schedule: [] });
}

export function errorBody(format: WireFormat, message: string, expirationHours: number): string {
  return format === 'json' ? jsonError(message, expirationHours) : xmlError(message);
}

const encoded = new Map<string, EncodedAnswer>();

/**
 * Encodes an answer like the request: zlib (default level) or gzip, else plain with its media type. Answers
 * are a handful of small fixed texts, so their encodings are kept (no deflate per 401 or PROLOG).
 */
export function encodeAnswer(text: string, format: WireFormat, compression: Compression): EncodedAnswer {
  if (text.length > 1024) return encodeNow(text, format, compression);
  const key = `${format}|${compression}|${text}`;
  let hit = encoded.get(key);
  if (!hit) {
    if (encoded.size >= 512) encoded.clear();
    hit = encodeNow(text, format, compression);
    encoded.set(key, hit);
  }
  return hit;
}

function encodeNow(text: string, format: WireFormat, compression: Compression): EncodedAnswer {
  const raw = Buffer.from(text, 'utf8');
  if (compression === 'zlib' || compression === 'deflate')
    return { body: zlib.deflateSync(raw), contentType: 'application/x-compress-zlib' };
  if (compression === 'gzip') return { body: zlib.gzipSync(raw), contentType: 'application/x-compress-gzip' };
  return { body: raw, contentType: format === 'json' ? 'application/json' : 'application/xml' };
}
