/**
 * The real captured agent messages the differential tests mutate: every distinct XML and JSON body in
 * test/fixtures, plus "slim" copies of the big inventories (each repeated section cut to its first entry,
 * identity sections kept whole) so thousands of mutated documents can be fully parsed in a few seconds.
 */
import { SCENARIOS, loadScenario } from '../../helpers/fixtures.js';

export interface Sample {
  name: string;
  text: string;
}

function distinctBodies(format: 'xml' | 'json'): Sample[] {
  const seen = new Set<string>();
  const out: Sample[] = [];
  for (const scenario of SCENARIOS) {
    for (const r of loadScenario(scenario)) {
      const text = r.decoded_text;
      if (!text || seen.has(text)) continue;
      const first = text.trimStart()[0];
      if ((format === 'xml' && first !== '<') || (format === 'json' && first !== '{')) continue;
      seen.add(text);
      out.push({ name: `${scenario}/${r.file}`, text });
    }
  }
  return out;
}

const KEEP_WHOLE = new Set(['HARDWARE', 'BIOS', 'NETWORKS', 'ACCOUNTINFO', 'OPERATINGSYSTEM', 'VERSIONCLIENT']);

/**
 * The direct children of <CONTENT> in a captured (plain: no attributes, comments or CDATA) XML inventory,
 * found by a walker of its own so the corpus does not depend on the scanner under test.
 */
function contentChildren(text: string): { name: string; start: number; end: number }[] {
  const out: { name: string; start: number; end: number }[] = [];
  const stack: { name: string; start: number }[] = [];
  for (const m of text.matchAll(/<(\/?)([A-Za-z_][\w.-]*)\s*(\/?)>/g)) {
    const [, closing, name, selfClosing] = m as unknown as [string, string, string, string];
    const at = m.index;
    const end = at + m[0].length;
    if (closing) {
      const open = stack.pop()!;
      if (stack.length === 2 && stack[1]!.name === 'CONTENT') out.push({ name, start: open.start, end });
    } else if (selfClosing) {
      if (stack.length === 2 && stack[1]!.name === 'CONTENT') out.push({ name, start: at, end });
    } else stack.push({ name, start: at });
  }
  return out;
}

/** The inventory with each repeated non-identity section cut to its first entry (and line). */
export function slimXml(text: string): string {
  const seen = new Set<string>();
  let out = '';
  let from = 0;
  for (const s of contentChildren(text)) {
    if (KEEP_WHOLE.has(s.name) || !seen.has(s.name)) {
      seen.add(s.name);
      continue;
    }
    out += text.slice(from, s.start);
    from = s.end;
    while (text[from] === '\n' || text[from] === ' ') from++; // the indentation that followed the entry
  }
  return out + text.slice(from);
}

/** Arrays in JSON content cut to their first two entries (networks kept whole). */
export function slimJson(text: string): string {
  const msg = JSON.parse(text) as { content?: Record<string, unknown> };
  for (const [key, value] of Object.entries(msg.content ?? {})) {
    if (Array.isArray(value) && key !== 'networks') value.splice(2);
  }
  return JSON.stringify(msg, null, 3);
}

export const XML_SAMPLES = distinctBodies('xml');
export const JSON_SAMPLES = distinctBodies('json');
/** Slim copies of the big documents, the small ones as they are. */
export const SLIM_XML = XML_SAMPLES.map((s) => ({
  name: s.name,
  text: s.text.length > 20_000 ? slimXml(s.text) : s.text,
}));
export const SLIM_JSON = JSON_SAMPLES.map((s) => ({
  name: s.name,
  text: s.text.length > 20_000 ? slimJson(s.text) : s.text,
}));
