/**
 * Who a device says it is, from the identity sections of an XML or JSON inventory. Junk values that
 * vendors ship (GLPI's blacklist: "To Be Filled By O.E.M.", all-F UUIDs, 00:00:00:00:00:00 …) are dropped,
 * so they can never make two machines look like one. Pure functions, no I/O.
 */

export interface Identity {
  name: string | null;
  uuid: string | null;
  serial: string | null;
  msn: string | null;
  assetTag: string | null;
  manufacturer: string | null;
  model: string | null;
  macs: string[];
  /** MACs of interfaces not marked virtual: the ones identity continuity compares. */
  physicalMacs: string[];
  ips: string[];
  os: string | null;
  tag: string | null;
  agentVersion: string | null;
}

type Obj = Record<string, unknown>;

const JUNK_SERIALS = new Set([
  '',
  'n/a',
  'na',
  'none',
  'empty',
  'invalid',
  'not specified',
  'not available',
  'to be filled by o.e.m.',
  'system serial number',
  'systemserialnumb',
  'oem_serial',
  'unknow',
  'unknown',
  'eval',
  'iatpass',
  '(null string)',
  'tulip computers',
  'serial number xxxxxx',
  'xxxxxxxxxxx',
  'nnnnnnn',
  '0123456789',
  '123456789000',
  '12345678901234567',
  'sys-1234567890',
  'sys-9876543210',
  'sn-12345',
  'sn-1234567890',
  'mb-1234567890',
  'default string',
  'chassis serial number',
]);
const JUNK_UUIDS = new Set([
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '03000200-0400-0500-0006-000700080009',
  '6ab5b300-538d-1014-9fb5-b0684d007b53',
  '01010101-0101-0101-0101-010101010101',
  '00000000-0000-0000-0000-000000000000',
  '2',
]);
const JUNK_MACS = new Set([
  '00:00:00:00:00:00',
  'fe:ff:ff:ff:ff:ff',
  '0a:00:27:00:00:00',
  '02:00:4e:43:50:49',
  '20:41:53:59:4e:ff',
  '33:50:6f:45:30:30',
  '50:50:54:50:30:30',
  '24:b6:20:52:41:53',
  '00:a0:c6:00:00:00',
  '02:80:37:ec:02:00',
  '00:0b:ca:fe:00:00',
  'ff:ff:ff:ff:ff:ff',
]);
const JUNK_MODELS = new Set([
  'system product name',
  'product name',
  'system name',
  'all series',
  'to be filled by o.e.m.',
  '*',
  'default string',
]);
const JUNK_VENDORS = new Set(['system manufacturer', 'to be filled by o.e.m.', 'default string']);
/** At most this many MACs and IPs are kept per device (a switch may list thousands). */
const MAX_LIST = 64;
const JUNK_IPS = new Set(['127.0.0.1', '::1', '0.0.0.0', '']);

export function isJunkSerial(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (JUNK_SERIALS.has(v)) return true;
  if (/^[01]+$/.test(v)) return true; // all zeros, all ones, or only 0/1 digits
  if (/^12345(6(7(8(90?)?)?)?)?$/.test(v)) return true; // 12345 … 1234567890
  if (/^\d\.\d/.test(v)) return true; // version-like strings put in the serial field
  return false;
}

export function isJunkUuid(raw: string): boolean {
  return JUNK_UUIDS.has(raw.trim().toLowerCase());
}

export function normalizeMac(raw: string): string | null {
  const hex = raw
    .trim()
    .toLowerCase()
    .replace(/[^0-9a-f]/g, '');
  if (hex.length !== 12) return null;
  const mac = hex.match(/../g)!.join(':');
  if (JUNK_MACS.has(mac) || mac.startsWith('00:50:56:c0:')) return null; // VMware host-only adapters
  return mac;
}

// Matching control characters is the point of this expression.

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/g;

function str(v: unknown, max = 255): string | null {
  if (typeof v === 'number' || typeof v === 'boolean') v = String(v);
  if (typeof v !== 'string') return null;
  // Control characters never belong in an identity field; cap lengths so a hostile value stays bounded.
  const s = v.replace(CONTROL_CHARS, '').trim();
  return s === '' ? null : s.slice(0, max);
}

