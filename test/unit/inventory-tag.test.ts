/**
 * setInventoryTag (src/protocol/inventory-tag.ts): the real captured inventories of both agents get the
 * credential's tag where GLPI reads it, every other byte unchanged; documents with several, foreign or no
 * ACCOUNTINFO end with exactly one TAG entry; tags that need escaping read back as themselves (UTF-8 and
 * ISO-8859-1 documents); anything ambiguous is refused. Then a differential over seeded mutations of the
 * real messages: whenever the gateway accepts a mutated inventory and the rewrite does not refuse, a full
 * conforming parse of the result (fast-xml-parser; for JSON a json_decode-like reader of its own) reads
 * exactly one tag, the one set, and the rest of the document as it read the original.
 */
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { setInventoryTag, tagProblem } from '../../src/protocol/inventory-tag.js';
import { parseJsonMessage, parseXmlMessage } from '../../src/protocol/message.js';
import { AppError } from '../../src/errors.js';
import { textOf } from '../helpers/fixtures.js';
import { canon } from './support/canon.js';
import { JSON_SAMPLES, SLIM_JSON, SLIM_XML, XML_SAMPLES } from './support/corpus.js';
import { mutateJson } from './support/json-mutator.js';
import { referenceJson } from './support/json-reference.js';
import { diffSettings, rng } from './support/prng.js';
import { mutateXml } from './support/xml-mutator.js';

const FI_TAG = textOf('fusioninventory-tag', '0002-post-inventory.json');
const FI_PLAIN = textOf('fusioninventory-plain', '0002-post-inventory.json');
const GA_FULL_TAG = textOf('glpi-tag', '0003-post-inventory.json');
const GA_PARTIAL_TAG = textOf('glpi-second-run-tag', '0007-post-inventory.json');
const GA_FULL_PLAIN = textOf('glpi-plain', '0005-post-inventory.json');
const GA_PARTIAL_PLAIN = textOf('glpi-second-run', '0007-post-inventory.json');

/** As GLPI's converter reads XML: whole document, ACCOUNTINFO a list only when repeated (SimpleXML). */
const glpiLike = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
});

/** The tag GLPI's Converter::convertTo01 lifts from CONTENT/ACCOUNTINFO (or undefined). */
function glpiXmlTag(text: string): unknown {
  const doc = glpiLike.parse(text) as { REQUEST?: { CONTENT?: { ACCOUNTINFO?: unknown }; TAG?: unknown } };
  if (doc.REQUEST?.TAG !== undefined) return doc.REQUEST.TAG;
  const info = doc.REQUEST?.CONTENT?.ACCOUNTINFO as Record<string, unknown> | unknown[] | undefined;
  if (!info || Array.isArray(info)) return undefined;
  return info.KEYNAME === 'TAG' && info.KEYVALUE !== '' ? info.KEYVALUE : undefined;
}

function rewrite(text: string, format: 'xml' | 'json', tag: string): string {
  const r = setInventoryTag(Buffer.from(text, 'utf8'), format, tag);
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.decoded.toString('utf8');
}

