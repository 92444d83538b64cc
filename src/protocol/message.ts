/**
 * Turns a decoded agent body into a typed message: legacy XML (PROLOG, INVENTORY, NETDISCOVERY, SNMPQUERY)
 * or the GLPI JSON protocol (contact, inventory, get_params, …). It also redacts the secrets agents are
 * known to copy into their own messages (CONTACT httpd-plugins credentials, --password in perl_args), so
 * nothing downstream — store, log, forwarder — ever holds them. Pure: no I/O.
 */
import { AppError } from '../errors.js';
import { type Identity, identityFromSections, xmlSectionsToJsonShape } from './identity.js';
import { assertUniqueKeys } from './json-keys.js';
import { readXmlRequest, scalar } from './xml.js';
import { jsonText, sniffFormat, xmlText } from './decode.js';
import { type ContentSummary, summarize, xmlSummary } from './summary.js';

export type MessageKind =
  'prolog' | 'contact' | 'inventory' | 'getconfig' | 'get_params' | 'netdiscovery' | 'netinventory' | 'other';
export type WireFormat = 'xml' | 'json';

export interface AgentMessage {
  format: WireFormat;
  kind: MessageKind;
  /** The QUERY or action as sent, e.g. "PROLOG", "contact". */
  action: string;
  deviceid: string;
  partial: boolean;
  /** Set for inventories (full or partial). */
  identity: Identity | null;
  /** JSON protocol: the parsed message, secrets redacted. */
  json: Record<string, unknown> | null;
  /** Decoded text, secrets redacted; what is stored. */
  text: string;
  /** True when redaction changed the text, so the stored bytes must be re-encoded. */
  redacted: boolean;
  /** Lower-cased names of the content sections a JSON inventory carries ([] otherwise). */
  sections: string[];
  /**
   * A full inventory's summary for the device page, made from what this parse read (protocol/summary.ts);
   * null for other messages, and for an XML document only a full parse can summarise.
   */
  summary: ContentSummary | null;
  /**
   * Set when the body was parsed in a worker thread (a large one): `text` is then empty and `json` holds no
   * `content`, so nothing the size of the inventory crosses back to the event loop. What is needed of them
   * comes here instead, prepared in the worker.
   */
  offThread?: {
    /** The redacted text re-encoded for storage (set when `redacted`), compressed as `compression`. */
    reencoded: { body: Buffer; compression: 'zlib' | 'gzip' | 'none' } | null;
    /** `json.content` as JSON text, for a partial inventory to merge (else null). */
    contentJson: string | null;
  };
}

export const REDACTED = '[REDACTED]';
const MAX_DEVICEID = 255;
/**
 * Most content sections an inventory may have, and most a device's stored view may hold (services/agent-service
 * refuses a partial that grows it past this). GLPI's inventory format names 49; an agent sends ~30. Each
 * section becomes a row of the stored view: without the bound a 3 MB inventory of 300 000 tiny sections was
 * accepted and became 300 000 rows at the next partial (2.2 s of that partial's transaction).
 */
export const MAX_VIEW_SECTIONS = 200;
/**
 * Longest name of an inventory's content section. Section names become keys of the stored view (a btree
 * primary key, whose entries cannot exceed ~2.7 KB): a longer one could not be stored, so the device's view
 * could never be built, its page could not show the inventory held for review, and its partials would fail.
 * GLPI's inventory format names none longer than 18 characters.
 */
export const MAX_SECTION_NAME = 100;

/** An inventory's content sections (XML: as many times as they repeat) within the two bounds above. */
function assertSections(names: readonly string[], format: 'XML' | 'JSON'): void {
  for (const name of names)
    if (name.length > MAX_SECTION_NAME)
      throw new AppError(
        'bad_request',
        `Invalid ${format}: content section name longer than ${MAX_SECTION_NAME} characters`,
      );
  // XML list sections repeat (one <SOFTWARES> per package): they are one section of the view each.
  const count = format === 'XML' ? new Set(names).size : names.length;
  if (count > MAX_VIEW_SECTIONS)
    throw new AppError('payload_too_large', `Inventory with more than ${MAX_VIEW_SECTIONS} content sections`);
}

// Matching control characters is the point of these expressions.

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const NUL = /\u0000/g;

export function validDeviceid(raw: unknown): string {
  const v = scalar(raw)?.trim();
  if (!v) throw new AppError('bad_request', 'Missing deviceid');
  if (v.length > MAX_DEVICEID) throw new AppError('bad_request', `deviceid longer than ${MAX_DEVICEID} characters`);
  if (CONTROL_CHARS.test(v)) throw new AppError('bad_request', 'deviceid contains control characters');
  return v;
}

const XML_KINDS: Record<string, MessageKind> = {
  PROLOG: 'prolog',
  INVENTORY: 'inventory',
  NETDISCOVERY: 'netdiscovery',
  SNMPQUERY: 'netinventory',
};

/**
 * The agents' command line is copied into the inventory (versionprovider perl_args) when run with --debug,
 * --password included. A password may hold anything (spaces, quotes, backslashes, one character), so no
 * rule can tell where its value ends: a perl_args that names any credential option is blanked whole.
 */
