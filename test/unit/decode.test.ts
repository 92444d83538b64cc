import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  detectCompression,
  inflateBody,
  jsonText,
  mediaType,
  sniffFormat,
  xmlText,
} from '../../src/protocol/decode.js';
import { SCENARIOS, bodyOf, loadScenario } from '../helpers/fixtures.js';
import { appErrorOf, appErrorOfAsync } from './app-error.js';

const XML = Buffer.from('<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><QUERY>PROLOG</QUERY></REQUEST>\n');
const JSON_BODY = Buffer.from('{"action":"contact","deviceid":"x"}');
const ZLIB = zlib.deflateSync(XML);
const GZIP = zlib.gzipSync(XML);
const RAW_DEFLATE = zlib.deflateRawSync(XML);

const everyBody = SCENARIOS.flatMap((s) =>
  loadScenario(s)
    .filter((r) => r.body_size > 0)
    .map((r) => ({ name: `${s}/${r.file}`, r })),
);

describe('mediaType', () => {
  it('drops parameters, trims and lower-cases', () => {
    expect(mediaType('Application/X-Compress-Zlib ; charset=utf-8')).toBe('application/x-compress-zlib');
    expect(mediaType('  application/json')).toBe('application/json');
  });

  it('is empty for a missing header', () => {
    expect(mediaType(undefined)).toBe('');
  });
});

describe('detectCompression', () => {
  it('zlib label + zlib bytes → zlib', () => {
    expect(ZLIB[0]).toBe(0x78);
    expect(detectCompression('application/x-compress-zlib', ZLIB)).toBe('zlib');
  });

  it('accepts the glpi-injector capital-A label', () => {
    expect(detectCompression('Application/x-compress-zlib', ZLIB)).toBe('zlib');
  });

  it('ignores media-type parameters', () => {
    expect(detectCompression('application/x-compress-zlib; charset=utf-8', ZLIB)).toBe('zlib');
    expect(detectCompression('application/x-compress-gzip;q=1', GZIP)).toBe('gzip');
  });

  it('gzip label + gzip bytes → gzip', () => {
    expect(detectCompression('application/x-compress-gzip', GZIP)).toBe('gzip');
  });

  it('zlib label on plain XML or JSON → none', () => {
    expect(detectCompression('application/x-compress-zlib', XML)).toBe('none');
    expect(detectCompression('application/x-compress-zlib', JSON_BODY)).toBe('none');
  });

  it('gzip label on plain XML → none', () => {
    expect(detectCompression('application/x-compress-gzip', XML)).toBe('none');
  });

  it('wrong compression label: the bytes win', () => {
    expect(detectCompression('application/x-compress-zlib', GZIP)).toBe('gzip');
    expect(detectCompression('application/x-compress-gzip', ZLIB)).toBe('zlib');
  });

  it('unknown or missing label: sniffs zlib and gzip magic', () => {
    expect(detectCompression('application/octet-stream', ZLIB)).toBe('zlib');
    expect(detectCompression(undefined, ZLIB)).toBe('zlib');
    expect(detectCompression('application/xml', GZIP)).toBe('gzip');
    expect(detectCompression('text/plain', zlib.deflateSync(XML, { level: 9 }))).toBe('zlib');
  });

  it('plain labels on plain bodies → none', () => {
    expect(detectCompression('application/xml', XML)).toBe('none');
    expect(detectCompression('application/json', JSON_BODY)).toBe('none');
    expect(detectCompression(undefined, XML)).toBe('none');
  });

  it('x-compress-deflate: raw deflate → deflate, a zlib stream → zlib', () => {
    expect(detectCompression('application/x-compress-deflate', RAW_DEFLATE)).toBe('deflate');
    expect(detectCompression('application/x-compress-deflate', ZLIB)).toBe('zlib');
  });

  it('an empty body (pending poll GET labelled zlib) → none', () => {
    expect(detectCompression('application/x-compress-zlib', Buffer.alloc(0))).toBe('none');
    expect(detectCompression('application/x-compress-zlib', Buffer.from([0x78]))).toBe('none');
  });

  it.each(everyBody)('agrees with the capture for $name', ({ r }) => {
    expect(detectCompression(r.content_type ?? undefined, bodyOf(r))).toBe(r.compression);
  });
});

