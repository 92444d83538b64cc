/**
 * The device page's inventory summary (OS, hardware, software count…), made at ingest from what the message
 * parse has read already: the JSON content, or for XML the scan's section list and the identity sections it
 * parsed. No second parse of the document: the background pass (services/inventory-summary.ts) used to parse
 * every stored full inventory again to make it, about half of the gateway's CPU per XML inventory (issue 13).
 * It now does only what ingest leaves to it (summary null): documents with a section name not in upper case,
 * which the full parse does not read as a list section (two names that differ only in case are refused by
 * the parse, protocol/xml.ts).
 */
/** The same fields as store/read-store.ts InventorySummary (store/ may not import protocol/). */
export interface ContentSummary {
  os: unknown;
  manufacturer: unknown;
  model: unknown;
  serial: unknown;
  uuid: unknown;
  memoryMb: unknown;
  softwareCount: number | null;
  networkCount: number | null;
  sections: string[];
}

/** OS, hardware, software count… of an inventory view (the same fields read-store's pageInventory builds in SQL). */
export function summarize(view: Record<string, unknown>): ContentSummary {
  const first = (v: unknown) => (Array.isArray(v) ? v[0] : v) as Record<string, unknown> | undefined;
  const os = first(view.operatingsystem);
  const bios = first(view.bios);
  const hw = first(view.hardware);
  const count = (v: unknown) => (Array.isArray(v) ? v.length : v ? 1 : 0);
  return {
    os: os?.full_name ?? os?.name ?? null,
    manufacturer: bios?.smanufacturer ?? null,
    model: bios?.smodel ?? null,
    serial: bios?.ssn ?? null,
    uuid: hw?.uuid ?? null,
    memoryMb: hw?.memory ?? null,
    softwareCount: count(view.softwares),
    networkCount: count(view.networks),
    sections: Object.keys(view).sort(),
  };
}

/** The sections summarize reads whole, parsed with the identity sections. */
const READ_WHOLE = ['operatingsystem', 'bios', 'hardware'] as const;
/** The sections summarize counts: list sections, so a full parse gives one array entry per element. */
const COUNTED = ['softwares', 'networks'] as const;

/**
 * summarize(view of the whole document) for an XML inventory, from the names of CONTENT's children (in
 * document order, repeated as they repeat) and the identity sections already parsed and lower-cased
 * (identity.ts xmlSectionsToJsonShape). null when a name is not in upper case: the full parse reads a lone
 * <softwares/> as an empty value, not a list of one, so only it can count such a section (the background
 * pass does it).
 */
export function xmlSummary(sectionNames: readonly string[], identity: Record<string, unknown>): ContentSummary | null {
  const counts = new Map<string, number>();
  for (const name of sectionNames) {
    if (name.toUpperCase() !== name) return null;
    const key = name.toLowerCase();
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const view: Record<string, unknown> = {};
  for (const key of counts.keys()) view[key] = true;
  for (const key of READ_WHOLE) if (counts.has(key)) view[key] = identity[key];
  for (const key of COUNTED) if (counts.has(key)) view[key] = new Array<never>(counts.get(key)!);
  return summarize(view);
}