const CREDENTIAL_OPTION =
  /(?:^|[^\w-])(?:--(?:password|oauth-client-secret|oauth-client-id|user|ssl-key-password|proxy|credentials?)(?=[=\s"'\\&\]<]|$)|-p(?=[=\s"'\\&\]<]|$))/;

/** True when one command line names a credential option (so it is to be blanked whole). */
export function namesCredential(args: string): boolean {
  return CREDENTIAL_OPTION.test(args);
}

/** Blanks one command line whole if it names a credential option. */
export function redactArgs(args: string): string {
  return namesCredential(args) ? REDACTED : args;
}

/** The end of the JSON string that starts at `open` (the index of its opening quote), or -1. */
function jsonStringEnd(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c)
      i++; // backslash: the next character is escaped
    else if (c === 0x22) return i;
  }
  return -1;
}

/**
 * Blanks, in the text, every `<PERL_ARGS>…</PERL_ARGS>` content (CDATA included) and every `"perl_args"`
 * JSON string value that names a credential option. The rest of the document is left byte for byte.
 */
export function redactPerlArgs(text: string): string {
  let out = text;
  for (let at = out.indexOf('<PERL_ARGS>'); at !== -1; at = out.indexOf('<PERL_ARGS>', at + 1)) {
    const from = at + '<PERL_ARGS>'.length;
    const close = out.indexOf('</PERL_ARGS>', from);
    const stop = close === -1 ? out.length : close;
    const field = out.slice(from, stop);
    if (field !== REDACTED && namesCredential(field)) out = out.slice(0, from) + REDACTED + out.slice(stop);
  }
  const value = /"perl_args"\s*:\s*"/g;
  let m: RegExpExecArray | null;
  while ((m = value.exec(out)) !== null) {
    const open = m.index + m[0].length - 1;
    const end = jsonStringEnd(out, open);
    if (end === -1) break;
    const field = out.slice(open + 1, end);
    if (field !== REDACTED && namesCredential(field)) {
      out = out.slice(0, open + 1) + REDACTED + out.slice(end);
      value.lastIndex = open + 1 + REDACTED.length + 1;
    }
  }
  return out;
}

/** Keys of a plugin's configuration that hold credentials, whatever their value. */
const SECRET_KEY = /token|pass|pwd|user|secret|key|credential|auth/i;

/**
 * CONTACT `httpd-plugins` lists every config key of each plugin: tokens, users, passwords. Each such key's
 * value (string, number, list or object: anything) is blanked whole.
 */
function redactHttpdPlugins(msg: Record<string, unknown>): boolean {
  const plugins = msg['httpd-plugins'];
  if (typeof plugins !== 'object' || plugins === null) return false;
  let changed = false;
  for (const conf of Object.values(plugins as Record<string, unknown>)) {
    if (typeof conf !== 'object' || conf === null) continue;
    for (const key of Object.keys(conf)) {
      if (SECRET_KEY.test(key) && (conf as Record<string, unknown>)[key] !== REDACTED) {
        (conf as Record<string, unknown>)[key] = REDACTED;
        changed = true;
      }
    }
  }
  return changed;
}

/** The parsed JSON must be as clean as the text: partial inventories are merged from it. True if it changed. */
function redactParsedPerlArgs(m: Record<string, unknown>): boolean {
  const content = m.content as { versionprovider?: { perl_args?: unknown } } | undefined;
  const vp = content?.versionprovider;
  if (!vp || typeof vp.perl_args !== 'string') return false;
  const cleaned = redactArgs(vp.perl_args);
  if (cleaned === vp.perl_args) return false;
  vp.perl_args = cleaned;
  return true;
}

/**
 * Blanks every occurrence of the credential the agent presented (a wrapper's command line in PROCESSES, a
 * debug dump…). Only secrets long enough not to hit ordinary words, and only where replacing them cannot
 * break the document's syntax.
 */
export function redactPresented(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 8 || /["\\<>&]/.test(secret)) continue;
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out;
}

export function parseXmlMessage(text: string, secrets: readonly string[] = []): AgentMessage {
  const cleanText = redactPerlArgs(redactPresented(text, secrets));
  const req = readXmlRequest(cleanText);
  if (req.root !== 'REQUEST')
    throw new AppError('bad_request', `Invalid XML: root element must be REQUEST, not ${req.root}`);
  // GLPI treats a missing QUERY as INVENTORY.
  const action = (req.query ?? 'INVENTORY').trim().toUpperCase();
  const kind = XML_KINDS[action] ?? 'other';
  let identity: Identity | null = null;
  let summary: ContentSummary | null = null;
  if (kind === 'inventory') {
    assertSections(req.sectionNames, 'XML');
    const { sections, tag } = xmlSectionsToJsonShape(req.identity);
    identity = identityFromSections(sections, tag);
    summary = xmlSummary(req.sectionNames, sections);
  }
  return {
    format: 'xml',
    kind,
    action,
    deviceid: validDeviceid(req.deviceid),
    partial: false,
    identity,
    json: null,
    text: cleanText,
    redacted: cleanText !== text,
    sections: [],
    summary,
  };
}

const JSON_KINDS: Record<string, MessageKind> = {
  contact: 'contact',
  inventory: 'inventory',
  netinventory: 'netinventory',
  netdiscovery: 'netdiscovery',
  get_params: 'get_params',
};

export const MAX_JSON_DEPTH = 64;

type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

function storableString(s: string): string {
  const clean = s.includes('\u0000') ? s.replace(NUL, '') : s;
  return (clean as WellFormed).isWellFormed() ? clean : (clean as WellFormed).toWellFormed();
}

/**
 * Makes parsed JSON safe to keep and to merge as jsonb, in place: refuses a "__proto__" key (however it
 * was escaped: this looks at the parsed keys) and nesting deeper than MAX_JSON_DEPTH; drops NUL characters
 * and replaces lone surrogates, which PostgreSQL's jsonb cannot hold. The raw bytes kept are untouched.
 */
export function sanitizeJson(value: unknown, depth = 0): void {
  if (typeof value !== 'object' || value === null) return;
  if (depth >= MAX_JSON_DEPTH) throw new AppError('bad_request', `Invalid JSON: nested deeper than ${MAX_JSON_DEPTH}`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v === 'string') value[i] = storableString(v);
      else sanitizeJson(v, depth + 1);
    }
    return;
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (key === '__proto__') throw new AppError('bad_request', 'Invalid JSON: forbidden key "__proto__"');
    const v = obj[key];
    const cleanKey = storableString(key);
    if (cleanKey !== key) {
      delete obj[key];
      obj[cleanKey] = v;
    }
    if (typeof v === 'string') obj[cleanKey] = storableString(v);
    else sanitizeJson(v, depth + 1);
  }
}

