/**
 * Differential test of the gateway's JSON reading (parseJsonMessage) against a reference reader written
 * apart (test/unit/support/json-reference.ts: PHP json_decode's reading, as GLPI's). Seeded mutations of the
 * real captured GLPI-agent messages add duplicate keys, keys differing only in case, keys written with \u
 * escapes or equal once NUL is dropped. For each: either a 400 (the bad-input AppError), or the document has
 * a single reading and deviceid, action, partial and identity equal the reference's — for the text received
 * and for the text the gateway keeps (and forwards).
 */
import { describe, expect, it } from 'vitest';
import { identityFromSections } from '../../src/protocol/identity.js';
import { type AgentMessage, validDeviceid } from '../../src/protocol/message.js';
import { type Disagreement, canon, summary } from './support/canon.js';
import { JSON_SAMPLES, SLIM_JSON } from './support/corpus.js';
import { mutateJson } from './support/json-mutator.js';
import { gatewayJson, referenceJson } from './support/json-reference.js';
import { diffSettings, rng } from './support/prng.js';

const { seed, cases } = diffSettings(3000);

/** What the reference reads in `text`, in the shape the gateway reports. */
function referenceReading(text: string): { reading: string; ambiguous: string | null } {
  const { value, ambiguous } = referenceJson(text);
  const m = value as Record<string, unknown>;
  const content = m.content as Record<string, unknown> | undefined;
  const kind = typeof m.action === 'string' && m.action.toLowerCase() === 'inventory' ? 'inventory' : 'other';
  return {
    ambiguous,
    reading: canon({
      action: m.action,
      deviceid: validDeviceid(m.deviceid),
      partial: m.partial === true,
      identity: kind === 'inventory' && content ? identityFromSections(content, m.tag) : null,
    }),
  };
}

function gatewayReading(msg: AgentMessage): string {
  return canon({ action: msg.action, deviceid: msg.deviceid, partial: msg.partial, identity: msg.identity });
}

function disagreement(text: string): string | null {
  const gw = gatewayJson(text);
  if (!gw.accepted) return null;
  const ref = referenceReading(text);
  const mine = gatewayReading(gw.msg);
  if (mine !== ref.reading) return `gateway ${mine.slice(0, 300)}\n   reference ${ref.reading.slice(0, 300)}`;
  if (ref.ambiguous) return `accepted, but the document has two readings (${ref.ambiguous})`;
  const kept = referenceReading(gw.msg.text);
  if (kept.ambiguous || kept.reading !== ref.reading)
    return `the text kept reads otherwise: ${kept.ambiguous ?? kept.reading.slice(0, 300)}`;
  return null;
}

describe('JSON differential: the gateway vs a reference reader (as GLPI reads JSON)', () => {
  it('reads every captured JSON message (full and slim) as the reference does', () => {
    for (const s of [...JSON_SAMPLES, ...SLIM_JSON]) {
      expect(gatewayJson(s.text).accepted, s.name).toBe(true);
      expect(disagreement(s.text), s.name).toBeNull();
    }
  });

  it(`${cases} seeded mutations: every accepted document has one reading, the reference's`, () => {
    const r = rng(seed + 3);
    const found: Disagreement[] = [];
    let accepted = 0;
    for (let i = 0; i < cases; i++) {
      const sample = r.pick(SLIM_JSON);
      const { text, ops } = mutateJson(r, sample.text);
      if (gatewayJson(text).accepted) accepted++;
      const detail = disagreement(text);
      if (detail) found.push({ case: i, sample: sample.name, ops, detail });
    }
    expect(found.length, summary(found, cases, seed)).toBe(0);
    expect(accepted, 'reordered keys are harmless and must still be accepted').toBeGreaterThan(cases / 20);
  });

  it('the same on the full-size captured inventories', () => {
    const r = rng(seed + 4);
    const found: Disagreement[] = [];
    const big = JSON_SAMPLES.filter((s) => s.text.length > 100_000);
    for (const sample of big) {
      const { text, ops } = mutateJson(r, sample.text);
      const detail = disagreement(text);
      if (detail) found.push({ case: 0, sample: sample.name, ops, detail });
    }
    expect(found.length, summary(found, big.length, seed)).toBe(0);
  });
});
