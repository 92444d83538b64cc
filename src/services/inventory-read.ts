/**
 * The inventory a reviewer reads before deciding: the device's current inventory (its latest full one with
 * the partials merged since — for a quarantined device the one it holds) as named sections, and what
 * changed between its latest full inventory and the one before it (for a device in conflict: the approved
 * reference against the one that arrived).
 *
 * Parsing is bounded: a stored inventory larger than INVENTORY_VIEW_LIMIT once decoded is refused with 413
 * rather than parsed. Parsing goes through viewFromBody (inventory-view.ts), awaited, so it may run in a
 * worker pool. A view built here is kept for the next reader, never over one a partial merge built.
 */
import { AppError } from '../errors.js';
import { identityFromSections } from '../protocol/identity.js';
import type { Sql } from '../store/db.js';
import {
  type StoredInventory,
  inventorySource,
  keepBuiltView,
  latestFullInventories,
  storedView,
  submissionBody,
  submissionFacts,
} from '../store/inventory-read-store.js';
import { type InventoryViews, inlineViews } from './inventory-view.js';

type Obj = Record<string, unknown>;
type Scalar = string | number | boolean | null;
/** One entry of a section: its fields, flat (a nested value is shown as JSON text). */
export type Item = Record<string, Scalar>;

export interface Section {
  /** the section's key in the JSON protocol (lower-case XML element names): hardware, softwares, … */
  key: string;
  title: string;
  /** entries in the inventory (items may hold fewer: see truncated) */
  count: number;
  items: Item[];
  truncated: boolean;
}

/** The sections a reviewer reads first, in this order; every other section follows, by key. */
export const KNOWN_SECTIONS: readonly (readonly [string, string])[] = [
  ['hardware', 'Hardware'],
  ['bios', 'BIOS'],
  ['operatingsystem', 'Operating system'],
  ['cpus', 'CPUs'],
  ['memories', 'Memory'],
  ['storages', 'Storage'],
  ['drives', 'Volumes'],
  ['networks', 'Network interfaces'],
  ['softwares', 'Software'],
  ['users', 'Users'],
  ['antivirus', 'Antivirus'],
];

/** Most entries returned per section (a router's inventory can list tens of thousands of ports). */
export const SECTION_ITEMS_MAX = 10_000;
/** Longest text kept per field. */
const FIELD_MAX = 2000;

export interface InventoryReadDeps {
  sql: Sql;
  /** INVENTORY_VIEW_LIMIT: the largest decoded inventory parsed for reading, in bytes. */
  viewLimit: number;
  /** Builds views (in a parse worker for large ones); default: on the event loop. */
  views?: InventoryViews;
}

function asList(v: unknown): Obj[] {
  const arr = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return arr.filter((x): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x));
}

function flat(o: Obj): Item {
  const out: Item = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === '__proto__') continue;
    if (v === null || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string') out[k] = v.slice(0, FIELD_MAX);
    else if (v !== undefined) out[k] = JSON.stringify(v).slice(0, FIELD_MAX);
  }
  return out;
}

/** XML and JSON inventories read alike: the XML's network MACADDR is the JSON's mac. */
function normalized(view: Obj): Obj {
  for (const n of asList(view.networks)) if (n.mac === undefined && n.macaddr !== undefined) n.mac = n.macaddr;
  return view;
}

function software(o: Obj): Item {
  const s = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v).slice(0, FIELD_MAX) : null);
  return { name: s(o.name), version: s(o.version), publisher: s(o.publisher) };
}

/** A view as the reviewer's sections: the known ones first, then the rest as they come (by key). */
export function sectionsOf(view: Obj): Section[] {
  const known = new Map(KNOWN_SECTIONS);
  const keys = [
    ...KNOWN_SECTIONS.map(([k]) => k).filter((k) => view[k] !== undefined),
    ...Object.keys(view)
      .filter((k) => !known.has(k) && k !== '__proto__')
      .sort(),
  ];
  return keys.map((key) => {
    const raw = view[key];
    const entries = asList(raw);
    // A scalar section (versionclient: "GLPI-Agent_v1.12") is one entry with one field.
    const list = entries.length === 0 && raw !== null && typeof raw !== 'object' ? [{ value: raw }] : entries;
    const items = list.slice(0, SECTION_ITEMS_MAX).map((o) => (key === 'softwares' ? software(o) : flat(o)));
    if (key === 'softwares')
      items.sort((a, b) => String(a.name ?? '').localeCompare(String(b.name ?? ''), 'en', { sensitivity: 'base' }));
    return {
      key,
      title: known.get(key) ?? key,
      count: list.length,
      items,
      truncated: list.length > SECTION_ITEMS_MAX,
    };
  });
}