export function parseJsonMessage(original: string, secrets: readonly string[] = []): AgentMessage {
  // SECURITY: as for XML, the text is redacted first and that text is judged: what is stored and forwarded
  // is exactly what was read (perl_args used to be redacted in the text after the parse).
  const text = redactPerlArgs(redactPresented(original, secrets));
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    throw new AppError('bad_request', 'Invalid JSON', { cause: err });
  }
  assertUniqueKeys(text); // one reading: no two keys equal, nor equal once cleaned or lower-cased
  // The deviceid is judged as sent (a control character in it is refused, not quietly dropped).
  const rawDeviceid = typeof msg === 'object' && msg !== null ? (msg as { deviceid?: unknown }).deviceid : undefined;
  sanitizeJson(msg);
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg))
    throw new AppError('bad_request', 'Invalid JSON: an object is expected');
  const m = msg as Record<string, unknown>;
  if (typeof m.action !== 'string' || m.action === '')
    throw new AppError('bad_request', 'Invalid JSON: missing action');
  const action = m.action;
  const kind = JSON_KINDS[action.toLowerCase()] ?? 'other';
  let identity: Identity | null = null;
  if (kind === 'inventory') {
    if (typeof m.content !== 'object' || m.content === null || Array.isArray(m.content))
      throw new AppError('bad_request', 'Invalid JSON: inventory without content');
    assertSections(Object.keys(m.content), 'JSON');
    identity = identityFromSections(m.content as Record<string, unknown>, m.tag);
  }
  const pluginsRedacted = redactHttpdPlugins(m);
  // Redacted in the parsed message (a key written "perl\u005fargs" escapes the text's marker): the text kept
  // is then the judged message, serialized.
  const argsRedacted = redactParsedPerlArgs(m);
  const cleanText = pluginsRedacted || argsRedacted ? JSON.stringify(m) : text;
  return {
    format: 'json',
    kind,
    action,
    deviceid: validDeviceid(typeof rawDeviceid === 'string' ? rawDeviceid : undefined),
    partial: m.partial === true,
    identity,
    json: m,
    text: cleanText,
    redacted: cleanText !== original,
    sections: kind === 'inventory' ? Object.keys(m.content as object).map((k) => k.toLowerCase()) : [],
    summary: kind === 'inventory' && m.partial !== true ? summarize(m.content as Record<string, unknown>) : null,
  };
}

/** A decoded body (XML or JSON, told by its first byte) as a message. */
export function parseDecoded(decoded: Buffer, secrets: readonly string[] = []): AgentMessage {
  return parseText(decodedText(decoded), secrets);
}

/** The text of a decoded body and its format (told by its first byte). */
export function decodedText(decoded: Buffer): { format: WireFormat; text: string } {
  const format = sniffFormat(decoded);
  if (format === 'unknown') throw new AppError('bad_request', 'Unsupported content: expected an XML or JSON message');
  return { format, text: format === 'json' ? jsonText(decoded) : xmlText(decoded).text };
}

/**
 * parseDecoded in two steps, so that a caller holding a large body can let go of its bytes once they are
 * text (the parse worker does: a 60 MB body is then not held three times — bytes, text, tree — at once).
 */
export function parseText(t: { format: WireFormat; text: string }, secrets: readonly string[] = []): AgentMessage {
  return t.format === 'json' ? parseJsonMessage(t.text, secrets) : parseXmlMessage(t.text, secrets);
}