function clean(v: unknown, junk: (s: string) => boolean): string | null {
  const s = str(v);
  return s === null || junk(s) ? null : s;
}

function obj(v: unknown): Obj {
  if (Array.isArray(v)) v = v[0];
  return typeof v === 'object' && v !== null ? (v as Obj) : {};
}

function list(v: unknown): Obj[] {
  const arr = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return arr.filter((x): x is Obj => typeof x === 'object' && x !== null);
}

function truthy(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 'true';
}

/** Identity from sections keyed as in the JSON protocol (lower-case; `mac`, root `tag`). */
export function identityFromSections(s: Obj, tag: unknown): Identity {
  const hw = obj(s.hardware);
  const bios = obj(s.bios);
  const osec = obj(s.operatingsystem);
  const networks = list(s.networks);
  const physical = networks.filter((n) => !truthy(n.virtualdev));
  const virtual = networks.filter((n) => truthy(n.virtualdev));
  const macs = unique(
    [...physical, ...virtual].map((n) => (typeof n.mac === 'string' ? normalizeMac(n.mac) : null)),
  ).slice(0, MAX_LIST);
  const ips = unique(
    networks.flatMap((n) =>
      [n.ipaddress, n.ipaddress6].map((ip) => {
        const v = str(ip, 64);
        return v && !JUNK_IPS.has(v) && /^[0-9a-fA-F:.]+$/.test(v) ? v : null;
      }),
    ),
  );
  ips.splice(MAX_LIST);
  const ssn = clean(bios.ssn, isJunkSerial);
  const msn = clean(bios.msn, isJunkSerial);
  const osName = str(osec.full_name) ?? ([str(osec.name), str(osec.version)].filter(Boolean).join(' ') || null);
  return {
    name: str(hw.name) ?? str(osec.fqdn),
    uuid: clean(hw.uuid, isJunkUuid)?.toLowerCase() ?? null,
    serial: ssn ?? msn,
    msn,
    assetTag: clean(bios.assettag, isJunkSerial),
    manufacturer: clean(bios.smanufacturer ?? bios.mmanufacturer, (v) => JUNK_VENDORS.has(v.toLowerCase())),
    model: clean(bios.smodel ?? bios.mmodel, (v) => JUNK_MODELS.has(v.toLowerCase())),
    macs,
    physicalMacs: unique(physical.map((n) => (typeof n.mac === 'string' ? normalizeMac(n.mac) : null))).slice(
      0,
      MAX_LIST,
    ),
    ips,
    os: osName,
    tag: str(tag),
    agentVersion: str(s.versionclient),
  };
}

function unique(values: (string | null)[]): string[] {
  return [...new Set(values.filter((v): v is string => v !== null))];
}

/**
 * XML sections (upper-case, MACADDR, ACCOUNTINFO TAG) in the JSON protocol's shape. The tag is read as GLPI's
 * converter reads it (inventory_format Converter::convertTo01): from a lone ACCOUNTINFO whose KEYNAME is
 * exactly TAG — so the gateway never files a device under a tag GLPI does not see.
 */
export function xmlSectionsToJsonShape(x: Obj): { sections: Obj; tag: string | null } {
  const sections: Obj = {};
  for (const [key, value] of Object.entries(x)) {
    if (key !== '__proto__') sections[key.toLowerCase()] = lowerKeys(value);
  }
  for (const n of list(sections.networks)) {
    if ('macaddr' in n) n.mac = n.macaddr;
  }
  const accountinfo = list(sections.accountinfo);
  const tagEntry = accountinfo.length === 1 && str(accountinfo[0]!.keyname) === 'TAG' ? accountinfo[0] : undefined;
  return { sections, tag: tagEntry ? str(tagEntry.keyvalue) : null };
}

/** Lower-cases object keys recursively (XML element names → JSON-style keys). */
export function lowerKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(lowerKeys);
  if (typeof v !== 'object' || v === null) return v;
  const out: Obj = {};
  for (const [k, val] of Object.entries(v as Obj)) {
    if (k !== '__proto__') out[k.toLowerCase()] = lowerKeys(val); // never let data set a prototype
  }
  return out;
}