// ---- what changed ---------------------------------------------------------------------------------------

export interface FieldChange {
  field: string;
  before: Scalar;
  after: Scalar;
}

export interface ListChange {
  added: Item[];
  removed: Item[];
  changed: { key: string; fields: FieldChange[] }[];
}

export interface SoftwareChange {
  added: Item[];
  removed: Item[];
  upgraded: { name: string | null; publisher: string | null; from: string | null; to: string | null }[];
}

export interface Changes {
  identity: FieldChange[];
  macs: { added: string[]; removed: string[] };
  interfaces: ListChange;
  disks: ListChange;
  volumes: ListChange;
  software: SoftwareChange;
}

const IDENTITY_FIELDS = [
  'name',
  'uuid',
  'serial',
  'msn',
  'assetTag',
  'manufacturer',
  'model',
  'os',
  'agentVersion',
] as const;

const str = (v: unknown): string | null =>
  typeof v === 'string' ? v.trim() || null : typeof v === 'number' ? String(v) : null;

/** Entries of one section keyed by `keyOf`, compared on `fields`. */
function compareList(before: Obj[], after: Obj[], keyOf: (o: Obj) => string | null, fields: string[]): ListChange {
  const index = (list: Obj[]) => {
    const m = new Map<string, Obj>();
    list.forEach((o, i) => m.set(keyOf(o) ?? `#${i}`, o));
    return m;
  };
  const b = index(before);
  const a = index(after);
  const pick = (o: Obj): Item => {
    const out: Item = {};
    for (const f of fields) out[f] = str(o[f]);
    return out;
  };
  const changed: ListChange['changed'] = [];
  for (const [k, now] of a) {
    const was = b.get(k);
    if (!was) continue;
    const diffs = fields
      .filter((f) => str(was[f]) !== str(now[f]))
      .map((f) => ({ field: f, before: str(was[f]), after: str(now[f]) }));
    if (diffs.length) changed.push({ key: k, fields: diffs });
  }
  return {
    added: [...a].filter(([k]) => !b.has(k)).map(([, o]) => pick(o)),
    removed: [...b].filter(([k]) => !a.has(k)).map(([, o]) => pick(o)),
    changed,
  };
}

function compareSoftware(before: Obj[], after: Obj[]): SoftwareChange {
  // name (case-insensitive) → its versions: several versions of one package (kernels) are a multiset.
  const group = (list: Obj[]) => {
    const m = new Map<string, { item: Item; versions: string[] }>();
    for (const o of list) {
      const item = software(o);
      const k = String(item.name ?? '').toLowerCase();
      const g = m.get(k) ?? { item, versions: [] };
      g.versions.push(String(item.version ?? ''));
      m.set(k, g);
    }
    return m;
  };
  const b = group(before);
  const a = group(after);
  const out: SoftwareChange = { added: [], removed: [], upgraded: [] };
  const minus = (x: string[], y: string[]) => {
    const rest = [...y];
    return x.filter((v) => {
      const i = rest.indexOf(v);
      if (i < 0) return true;
      rest.splice(i, 1);
      return false;
    });
  };
  for (const k of new Set([...b.keys(), ...a.keys()])) {
    const was = b.get(k);
    const now = a.get(k);
    const gone = minus(was?.versions ?? [], now?.versions ?? []).sort();
    const came = minus(now?.versions ?? [], was?.versions ?? []).sort();
    const item = (now ?? was)!.item;
    const pairs = Math.min(gone.length, came.length);
    for (let i = 0; i < pairs; i++)
      out.upgraded.push({
        name: str(item.name),
        publisher: str(item.publisher),
        from: gone[i] || null,
        to: came[i] || null,
      });
    for (const v of came.slice(pairs)) out.added.push({ ...item, version: v || null });
    for (const v of gone.slice(pairs)) out.removed.push({ ...(was ?? now)!.item, version: v || null });
  }
  const byName = (x: { name?: Scalar }, y: { name?: Scalar }) =>
    String(x.name ?? '').localeCompare(String(y.name ?? ''), 'en', { sensitivity: 'base' });
  out.added.sort(byName);
  out.removed.sort(byName);
  out.upgraded.sort(byName);
  return out;
}