describe('inflateBody', () => {
  it.each(everyBody)('round-trips $name to exactly decoded_text', async ({ r }) => {
    const body = bodyOf(r);
    const out = await inflateBody(body, detectCompression(r.content_type ?? undefined, body), 64 * 1024 * 1024);
    expect(out.length).toBe(r.decoded_size);
    expect(out.toString('utf8')).toBe(r.decoded_text);
  });

  it('inflates gzip and raw deflate', async () => {
    expect((await inflateBody(GZIP, 'gzip', 1 << 20)).equals(XML)).toBe(true);
    expect((await inflateBody(RAW_DEFLATE, 'deflate', 1 << 20)).equals(XML)).toBe(true);
  });

  it('returns a plain body untouched', async () => {
    expect(await inflateBody(XML, 'none', 1 << 20)).toBe(XML);
  });

  it('accepts output of exactly the limit, refuses one byte more', async () => {
    await expect(inflateBody(ZLIB, 'zlib', XML.length)).resolves.toHaveLength(XML.length);
    const err = await appErrorOfAsync(inflateBody(ZLIB, 'zlib', XML.length - 1));
    expect(err.code).toBe('payload_too_large');
    expect(err.status).toBe(413);
  });

  it('stops a zip bomb (50 MB of zeros) at a 1 MB limit with payload_too_large', async () => {
    const bomb = zlib.deflateSync(Buffer.alloc(50 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100 * 1024);
    const err = await appErrorOfAsync(inflateBody(bomb, 'zlib', 1024 * 1024));
    expect(err.code).toBe('payload_too_large');
    expect(err.details).toEqual({ limit: 1024 * 1024 });
  });

  it('stops a gzip bomb too', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024));
    expect((await appErrorOfAsync(inflateBody(bomb, 'gzip', 1024 * 1024))).code).toBe('payload_too_large');
  });

  it('a small body that decodes past the inline cap (1 MB) is streamed: every byte, charged, under the limit', async () => {
    const text = Buffer.from('<SOFTWARES><NAME>x</NAME></SOFTWARES>'.repeat(100_000)); // ~3.6 MB
    const body = zlib.deflateSync(text);
    expect(body.length).toBeLessThan(64 * 1024);
    let charged = 0;
    const out = await inflateBody(body, 'zlib', 8 << 20, (n) => void (charged += n));
    expect(out.equals(text)).toBe(true);
    expect(charged).toBe(text.length);
    expect((await appErrorOfAsync(inflateBody(body, 'zlib', 2 << 20))).code).toBe('payload_too_large');
    const trailing = Buffer.concat([body, Buffer.from('<REQUEST/>')]);
    expect((await appErrorOfAsync(inflateBody(trailing, 'zlib', 8 << 20))).publicMessage).toBe(
      'Invalid zlib body: data after the end of the compressed stream',
    );
  });

  it('refuses a plain body over the limit', async () => {
    expect((await appErrorOfAsync(inflateBody(XML, 'none', XML.length - 1))).code).toBe('payload_too_large');
  });

  it('a truncated zlib stream is a bad_request', async () => {
    const big = zlib.deflateSync(Buffer.from('<REQUEST>'.repeat(1000)));
    const err = await appErrorOfAsync(inflateBody(big.subarray(0, big.length - 10), 'zlib', 1 << 20));
    expect(err.code).toBe('bad_request');
    expect(err.status).toBe(400);
  });

  it('a corrupt stream is a bad_request', async () => {
    const corrupt = Buffer.from(ZLIB);
    corrupt.fill(0xff, 2, 12);
    expect((await appErrorOfAsync(inflateBody(corrupt, 'zlib', 1 << 20))).code).toBe('bad_request');
    expect((await appErrorOfAsync(inflateBody(XML, 'gzip', 1 << 20))).code).toBe('bad_request');
  });
});

