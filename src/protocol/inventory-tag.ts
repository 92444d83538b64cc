/**
 * The tag GLPI files an inventory under, replaced by the one the gateway decided (the tag of the registration
 * key or client the device is pinned to), in the agent's own format, on the decoded document. Pure and
 * synchronous (no I/O, no compression: the caller inflates and deflates off the event loop), so it can run
 * in a worker thread as it is.
 *
 * How GLPI reads the tag (glpi-project/inventory_format Converter::convertTo01, then Glpi\Inventory's
 * extractMetadata → Agent.tag → the entity rules' "TAG"):
 * - XML: from `CONTENT/ACCOUNTINFO` only when it is a lone element (SimpleXML turns several into a list,
 *   which has no `keyname`) whose KEYNAME is exactly `TAG` and whose KEYVALUE is not empty, and only when
 *   the message has no root-level `tag` (the gateway refuses any REQUEST child but CONTENT, DEVICEID,
 *   QUERY and TOKEN). Every ACCOUNTINFO is then dropped by the converter: nothing else in them reaches GLPI.
 * - JSON: the top-level `tag` (json_decode, case-sensitive property).
 *
 * SECURITY: the result must have exactly one reading, the gateway's tag, for every reader, and be otherwise
 * the same bytes. So the rewrite is a splice at positions a scan of the whole document found, then verified
 * by reading the result back with the gateway's own readers (the strict XML profile of xml-scan.ts, which
 * refuses whatever two parsers read differently; JSON.parse plus the one-reading key check of
 * json-keys.ts), and refused — never guessed — when anything is ambiguous:
 * - XML: one ACCOUNTINFO holding one KEYNAME `TAG` and one KEYVALUE → only the KEYVALUE element is
 *   rewritten. No ACCOUNTINFO → one is inserted as CONTENT's first child. Any other ACCOUNTINFO (another
 *   KEYNAME, extra children, several of them) → the first becomes the TAG entry and the others are removed,
 *   so exactly one TAG entry is left (GLPI would read no tag at all from two, and drops them anyway).
 * - JSON: a top-level member whose key reads `tag` has its value replaced (the key as written); none → a
 *   member is appended after the last one, in the document's own indentation. A top-level key that reads
 *   `tag` only once case-folded or cleaned (`Tag`, `ta\u0000g`) is refused: GLPI would keep both.
 * - Refused: a tag that cannot be written as plain text (empty, control characters, leading or trailing
 *   white space: GLPI keeps it, the gateway's XML reader trims it), a document outside those profiles,
 *   XML without one CONTENT, or a result whose reading is not exactly the tag.
 * Characters: UTF-8 documents get the tag in UTF-8 (a UTF-8 BOM is kept); an XML document that is not
 * valid UTF-8 (read as ISO-8859-1, as GLPI does) gets its non-ASCII characters as character references.
 */
import { isUtf8 } from 'node:buffer';
import { AppError } from '../errors.js';
import { xmlSectionsToJsonShape } from './identity.js';
import { assertUniqueKeys } from './json-keys.js';
import { readXmlRequest, scanXml } from './xml.js';

export type TagRewrite =
  /** `decoded` is the input itself when `changed` is false (the document already carries exactly that tag). */
  { ok: true; decoded: Buffer; changed: boolean } | { ok: false; reason: string };

export const MAX_TAG_LENGTH = 255;

// Matching control characters is the point of this expression.

const TAG_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\ufffe\uffff]/;

type WellFormed = string & { isWellFormed(): boolean };

/** Why a tag cannot be sent as GLPI reads it, or null when it can (also for `clients create --tag`). */
export function tagProblem(tag: string): string | null {
  if (tag === '') return 'the tag is empty';
  if (tag.length > MAX_TAG_LENGTH) return `the tag is longer than ${MAX_TAG_LENGTH} characters`;
  if (TAG_FORBIDDEN.test(tag) || !(tag as WellFormed).isWellFormed()) return 'the tag holds control characters';
  if (tag.trim() !== tag) return 'the tag starts or ends with white space';
  return null;
}

/** The document with `tag` as the one GLPI reads; refused (with why) rather than ambiguous. */
export function setInventoryTag(decoded: Buffer, format: 'xml' | 'json', tag: string): TagRewrite {
  const problem = tagProblem(tag);
  if (problem) return refused(problem);
  try {
    return format === 'xml' ? xmlWithTag(decoded, tag) : jsonWithTag(decoded, tag);
  } catch (err) {
    // The readers refuse with a bad_request AppError and a plain reason; anything else is a bug and stays one.
    if (err instanceof AppError && err.code === 'bad_request') return refused(err.publicMessage);
    throw err;
  }
}