function reason(text: string | Buffer, format: 'xml' | 'json', tag: string): string {
  const r = setInventoryTag(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'), format, tag);
  return r.ok ? 'accepted' : r.reason;
}

describe('the real inventories', () => {
  it('FusionInventory XML with a TAG: only the KEYVALUE changes, and every reader reads the new tag', () => {
    expect(FI_TAG.split('<KEYVALUE>acceptance-tag</KEYVALUE>')).toHaveLength(2);
    const out = rewrite(FI_TAG, 'xml', 'paris-dc2');
    expect(out).toBe(FI_TAG.replace('<KEYVALUE>acceptance-tag</KEYVALUE>', '<KEYVALUE>paris-dc2</KEYVALUE>'));
    expect(parseXmlMessage(out).identity!.tag).toBe('paris-dc2');
    expect(glpiXmlTag(out)).toBe('paris-dc2');
    expect(glpiXmlTag(FI_TAG)).toBe('acceptance-tag'); // the emulation reads the original as GLPI does
  });

  it('FusionInventory XML without a tag: one TAG entry, first in CONTENT, in its indentation', () => {
    expect(FI_PLAIN).not.toContain('ACCOUNTINFO');
    const out = rewrite(FI_PLAIN, 'xml', 'paris-dc2');
    const entry = '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>paris-dc2</KEYVALUE></ACCOUNTINFO>';
    expect(out).toBe(FI_PLAIN.replace('<CONTENT>\n    <', `<CONTENT>\n    ${entry}\n    <`));
    expect(parseXmlMessage(out).identity!.tag).toBe('paris-dc2');
    expect(glpiXmlTag(out)).toBe('paris-dc2');
  });

  it('GLPI Agent JSON, full and partial, with a tag: only the value changes', () => {
    for (const doc of [GA_FULL_TAG, GA_PARTIAL_TAG]) {
      expect(doc.split('"tag": "acceptance-tag"')).toHaveLength(2);
      const out = rewrite(doc, 'json', 'paris-dc2');
      expect(out).toBe(doc.replace('"tag": "acceptance-tag"', '"tag": "paris-dc2"'));
      expect(parseJsonMessage(out).identity!.tag).toBe('paris-dc2');
      expect(referenceJson(out)).toMatchObject({ ambiguous: null, value: { tag: 'paris-dc2' } });
    }
    expect(parseJsonMessage(rewrite(GA_PARTIAL_TAG, 'json', 'x')).partial).toBe(true);
  });

  it('GLPI Agent JSON, full and partial, without a tag: a top-level member after the last one, same layout', () => {
    for (const doc of [GA_FULL_PLAIN, GA_PARTIAL_PLAIN]) {
      expect(doc).not.toMatch(/\n {3}"tag"/);
      const last = /\n( {3}"[a-z]+": [^\n]+)\n\}\n$/.exec(doc)![1]!;
      const out = rewrite(doc, 'json', 'paris-dc2');
      expect(out).toBe(doc.replace(/\n\}\n$/, ',\n   "tag": "paris-dc2"\n}\n'));
      expect(out).toContain(`${last},\n   "tag"`);
      const before = JSON.parse(doc) as Record<string, unknown>;
      expect(JSON.parse(out)).toEqual({ ...before, tag: 'paris-dc2' });
    }
  });

  it('a document that already carries exactly that tag is left as it is (the same buffer)', () => {
    for (const [doc, format] of [
      [FI_TAG, 'xml'],
      [GA_FULL_TAG, 'json'],
    ] as const) {
      const input = Buffer.from(doc, 'utf8');
      const r = setInventoryTag(input, format, 'acceptance-tag');
      expect(r.ok && !r.changed).toBe(true);
      expect(r.ok && r.decoded).toBe(input);
    }
  });
});

const xmlDoc = (content: string, root = '') =>
  `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>${root}<CONTENT>${content}<HARDWARE><NAME>pc1</NAME></HARDWARE></CONTENT><DEVICEID>pc1-2024</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>\n`;