describe('sniffFormat', () => {
  it('recognises XML and JSON by the first byte', () => {
    expect(sniffFormat(XML)).toBe('xml');
    expect(sniffFormat(JSON_BODY)).toBe('json');
  });

  it('skips a UTF-8 BOM and leading white space', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    expect(sniffFormat(Buffer.concat([bom, Buffer.from(' \r\n\t<REQUEST/>')]))).toBe('xml');
    expect(sniffFormat(Buffer.concat([bom, Buffer.from('{}')]))).toBe('json');
    expect(sniffFormat(Buffer.from('\n\n   {"a":1}'))).toBe('json');
  });

  it('anything else is unknown', () => {
    expect(sniffFormat(Buffer.alloc(0))).toBe('unknown');
    expect(sniffFormat(Buffer.from('   '))).toBe('unknown');
    expect(sniffFormat(Buffer.from('hello <REQUEST/>'))).toBe('unknown');
    expect(sniffFormat(Buffer.from('[{"action":"contact"}]'))).toBe('unknown');
    expect(sniffFormat(ZLIB)).toBe('unknown');
  });
});

describe('xmlText', () => {
  it('decodes valid UTF-8 and strips the BOM', () => {
    const out = xmlText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<NAME>café</NAME>', 'utf8')]));
    expect(out).toEqual({ text: '<NAME>café</NAME>', encoding: 'utf-8' });
  });

  it('falls back to ISO-8859-1 for invalid UTF-8 and keeps é', () => {
    const body = Buffer.concat([Buffer.from('<NAME>caf'), Buffer.from([0xe9]), Buffer.from('</NAME>')]);
    const out = xmlText(body);
    expect(out.encoding).toBe('latin1');
    expect(out.text).toBe('<NAME>café</NAME>');
    expect(out.text).not.toContain('\ufffd');
  });
});

describe('jsonText', () => {
  it('decodes UTF-8 and strips the BOM', () => {
    const text = jsonText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"name":"café"}', 'utf8')]));
    expect(text).toBe('{"name":"café"}');
    expect(JSON.parse(text)).toEqual({ name: 'café' });
  });

  it('refuses invalid UTF-8 with bad_request', () => {
    const body = Buffer.concat([Buffer.from('{"name":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]);
    expect(appErrorOf(() => jsonText(body)).code).toBe('bad_request');
  });
});

describe('one compressed stream, ending where the body ends', () => {
  const xml = Buffer.from('<?xml version="1.0"?><REQUEST><QUERY>PROLOG</QUERY></REQUEST>');
  it.each([
    ['zlib', zlib.deflateSync(xml)],
    ['gzip', zlib.gzipSync(xml)],
    ['deflate', zlib.deflateRawSync(xml)],
  ] as const)('%s: a clean stream inflates', async (compression, body) => {
    expect(await inflateBody(body, compression, 1 << 20)).toEqual(xml);
  });

  it.each([
    ['zlib, bytes after the stream', 'zlib', Buffer.concat([zlib.deflateSync(xml), Buffer.from('<REQUEST/>')])],
    ['gzip, a second member', 'gzip', Buffer.concat([zlib.gzipSync(Buffer.alloc(0)), zlib.gzipSync(xml)])],
    ['gzip, two members of text', 'gzip', Buffer.concat([zlib.gzipSync(xml), zlib.gzipSync(xml)])],
    ['deflate, bytes after the stream', 'deflate', Buffer.concat([zlib.deflateRawSync(xml), Buffer.from('x')])],
  ] as const)('%s: refused with a 400', async (_what, compression, body) => {
    await expect(inflateBody(body, compression, 1 << 20)).rejects.toMatchObject({
      status: 400,
      publicMessage: `Invalid ${compression} body: data after the end of the compressed stream`,
    });
  });
});
