/**
 * The XML profile the gateway accepts, construct by construct (src/protocol/xml-scan.ts, xml.ts): what two
 * readers could read differently is refused with the bad-input 400; what is accepted reads as a full
 * conforming parse reads it (the differential test does the same on thousands of mutated captures).
 */
import { describe, expect, it } from 'vitest';
import { parseXmlMessage } from '../../src/protocol/message.js';
import { readXmlRequest } from '../../src/protocol/xml.js';
import { textOf } from '../helpers/fixtures.js';
import { appErrorOf } from './app-error.js';
import { canon } from './support/canon.js';
import { referenceXml } from './support/xml-reference.js';

const HW = '<HARDWARE><NAME>real</NAME><UUID>7d1e4c2a-0f3b-4a55-9c1e-2b8d6f0a9e11</UUID></HARDWARE>';

function request(inner: string, content = HW): string {
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><CONTENT>${content}</CONTENT>${inner}</REQUEST>\n`;
}

function refused(text: string, message?: RegExp): void {
  const err = appErrorOf(() => readXmlRequest(text));
  expect(err.code).toBe('bad_request');
  expect(err.status).toBe(400);
  if (message) expect(err.publicMessage).toMatch(message);
}

/** Accepted, and read exactly as fast-xml-parser's full parse of the same bytes reads it. */
function readsLikeFullParse(text: string): ReturnType<typeof readXmlRequest> {
  const req = readXmlRequest(text);
  const ref = referenceXml(text);
  expect(ref.ok, ref.ok ? '' : ref.why).toBe(true);
  if (ref.ok) {
    const { root, query, deviceid, identity, hasContent } = req;
    expect(canon({ root, query, deviceid, identity, hasContent })).toBe(canon(ref.reading));
  }
  return req;
}

describe('quoted attribute values holding markup', () => {
  it('cannot smuggle a DEVICEID past the scanner (the attack the old scanner fell for)', () => {
    const smuggled = request('<X a="></X><DEVICEID>evil</DEVICEID><X b=">x</X><DEVICEID>real</DEVICEID>');
    expect(referenceXml(smuggled)).toMatchObject({ ok: true, reading: { deviceid: 'real' } });
    refused(smuggled, /attributes are not accepted/);
  });

  it.each([
    ['">"', '<DEVICEID a=">">d</DEVICEID>'],
    ["'/>'", "<DEVICEID a='/>'>d</DEVICEID>"],
    ['"<"', '<DEVICEID a="<"/>'],
    ['a plain value', '<DEVICEID id="1">d</DEVICEID>'],
  ])('refuses any attribute, %s included', (_label, inner) => {
    refused(request(inner), /attributes are not accepted/);
  });

  it('refuses an attribute on an identity section that would end it early ("/>")', () => {
    refused(request('<DEVICEID>d</DEVICEID>', `<HARDWARE x="/>"><NAME>h</NAME></HARDWARE>`), /attributes/);
  });
});

describe('comments, CDATA, processing instructions, declarations', () => {
  it.each([
    ['a comment', '<!-- <DEVICEID>evil</DEVICEID> -->', /comments are not accepted/],
    ['"<!-->" (not a whole comment)', '<!--><DEVICEID>evil</DEVICEID>-->', /comments are not accepted/],
    ['a CDATA section', '<DEVICEID><![CDATA[d]]></DEVICEID>', /CDATA sections are not accepted/],
    ['a processing instruction', '<?pi <DEVICEID>evil</DEVICEID> ?>', /processing instructions/],
    ['a second XML declaration', '<?xml version="1.0"?>', /processing instructions/],
    ['a DOCTYPE', '<!DOCTYPE REQUEST>', /DOCTYPE/],
  ])('refuses %s', (_label, construct, message) => {
    refused(request(`${construct}<DEVICEID>real</DEVICEID>`), message);
  });

  it('accepts the XML declaration only at the very start, in the forms agents send', () => {
    readsLikeFullParse('<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>d</DEVICEID></REQUEST>');
    readsLikeFullParse("<?xml version='1.0' standalone='yes'?><REQUEST><DEVICEID>d</DEVICEID></REQUEST>");
    readsLikeFullParse('<REQUEST><DEVICEID>d</DEVICEID></REQUEST>');
    refused(' <?xml version="1.0"?><REQUEST/>', /processing instructions/);
    refused('<?xml version="1.1"?><REQUEST/>', /XML declaration/);
    refused('<?xml-stylesheet href="x"?><REQUEST/>', /XML declaration/);
  });

  it("refuses ']]>' in text", () => {
    refused(request('<DEVICEID>a]]>b</DEVICEID>'), /]]>/);
  });
});

describe('white space inside tags and self-closing elements', () => {
  it('reads them as any parser does', () => {
    const req = readsLikeFullParse(
      request(
        '<DEVICEID\n>d-1</DEVICEID\t><QUERY >INVENTORY</QUERY >',
        '<BIOS /><HARDWARE\r\n><NAME>h</NAME></HARDWARE>',
      ),
    );
    expect(req).toMatchObject({ deviceid: 'd-1', query: 'INVENTORY', identity: { BIOS: '', HARDWARE: { NAME: 'h' } } });
  });

  it.each([
    ['before a name', '< DEVICEID>d</DEVICEID>', /empty tag name/],
    ['before an end-tag name', '<DEVICEID>d</ DEVICEID>', /empty tag name/],
    ['between / and >', '<TOKEN/ ><DEVICEID>d</DEVICEID>', /unexpected character/],
    ['a / in an end tag', '<DEVICEID>d</DEVICEID/>', /unexpected character/],
  ])('refuses white space or a slash where XML allows none: %s', (_label, inner, message) => {
    refused(request(inner), message);
  });
});

describe('entity and character references', () => {
  it('decodes the predefined entities and character references', () => {
    const req = readsLikeFullParse(
      request('<DEVICEID>d</DEVICEID>', '<BIOS><SMANUFACTURER>A &amp; B &lt;&gt; &#233;&#xE9;</SMANUFACTURER></BIOS>'),
    );
    expect(req.identity).toEqual({ BIOS: { SMANUFACTURER: 'A & B <> éé' } });
  });

  it.each([
    ['an HTML entity XML does not define', '&nbsp;'],
    ['an undefined entity', '&foo;'],
    ['a bare &', 'a & b'],
    ['a reference to NUL', '&#0;'],
    ['a reference to a surrogate', '&#xD800;'],
    ['a reference past U+10FFFF', '&#x110000;'],
  ])('refuses %s', (_label, value) => {
    refused(request(`<DEVICEID>d${value}</DEVICEID>`));
  });
});

describe('names and mixed content', () => {
  it.each([
    ['a namespace prefix', '<A:B>x</A:B>', /unexpected character/],
    ['a non-ASCII name', '<NAMÉ>x</NAMÉ>', /unexpected character/],
    ['a digit first', '<1A>x</1A>', /element names/],
  ])('refuses %s', (_label, element, message) => {
    refused(request('<DEVICEID>d</DEVICEID>', `${HW}<SOFTWARES>${element}</SOFTWARES>`), message);
  });

  it('refuses text beside elements (each parser keeps a different part of it)', () => {
    refused(request('<DEVICEID>a<X/>b</DEVICEID>'), /mixes text and elements/);
    refused(request('<DEVICEID>d</DEVICEID>', '<HARDWARE>junk<NAME>h</NAME></HARDWARE>'), /mixes/);
    refused(request('junk<DEVICEID>d</DEVICEID>'), /mixes/);
  });

  it('keeps lower-case names in sections the gateway does not read', () => {
    readsLikeFullParse(request('<DEVICEID>d</DEVICEID>', `${HW}<SOFTWARES><name>x</name><NAME>y</NAME></SOFTWARES>`));
  });
});

describe('decoys at other depths', () => {
  it('reads a DEVICEID, QUERY or HARDWARE at another depth as the full parse does: not at all', () => {
    const req = readsLikeFullParse(
      request(
        '<DEVICEID>real</DEVICEID><QUERY>INVENTORY</QUERY>',
        `<DEVICEID>evil</DEVICEID><QUERY>PROLOG</QUERY>${HW}<SOFTWARES><HARDWARE><NAME>evil</NAME></HARDWARE></SOFTWARES>`,
      ),
    );
    expect(req).toMatchObject({ deviceid: 'real', query: 'INVENTORY', identity: { HARDWARE: { NAME: 'real' } } });
  });

  it.each([
    ['a second DEVICEID', '<DEVICEID>evil</DEVICEID><DEVICEID>real</DEVICEID>', HW, /more than one <DEVICEID>/],
    ['a second QUERY', '<QUERY>PROLOG</QUERY><DEVICEID>d</DEVICEID><QUERY>INVENTORY</QUERY>', HW, /<QUERY>/],
    ['a second CONTENT', `<CONTENT>${HW}</CONTENT><DEVICEID>d</DEVICEID>`, HW, /more than one <CONTENT>/],
    ['a second HARDWARE', '<DEVICEID>d</DEVICEID>', `${HW}${HW}`, /more than one <HARDWARE>/],
    ['a second BIOS', '<DEVICEID>d</DEVICEID>', '<BIOS><SSN>1</SSN></BIOS><BIOS><SSN>2</SSN></BIOS>', /<BIOS>/],
    ['a second ACCOUNTINFO', '<DEVICEID>d</DEVICEID>', '<ACCOUNTINFO/><ACCOUNTINFO/>', /<ACCOUNTINFO>/],
    ['a lower-case identity section', '<DEVICEID>d</DEVICEID>', `${HW}<hardware><name>e</name></hardware>`, /HARDWARE/],
    [
      'a lower-case name in HARDWARE',
      '<DEVICEID>d</DEVICEID>',
      '<HARDWARE><NAME>r</NAME><name>e</name></HARDWARE>',
      /NAME/,
    ],
    [
      'two spellings of one section (the view and GLPI read one)',
      '<DEVICEID>d</DEVICEID>',
      `${HW}<SOFTWARES><NAME>a</NAME></SOFTWARES><softwares><name>b</name></softwares>`,
      /<softwares> beside <SOFTWARES>/,
    ],
    [
      'two spellings of one section, neither in upper case',
      '<DEVICEID>d</DEVICEID>',
      `${HW}<Envs><KEY>a</KEY></Envs><envs><KEY>b</KEY></envs>`,
      /<envs> beside <Envs>/,
    ],
    ['a repeated UUID', '<DEVICEID>d</DEVICEID>', '<HARDWARE><UUID>1</UUID><UUID>2</UUID></HARDWARE>', /<UUID>/],
    ['a TAG under REQUEST (GLPI prefers it to ACCOUNTINFO)', '<TAG>evil</TAG><DEVICEID>d</DEVICEID>', HW, /<TAG>/],
    [
      'an ACTION under REQUEST (GLPI prefers it to QUERY)',
      '<ACTION>inventory</ACTION><DEVICEID>d</DEVICEID>',
      HW,
      /<ACTION>/,
    ],
    ['a DEVICEID holding elements', '<DEVICEID><X>d</X></DEVICEID>', HW, /text only/],
    ['a QUERY holding elements', '<QUERY><X>PROLOG</X></QUERY><DEVICEID>d</DEVICEID>', HW, /text only/],
    [
      'a MAC beside MACADDR (GLPI reads MAC, the gateway MACADDR)',
      '<DEVICEID>d</DEVICEID>',
      '<NETWORKS><MAC>66:66:66:00:00:01</MAC><MACADDR>3c:52:82:11:4e:0a</MACADDR></NETWORKS>',
      /<MAC>/,
    ],
  ])('refuses %s', (_label, inner, content, message) => {
    refused(request(inner, content), message);
  });

  it('refuses a second root element', () => {
    refused(
      `${request('<DEVICEID>real</DEVICEID>')}<REQUEST><DEVICEID>evil</DEVICEID></REQUEST>`,
      /more than one root/,
    );
  });

  it('still accepts NETWORKS and list sections repeated, and the real captures', () => {
    const req = readsLikeFullParse(textOf('fusioninventory-tag', '0002-post-inventory.json'));
    expect(req.identity.NETWORKS).toHaveLength(7);
    expect(parseXmlMessage(textOf('fusioninventory-tag', '0002-post-inventory.json')).identity?.tag).toBe(
      'acceptance-tag',
    );
  });
});
