/**
 * The reference reading of an XML message: fast-xml-parser's validator and full parse of the whole document
 * (the "conforming parser"), with the same value options as the gateway, and nothing of the gateway's own
 * scanner. What the gateway accepts must read the same here.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AppError } from '../../../src/errors.js';
import { readXmlRequest, scalar } from '../../../src/protocol/xml.js';

/** Same as src/protocol/xml.ts (lists as arrays, values as strings), but whole-document. */
const LIST_SECTIONS = new Set(
  'ACCOUNTINFO ANTIVIRUS BATTERIES CONTROLLERS CPUS DATABASES_SERVICES DRIVES ENVS FIREWALL INPUTS LICENSEINFOS LOCAL_GROUPS LOCAL_USERS LOGICAL_VOLUMES MEMORIES MODEMS MONITORS NETWORKS PHYSICAL_VOLUMES PORTS POWERSUPPLIES PRINTERS PROCESSES REMOTE_MGMT RUDDER SENSORS SIMCARDS SLOTS SOFTWARES SOUNDS STORAGES USBDEVICES USERS VIDEOS VIRTUALMACHINES VOLUME_GROUPS CAMERAS POWERSUPPLY DEVICE COMPONENT PORT IP CONNECTION MAC VLAN'.split(
    ' ',
  ),
);
const IDENTITY_SECTIONS = ['HARDWARE', 'BIOS', 'NETWORKS', 'ACCOUNTINFO', 'OPERATINGSYSTEM', 'VERSIONCLIENT'];

const full = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name: string) => LIST_SECTIONS.has(name),
});

export interface XmlReading {
  root: string;
  query: string | undefined;
  deviceid: string | undefined;
  identity: Record<string, unknown>;
  hasContent: boolean;
}

export type Reference = { ok: true; reading: XmlReading } | { ok: false; why: string };

/** What a full conforming parse of the bytes says; `ok: false` when it cannot give one reading. */
export function referenceXml(text: string): Reference {
  const valid = XMLValidator.validate(text);
  if (valid !== true) return { ok: false, why: `validator: ${valid.err.msg}` };
  let doc: Record<string, unknown>;
  try {
    doc = full.parse(text) as Record<string, unknown>;
  } catch (err) {
    return { ok: false, why: `parser: ${(err as Error).message}` };
  }
  const roots = Object.keys(doc);
  if (roots.length !== 1 || roots[0] === '#text') return { ok: false, why: `top level: ${roots.join(',')}` };
  const root = roots[0]!;
  const body = doc[root];
  const req = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  if (Array.isArray(req.CONTENT)) return { ok: false, why: 'more than one CONTENT' };
  const content =
    typeof req.CONTENT === 'object' && req.CONTENT !== null ? (req.CONTENT as Record<string, unknown>) : {};
  const identity: Record<string, unknown> = {};
  for (const name of IDENTITY_SECTIONS) if (name in content) identity[name] = content[name];
  return {
    ok: true,
    reading: {
      root,
      query: scalar(req.QUERY),
      deviceid: scalar(req.DEVICEID),
      identity,
      hasContent: 'CONTENT' in req,
    },
  };
}

export type Gateway = { accepted: true; reading: XmlReading } | { accepted: false; message: string };

/** The gateway's hot-path reading; a refusal must be the bad-input AppError (a 400), nothing else. */
export function gatewayXml(text: string): Gateway {
  try {
    const r = readXmlRequest(text);
    return {
      accepted: true,
      reading: { root: r.root, query: r.query, deviceid: r.deviceid, identity: r.identity, hasContent: r.hasContent },
    };
  } catch (err) {
    if (err instanceof AppError && err.code === 'bad_request' && err.status === 400)
      return { accepted: false, message: err.publicMessage };
    throw err;
  }
}