describe('XML: exactly one TAG entry is left', () => {
  it('several ACCOUNTINFO entries (TAG among them) become the one TAG entry', () => {
    // The gateway refuses two ACCOUNTINFO at intake; the rewrite still never leaves two (GLPI reads none).
    const doc = xmlDoc(
      '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>lyon</KEYVALUE></ACCOUNTINFO><ACCOUNTINFO><KEYNAME>ASSET</KEYNAME><KEYVALUE>A1</KEYVALUE></ACCOUNTINFO>',
    );
    const out = rewrite(doc, 'xml', 'paris');
    expect(out).toBe(
      doc
        .replace('<KEYVALUE>lyon</KEYVALUE>', '<KEYVALUE>paris</KEYVALUE>')
        .replace('<ACCOUNTINFO><KEYNAME>ASSET</KEYNAME><KEYVALUE>A1</KEYVALUE></ACCOUNTINFO>', ''),
    );
    expect(out.match(/<ACCOUNTINFO>/g)).toHaveLength(1);
    expect(glpiXmlTag(out)).toBe('paris');
    expect(parseXmlMessage(out).identity!.tag).toBe('paris');
  });

  it('an ACCOUNTINFO that is not a plain TAG entry is replaced by one', () => {
    for (const info of [
      '<ACCOUNTINFO><KEYNAME>ASSET</KEYNAME><KEYVALUE>A1</KEYVALUE></ACCOUNTINFO>',
      '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>lyon</KEYVALUE><EXTRA>x</EXTRA></ACCOUNTINFO>',
      '<ACCOUNTINFO><KEYNAME> TAG </KEYNAME><KEYVALUE>lyon</KEYVALUE></ACCOUNTINFO>',
      '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME></ACCOUNTINFO>',
      '<ACCOUNTINFO/>',
    ]) {
      const out = rewrite(xmlDoc(info), 'xml', 'paris');
      expect(out).toBe(xmlDoc('<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>paris</KEYVALUE></ACCOUNTINFO>'));
    }
  });

  it('an empty or white-space KEYVALUE, KEYVALUE before KEYNAME: only the KEYVALUE element changes', () => {
    for (const [info, expected] of [
      [
        '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE/></ACCOUNTINFO>',
        '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>paris</KEYVALUE></ACCOUNTINFO>',
      ],
      [
        '<ACCOUNTINFO>\n <KEYVALUE> paris </KEYVALUE>\n <KEYNAME>TAG</KEYNAME>\n</ACCOUNTINFO>',
        '<ACCOUNTINFO>\n <KEYVALUE>paris</KEYVALUE>\n <KEYNAME>TAG</KEYNAME>\n</ACCOUNTINFO>',
      ],
    ]) {
      expect(rewrite(xmlDoc(info!), 'xml', 'paris')).toBe(xmlDoc(expected!));
    }
  });

  it('an ACCOUNTINFO deeper than CONTENT is not the one GLPI reads: left alone, the TAG entry is added', () => {
    const deep =
      '<SOFTWARES><NAME>x</NAME><ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>lyon</KEYVALUE></ACCOUNTINFO></SOFTWARES>';
    const doc = xmlDoc(deep);
    const out = rewrite(doc, 'xml', 'paris');
    expect(out).toBe(
      doc.replace('<CONTENT>', '<CONTENT><ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>paris</KEYVALUE></ACCOUNTINFO>'),
    );
    expect(glpiXmlTag(out)).toBe('paris');
  });
});

describe('characters', () => {
  it('XML-special and non-ASCII characters read back as themselves, in UTF-8', () => {
    for (const tag of ['a&b', '<script>', 'x]]>y', 'Île-de-France', 'entité "7"', '東京', '🏢 hq']) {
      const out = rewrite(FI_TAG, 'xml', tag);
      expect(parseXmlMessage(out).identity!.tag).toBe(tag);
      expect(glpiXmlTag(out)).toBe(tag);
      const json = rewrite(GA_PARTIAL_TAG, 'json', tag);
      expect((JSON.parse(json) as { tag: string }).tag).toBe(tag);
      expect(parseJsonMessage(json).identity!.tag).toBe(tag);
    }
  });

  it('an ISO-8859-1 XML document keeps its bytes and gets non-ASCII characters as references', () => {
    const doc = xmlDoc('<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>lyon</KEYVALUE></ACCOUNTINFO>').replace(
      '<NAME>pc1</NAME>',
      '<NAME>poste-\u00e9t\u00e9</NAME>',
    );
    const latin1 = Buffer.from(doc, 'latin1');
    const r = setInventoryTag(latin1, 'xml', 'Île 東');
    expect(r.ok).toBe(true);
    const out = r.ok ? r.decoded : Buffer.alloc(0);
    expect(out.toString('latin1')).toBe(doc.replace('>lyon<', '>&#xCE;le &#x6771;<'));
    expect(out.includes(Buffer.from([0xe9]))).toBe(true); // still ISO-8859-1, not re-encoded
    expect(parseXmlMessage(out.toString('latin1')).identity!.tag).toBe('Île 東');
  });

  it('a UTF-8 byte order mark is kept', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    for (const [doc, format] of [
      [FI_TAG, 'xml'],
      [GA_PARTIAL_TAG, 'json'],
    ] as const) {
      const r = setInventoryTag(Buffer.concat([bom, Buffer.from(doc)]), format, 'paris');
      expect(r.ok && r.decoded.subarray(0, 3).equals(bom)).toBe(true);
      expect(r.ok && r.decoded.subarray(3).toString()).toBe(rewrite(doc, format, 'paris'));
    }
  });
});

