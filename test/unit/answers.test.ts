import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  DISABLED_TASKS,
  XML_DECLARATION,
  encodeAnswer,
  errorBody,
  getConfigAnswer,
  jsonContact,
  jsonError,
  jsonOk,
  xmlAck,
  xmlError,
  xmlProlog,
} from '../../src/protocol/answers.js';
import { parseXmlDocument, readXmlRequest } from '../../src/protocol/xml.js';
import { loadScenario } from '../helpers/fixtures.js';

/** XML with the white space between tags removed. */
function squeeze(xml: string): string {
  return xml.replace(/>\s+</g, '><').trim();
}

// PROTOCOL.md §3.1 / fixtures answer A1 and A2.
const PROTOCOL_A1 =
  '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><PROLOG_FREQ>24</PROLOG_FREQ><RESPONSE>SEND</RESPONSE></REPLY>';
const PROTOCOL_A2 = '<?xml version="1.0" encoding="UTF-8"?> <REPLY><RESPONSE>SEND</RESPONSE></REPLY>';

describe('encodeAnswer', () => {
  const text = xmlProlog(24, true);

  it('zlib: default-level stream (78 9C) and exactly application/x-compress-zlib', () => {
    const out = encodeAnswer(text, 'xml', 'zlib');
    expect(out.contentType).toBe('application/x-compress-zlib');
    expect([...out.body.subarray(0, 2)]).toEqual([0x78, 0x9c]);
    expect(zlib.inflateSync(out.body).toString('utf8')).toBe(text);
  });

  it('zlib for JSON answers too (the GLPI agent matches the type exactly, no parameters)', () => {
    const out = encodeAnswer(jsonOk(24), 'json', 'zlib');
    expect(out.contentType).toBe('application/x-compress-zlib');
    expect(out.body[0]).toBe(0x78);
    expect(out.body[1]).toBe(0x9c);
    expect(JSON.parse(zlib.inflateSync(out.body).toString('utf8'))).toEqual({ status: 'ok', expiration: 24 });
  });

  it('a raw-deflate request is answered with zlib, never raw deflate', () => {
    const out = encodeAnswer(text, 'xml', 'deflate');
    expect(out.contentType).toBe('application/x-compress-zlib');
    expect([...out.body.subarray(0, 2)]).toEqual([0x78, 0x9c]);
  });

  it('gzip: 1F 8B and application/x-compress-gzip', () => {
    const out = encodeAnswer(text, 'xml', 'gzip');
    expect(out.contentType).toBe('application/x-compress-gzip');
    expect([...out.body.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    expect(zlib.gunzipSync(out.body).toString('utf8')).toBe(text);
  });

  it('plain: application/json or application/xml, body as UTF-8', () => {
    expect(encodeAnswer('{"a":"é"}', 'json', 'none')).toEqual({
      body: Buffer.from('{"a":"é"}', 'utf8'),
      contentType: 'application/json',
    });
    expect(encodeAnswer(text, 'xml', 'none')).toEqual({
      body: Buffer.from(text, 'utf8'),
      contentType: 'application/xml',
    });
  });

  it('no Content-Type carries a parameter', () => {
    for (const c of ['zlib', 'gzip', 'deflate', 'none'] as const) {
      for (const f of ['xml', 'json'] as const) expect(encodeAnswer('x', f, c).contentType).not.toContain(';');
    }
  });

  it('matches the Content-Type of the answers that kept the real agents happy', () => {
    for (const r of loadScenario('fusioninventory-plain')) {
      const captured = r.response.headers.find(([k]) => k.toLowerCase() === 'content-type')![1];
      expect(encodeAnswer(r.response.decoded_text, 'xml', r.compression).contentType).toBe(captured);
    }
  });
});

describe('XML answers', () => {
  it('xmlProlog(24, true) is the PROTOCOL A1 answer', () => {
    expect(squeeze(xmlProlog(24, true))).toBe(squeeze(PROTOCOL_A1));
    // ... and byte for byte what the capture server answered to the real FusionInventory PROLOG
    expect(xmlProlog(24, true)).toBe(loadScenario('fusioninventory-plain')[0]!.response.decoded_text);
  });

  it('xmlProlog(2, false) sets PROLOG_FREQ and has no RESPONSE (the agent skips its inventory)', () => {
    const out = xmlProlog(2, false);
    expect(out).toContain('<PROLOG_FREQ>2</PROLOG_FREQ>');
    expect(out).not.toContain('RESPONSE');
    expect(squeeze(out)).toBe(squeeze(`${XML_DECLARATION}<REPLY><PROLOG_FREQ>2</PROLOG_FREQ></REPLY>`));
  });

  it('xmlAck is the PROTOCOL A2 answer', () => {
    expect(squeeze(xmlAck())).toBe(squeeze(PROTOCOL_A2));
  });

  it('answers start with the XML declaration and parse with a REPLY root', () => {
    for (const xml of [xmlProlog(24, true), xmlProlog(1, false), xmlAck(), xmlError('x')]) {
      expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
      expect(readXmlRequest(xml).root).toBe('REPLY');
    }
  });

  it('xmlError escapes < & >', () => {
    const message = `bad <tag> & "quote" 'x'`;
    const out = xmlError(message);
    expect(out).toContain('<ERROR>bad &lt;tag&gt; &amp; ');
    expect(out).not.toContain('<tag>');
    expect(out).not.toMatch(/& "/);
    expect((parseXmlDocument(out).REPLY as Record<string, unknown>).ERROR).toBe(message);
  });

  it('xmlError cannot be used to inject elements', () => {
    const out = xmlError('</ERROR><RESPONSE>SEND</RESPONSE><ERROR>');
    expect(out).not.toContain('<RESPONSE>');
    expect(Object.keys(parseXmlDocument(out).REPLY as object)).toEqual(['ERROR']);
  });
});

/** A GLPI Agent CONTACT answer, as the agent reads it. */
interface ContactAnswer {
  status: string;
  expiration: number | string;
  message?: string;
  tasks: { inventory: { server: string; version: string } };
  disabled: string[];
}
const contactOf = (text: string) => JSON.parse(text) as ContactAnswer;

describe('JSON answers', () => {
  it('jsonOk', () => {
    expect(JSON.parse(jsonOk(24))).toEqual({ status: 'ok', expiration: 24 });
  });

  it('jsonContact with inventory: tasks.inventory has server and a non-empty version; inventory not disabled', () => {
    const a = contactOf(jsonContact(24, { inventory: true }));
    expect(a.status).toBe('ok');
    expect(a.expiration).toBe(24);
    expect(typeof a.tasks.inventory.server).toBe('string');
    expect(a.tasks.inventory.server).not.toBe('');
    expect(a.tasks.inventory.server).not.toBe('glpiinventory'); // would trigger an extra legacy PROLOG
    expect(typeof a.tasks.inventory.version).toBe('string');
    expect(a.tasks.inventory.version.length).toBeGreaterThan(0);
    expect(a.tasks.inventory).not.toHaveProperty('params'); // would trigger get_params requests
    expect(Array.isArray(a.disabled)).toBe(true);
    expect(a.disabled).not.toContain('inventory');
    for (const task of ['collect', 'deploy', 'esx', 'netdiscovery', 'netinventory', 'wakeonlan'])
      expect(a.disabled).toContain(task);
    expect(a).not.toHaveProperty('message');
  });

  it('jsonContact without inventory disables inventory too', () => {
    const a = contactOf(jsonContact('2h', { inventory: false }));
    expect(a.status).toBe('ok');
    expect(a.expiration).toBe('2h');
    expect(a.disabled).toContain('inventory');
    expect(a.disabled).toEqual(['inventory', ...DISABLED_TASKS]);
    // tasks.inventory stays: without it the GLPI Agent would send an extra legacy PROLOG (PROTOCOL §3.3).
    expect(a.tasks.inventory).toEqual({ server: 'glpi', version: expect.stringMatching(/.+/) as string });
  });

  it('jsonContact passes an optional message', () => {
    expect(contactOf(jsonContact(24, { inventory: true, message: 'hello' })).message).toBe('hello');
  });

  it('jsonError carries status error, the message and an expiration', () => {
    expect(JSON.parse(jsonError('Authorization required', 24))).toEqual({
      status: 'error',
      message: 'Authorization required',
      expiration: 24,
    });
    expect((JSON.parse(jsonError('with "quotes" and \\', 1)) as { message: string }).message).toBe(
      'with "quotes" and \\',
    );
  });

  it('errorBody picks the agent protocol', () => {
    expect(JSON.parse(errorBody('json', 'nope', 24))).toEqual({ status: 'error', message: 'nope', expiration: 24 });
    expect(errorBody('xml', 'nope', 24)).toBe(xmlError('nope'));
  });

  it('getConfigAnswer is the quiet "no job" answer', () => {
    expect(JSON.parse(getConfigAnswer())).toEqual({ configValidityPeriod: 600, schedule: [] });
  });
});
