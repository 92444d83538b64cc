/**
 * Differential test of the hot-path XML reader (src/protocol/xml.ts) against a full conforming parse
 * (fast-xml-parser's validator and parser over the whole document, test/unit/support/xml-reference.ts).
 * Thousands of seeded mutations of the real captured messages; for each, either the gateway refuses it with
 * the bad-input AppError (a 400 in the agent's format), or root, QUERY, DEVICEID and the identity sections
 * it reads equal the full parse's — and so do the identity and the summary parseXmlMessage derives from the
 * text it keeps.
 * Replay a failure with DIFF_SEED=<seed> DIFF_CASES=<n>.
 */
import { describe, expect, it } from 'vitest';
import { identityFromSections, xmlSectionsToJsonShape } from '../../src/protocol/identity.js';
import { parseXmlMessage, validDeviceid } from '../../src/protocol/message.js';
import { AppError } from '../../src/errors.js';
import { summaryFromBody } from '../../src/services/inventory-view.js';
import { type Disagreement, canon, summary } from './support/canon.js';
import { SLIM_XML, XML_SAMPLES } from './support/corpus.js';
import { diffSettings, rng } from './support/prng.js';
import { benignXml, mutateXml } from './support/xml-mutator.js';
import { type XmlReading, gatewayXml, referenceXml } from './support/xml-reference.js';

const { seed, cases } = diffSettings(4000);

/** Why the gateway's reading of `text` is not the reference's, or null when they agree (or it refused). */
function disagreement(text: string): string | null {
  const gw = gatewayXml(text);
  if (!gw.accepted) return null;
  const ref = referenceXml(text);
  if (!ref.ok) return `accepted, but the full parse gives no single reading (${ref.why})`;
  const a = canon(gw.reading);
  const b = canon(ref.reading);
  if (a !== b) return `gateway ${a.slice(0, 300)}\n   full parse ${b.slice(0, 300)}`;
  return gw.reading.root === 'REQUEST' ? messageDisagreement(text) : null;
}

/** parseXmlMessage judges (and keeps) its redacted text: the identity it gives must be that text's. */
function messageDisagreement(text: string): string | null {
  let msg: ReturnType<typeof parseXmlMessage>;
  try {
    msg = parseXmlMessage(text);
  } catch (err) {
    if (err instanceof AppError && err.status === 400) return null;
    throw err;
  }
  const ref = referenceXml(msg.text);
  if (!ref.ok) return `parseXmlMessage kept a text the full parse refuses (${ref.why})`;
  const r: XmlReading = ref.reading;
  if (msg.deviceid !== validDeviceid(r.deviceid)) return `deviceid ${msg.deviceid} vs ${r.deviceid}`;
  if (msg.kind === 'inventory') {
    const { sections, tag } = xmlSectionsToJsonShape(r.identity);
    const expected = canon(identityFromSections(sections, tag));
    if (canon(msg.identity) !== expected) return `identity ${canon(msg.identity)}\n   full parse ${expected}`;
    // The device page's summary made at ingest is the full parse's (or left to it: null).
    if (msg.summary !== null) {
      const full = canon(summaryFromBody(Buffer.from(msg.text, 'utf8'), 'none', 'xml'));
      if (canon(msg.summary) !== full) return `summary ${canon(msg.summary)}\n   full parse ${full}`;
    }
  }
  return null;
}

function report(found: Disagreement[], total: number): string {
  return summary(found, total, seed);
}

describe('XML differential: the hot-path reader vs a full conforming parse', () => {
  it('reads every captured XML message (full and slim) as the full parse does', () => {
    for (const s of [...XML_SAMPLES, ...SLIM_XML]) {
      expect(gatewayXml(s.text).accepted, s.name).toBe(true);
      expect(disagreement(s.text), s.name).toBeNull();
    }
  });

  it('accepts benign variants (white space in tags, empty-element forms) and reads them the same', () => {
    const r = rng(seed);
    for (let i = 0; i < 300; i++) {
      const sample = r.pick(SLIM_XML);
      const { text, ops } = benignXml(r, sample.text);
      const gw = gatewayXml(text);
      expect(gw.accepted, `${sample.name} [${ops.join(', ')}] ${gw.accepted ? '' : gw.message}`).toBe(true);
      expect(disagreement(text), `${sample.name} [${ops.join(', ')}]`).toBeNull();
    }
  });

  it(`${cases} seeded mutations: every accepted document reads as the full parse reads it`, () => {
    const r = rng(seed + 1);
    const found: Disagreement[] = [];
    let accepted = 0;
    for (let i = 0; i < cases; i++) {
      const sample = r.pick(SLIM_XML);
      const { text, ops } = mutateXml(r, sample.text);
      if (gatewayXml(text).accepted) accepted++;
      const detail = disagreement(text);
      if (detail) found.push({ case: i, sample: sample.name, ops, detail });
    }
    expect(found.length, report(found, cases)).toBe(0);
    expect(accepted, 'some mutations are harmless and must still be accepted').toBeGreaterThan(cases / 20);
  });

  it('the same on the full-size captured inventories (a few each: the full parse is slow)', () => {
    const r = rng(seed + 2);
    const big = XML_SAMPLES.filter((s) => s.text.length > 100_000);
    const found: Disagreement[] = [];
    for (const sample of big) {
      for (let i = 0; i < 2; i++) {
        const { text, ops } = mutateXml(r, sample.text);
        const detail = disagreement(text);
        if (detail) found.push({ case: i, sample: sample.name, ops, detail });
      }
    }
    expect(found.length, report(found, big.length * 2)).toBe(0);
  });
});
