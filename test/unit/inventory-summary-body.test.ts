import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { summarize, summaryFromBody, viewFromBody } from '../../src/services/inventory-view.js';
import { jsonBomb, xmlBomb } from '../../scripts/lib/bombs.js';
import { SCENARIOS, bodyOf, loadScenario } from '../helpers/fixtures.js';
import { parseDecoded } from '../../src/protocol/message.js';
import { decodeStoredBody } from '../../src/services/inventory-view.js';

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

// The summary made at ingest (protocol/summary.ts) from what the message parse read: the full parse's.
describe('the summary a full inventory carries from its parse', () => {
  it.each(inventories)('equals summaryFromBody for $name', ({ r }) => {
    const body = bodyOf(r);
    const format = r.decoded_text.trimStart().startsWith('{') ? 'json' : 'xml';
    const compression = r.compression ?? 'none';
    const msg = parseDecoded(decodeStoredBody(body, compression));
    if (msg.partial) return expect(msg.summary).toBeNull();
    expect(msg.summary).not.toBeNull();
    expect(msg.summary).toEqual(summaryFromBody(body, compression, format));
  });

  it('counts every list entry, empty ones too, and names every section once', () => {
    const xml =
      '<REQUEST><CONTENT><BIOS><SSN>s</SSN></BIOS><SOFTWARES/><SOFTWARES><NAME>a</NAME></SOFTWARES><SOFTWARES></SOFTWARES>' +
      '<HARDWARE/><NETWORKS><MACADDR>aa:bb:cc:dd:ee:ff</MACADDR></NETWORKS><ENVS><KEY>k</KEY></ENVS><ENVS/></CONTENT>' +
      '<DEVICEID>d</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>';
    const msg = parseDecoded(Buffer.from(xml));
    expect(msg.summary).toMatchObject({ serial: 's', softwareCount: 3, networkCount: 1, uuid: null });
    expect(msg.summary).toEqual(summaryFromBody(Buffer.from(xml), 'none', 'xml'));
  });

  it('is left to the full parse (null) when a section name is not in upper case', () => {
    const xml = (content: string) =>
      Buffer.from(`<REQUEST><CONTENT>${content}</CONTENT><DEVICEID>d</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`);
    // The full parse reads a lone lower-case section as a value, not a list: an empty one counts 0, not 1.
    const lone = xml('<BIOS><SSN>s</SSN></BIOS><softwares/>');
    expect(parseDecoded(lone).summary).toBeNull();
    expect(summaryFromBody(lone, 'none', 'xml')).toMatchObject({ softwareCount: 0, sections: ['bios', 'softwares'] });
    // Two spellings of one section are read as one by the view and by GLPI: refused, not summarised.
    expect(() =>
      parseDecoded(xml('<SOFTWARES><NAME>a</NAME></SOFTWARES><softwares><name>b</name></softwares>')),
    ).toThrow(/<softwares> beside <SOFTWARES>/);
  });

  it('is null for a partial JSON inventory and for other messages', () => {
    const partial = { action: 'inventory', deviceid: 'd', partial: true, content: { softwares: [{ name: 'a' }] } };
    expect(parseDecoded(Buffer.from(JSON.stringify(partial))).summary).toBeNull();
    const prolog = '<REQUEST><DEVICEID>d</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>';
    expect(parseDecoded(Buffer.from(prolog)).summary).toBeNull();
  });
});
