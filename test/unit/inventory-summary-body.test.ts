import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { summarize, summaryFromBody, viewFromBody } from '../../src/services/inventory-view.js';
import { jsonBomb, xmlBomb } from '../../scripts/lib/bombs.js';
import { SCENARIOS, bodyOf, loadScenario } from '../helpers/fixtures.js';

// summaryFromBody skips building the whole view (a second tree as large as the document): it must give
// exactly what summarize(viewFromBody(…)) gives, for every captured inventory and for odd documents.
const inventories = SCENARIOS.flatMap((name) =>
  loadScenario(name)
    .filter((r) => r.method === 'POST' && /inventory/i.test(r.decoded_text ?? '') && (r.decoded_size ?? 0) > 4096)
    .map((r) => ({ name, r })),
);

describe('summaryFromBody', () => {
  it('has captured inventories to compare', () => expect(inventories.length).toBeGreaterThan(3));

  it.each(inventories)('equals summarize(viewFromBody) for $name', ({ r }) => {
    const body = bodyOf(r);
    const format = r.decoded_text.trimStart().startsWith('{') ? 'json' : 'xml';
    const compression = r.compression ?? 'none';
    const expected = summarize(viewFromBody(body, compression, format));
    expect(expected.sections.length).toBeGreaterThan(2);
    expect(summaryFromBody(body, compression, format)).toEqual(expected);
  });

  it('folds upper/lower-case section names as the view does, last one winning', () => {
    const xml = Buffer.from(
      '<REQUEST><CONTENT><BIOS><SSN>first</SSN></BIOS><bios><ssn>second</ssn><SMODEL>m</SMODEL></bios>' +
        '<SOFTWARES><NAME>a</NAME></SOFTWARES><SOFTWARES><NAME>b</NAME></SOFTWARES></CONTENT>' +
        '<DEVICEID>d</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>',
    );
    const expected = summarize(viewFromBody(xml, 'none', 'xml'));
    expect(expected.serial).toBe('second');
    expect(expected.softwareCount).toBe(2);
    expect(summaryFromBody(xml, 'none', 'xml')).toEqual(expected);
  });

  it.each([
    ['json', jsonBomb(2, 'summary-json')],
    ['xml', xmlBomb(2, 'summary-xml')],
  ] as const)('equals the view summary for a large %s document', (format, body) => {
    expect(zlib.inflateSync(body).length).toBeGreaterThan(2_000_000);
    const expected = summarize(viewFromBody(body, 'zlib', format));
    expect(expected.softwareCount).toBeGreaterThan(500);
    expect(summaryFromBody(body, 'zlib', format)).toEqual(expected);
  });
});
