/**
 * Reading the agents' XML without paying for the heavy parts. A single linear scan checks that the tags
 * nest and close properly (so a broken document is refused, not stored) and records where each top-level
 * section of <CONTENT> lies; only the few small sections the gateway decides on are handed to
 * fast-xml-parser. DOCTYPE and ENTITY declarations are refused outright: no entity is ever expanded.
 */
import { XMLParser } from 'fast-xml-parser';
import { AppError } from '../errors.js';

export const MAX_XML_DEPTH = 64;

/** Sections an XML inventory may repeat; the parser must always give arrays for them. */
const LIST_SECTIONS = new Set([
  'ACCOUNTINFO',
  'ANTIVIRUS',
  'BATTERIES',
  'CONTROLLERS',
  'CPUS',
  'DATABASES_SERVICES',
  'DRIVES',
  'ENVS',
  'FIREWALL',
  'INPUTS',
  'LICENSEINFOS',
  'LOCAL_GROUPS',
  'LOCAL_USERS',
  'LOGICAL_VOLUMES',
  'MEMORIES',
  'MODEMS',
  'MONITORS',
  'NETWORKS',
  'PHYSICAL_VOLUMES',
  'PORTS',
  'POWERSUPPLIES',
  'PRINTERS',
  'PROCESSES',
  'REMOTE_MGMT',
  'RUDDER',
  'SENSORS',
  'SIMCARDS',
  'SLOTS',
  'SOFTWARES',
  'SOUNDS',
  'STORAGES',
  'USBDEVICES',
  'USERS',
  'VIDEOS',
  'VIRTUALMACHINES',
  'VOLUME_GROUPS',
  'CAMERAS',
  'POWERSUPPLY',
  'DEVICE',
  'COMPONENT',
  'PORT',
  'IP',
  'CONNECTION',
  'MAC',
  'VLAN',
]);

/** The small sections the gateway reads on the hot path. */
const IDENTITY_SECTIONS = new Set(['HARDWARE', 'BIOS', 'NETWORKS', 'ACCOUNTINFO', 'OPERATINGSYSTEM', 'VERSIONCLIENT']);

const parserOptions = {
  ignoreAttributes: true,
  parseTagValue: false, // serials such as "0012" must stay strings
  trimValues: true,
  processEntities: true,
  htmlEntities: true, // decodes numeric character references (&#233;) too
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name: string) => LIST_SECTIONS.has(name),
};
const parser = new XMLParser(parserOptions);

export interface XmlSpan {
  name: string;
  start: number;
  end: number;
}

export interface XmlScan {
  root: string;
  /** Direct children of the root, CONTENT excluded. */
  rootChildren: XmlSpan[];
  /** Direct children of <CONTENT>, in document order. */
  contentSections: XmlSpan[];
}

function badXml(message: string): AppError {
  return new AppError('bad_request', `Invalid XML: ${message}`);
}

/** Refuses what no agent sends and what would make a parser expand or fetch anything. */
export function assertNoDoctype(text: string): void {
  if (/<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST)/i.test(text))
    throw badXml('DOCTYPE and entity declarations are not accepted');
}

/**
 * One pass over the document: checks tag nesting and names, and records the direct children of the root and
 * of the root's <CONTENT>. Iterative, depth-capped, so hostile nesting cannot exhaust the stack.
 */
/** XML 1.0 allows no C0 control character but tab, LF and CR, neither raw nor as a character reference. */
const CONTROL_CHAR = /[\x00-\x08\x0B\x0C\x0E-\x1F]/;
const CONTROL_REF = /&#(?:[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F])|0*(?:[0-8]|1[124-9]|2[0-9]|3[01]));/;