describe('refused rather than ambiguous', () => {
  it('tags that cannot be written as GLPI and the gateway read them alike', () => {
    for (const tag of ['', ' paris', 'paris ', 'a\nb', 'a\u0000b', 'a\u0085b', '\ud800', 'x'.repeat(256)]) {
      expect(tagProblem(tag)).not.toBeNull();
      expect(reason(FI_TAG, 'xml', tag)).toBe(tagProblem(tag));
      expect(reason(GA_FULL_TAG, 'json', tag)).toBe(tagProblem(tag));
    }
    expect(tagProblem('paris-dc2')).toBeNull();
  });

  it('XML the gateway does not read, or without one CONTENT', () => {
    expect(reason(xmlDoc('<ACCOUNTINFO a="1"/>'), 'xml', 'p')).toMatch(/attributes/);
    expect(reason(xmlDoc('', '<TAG>lyon</TAG>'), 'xml', 'p')).toMatch(/TAG/);
    expect(reason(xmlDoc('<accountinfo><KEYNAME>TAG</KEYNAME></accountinfo>'), 'xml', 'p')).toMatch(/ACCOUNTINFO/);
    expect(reason('<REQUEST><DEVICEID>d</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>', 'xml', 'p')).toMatch(/CONTENT/);
    expect(reason('<REQUEST><CONTENT/><DEVICEID>d</DEVICEID></REQUEST>', 'xml', 'p')).toMatch(/empty/);
    expect(reason('<REPLY><CONTENT><A>1</A></CONTENT></REPLY>', 'xml', 'p')).toMatch(/REPLY/);
    expect(reason('<REQUEST><CONTENT><A>1</A></CONTENT>', 'xml', 'p')).toMatch(/Invalid XML/);
  });

  it('JSON with a top-level key that reads "tag" only once folded, or not an object', () => {
    const base = '{"action":"inventory","content":{"versionclient":"x"},"deviceid":"d"';
    expect(reason(`${base},"Tag":"lyon"}`, 'json', 'p')).toMatch(/case-folded/);
    expect(reason(`${base},"ta\\u0000g":"lyon"}`, 'json', 'p')).toMatch(/case-folded/);
    expect(reason('[1]', 'json', 'p')).toMatch(/not an object/);
    expect(reason('{}', 'json', 'p')).toMatch(/empty/);
    expect(reason(`${base},"tag":"lyon"`, 'json', 'p')).toMatch(/Invalid JSON/);
    expect(reason(Buffer.from([0x7b, 0xff, 0x7d]), 'json', 'p')).toMatch(/UTF-8/);
  });

  it('JSON: an escaped "tag" key is the tag (replaced, key as written); a nested "tag" is not', () => {
    const doc = '{"action":"inventory","content":{"softwares":[{"tag":"lyon"}]},"deviceid":"d","t\\u0061g":"lyon"}';
    expect(rewrite(doc, 'json', 'paris')).toBe(doc.replace(/"lyon"}$/, '"paris"}'));
    const nested = '{"action":"inventory","content":{"softwares":[{"tag":"lyon","n":"}{\\"tag\\""}]},"deviceid":"d"}';
    expect(rewrite(nested, 'json', 'paris')).toBe(nested.replace(/}$/, ',"tag":"paris"}'));
  });
});

// --- differential ------------------------------------------------------------------------------------

const { seed, cases } = diffSettings(600);
const fullXml = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
  isArray: (name) => name === 'ACCOUNTINFO',
});

function accepted<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AppError && err.status === 400) return null;
    throw err;
  }
}

/** The whole XML document read by a full parse, CONTENT-level ACCOUNTINFO taken out and returned apart. */
function xmlApart(text: string): { rest: string; infos: unknown } {
  const doc = fullXml.parse(text) as { REQUEST: { CONTENT: Record<string, unknown> } };
  const infos = doc.REQUEST.CONTENT.ACCOUNTINFO;
  delete doc.REQUEST.CONTENT.ACCOUNTINFO;
  return { rest: canon(doc), infos };
}

