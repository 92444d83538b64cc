/**
 * Reading the agents' XML without paying for the heavy parts. One linear scan (src/protocol/xml-scan.ts)
 * checks the document against the strict profile agents send and records where the root's children and
 * the sections of <CONTENT> lie; only the few small ones the gateway decides on are handed to
 * fast-xml-parser. No full parse on the hot path: a 270 KB inventory costs one scan and a 5 KB parse.
 *
 * SECURITY: what the gateway reads is what any reader of the same bytes reads (GLPI, fast-xml-parser's full
 * parse: test/unit/xml-differential.test.ts proves it on mutated real traffic). Elements at other depths
 * are read as a full parse reads them: a DEVICEID or QUERY inside CONTENT, a HARDWARE inside SOFTWARES,
 * are simply not the root's DEVICEID or CONTENT's HARDWARE, for the gateway as for GLPI. What a first-wins
 * and a last-wins reader would read differently is refused instead (checkRequest, assertOneReading):
 * - a second DEVICEID, QUERY, CONTENT or TOKEN, a second HARDWARE, BIOS, OPERATINGSYSTEM, VERSIONCLIENT or
 *   ACCOUNTINFO, or a repeated element inside an identity section (only list sections repeat);
 * - any other child of REQUEST: GLPI's converter lifts root children into the message itself, where a TAG,
 *   ACTION, ITEMTYPE or PARTIAL would override what the gateway derived from ACCOUNTINFO and QUERY;
 * - DEVICEID or QUERY holding elements (the gateway would read nothing where GLPI reads their text);
 * - identity sections, or names inside them, not in upper case (GLPI lower-cases every name, so <hardware>
 *   beside <HARDWARE>, or <name> beside <NAME>, would collide there and not here);
 * - two sections of CONTENT whose names differ only in case (<softwares> beside <SOFTWARES>): GLPI and the
 *   inventory view read them as one, and which one wins is theirs to decide, not something to guess;
 * - a MAC element in NETWORKS (GLPI prefers it to the MACADDR the gateway reads).
 * The root itself is reported as found; parseXmlMessage refuses any root but REQUEST.
 */
import { XMLParser } from 'fast-xml-parser';
import { AppError } from '../errors.js';
import { type XmlScan, type XmlSpan, badXml, scanXml } from './xml-scan.js';

export { MAX_XML_DEPTH, assertNoDoctype, scanXml, type XmlScan, type XmlSpan } from './xml-scan.js';

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
const IDENTITY_LENGTHS = new Set([...IDENTITY_SECTIONS].map((name) => name.length));
/** Identity sections an agent sends once (GLPI reads a tag only from a lone ACCOUNTINFO). */
const SINGLE_SECTIONS = new Set(['HARDWARE', 'BIOS', 'ACCOUNTINFO', 'OPERATINGSYSTEM', 'VERSIONCLIENT']);
/** What agents put under REQUEST (PROLOG: DEVICEID, QUERY, TOKEN; the others: CONTENT, DEVICEID, QUERY). */
const ROOT_CHILDREN = new Set(['CONTENT', 'DEVICEID', 'QUERY', 'TOKEN']);

const parserOptions = {
  ignoreAttributes: true,
  parseTagValue: false, // serials such as "0012" must stay strings
  trimValues: true,
  processEntities: true,
  htmlEntities: true, // decodes numeric character references (&#233;); named HTML entities never get here
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name: string) => LIST_SECTIONS.has(name),
};
const parser = new XMLParser(parserOptions);

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
  /** Names of CONTENT's children, in document order, repeated as they repeat. */
  sectionNames: string[];
  hasContent: boolean;
}