export function scanXml(text: string): XmlScan {
  assertNoDoctype(text);
  if (CONTROL_CHAR.test(text) || (text.includes('&#') && CONTROL_REF.test(text)))
    throw badXml('control characters are not allowed');
  // Open elements as positions of their names (no string per tag: inventories have tens of thousands).
  const nameAt: number[] = [];
  const nameLen: number[] = [];
  const starts: number[] = [];
  const rootChildren: XmlSpan[] = [];
  const contentSections: XmlSpan[] = [];
  let root = '';
  let inContent = false;
  let i = text.indexOf('<');
  let outside = 0; // where the text outside the root element (only white space is allowed there) resumes
  while (i !== -1) {
    if (nameAt.length === 0 && text.slice(outside, i).trim() !== '') throw badXml('text outside the root element');
    const next = text.charCodeAt(i + 1);
    if (next === 0x3f /* ? */) {
      i = skipTo(text, '?>', i);
    } else if (next === 0x21 /* ! */) {
      if (text.startsWith('<!--', i)) i = skipTo(text, '-->', i);
      else if (text.startsWith('<![CDATA[', i)) i = skipTo(text, ']]>', i);
      else throw badXml('unexpected markup declaration');
    } else {
      const close = text.indexOf('>', i);
      if (close === -1) throw badXml('unterminated tag');
      const closing = next === 0x2f; /* / */
      const from = closing ? i + 2 : i + 1;
      const len = nameLength(text, from, close);
      if (len === 0) throw badXml('empty tag name');
      const depth = nameAt.length;
      if (closing) {
        if (depth === 0) throw badXml(`unexpected </${text.slice(from, from + len)}>`);
        const openAt = nameAt[depth - 1]!;
        if (nameLen[depth - 1] !== len || !sameChars(text, openAt, from, len)) {
          throw badXml(
            `</${text.slice(from, from + len)}> closes <${text.slice(openAt, openAt + nameLen[depth - 1]!)}>`,
          );
        }
        nameAt.pop();
        nameLen.pop();
        const start = starts.pop()!;
        if (depth <= 3) record(depth - 1, text.slice(from, from + len), start, close + 1);
      } else if (text.charCodeAt(close - 1) === 0x2f /* self-closing */) {
        if (depth === 0 && root) throw badXml('more than one root element');
        if (depth === 0) root = text.slice(from, from + len);
        else if (depth <= 2) record(depth, text.slice(from, from + len), i, close + 1);
      } else {
        if (depth === 0 && root) throw badXml('more than one root element');
        if (depth === 0) root = text.slice(from, from + len);
        if (depth >= MAX_XML_DEPTH) throw badXml(`nesting deeper than ${MAX_XML_DEPTH}`);
        if (depth === 1) inContent = len === 7 && text.startsWith('CONTENT', from);
        nameAt.push(from);
        nameLen.push(len);
        starts.push(i);
      }
      i = close + 1;
    }
    if (nameAt.length === 0) outside = i;
    i = text.indexOf('<', i);
  }
  if (nameAt.length > 0)
    throw badXml(
      `<${text.slice(nameAt[nameAt.length - 1]!, nameAt[nameAt.length - 1]! + nameLen[nameLen.length - 1]!)}> is not closed`,
    );
  if (!root) throw badXml('no root element');
  if (text.slice(outside).trim() !== '') throw badXml('text outside the root element');
  return { root, rootChildren, contentSections };

  /** depth = number of elements still open around this one once it is closed */
  function record(depth: number, name: string, start: number, end: number): void {
    if (depth === 1) rootChildren.push({ name, start, end });
    else if (depth === 2 && inContent) contentSections.push({ name, start, end });
  }
}

function sameChars(text: string, a: number, b: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (text.charCodeAt(a + k) !== text.charCodeAt(b + k)) return false;
  return true;
}

function nameLength(text: string, from: number, to: number): number {
  let end = from;
  while (end < to) {
    const c = text.charCodeAt(end);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x2f) break;
    end++;
  }
  return end - from;
}

function skipTo(text: string, terminator: string, from: number): number {
  const end = text.indexOf(terminator, from);
  if (end === -1)
    throw badXml(
      `unterminated ${terminator === '-->' ? 'comment' : terminator === ']]>' ? 'CDATA section' : 'processing instruction'}`,
    );
  return end + terminator.length;
}

export type XmlObject = Record<string, unknown>;

/** Parses a fragment made of complete elements into an object keyed by element name. */
function parseFragment(fragment: string): XmlObject {
  if (fragment === '') return {}; // a PROLOG has no identity sections: no parser to build
  const parsed = safeParse(`<X>${fragment}</X>`) as { X?: XmlObject | string };
  return typeof parsed.X === 'object' && parsed.X !== null ? parsed.X : {};
}

/** fast-xml-parser refuses names such as __proto__ with a plain Error: that is bad input, not a crash. */
function safeParse(text: string): unknown {
  try {
    return parser.parse(text);
  } catch (err) {
    // The parser's own words (internals) stay in the log; the agent gets a plain reason.
    throw new AppError('bad_request', 'Invalid XML: an element name is not allowed', { cause: err });
  }
}

export interface XmlRequest {
  root: string;
  query: string | undefined;
  deviceid: string | undefined;
  /** Identity sections of CONTENT only (HARDWARE, BIOS, NETWORKS, ACCOUNTINFO, OPERATINGSYSTEM, VERSIONCLIENT). */
  identity: XmlObject;
  hasContent: boolean;
}

/** What the gateway needs from an XML message, without parsing the heavy sections. */
export function readXmlRequest(text: string): XmlRequest {
  const scan = scanXml(text);
  const head = parseFragment(
    scan.rootChildren
      .filter((s) => s.name !== 'CONTENT')
      .map((s) => text.slice(s.start, s.end))
      .join(''),
  );
  const wanted = scan.contentSections.filter((s) => IDENTITY_SECTIONS.has(s.name));
  const identity = parseFragment(wanted.map((s) => text.slice(s.start, s.end)).join(''));
  return {
    root: scan.root,
    query: scalar(head.QUERY),
    deviceid: scalar(head.DEVICEID),
    identity,
    hasContent: scan.rootChildren.some((s) => s.name === 'CONTENT'),
  };
}

/** The whole document as an object (for the inventory view; never on the hot path). */
export function parseXmlDocument(text: string): XmlObject {
  scanXml(text);
  return safeParse(text) as XmlObject;
}

export function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return scalar(v[0]);
  return undefined;
}