describe('differential: mutated real inventories', () => {
  const TAGS = ['paris-dc2', 'a&b<c>', 'Île 東', '"q" \\ /'];

  it('XML: whenever both accept, a full parse reads one TAG entry, the tag set, and the rest unchanged', () => {
    const r = rng(seed);
    const samples = SLIM_XML.filter((s) => /<QUERY>INVENTORY<\/QUERY>/.test(s.text));
    expect(samples.length).toBeGreaterThanOrEqual(2);
    let checked = 0;
    const found: string[] = [];
    for (let i = 0; i < cases; i++) {
      const sample = r.pick(samples);
      const m = r.chance(0.15) ? { text: sample.text, ops: ['none'] } : mutateXml(r, sample.text);
      const msg = accepted(() => parseXmlMessage(m.text));
      if (!msg || msg.kind !== 'inventory') continue;
      const tag = r.pick(TAGS);
      const res = setInventoryTag(Buffer.from(m.text, 'utf8'), 'xml', tag);
      if (!res.ok) continue;
      checked++;
      const out = res.decoded.toString('utf8');
      const after = xmlApart(out);
      const before = xmlApart(m.text);
      const problems = [
        canon(after.infos) !== canon([{ KEYNAME: 'TAG', KEYVALUE: tag }]) && `ACCOUNTINFO ${canon(after.infos)}`,
        after.rest !== before.rest && 'the rest of the document changed',
        parseXmlMessage(out).identity!.tag !== tag && 'the gateway reads another tag',
        glpiXmlTag(out) !== tag && 'GLPI reads another tag',
      ].filter(Boolean);
      if (problems.length) found.push(`case ${i} (${m.ops.join(',')}, ${sample.name}): ${problems.join('; ')}`);
    }
    expect(found, `seed ${seed}\n${found.slice(0, 5).join('\n')}`).toEqual([]);
    expect(checked).toBeGreaterThan(cases / 10);
  }, 120_000);

  it('JSON: whenever both accept, a json_decode-like reader reads the tag set, one reading, the rest unchanged', () => {
    const r = rng(seed + 1);
    const samples = [...SLIM_JSON, ...JSON_SAMPLES.filter((s) => s.text.length < 20_000)].filter((s) =>
      /"action"\s*:\s*"inventory"/.test(s.text),
    );
    expect(samples.length).toBeGreaterThanOrEqual(2);
    let checked = 0;
    const found: string[] = [];
    for (let i = 0; i < cases; i++) {
      const sample = r.pick(samples);
      const m = r.chance(0.15) ? { text: sample.text, ops: ['none'] } : mutateJson(r, sample.text);
      const msg = accepted(() => parseJsonMessage(m.text));
      if (!msg || msg.kind !== 'inventory') continue;
      const tag = r.pick(TAGS);
      const res = setInventoryTag(Buffer.from(m.text, 'utf8'), 'json', tag);
      if (!res.ok) continue;
      checked++;
      const out = res.decoded.toString('utf8');
      const ref = referenceJson(out);
      const before = referenceJson(m.text).value as Record<string, unknown>;
      const after = { ...(ref.value as Record<string, unknown>) };
      const problems = [
        ref.ambiguous && `ambiguous: ${ref.ambiguous}`,
        after.tag !== tag && `tag ${JSON.stringify(after.tag)}`,
        canon({ ...after, tag: null }) !== canon({ ...before, tag: null }) && 'the rest of the document changed',
      ].filter(Boolean);
      if (problems.length) found.push(`case ${i} (${m.ops.join(',')}, ${sample.name}): ${problems.join('; ')}`);
    }
    expect(found, `seed ${seed}\n${found.slice(0, 5).join('\n')}`).toEqual([]);
    expect(checked).toBeGreaterThan(cases / 10);
  }, 120_000);

  it('the corpus has both agents, with and without a tag', () => {
    expect(XML_SAMPLES.some((s) => s.text.includes('<KEYNAME>TAG</KEYNAME>'))).toBe(true);
    expect(JSON_SAMPLES.some((s) => /\n {3}"tag"/.test(s.text))).toBe(true);
  });
});