/** The REQUEST rules of the module header, on the spans alone (before anything is parsed). */
function checkRequest(text: string, scan: XmlScan): void {
  const seen = new Set<string>();
  for (const s of scan.rootChildren) {
    if (!ROOT_CHILDREN.has(s.name)) throw badXml(`<${s.name}> is not expected in <REQUEST>`);
    if (seen.has(s.name)) throw badXml(`more than one <${s.name}>`);
    seen.add(s.name);
    if ((s.name === 'DEVICEID' || s.name === 'QUERY') && holdsElements(text, s))
      throw badXml(`<${s.name}> must hold text only`);
  }
  const sections = new Set<string>();
  // Section names as the view and GLPI read them (lower-cased) -> as written: two spellings of one name are
  // one section there and two here. Sections come in runs of one name, so a run is looked at once.
  const folded = new Map<string, string>();
  let previous = '';
  for (const s of scan.contentSections) {
    if (s.name !== previous) {
      previous = s.name;
      const key = s.name.toLowerCase();
      const other = folded.get(key);
      if (other === undefined) folded.set(key, s.name);
      else if (other !== s.name)
        throw badXml(`<${s.name}> beside <${other}> in <CONTENT>: names that differ only in case`);
    }
    if (!IDENTITY_SECTIONS.has(s.name)) {
      // A section may number 200 000 entries: upper-case only names as long as an identity section's.
      if (!IDENTITY_LENGTHS.has(s.name.length)) continue;
      const upper = s.name.toUpperCase();
      if (IDENTITY_SECTIONS.has(upper)) throw badXml(`<${s.name}> must be written <${upper}>`);
      continue;
    }
    if (!SINGLE_SECTIONS.has(s.name)) continue;
    if (sections.has(s.name)) throw badXml(`more than one <${s.name}> in <CONTENT>`);
    sections.add(s.name);
  }
}

/** Comments, CDATA and PIs are refused, so any '<' between the span's own tags opens a child element. */
function holdsElements(text: string, s: XmlSpan): boolean {
  const inner = text.indexOf('>', s.start) + 1;
  if (inner >= s.end) return false; // <DEVICEID/>
  return text.indexOf('<', inner) < text.lastIndexOf('<', s.end - 1);
}

/**
 * Inside the parsed identity sections: arrays only where a list section repeats (a repeated leaf is read
 * as its first value by some readers, its last by others, nothing by the gateway), upper-case names only.
 */
function assertOneReading(v: unknown): void {
  if (Array.isArray(v)) {
    for (const item of v) assertOneReading(item);
    return;
  }
  if (typeof v !== 'object' || v === null) return;
  for (const [key, value] of Object.entries(v as XmlObject)) {
    if (key.toUpperCase() !== key) throw badXml(`<${key}> must be written <${key.toUpperCase()}>`);
    if (Array.isArray(value) && !LIST_SECTIONS.has(key)) throw badXml(`more than one <${key}>`);
    assertOneReading(value);
  }
}

/**
 * XML agents give a NETWORKS entry's address as MACADDR; GLPI's converter prefers a MAC element when both
 * are present, where the gateway reads MACADDR (MACs decide conflicts and allowlists): refused.
 */
function assertMacaddrOnly(identity: XmlObject): void {
  const networks = Array.isArray(identity.NETWORKS) ? (identity.NETWORKS as unknown[]) : [];
  for (const n of networks) {
    if (typeof n === 'object' && n !== null && 'MAC' in n)
      throw badXml('<MAC> in <NETWORKS>: the address is <MACADDR>');
  }
}

/** What the gateway needs from an XML message, without parsing the heavy sections. */
export function readXmlRequest(text: string): XmlRequest {
  const scan = scanXml(text);
  if (scan.root === 'REQUEST') checkRequest(text, scan);
  const head = parseFragment(
    scan.rootChildren
      .filter((s) => s.name !== 'CONTENT')
      .map((s) => text.slice(s.start, s.end))
      .join(''),
  );
  const wanted = scan.contentSections.filter((s) => IDENTITY_SECTIONS.has(s.name));
  const identity = parseFragment(wanted.map((s) => text.slice(s.start, s.end)).join(''));
  if (scan.root === 'REQUEST') {
    assertOneReading(identity);
    assertMacaddrOnly(identity);
  }
  return {
    root: scan.root,
    query: scalar(head.QUERY),
    deviceid: scalar(head.DEVICEID),
    identity,
    sectionNames: scan.contentSections.map((s) => s.name),
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