function refused(reason: string): TagRewrite {
  return { ok: false, reason };
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function hasBom(b: Buffer): boolean {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;
}

/** Replaces [start, end) ranges (sorted, not overlapping) with texts. */
function splice(text: string, edits: { start: number; end: number; text: string }[]): string {
  let out = '';
  let at = 0;
  for (const e of edits) {
    out += text.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + text.slice(at);
}

// --- XML ---------------------------------------------------------------------------------------------

function xmlEscape(tag: string, asciiOnly: boolean): string {
  let out = '';
  for (const ch of tag) {
    if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (asciiOnly && ch.codePointAt(0)! > 0x7e) out += `&#x${ch.codePointAt(0)!.toString(16).toUpperCase()};`;
    else out += ch;
  }
  return out;
}

/** Text between an element's start tag and its end tag (the profile has no attributes: the first '>' ends it). */
function innerOf(text: string, s: { start: number; end: number }): string {
  const open = text.indexOf('>', s.start) + 1;
  if (text.charCodeAt(open - 2) === 0x2f /* <X/> */) return '';
  return text.slice(open, text.lastIndexOf('<', s.end - 1));
}

function xmlWithTag(decoded: Buffer, tag: string): TagRewrite {
  const utf8 = isUtf8(decoded);
  const bom = utf8 && hasBom(decoded);
  const text = (bom ? decoded.subarray(3) : decoded).toString(utf8 ? 'utf8' : 'latin1');
  const value = xmlEscape(tag, !utf8);
  const scan = scanXml(text);
  if (scan.root !== 'REQUEST') return refused(`the XML root is ${scan.root}, not REQUEST`);
  const contents = scan.rootChildren.filter((s) => s.name === 'CONTENT');
  if (contents.length !== 1) return refused(`the XML has ${contents.length} CONTENT elements, not one`);
  const content = contents[0]!;
  const infos = scan.contentSections.filter((s) => s.name === 'ACCOUNTINFO');
  const entry = `<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>${value}</KEYVALUE></ACCOUNTINFO>`;
  let edits: { start: number; end: number; text: string }[];
  const only = infos.length === 1 ? keyValueOf(text, infos[0]!) : null;
  if (only) {
    if (innerOf(text, only) === value) return { ok: true, decoded, changed: false };
    edits = [{ start: only.start, end: only.end, text: `<KEYVALUE>${value}</KEYVALUE>` }];
  } else if (infos.length > 0) {
    edits = infos.map((s, i) => ({ start: s.start, end: s.end, text: i === 0 ? entry : '' }));
  } else {
    const open = text.indexOf('>', content.start) + 1;
    if (text.charCodeAt(open - 2) === 0x2f) return refused('the XML CONTENT is empty');
    // In the document's own indentation: the white space that leads to CONTENT's first child.
    const first = scan.contentSections[0];
    const lead = first ? text.slice(open, first.start) : '';
    edits = [{ start: open, end: open, text: (/^\s*$/.test(lead) ? lead : '') + entry }];
  }
  const out = splice(text, edits);
  // Read back as the gateway reads every inventory: the profile, the REQUEST rules, the tag as GLPI sees it.
  const req = readXmlRequest(out);
  const read = xmlSectionsToJsonShape(req.identity).tag;
  if (req.root !== 'REQUEST' || read !== tag)
    return refused(`the rewritten XML reads tag ${JSON.stringify(read)}, not the one set`);
  const body = Buffer.from(out, utf8 ? 'utf8' : 'latin1');
  return { ok: true, decoded: bom ? Buffer.concat([BOM, body]) : body, changed: true };
}

/** The KEYVALUE span of an ACCOUNTINFO that is exactly one KEYNAME `TAG` and one KEYVALUE, else null. */
function keyValueOf(text: string, info: { start: number; end: number }): { start: number; end: number } | null {
  const fragment = text.slice(info.start, info.end);
  const children = scanXml(fragment).rootChildren;
  if (children.length !== 2) return null;
  const name = children.find((c) => c.name === 'KEYNAME');
  const value = children.find((c) => c.name === 'KEYVALUE');
  if (!name || !value || innerOf(fragment, name) !== 'TAG') return null;
  return { start: info.start + value.start, end: info.start + value.end };
}

// --- JSON --------------------------------------------------------------------------------------------

interface Member {
  keyStart: number;
  keyEnd: number;
  key: string;
  valueStart: number;
  valueEnd: number;
  /** Where the white space before the key starts (just after the '{' or ','). */
  leadStart: number;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

function skipSpace(text: string, from: number): number {
  let i = from;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Index just past the string whose opening quote is at `open`. */
function stringEnd(text: string, open: number): number {
  let end = text.indexOf('"', open + 1);
  for (;;) {
    if (end === -1) throw new JsonShapeError('unterminated string');
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
    if (slashes % 2 === 0) return end + 1;
    end = text.indexOf('"', end + 1);
  }
}

class JsonShapeError extends Error {}

/** Index just past the value starting at `at` (strings skipped whole, so brackets inside them do not count). */
function valueEnd(text: string, at: number): number {
  const c = text.charCodeAt(at);
  if (c === 0x22) return stringEnd(text, at);
  if (c !== 0x7b && c !== 0x5b) {
    let i = at;
    while (i < text.length) {
      const d = text.charCodeAt(i);
      if (d === 0x2c || d === 0x7d || d === 0x5d || isSpace(d)) break;
      i++;
    }
    if (i === at) throw new JsonShapeError('a value is missing');
    return i;
  }
  let depth = 0;
  for (let i = at; i < text.length; i++) {
    const d = text.charCodeAt(i);
    if (d === 0x22) i = stringEnd(text, i) - 1;
    else if (d === 0x7b || d === 0x5b) depth++;
    else if (d === 0x7d || d === 0x5d) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new JsonShapeError('unbalanced brackets');
}

/** The members of the top-level object, with their positions. */
function topLevelMembers(text: string): { members: Member[]; close: number } {
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== 0x7b) throw new JsonShapeError('the document is not an object');
  const members: Member[] = [];
  let leadStart = i + 1;
  i = skipSpace(text, i + 1);
  if (text.charCodeAt(i) === 0x7d) return { members, close: i };
  for (;;) {
    if (text.charCodeAt(i) !== 0x22) throw new JsonShapeError('a key is expected');
    const keyStart = i;
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(keyStart, keyEnd)) as string;
    i = skipSpace(text, keyEnd);
    if (text.charCodeAt(i) !== 0x3a) throw new JsonShapeError("':' is expected");
    const valueStart = skipSpace(text, i + 1);
    const end = valueEnd(text, valueStart);
    members.push({ keyStart, keyEnd, key, valueStart, valueEnd: end, leadStart });
    i = skipSpace(text, end);
    const c = text.charCodeAt(i);
    if (c === 0x7d) return { members, close: i };
    if (c !== 0x2c) throw new JsonShapeError("',' or '}' is expected");
    leadStart = i + 1;
    i = skipSpace(text, i + 1);
  }
}

/** A key as a case-folding, NUL-dropping reader sees it (json-keys.ts). */
function folded(key: string): string {
  return key.split('\u0000').join('').toLowerCase();
}

function jsonWithTag(decoded: Buffer, tag: string): TagRewrite {
  if (!isUtf8(decoded)) return refused('the JSON is not valid UTF-8');
  const bom = hasBom(decoded);
  const text = (bom ? decoded.subarray(3) : decoded).toString('utf8');
  let shape: { members: Member[]; close: number };
  try {
    shape = topLevelMembers(text);
  } catch (err) {
    if (err instanceof JsonShapeError || err instanceof SyntaxError) return refused(`Invalid JSON: ${err.message}`);
    throw err;
  }
  const { members } = shape;
  const named = members.filter((m) => folded(m.key) === 'tag');
  if (named.some((m) => m.key !== 'tag') || named.length > 1)
    return refused('the JSON has a top-level key that reads "tag" only once case-folded or cleaned, or two of them');
  const value = JSON.stringify(tag);
  let out: string;
  if (named.length === 1) {
    const m = named[0]!;
    if (text.slice(m.valueStart, m.valueEnd) === value) return { ok: true, decoded, changed: false };
    out = splice(text, [{ start: m.valueStart, end: m.valueEnd, text: value }]);
  } else {
    const last = members[members.length - 1];
    if (!last) return refused('the JSON object is empty');
    // In the document's own layout: the last member's leading white space and its "key": separator.
    const lead = text.slice(last.leadStart, last.keyStart);
    const colon = text.slice(last.keyEnd, last.valueStart);
    out = splice(text, [{ start: last.valueEnd, end: last.valueEnd, text: `,${lead}"tag"${colon}${value}` }]);
  }
  // Read back: valid JSON, one reading of every key, the tag set, no member lost or gained but that one.
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch (err) {
    return refused(`the rewritten JSON does not parse: ${(err as Error).message}`);
  }
  assertUniqueKeys(out);
  const obj = parsed as Record<string, unknown>;
  const expected = members.length + (named.length === 1 ? 0 : 1);
  if (typeof parsed !== 'object' || parsed === null || obj.tag !== tag || Object.keys(obj).length !== expected)
    return refused('the rewritten JSON does not read as the document with that tag');
  const body = Buffer.from(out, 'utf8');
  return { ok: true, decoded: bom ? Buffer.concat([BOM, body]) : body, changed: true };
}