/** What differs from `before` to `after` (two views), in the terms a reviewer checks. */
export function compareViews(before: Obj, after: Obj): Changes {
  const ib = identityFromSections(normalized(before), null);
  const ia = identityFromSections(normalized(after), null);
  const identity = IDENTITY_FIELDS.filter((f) => (ib[f] ?? null) !== (ia[f] ?? null)).map((f) => ({
    field: f,
    before: ib[f] ?? null,
    after: ia[f] ?? null,
  }));
  const macsB = new Set(ib.macs);
  const macsA = new Set(ia.macs);
  const mac = (o: Obj) => str(o.mac)?.toLowerCase() ?? null;
  return {
    identity,
    macs: { added: ia.macs.filter((m) => !macsB.has(m)), removed: ib.macs.filter((m) => !macsA.has(m)) },
    interfaces: compareList(
      asList(before.networks),
      asList(after.networks),
      (o) => (mac(o) ? `${mac(o)} ${str(o.description) ?? ''}` : str(o.description)),
      ['description', 'mac', 'ipaddress', 'ipaddress6', 'type', 'virtualdev', 'status'],
    ),
    disks: compareList(
      asList(before.storages),
      asList(after.storages),
      (o) => str(o.serial) ?? str(o.serialnumber) ?? str(o.name),
      ['name', 'model', 'serial', 'serialnumber', 'disksize', 'type'],
    ),
    volumes: compareList(
      asList(before.drives),
      asList(after.drives),
      (o) => str(o.letter) ?? str(o.volumn) ?? str(o.label),
      ['letter', 'volumn', 'label', 'filesystem', 'total', 'type', 'encrypt_status'],
    ),
    software: compareSoftware(asList(before.softwares), asList(after.softwares)),
  };
}

export function createInventoryRead(deps: InventoryReadDeps) {
  const { sql } = deps;

  function refuseLarge(decodedSize: number | null): void {
    if (decodedSize !== null && decodedSize > deps.viewLimit)
      throw new AppError(
        'payload_too_large',
        `This inventory is ${Math.ceil(decodedSize / 1048576)} MB once decoded; inventories larger than INVENTORY_VIEW_LIMIT (${Math.floor(deps.viewLimit / 1048576)} MB) are not parsed for reading`,
      );
  }

  /** A stored submission parsed (bounded), or null when its body is gone. */
  async function parse(s: StoredInventory): Promise<Obj | null> {
    refuseLarge(s.decodedSize);
    const body = await submissionBody(sql, s.id);
    if (!body) return null;
    try {
      // Built by `views`: in a parse worker for a large body, not on the event loop.
      return JSON.parse(await (deps.views ?? inlineViews).viewJson(body, s.compression, s.format)) as Obj;
    } catch (err) {
      throw new AppError('unavailable', 'This stored inventory cannot be read', { cause: err });
    }
  }

  const facts = (s: StoredInventory | null) =>
    s && { submissionId: s.id, receivedAt: s.receivedAt, state: s.state, format: s.format, decodedSize: s.decodedSize };

  return {
    /** The device's current inventory as sections; `sections` is empty when none arrived yet. */
    async inventory(device: { id: number; deviceid: string; state: string }) {
      const src = await inventorySource(sql, device.id);
      let view: Obj | null = null;
      if (src?.hasView) view = await storedView(sql, device.id);
      else if (src?.fullSubmissionId != null) {
        const s = await submissionFacts(sql, src.fullSubmissionId);
        view = s ? await parse(s) : null;
        if (view && s) await keepBuiltView(sql, device.id, s.id, view);
      }
      return {
        id: device.id,
        deviceid: device.deviceid,
        state: device.state,
        /** held: the inventory waits for a decision (quarantined device); stored or released: accepted */
        source: src && {
          fullSubmissionId: src.fullSubmissionId,
          state: src.submissionState,
          receivedAt: src.receivedAt,
          partialsMerged: src.partialsMerged,
          updatedAt: src.updatedAt,
          format: src.format,
        },
        sections: view ? sectionsOf(normalized(view)) : [],
      };
    },

    /**
     * The latest full inventory against the one before it; for a device in conflict, the reference
     * inventory (the approved one, kept while the device is in conflict) against the one that arrived.
     */
    async changes(device: { id: number; deviceid: string; state: string }) {
      const latest = await latestFullInventories(sql, device.id, 2);
      const to = latest[0] ?? null;
      let from = latest[1] ?? null;
      let basis: 'previous' | 'reference' = 'previous';
      if (device.state === 'conflict' && to) {
        const src = await inventorySource(sql, device.id);
        if (src?.fullSubmissionId != null && src.fullSubmissionId !== to.id) {
          from = await submissionFacts(sql, src.fullSubmissionId);
          basis = 'reference';
        }
      }
      const out = {
        id: device.id,
        deviceid: device.deviceid,
        state: device.state,
        /** previous: the full inventory before the latest; reference: the approved one a conflict is held against */
        basis,
        from: facts(from),
        to: facts(to),
        changes: null as Changes | null,
      };
      if (!from || !to) return out;
      const [before, after] = [await parse(from), await parse(to)];
      if (before && after) out.changes = compareViews(before, after);
      return out;
    },
  };
}

export type InventoryRead = ReturnType<typeof createInventoryRead>;
