/**
 * The bad-input corpus: hostile, broken and odd requests an agent endpoint meets on the open network. Each
 * refusal must carry the exact status, an error body in the agent's own format (XML REPLY/ERROR or JSON
 * status:error), compressed like the request, free of stack traces and internal detail, and must leave
 * devices, submissions and inventories untouched — the only row allowed is the recorded refusal. Odd but
 * valid input must be accepted and stored as data, never interpreted. Socket-level cases (slow senders,
 * chunked uploads, duplicated headers, HTTP framing) are in bad-input-socket.test.ts.
 *
 * Where the gateway's behaviour is a choice rather than a refusal, the test states which: see "accepted".
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentResponse, type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

const FI_UA = 'FusionInventory-Agent_v2.6-3';
const GA_UA = 'GLPI-Agent_v1.12';
const AGENT_ID = '230e6828-e6aa-11f1-b2a9-c0323454743c';
const ZLIB = 'application/x-compress-zlib';
const GZIP = 'application/x-compress-gzip';

const FI_ZLIB = { 'Content-Type': ZLIB, 'User-Agent': FI_UA };
const FI_XML = { 'Content-Type': 'application/xml', 'User-Agent': FI_UA };
const GA_ZLIB = { 'Content-Type': ZLIB, 'User-Agent': GA_UA, 'GLPI-Agent-ID': AGENT_ID };
const GA_JSON = { 'Content-Type': 'application/json', 'User-Agent': GA_UA, 'GLPI-Agent-ID': AGENT_ID };

const INFLATE_LIMIT = 16 * 1024 * 1024;

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off', BODY_LIMIT: '1mb', INFLATE_LIMIT: '16mb' });
  await ctx.deps.parser.warm(); // bodies over 1 MB decoded are parsed in a worker: start it before the clock runs
});
afterAll(async () => {
  await ctx?.close();
});

// ---------------------------------------------------------------------------------------------------------
// Messages

const fiInventory = textOf('fusioninventory-plain', '0002-post-inventory.json');
const gaPartial = textOf('glpi-second-run', '0007-post-inventory.json');

function xmlProlog(deviceid: string): string {
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>\n  <DEVICEID>${deviceid}</DEVICEID>\n  <QUERY>PROLOG</QUERY>\n  <TOKEN>12345678</TOKEN>\n</REQUEST>\n`;
}
function xmlInventory(deviceid: string, content = ''): string {
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><CONTENT>${content}<VERSIONCLIENT>${FI_UA}</VERSIONCLIENT></CONTENT><DEVICEID>${deviceid}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>\n`;
}
function jsonInventory(
  deviceid: string,
  content: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    action: 'inventory',
    content: { versionclient: GA_UA, ...content },
    deviceid,
    itemtype: 'Computer',
    ...extra,
  });
}
/** A JSON inventory whose text is assembled by hand (escapes and structures JSON.stringify would not write). */
function jsonInventoryText(deviceid: string, contentBody: string, partial = true): string {
  return `{"action":"inventory","content":{"hardware":{"name":"h"},"versionclient":"${GA_UA}"${contentBody ? `,${contentBody}` : ''}},"deviceid":"${deviceid}","itemtype":"Computer","partial":${partial}}`;
}
const z = (s: string | Buffer) => zlib.deflateSync(s);
const gz = (s: string | Buffer) => zlib.gzipSync(s);

/** 1 MiB buffers of spaces streamed through the compressor: a bomb of any size without allocating it. */
async function bomb(kind: 'zlib' | 'gzip', mib: number, head: string): Promise<Buffer> {
  const stream = kind === 'zlib' ? zlib.createDeflate({ level: 9 }) : zlib.createGzip({ level: 9 });
  const out: Buffer[] = [];
  stream.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((resolve) => stream.on('end', resolve));
  const filler = Buffer.alloc(1 << 20, 0x20);
  stream.write(head);
  for (let i = 0; i < mib; i++)
    if (!stream.write(filler)) await new Promise((resolve) => stream.once('drain', resolve));
  stream.end();
  await done;
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------------------
// What every refusal must look like

type Format = 'xml' | 'json';
type Compression = 'zlib' | 'gzip' | 'none';

interface Refusal {
  status: number;
  format: Format;
  /** How the answer is encoded: like the request when it was compressed. */
  compression: Compression;
  /** The public message (matched against the decoded, unescaped text). */
  message: RegExp;
  /** A refusal row is written in registrations (false for 401/404/405: nothing reached the protocol layer). */
  recorded?: boolean;
}

interface Req {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

/** Anything that would tell an outsider how the gateway is built. */
const INTERNAL_DETAIL =
  /\n\s+at |\bat \S+ \(|:\d+:\d+\)|\.(?:ts|js|mjs|cjs)\b|node_modules|[A-Z][a-z]+Error\b|\[SECURITY\]|JavaScript|reserved|postgres|\bSELECT\b|\binsert into\b|ECONN|errno|stack/;

interface Snapshot {
  devices: number;
  submissions: number;
  inventories: number;
  registrations: number;
  maxRegistration: number;
  devicesHash: string;
  submissionsHash: string;
  inventoriesHash: string;
  registrationsHash: string;
}

/** Row counts plus a digest of every row: "no row changed" means no insert, no update, no delete. */
async function snapshot(sql: TestContext['sql'], upTo?: number): Promise<Snapshot> {
  const [s] = await sql<Snapshot[]>`
    with m as (select coalesce(max(id), 0)::int as max from registrations)
    select (select count(*)::int from devices) as devices,
           (select count(*)::int from submissions) as submissions,
           (select count(*)::int from inventories) as inventories,
           (select count(*)::int from registrations) as registrations,
           (select max from m) as "maxRegistration",
           (select md5(coalesce(string_agg(d::text, '|' order by d.id), '')) from devices d) as "devicesHash",
           (select md5(coalesce(string_agg(concat_ws(',', s.id, s.device_id, s.registration_id, s.kind, s.format, s.compression,
                   s.partial, s.decoded_size, md5(s.body)), '|' order by s.id), '')) from submissions s) as "submissionsHash",
           (select md5(coalesce(string_agg(i::text, '|' order by i.device_id), '')) from inventories i) as "inventoriesHash",
           (select md5(coalesce(string_agg(r::text, '|' order by r.id), '')) from registrations r
             where r.id <= coalesce(${upTo ?? null}::int, (select max from m))) as "registrationsHash"`;
  return s!;
}

function contentTypeOf(format: Format, compression: Compression): string {
  if (compression === 'zlib') return ZLIB;
  if (compression === 'gzip') return GZIP;
  return format === 'json' ? 'application/json' : 'application/xml';
}

const XML_ERROR = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<REPLY><ERROR>([^<]*)<\/ERROR><\/REPLY>\n$/;

/** The public message of an error body in the agent's format; fails when the body is not in that format. */
function errorMessage(res: AgentResponse, format: Format): string {
  if (format === 'xml') {
    const m = XML_ERROR.exec(res.text);
    expect(m, `not an XML REPLY/ERROR: ${res.text.slice(0, 200)}`).not.toBeNull();
    return m![1]!.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  }
  const body = JSON.parse(res.text) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['expiration', 'message', 'status']);
  expect(body.status).toBe('error');
  expect(body.expiration).toBe(24);
  expect(typeof body.message).toBe('string');
  return body.message as string;
}

function expectAgentError(res: AgentResponse, r: Refusal): void {
  expect(res.status).toBe(r.status);
  expect(res.headers['content-type']).toBe(contentTypeOf(r.format, r.compression));
  if (r.compression === 'zlib') expect(res.raw.subarray(0, 2).toString('hex')).toBe('789c');
  if (r.compression === 'gzip') expect(res.raw.subarray(0, 2).toString('hex')).toBe('1f8b');
  expect(res.headers['cache-control']).toBe('no-cache, no-store');
  const message = errorMessage(res, r.format);
  expect(message).toMatch(r.message);
  expect(message.length).toBeLessThanOrEqual(250);
  expect(res.text).not.toMatch(INTERNAL_DETAIL);
}

/** Sends, then checks the answer and that nothing but the refusal row was written. */
async function expectRefused(req: Req, r: Refusal, c: TestContext = ctx): Promise<AgentResponse> {
  const before = await snapshot(c.sql);
  const res = await send(c.app, {
    method: req.method ?? 'POST',
    path: req.path ?? '/',
    headers: req.headers,
    body: req.body,
  });
  expectAgentError(res, r);
  await expectOnlyRefusalWritten(c, before, r.recorded === false ? null : r.status);
  return res;
}

async function expectOnlyRefusalWritten(
  c: TestContext,
  before: Snapshot,
  recordedStatus: number | null,
): Promise<void> {
  const after = await snapshot(c.sql, before.maxRegistration);
  const tables = (s: Snapshot) => ({
    devices: s.devices,
    submissions: s.submissions,
    inventories: s.inventories,
    devicesHash: s.devicesHash,
    submissionsHash: s.submissionsHash,
    inventoriesHash: s.inventoriesHash,
    registrationsHash: s.registrationsHash,
  });
  expect(tables(after)).toEqual(tables(before));
  expect(after.registrations).toBe(before.registrations + (recordedStatus === null ? 0 : 1));
  if (recordedStatus !== null) {
    const [reg] = await c.sql<{ status: number; outcome: string; deviceId: number | null }[]>`
      select status, outcome, device_id as "deviceId" from registrations order by id desc limit 1`;
    expect(reg).toEqual({
      status: recordedStatus,
      outcome: recordedStatus >= 500 ? 'failed' : 'refused',
      deviceId: null,
    });
  }
}

const xmlZ = (status: number, message: RegExp): Refusal => ({ status, format: 'xml', compression: 'zlib', message });
const jsonZ = (status: number, message: RegExp): Refusal => ({ status, format: 'json', compression: 'zlib', message });
const jsonP = (status: number, message: RegExp): Refusal => ({ status, format: 'json', compression: 'none', message });

async function accepted(req: Req): Promise<AgentResponse> {
  const res = await send(ctx.app, {
    method: req.method ?? 'POST',
    path: req.path ?? '/',
    headers: req.headers,
    body: req.body,
  });
  expect(res.status, res.text.slice(0, 200)).toBe(200);
  expect(res.text).not.toMatch(/<ERROR>|"status":"error"/);
  return res;
}

async function device(deviceid: string) {
  const [d] = await ctx.sql<
    {
      id: number;
      name: string | null;
      uuid: string | null;
      serial: string | null;
      msn: string | null;
      assetTag: string | null;
      manufacturer: string | null;
      model: string | null;
      tag: string | null;
      macs: string[];
      agentVersion: string | null;
    }[]
  >`
    select id, name, uuid, serial, msn, asset_tag as "assetTag", manufacturer, model, tag, macs, agent_version as "agentVersion"
    from devices where deviceid = ${deviceid}`;
  return d;
}

// ---------------------------------------------------------------------------------------------------------

describe('XML: refused', () => {
  const deep = `<REQUEST><DEVICEID>deep-1</DEVICEID><QUERY>INVENTORY</QUERY><CONTENT>${'<A>'.repeat(10_000)}x${'</A>'.repeat(10_000)}</CONTENT></REQUEST>`;
  const laughs = [
    '<!ENTITY l0 "ha">',
    ...Array.from({ length: 9 }, (_, i) => `<!ENTITY l${i + 1} "${`&l${i};`.repeat(10)}">`),
  ].join('');
  const nul = (s: string) => Buffer.from(s.replace('@NUL@', '\u0000'), 'utf8');
  const table: [string, Buffer, Refusal][] = [
    [
      'internal entity used in an INVENTORY',
      z(
        `<?xml version="1.0"?><!DOCTYPE REQUEST [<!ENTITY n "injected">]>${xmlInventory('xe-1', '<HARDWARE><NAME>&n;</NAME></HARDWARE>').replace(/^<\?xml[^>]*>/, '')}`,
      ),
      xmlZ(400, /^Invalid XML: DOCTYPE and entity declarations are not accepted$/),
    ],
    [
      'external entity SYSTEM "file:///etc/passwd"',
      z(
        `<?xml version="1.0"?><!DOCTYPE REQUEST [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><REQUEST><DEVICEID>&xxe;</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
      ),
      xmlZ(400, /DOCTYPE and entity declarations are not accepted/),
    ],
    [
      'billion laughs (10^9 expansion)',
      z(
        `<?xml version="1.0"?><!DOCTYPE REQUEST [${laughs}]><REQUEST><DEVICEID>&l9;</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
      ),
      xmlZ(400, /DOCTYPE and entity declarations are not accepted/),
    ],
    [
      'parameter entities pulling an external DTD',
      z(
        `<?xml version="1.0"?><!DOCTYPE REQUEST [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/evil.dtd"> %ext;]><REQUEST><DEVICEID>pe-1</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
      ),
      xmlZ(400, /DOCTYPE and entity declarations are not accepted/),
    ],
    [
      'an external DTD subset only',
      z(
        `<?xml version="1.0"?><!DOCTYPE REQUEST SYSTEM "file:///etc/passwd"><REQUEST><DEVICEID>dtd-1</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
      ),
      xmlZ(400, /DOCTYPE and entity declarations are not accepted/),
    ],
    [
      'a lower-case <!doctype> with <!entity>',
      z(`<!doctype request [<!entity x "y">]><REQUEST><DEVICEID>dtd-2</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`),
      xmlZ(400, /DOCTYPE and entity declarations are not accepted/),
    ],
    ['10 000 nested elements', z(deep), xmlZ(400, /^Invalid XML: nesting deeper than 64$/)],
    [
      'an unterminated tag at the end',
      z('<REQUEST><DEVICEID>ut-1</DEVICEID><QUERY>PROLOG</QUERY'),
      xmlZ(400, /^Invalid XML: unterminated tag$/),
    ],
    [
      'an unterminated comment',
      z('<REQUEST><DEVICEID>ut-2</DEVICEID><QUERY>PROLOG</QUERY><!-- </REQUEST>'),
      xmlZ(400, /^Invalid XML: unterminated comment$/),
    ],
    [
      'an unterminated CDATA section',
      z('<REQUEST><DEVICEID><![CDATA[ut-3</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>'),
      xmlZ(400, /^Invalid XML: unterminated CDATA section$/),
    ],
    [
      'tags closed in another case',
      z('<REQUEST><DEVICEID>case-1</deviceid><QUERY>PROLOG</QUERY></REQUEST>'),
      xmlZ(400, /^Invalid XML: <\/deviceid> closes <DEVICEID>$/),
    ],
    [
      'a second root element',
      z(`${xmlProlog('root-1')}<REQUEST><DEVICEID>root-2</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`),
      xmlZ(400, /^Invalid XML: more than one root element$/),
    ],
    // Not well-formed XML (text outside the root): must be refused, not stored.
    [
      'text after the root element',
      z(`${xmlInventory('tail-1', '<HARDWARE><NAME>t</NAME></HARDWARE>')}trailing garbage`),
      xmlZ(400, /^Invalid XML/),
    ],
    [
      'text between the declaration and the root',
      z(`<?xml version="1.0"?>junk${xmlInventory('lead-1').replace(/^<\?xml[^>]*>/, '')}`),
      xmlZ(400, /^Invalid XML/),
    ],
    // NUL is refused with the document (XML 1.0 §2.2), before the deviceid is even read.
    [
      'a NUL byte in DEVICEID',
      z(nul(xmlProlog('nul@NUL@id'))),
      xmlZ(400, /^Invalid XML: control characters are not allowed$/),
    ],
    // NUL is not allowed anywhere in an XML document (XML 1.0 §2.2).
    [
      'a NUL byte in HARDWARE/NAME',
      z(nul(xmlInventory('nul-2', '<HARDWARE><NAME>a@NUL@b</NAME></HARDWARE>'))),
      xmlZ(400, /^Invalid XML/),
    ],
    // &#1; is not a legal character reference in XML 1.0; the parser silently drops it (deviceid "cr1x").
    [
      'a character reference to U+0001 in DEVICEID',
      z(xmlProlog('cr1&#1;x')),
      xmlZ(400, /Invalid XML|control characters/),
    ],
    [
      'an element named __proto__ in HARDWARE',
      z(xmlInventory('proto-1', '<HARDWARE><__proto__><polluted>yes</polluted></__proto__><NAME>p</NAME></HARDWARE>')),
      xmlZ(400, /^Invalid XML/),
    ],
    [
      'an element named constructor in HARDWARE',
      z(
        xmlInventory(
          'proto-2',
          '<HARDWARE><constructor><prototype><polluted>yes</polluted></prototype></constructor><NAME>c</NAME></HARDWARE>',
        ),
      ),
      xmlZ(400, /^Invalid XML/),
    ],
    [
      'an element named __proto__ under REQUEST',
      z('<REQUEST><DEVICEID>proto-3</DEVICEID><__proto__><QUERY>x</QUERY></__proto__><QUERY>PROLOG</QUERY></REQUEST>'),
      xmlZ(400, /^Invalid XML/),
    ],
    // One reading of every document (src/protocol/xml-scan.ts): no agent sends comments, CDATA or attributes,
    // and two readers disagree on them (GLPI's converter drops CDATA text; "<!-->" is not a whole comment; a
    // quoted '>' ends a tag for a naive scanner).
    [
      'comments before, inside and after the root',
      z(
        '<?xml version="1.0"?><!-- <REQUEST> --><REQUEST><!-- x --><DEVICEID>cm-<!-- y -->1</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST><!-- end -->',
      ),
      xmlZ(400, /^Invalid XML: comments are not accepted$/),
    ],
    [
      'CDATA holding markup',
      z(xmlInventory('cdata-1', '<HARDWARE><NAME><![CDATA[a<b>&c</NAME>]]></NAME></HARDWARE>')),
      xmlZ(400, /^Invalid XML: CDATA sections are not accepted$/),
    ],
    [
      'a DEVICEID smuggled in a quoted attribute value',
      z(
        '<REQUEST><X a="></X><DEVICEID>evil-1</DEVICEID><X b=">x</X><DEVICEID>attr-1</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>',
      ),
      xmlZ(400, /^Invalid XML: attributes are not accepted \(<X>\)$/),
    ],
    [
      'a second DEVICEID',
      z('<REQUEST><DEVICEID>evil-2</DEVICEID><DEVICEID>dup-2</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>'),
      xmlZ(400, /^Invalid XML: more than one <DEVICEID>$/),
    ],
    [
      'a real UTF-16LE body (BOM FF FE)',
      z(
        Buffer.concat([
          Buffer.from([0xff, 0xfe]),
          Buffer.from(xmlProlog('utf16-1').replace('UTF-8', 'UTF-16'), 'utf16le'),
        ]),
      ),
      xmlZ(400, /^Unsupported content: expected an XML or JSON message$/),
    ],
  ];
  it.each(table)('%s', async (_name, body, r) => {
    await expectRefused({ headers: FI_ZLIB, body }, r);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('XML: accepted (valid, odd)', () => {
  it('an encoding declaration is not trusted: UTF-8 bytes declared UTF-16 are read as UTF-8', async () => {
    await accepted({
      headers: FI_ZLIB,
      body: z(xmlInventory('enc-1', '<HARDWARE><NAME>café-€</NAME></HARDWARE>').replace('UTF-8', 'UTF-16')),
    });
    expect((await device('enc-1'))?.name).toBe('café-€');
  });

  it('bytes that are neither UTF-8 nor sensible ISO-8859-1 are read as ISO-8859-1 and kept byte for byte', async () => {
    const junk = Buffer.from([0xc3, 0x28, 0x81, 0x8d, 0x9d, 0xff]); // invalid UTF-8; C1 controls in latin1
    const [head, tail] = xmlInventory('latin-junk', '<HARDWARE><NAME>@</NAME></HARDWARE>').split('@') as [
      string,
      string,
    ];
    const body = Buffer.concat([Buffer.from(head), junk, Buffer.from(tail)]);
    await accepted({ headers: FI_ZLIB, body: z(body) });
    const d = await device('latin-junk');
    expect(d?.name).toBe(junk.toString('latin1')); // 'Ã(\x81\x8d\x9dÿ'
    const [s] = await ctx.sql<
      { body: Buffer; compression: string }[]
    >`select body, compression from submissions where device_id = ${d!.id}`;
    expect(s!.compression).toBe('zlib');
    expect(zlib.inflateSync(s!.body).equals(body)).toBe(true);
  });

  it('numeric character references are decoded like any XML parser does (&#233; &#xE9; → é)', async () => {
    await accepted({
      headers: FI_ZLIB,
      body: z(xmlInventory('charref-1', '<HARDWARE><NAME>caf&#233;-caf&#xE9;</NAME></HARDWARE>')),
    });
    expect((await device('charref-1'))?.name).toBe('café-café');
  });

  it('an element named __proto__ in a section the gateway does not read is kept as data, polluting nothing', async () => {
    await accepted({
      headers: FI_ZLIB,
      body: z(
        xmlInventory(
          'proto-4',
          '<__proto__><polluted>yes</polluted></__proto__><SOFTWARES><constructor>x</constructor></SOFTWARES>',
        ),
      ),
    });
    expect(await device('proto-4')).toBeDefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('200 000 tiny elements under CONTENT: accepted within the limits, quickly (linear scan)', async () => {
    const started = Date.now();
    await accepted({ headers: FI_ZLIB, body: z(xmlInventory('many-1', '<A/>'.repeat(200_000))) });
    expect(Date.now() - started).toBeLessThan(10_000);
    const [s] = await ctx.sql<
      { decodedSize: number }[]
    >`select s.decoded_size as "decodedSize" from submissions s join devices d on d.id = s.device_id where d.deviceid = 'many-1'`;
    expect(s!.decodedSize).toBeGreaterThan(800_000);
  });

  it('200 000 empty NETWORKS (a section the gateway parses): accepted within the limits, no MAC invented', async () => {
    const started = Date.now();
    await accepted({ headers: FI_ZLIB, body: z(xmlInventory('many-2', '<NETWORKS/>'.repeat(200_000))) });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await device('many-2'))?.macs).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('JSON: refused', () => {
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const table: [string, Record<string, string>, Buffer, Refusal][] = [
    [
      '100 000 unclosed [ inside content',
      GA_JSON,
      Buffer.from(`{"action":"inventory","deviceid":"deep-j1","content":{"x":${'['.repeat(100_000)}`),
      jsonP(400, /^Invalid JSON$/),
    ],
    [
      '100 000 [ as the whole body (a top-level array)',
      GA_JSON,
      Buffer.from('['.repeat(100_000)),
      jsonP(400, /^Unsupported content: expected an XML or JSON message$/),
    ],
    // V8 parses it; PostgreSQL's jsonb cannot hold it (depth): a 500 today.
    [
      '100 000 nested arrays, balanced, in a partial inventory',
      GA_ZLIB,
      z(jsonInventoryText('deep-j2', `"x":${nested(100_000)}`)),
      jsonZ(400, /./),
    ],
    [
      'a __proto__ key nested in content',
      GA_JSON,
      Buffer.from(jsonInventoryText('proto-j1', '"bios":{"__proto__":{"polluted":"yes"}}')),
      jsonP(400, /^Invalid JSON: forbidden key "__proto__"$/),
    ],
    [
      'a __proto__ key spelled with \\u005f escapes',
      GA_JSON,
      Buffer.from(jsonInventoryText('proto-j2', '"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":"yes"}')),
      jsonP(400, /forbidden key "__proto__"/),
    ],
    [
      'a __proto__ key spelled with \\u005F (upper-case hex)',
      GA_JSON,
      Buffer.from(jsonInventoryText('proto-j3', '"\\u005F_proto__":{"polluted":"yes"}')),
      jsonP(400, /forbidden key "__proto__"/),
    ],
    // Any other escaped letter spells the same key and slips past the \u005f/\u007f pre-check.
    [
      'a __proto__ key spelled __pro\\u0074o__',
      GA_JSON,
      Buffer.from(jsonInventoryText('proto-j4', '"__pro\\u0074o__":{"polluted":"yes"}')),
      jsonP(400, /forbidden key "__proto__"/),
    ],
    [
      'a __proto__ key spelled \\u005f_\\u0070roto__ in CONTACT',
      GA_JSON,
      Buffer.from('{"action":"contact","deviceid":"proto-j5","\\u005f_\\u0070roto__":{"polluted":"yes"}}'),
      jsonP(400, /forbidden key "__proto__"/),
    ],
    [
      'a top-level array holding a message',
      GA_JSON,
      Buffer.from(`[${jsonInventory('arr-1', {})}]`),
      jsonP(400, /^Unsupported content: expected an XML or JSON message$/),
    ],
    [
      'a top-level string',
      GA_JSON,
      Buffer.from('"inventory"'),
      jsonP(400, /^Unsupported content: expected an XML or JSON message$/),
    ],
    [
      'an inventory whose content is a string',
      GA_JSON,
      Buffer.from('{"action":"inventory","deviceid":"c-1","content":"x"}'),
      jsonP(400, /^Invalid JSON: inventory without content$/),
    ],
    [
      'an inventory whose content is an array',
      GA_JSON,
      Buffer.from('{"action":"inventory","deviceid":"c-2","content":[{"hardware":{}}]}'),
      jsonP(400, /^Invalid JSON: inventory without content$/),
    ],
    [
      'an inventory whose content is null',
      GA_JSON,
      Buffer.from('{"action":"inventory","deviceid":"c-3","content":null}'),
      jsonP(400, /^Invalid JSON: inventory without content$/),
    ],
    [
      'an inventory without deviceid',
      GA_ZLIB,
      z(JSON.stringify({ action: 'inventory', content: { hardware: { name: 'x' }, versionclient: GA_UA } })),
      jsonZ(400, /^Missing deviceid$/),
    ],
    [
      'an empty deviceid',
      GA_JSON,
      Buffer.from(jsonInventory('', { hardware: { name: 'x' } })),
      jsonP(400, /^Missing deviceid$/),
    ],
    [
      'a deviceid of white space only',
      GA_JSON,
      Buffer.from(jsonInventory('   ', { hardware: { name: 'x' } })),
      jsonP(400, /^Missing deviceid$/),
    ],
    [
      'a 10 KB deviceid',
      GA_JSON,
      Buffer.from(jsonInventory('d'.repeat(10_240), { hardware: { name: 'x' } })),
      jsonP(400, /^deviceid longer than 255 characters$/),
    ],
    [
      'a deviceid with a TAB',
      GA_JSON,
      Buffer.from(jsonInventory('ctl\t1', {})),
      jsonP(400, /^deviceid contains control characters$/),
    ],
    [
      'a deviceid with ESC and DEL',
      GA_JSON,
      Buffer.from(jsonInventory('ctl\u001b[2J\u007f', {})),
      jsonP(400, /^deviceid contains control characters$/),
    ],
    [
      'a deviceid that is an object',
      GA_JSON,
      Buffer.from('{"action":"contact","deviceid":{"toString":"x"}}'),
      jsonP(400, /^Missing deviceid$/),
    ],
    // One reading of every document (src/protocol/json-keys.ts): JSON.parse and PHP keep the last of two
    // equal keys, other readers the first; keys equal once lower-cased or once NUL is dropped collide too.
    [
      'a duplicate deviceid',
      GA_JSON,
      Buffer.from('{"action":"contact","deviceid":"dup-a","deviceid":"dup-b","name":"GLPI-Agent","version":"1.12"}'),
      jsonP(400, /^Invalid JSON: duplicate key "deviceid"$/),
    ],
    [
      'keys differing only in case, in bios',
      GA_JSON,
      Buffer.from(jsonInventoryText('case-1', '"bios":{"ssn":"REAL","SSN":"EVIL"}')),
      jsonP(400, /^Invalid JSON: keys "ssn" and "SSN" differ only in case or invisible characters$/),
    ],
    [
      'a key equal to another once NUL is dropped',
      GA_JSON,
      Buffer.from(jsonInventoryText('nulkey-1', '"bios":{"ssn":"REAL","ss\\u0000n":"EVIL"}')),
      jsonP(400, /differ only in case or invisible characters/),
    ],
    // 1e29 cannot be kept exactly (stored today as "1.2345678901234568e+29"): a deviceid must be a string.
    [
      'a deviceid that is a huge number',
      GA_JSON,
      Buffer.from('{"action":"contact","deviceid":123456789012345678901234567890}'),
      jsonP(400, /deviceid/),
    ],
  ];
  it.each(table)('%s', async (_name, headers, body, r) => {
    await expectRefused({ headers, body }, r);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('JSON: accepted, stored as data', () => {
  it('constructor / prototype keys are plain data (no prototype touched)', async () => {
    await accepted({
      headers: GA_JSON,
      body: Buffer.from(
        jsonInventoryText('ctor-1', '"constructor":{"prototype":{"polluted":"yes"}},"bios":{"prototype":"p"}'),
      ),
    });
    const [inv] = await ctx.sql<
      { view: Record<string, unknown> }[]
    >`select view from inventory_views i join devices d on d.id = i.device_id where d.deviceid = 'ctor-1'`;
    expect(inv!.view.constructor).toEqual({ prototype: { polluted: 'yes' } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('huge numbers in content are accepted (the raw body is what is kept)', async () => {
    await accepted({
      headers: GA_JSON,
      body: Buffer.from(
        jsonInventoryText(
          'num-1',
          '"memories":[{"capacity":1e400,"serialnumber":123456789012345678901234567890}]',
          false,
        ),
      ),
    });
    expect(await device('num-1')).toBeDefined();
  });

  it('"partial": "yes" is not true: the inventory is taken as a full one', async () => {
    await accepted({
      headers: GA_JSON,
      body: Buffer.from(jsonInventory('partial-yes', { hardware: { name: 'py' } }, { partial: 'yes' })),
    });
    const [s] = await ctx.sql<{ partial: boolean; full: boolean }[]>`
      select s.partial, i.full_submission_id = s.id as full from submissions s join devices d on d.id = s.device_id
      join inventories i on i.device_id = d.id where d.deviceid = 'partial-yes'`;
    expect(s).toEqual({ partial: false, full: true });
  });

  const SQL = "'; drop table devices; --";
  const TEN_KB = `${'Z'.repeat(10_239)}!`;
  it('a deviceid made of SQL metacharacters is stored verbatim', async () => {
    await accepted({ headers: GA_JSON, body: Buffer.from(jsonInventory(SQL, { hardware: { name: 'sql' } })) });
    expect((await device(SQL))?.name).toBe('sql');
  });

  /** Where each identity field goes in a JSON inventory, and how the gateway stores it (255-character cap). */
  const FIELDS: [
    string,
    (v: string) => Record<string, unknown>,
    (d: NonNullable<Awaited<ReturnType<typeof device>>>) => unknown,
    (v: string) => unknown,
  ][] = [
    ['name', (v) => ({ content: { hardware: { name: v } } }), (d) => d.name, (v) => v.slice(0, 255)],
    ['uuid', (v) => ({ content: { hardware: { uuid: v } } }), (d) => d.uuid, (v) => v.slice(0, 255).toLowerCase()],
    ['serial', (v) => ({ content: { bios: { ssn: v } } }), (d) => d.serial, (v) => v.slice(0, 255)],
    ['msn', (v) => ({ content: { bios: { msn: v } } }), (d) => d.msn, (v) => v.slice(0, 255)],
    ['asset tag', (v) => ({ content: { bios: { assettag: v } } }), (d) => d.assetTag, (v) => v.slice(0, 255)],
    [
      'manufacturer',
      (v) => ({ content: { bios: { smanufacturer: v } } }),
      (d) => d.manufacturer,
      (v) => v.slice(0, 255),
    ],
    ['model', (v) => ({ content: { bios: { smodel: v } } }), (d) => d.model, (v) => v.slice(0, 255)],
    ['tag', (v) => ({ tag: v }), (d) => d.tag, (v) => v.slice(0, 255)],
    // MACs are normalised to aa:bb:cc:dd:ee:ff; anything else is not a MAC and is not kept.
    [
      'macs',
      (v) => ({ content: { networks: [{ description: 'eth0', mac: v, virtualdev: false }] } }),
      (d) => d.macs,
      () => [],
    ],
    ['versionclient', (v) => ({ content: { versionclient: v } }), (d) => d.agentVersion, (v) => v.slice(0, 255)],
  ];
  const cases = FIELDS.flatMap(([field, place, read, stored]) => [
    [`${field} with SQL metacharacters`, field, place, read, stored, SQL] as const,
    [`${field} of 10 KB`, field, place, read, stored, TEN_KB] as const,
  ]);
  it.each(cases)('%s is stored as data', async (_name, field, place, read, stored, value) => {
    const deviceid = `field-${field.replace(' ', '-')}-${value.length}`;
    const msg = place(value) as { content?: Record<string, unknown>; tag?: string };
    const body = jsonInventory(
      deviceid,
      { hardware: { name: 'h' }, ...msg.content },
      msg.tag === undefined ? {} : { tag: msg.tag },
    );
    await accepted({ headers: GA_ZLIB, body: z(body) });
    const d = await device(deviceid);
    expect(d).toBeDefined();
    expect(read(d!)).toEqual(stored(value));
    const [count] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from devices`;
    expect(count!.n).toBeGreaterThan(0); // the table is still there
  });
});

describe('JSON: odd content must never make a 5xx', () => {
  /** Either taken (200) or refused as bad input (400, with the usual guarantees): never a 500. */
  async function expectHandled(req: Req): Promise<AgentResponse> {
    const before = await snapshot(ctx.sql);
    const res = await send(ctx.app, { method: 'POST', path: '/', headers: req.headers, body: req.body });
    expect([200, 400], res.text.slice(0, 200)).toContain(res.status);
    if (res.status === 400) {
      expectAgentError(res, { status: 400, format: 'json', compression: 'zlib', message: /./ });
      await expectOnlyRefusalWritten(ctx, before, 400);
    }
    return res;
  }

  it.each([
    // A Windows registry value can carry NUL; PostgreSQL text and jsonb cannot.
    [
      'a partial inventory with \\u0000 in a software name',
      z(jsonInventoryText('nul-j1', '"softwares":[{"name":"bad\\u0000name","version":"1"}]')),
    ],
    [
      'a CONTACT whose agent name holds \\u0000',
      z('{"action":"contact","deviceid":"nul-j2","name":"GLPI\\u0000Agent","version":"1.12"}'),
    ],
    [
      'a partial inventory with a lone surrogate \\ud800',
      z(jsonInventoryText('sur-j1', '"softwares":[{"name":"\\ud800"}]')),
    ],
  ])('%s', async (_name, body) => {
    await expectHandled({ headers: GA_ZLIB, body });
  });

  it.each([
    // Too deep to keep as jsonb: the full inventory itself is refused (400), and the agent's next partial is taken.
    ['100 000 nested arrays', `"x":${'['.repeat(100_000)}${']'.repeat(100_000)}`, 400],
    ['\\u0000 in a software name', '"softwares":[{"name":"bad\\u0000name"}]', 200],
  ])('a normal partial after a full inventory holding %s is still taken', async (name, poison, fullStatus) => {
    const deviceid = `poisoned-${name.length}`;
    const full = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: GA_ZLIB,
      body: z(jsonInventoryText(deviceid, poison, false)),
    });
    expect(full.status).toBe(fullStatus);
    const partial = gaPartial.replace(/"deviceid"\s*:\s*"[^"]*"/, `"deviceid": "${deviceid}"`);
    const res = await send(ctx.app, { method: 'POST', path: '/', headers: GA_ZLIB, body: z(partial) });
    expect(res.status, res.text).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('compression: refused', () => {
  const prolog = xmlProlog('comp-1');
  const table: [string, () => Promise<Req> | Req, Refusal][] = [
    [
      'a zlib bomb: 512 MiB of spaces in ~0.5 MB',
      async () => ({
        headers: FI_ZLIB,
        body: await bomb('zlib', 512, '<REQUEST><DEVICEID>bomb-1</DEVICEID><CONTENT><X>'),
      }),
      xmlZ(413, new RegExp(`^Decompressed body exceeds ${INFLATE_LIMIT} bytes$`)),
    ],
    [
      'a gzip bomb: 512 MiB of spaces in ~0.5 MB',
      async () => ({
        headers: { 'Content-Type': GZIP, 'User-Agent': FI_UA },
        body: await bomb('gzip', 512, '<REQUEST><DEVICEID>bomb-2</DEVICEID><CONTENT><X>'),
      }),
      { status: 413, format: 'xml', compression: 'gzip', message: /^Decompressed body exceeds \d+ bytes$/ },
    ],
    [
      'a high-ratio gzip bomb (32 MiB in ~32 KB)',
      async () => ({ headers: { 'Content-Type': GZIP }, body: await bomb('gzip', 32, '<REQUEST>') }),
      { status: 413, format: 'xml', compression: 'gzip', message: /^Decompressed body exceeds/ },
    ],
    [
      'a zlib bomb in JSON from a GLPI Agent',
      async () => ({
        headers: GA_ZLIB,
        body: await bomb('zlib', 32, '{"action":"inventory","deviceid":"bomb-3","content":{"x":"'),
      }),
      jsonZ(413, /^Decompressed body exceeds/),
    ],
    [
      'a zlib bomb labelled application/xml (sniffed, still capped)',
      async () => ({ headers: FI_XML, body: await bomb('zlib', 32, '<REQUEST>') }),
      xmlZ(413, /^Decompressed body exceeds/),
    ],
    [
      'a truncated gzip body',
      () => ({ headers: { 'Content-Type': GZIP }, body: gz(prolog).subarray(0, 30) }),
      { status: 400, format: 'xml', compression: 'gzip', message: /^Invalid gzip body: cannot decompress$/ },
    ],
    [
      'a truncated zlib body over 4 KB (the thread-pool path)',
      () => {
        const big = z(fiInventory.replace(/<DEVICEID>[^<]*/, '<DEVICEID>trunc-2'));
        expect(big.length).toBeGreaterThan(4096);
        return { headers: FI_ZLIB, body: big.subarray(0, big.length - 64) };
      },
      xmlZ(400, /^Invalid zlib body: cannot decompress$/),
    ],
    [
      'a zlib body with a wrong Adler-32',
      () => {
        const b = z(prolog);
        b[b.length - 1] = b[b.length - 1]! ^ 0xff;
        return { headers: FI_ZLIB, body: b };
      },
      xmlZ(400, /^Invalid zlib body: cannot decompress$/),
    ],
    [
      'a gzip body with a wrong CRC-32',
      () => {
        const b = gz(prolog);
        b[b.length - 6] = b[b.length - 6]! ^ 0xff;
        return { headers: { 'Content-Type': GZIP }, body: b };
      },
      { status: 400, format: 'xml', compression: 'gzip', message: /^Invalid gzip body: cannot decompress$/ },
    ],
    [
      'garbage after a zlib header (78 9C)',
      () => ({
        headers: FI_ZLIB,
        body: Buffer.concat([Buffer.from([0x78, 0x9c]), Buffer.from('garbage, not deflate')]),
      }),
      xmlZ(400, /^Invalid zlib body: cannot decompress$/),
    ],
    [
      'garbage after a gzip header (1F 8B)',
      () => ({
        headers: { 'Content-Type': GZIP },
        body: Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.from('garbage, not gzip')]),
      }),
      { status: 400, format: 'xml', compression: 'gzip', message: /^Invalid gzip body: cannot decompress$/ },
    ],
    // Not zlib by its header, so not decoded; a plain answer is what a plain body gets (agents accept it, §2).
    [
      'raw deflate labelled zlib',
      () => ({ headers: FI_ZLIB, body: zlib.deflateRawSync(prolog) }),
      {
        status: 400,
        format: 'xml',
        compression: 'none',
        message: /^Unsupported content: expected an XML or JSON message$/,
      },
    ],
    [
      'plain garbage labelled zlib',
      () => ({ headers: FI_ZLIB, body: Buffer.from('\x01\x02 definitely not compressed') }),
      {
        status: 400,
        format: 'xml',
        compression: 'none',
        message: /^Unsupported content: expected an XML or JSON message$/,
      },
    ],
    ['an empty body labelled zlib', () => ({ headers: FI_ZLIB }), xmlZ(400, /^Empty body$/)],
    ['an empty body labelled zlib from a GLPI Agent', () => ({ headers: GA_ZLIB }), jsonZ(400, /^Empty body$/)],
    [
      'an empty body labelled gzip',
      () => ({ headers: { 'Content-Type': GZIP } }),
      { status: 400, format: 'xml', compression: 'gzip', message: /^Empty body$/ },
    ],
    [
      'an empty body labelled application/xml',
      () => ({ headers: FI_XML }),
      { status: 400, format: 'xml', compression: 'none', message: /^Empty body$/ },
    ],
    ['an empty body labelled application/json', () => ({ headers: GA_JSON }), jsonP(400, /^Empty body$/)],
    [
      'an empty body without Content-Type',
      () => ({ headers: { 'User-Agent': FI_UA } }),
      { status: 400, format: 'xml', compression: 'none', message: /^Empty body$/ },
    ],
    [
      'Content-Encoding: gzip',
      () => ({ headers: { ...FI_ZLIB, 'Content-Encoding': 'gzip' }, body: gz(prolog) }),
      xmlZ(415, /^Content-Encoding is not supported; announce compression with Content-Type$/),
    ],
    [
      'Content-Encoding: deflate',
      () => ({ headers: { ...FI_ZLIB, 'Content-Encoding': 'deflate' }, body: z(prolog) }),
      xmlZ(415, /^Content-Encoding is not supported/),
    ],
    [
      'Content-Encoding: br on a JSON message',
      () => ({ headers: { ...GA_JSON, 'Content-Encoding': 'br' }, body: Buffer.from('{}') }),
      jsonP(415, /^Content-Encoding is not supported/),
    ],
  ];
  it.each(table)('%s', async (_name, make, r) => {
    const started = Date.now();
    await expectRefused(await make(), r);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('compression: accepted (the gateway decodes what the bytes are)', () => {
  const prolog = xmlProlog('comp-ok');
  it.each([
    ['zlib level 1 (78 01)', FI_ZLIB, zlib.deflateSync(prolog, { level: 1 })],
    ['zlib level 9 (78 DA)', FI_ZLIB, zlib.deflateSync(prolog, { level: 9 })],
    ['zlib level 0 (stored blocks)', FI_ZLIB, zlib.deflateSync(prolog, { level: 0 })],
    ['zlib without Content-Type', { 'User-Agent': FI_UA }, z(prolog)],
    ['zlib labelled text/plain', { 'Content-Type': 'text/plain' }, z(prolog)],
    ['zlib labelled application/octet-stream', { 'Content-Type': 'application/octet-stream' }, z(prolog)],
    ['zlib labelled application/xml', FI_XML, z(prolog)],
    ['zlib labelled application/x-compress-gzip', { 'Content-Type': GZIP }, z(prolog)],
    ['Content-Encoding: identity', { ...FI_ZLIB, 'Content-Encoding': 'identity' }, z(prolog)],
  ])('%s → answered in zlib at the default level', async (_name, headers, body) => {
    const res = await accepted({ headers, body });
    expect(res.headers['content-type']).toBe(ZLIB);
    expect(res.raw.subarray(0, 2).toString('hex')).toBe('789c');
    expect(res.text).toContain('<RESPONSE>SEND</RESPONSE>');
  });

  it('gzip labelled zlib → decoded as gzip, answered in gzip', async () => {
    const res = await accepted({ headers: FI_ZLIB, body: gz(prolog) });
    expect(res.headers['content-type']).toBe(GZIP);
    expect(res.text).toContain('<RESPONSE>SEND</RESPONSE>');
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('HTTP', () => {
  it.each([
    ['PUT', '/front/inventory.php'],
    ['DELETE', '/'],
    ['PATCH', '/plugins/glpiinventory/'],
    ['OPTIONS', '/marketplace/glpiinventory/'],
  ])('%s %s → 405 with Allow, empty body, nothing written', async (method, path) => {
    const before = await snapshot(ctx.sql);
    const res = await send(ctx.app, {
      method,
      path,
      headers: FI_ZLIB,
      body: method === 'OPTIONS' ? undefined : z(xmlProlog('m-1')),
    });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, POST');
    expect(res.raw.length).toBe(0);
    await expectOnlyRefusalWritten(ctx, before, null);
  });

  it.each([
    ['/front/inventory.php.bak', '/front/inventory.php.bak'],
    ['/plugins/fusioninventoryX/', '/plugins/fusioninventoryX/'],
    ['/a/b/', '/a/b/'],
    ['/%2e%2e/%2e%2e/etc/passwd', '/%2e%2e/%2e%2e/etc/passwd'],
    ['/.env', '/.env'],
    ['an 8 KB path', `/${'x'.repeat(8_000)}`],
  ])('POST %s (not an agent URL) → 404, nothing written', async (_name, path) => {
    const before = await snapshot(ctx.sql);
    const res = await send(ctx.app, { method: 'POST', path, headers: FI_ZLIB, body: z(xmlProlog('p-1')) });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.text)).toEqual({
      status: 'error',
      code: 'not_found',
      message: 'Not found',
      requestId: res.headers['x-request-id'],
    });
    await expectOnlyRefusalWritten(ctx, before, null);
  });

  it('20 concurrent copies of one inventory: all 200, one device, one inventory, 20 registrations and 20 submissions', async () => {
    const body = z(fiInventory.replace(/<DEVICEID>[^<]*/, '<DEVICEID>dup-inventory-1'));
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => send(ctx.app, { method: 'POST', path: '/', headers: FI_ZLIB, body })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    const [c] = await ctx.sql<{ devices: number; registrations: number; submissions: number; inventories: number }[]>`
      select (select count(*)::int from devices where deviceid = 'dup-inventory-1') as devices,
             (select count(*)::int from registrations where deviceid = 'dup-inventory-1') as registrations,
             (select count(*)::int from submissions s join devices d on d.id = s.device_id where d.deviceid = 'dup-inventory-1') as submissions,
             (select count(*)::int from inventories i join devices d on d.id = i.device_id where d.deviceid = 'dup-inventory-1') as inventories`;
    expect(c).toEqual({ devices: 1, registrations: 20, submissions: 20, inventories: 1 });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('auth (AGENT_AUTH=required): malformed Authorization headers get the standard 401', () => {
  const SECRET = 'bad-input-secret-0001';
  let auth: TestContext;
  beforeAll(async () => {
    auth = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
    await auth.deps.admin.createKey({ name: 'bad-input', secret: SECRET }, { name: 'test:setup', remoteAddr: null });
  });
  afterAll(async () => {
    await auth?.close();
  });
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

  it('control: the key itself works', async () => {
    const res = await send(auth.app, {
      method: 'POST',
      path: '/',
      headers: { ...FI_ZLIB, Authorization: `Basic ${b64(`inventory:${SECRET}`)}` },
      body: z(xmlProlog('auth-ok')),
    });
    expect(res.status).toBe(200);
  });

  const XML_SHAPE = { headers: FI_ZLIB, body: z(xmlProlog('auth-1')), refusal: xmlZ(401, /^Authorization required$/) };
  const JSON_SHAPE = {
    headers: GA_JSON,
    body: Buffer.from('{"action":"contact","deviceid":"auth-2","name":"GLPI-Agent","version":"1.12"}'),
    refusal: jsonP(401, /^Authorization required$/),
  };
  it.each([
    ['Basic with no value', () => 'Basic', XML_SHAPE],
    ['Basic with invalid base64', () => 'Basic %%%not*base64%%%', JSON_SHAPE],
    ['Basic without a colon (the right password alone)', () => `Basic ${b64(SECRET)}`, XML_SHAPE],
    ['Basic with a trailing extra token', () => `Basic ${b64(`inventory:${SECRET}`)} extra`, XML_SHAPE],
    ['Basic of NUL bytes', () => `Basic ${b64('\u0000:\u0000')}`, JSON_SHAPE],
    ['a 10 KB Basic header', () => `Basic ${b64(`inventory:${'x'.repeat(7_600)}`)}`, XML_SHAPE],
    ['a 10 KB header that is not base64 text', () => `Basic ${'A'.repeat(10_239)}!`, JSON_SHAPE],
    ['Bearer with an empty token', () => 'Bearer ', JSON_SHAPE],
    ['an unknown scheme (Digest)', () => 'Digest username="inventory", realm="agent-gate"', XML_SHAPE],
    ['an empty Authorization header', () => '', XML_SHAPE],
  ])('%s', async (_name, header, shape) => {
    const res = await expectRefused(
      { headers: { ...shape.headers, Authorization: header() }, body: shape.body },
      { ...shape.refusal, recorded: false },
      auth,
    );
    expect(res.headers['www-authenticate']).toBe('Basic realm="agent-gate"');
  });

  it('a malformed credential with a zip bomb: 401 before anything is inflated', async () => {
    const res = await expectRefused(
      { headers: { ...FI_ZLIB, Authorization: 'Basic' }, body: await bomb('zlib', 32, '<REQUEST>') },
      { ...xmlZ(401, /^Authorization required$/), recorded: false },
      auth,
    );
    expect(res.headers['www-authenticate']).toBe('Basic realm="agent-gate"');
  });
});

describe('after the whole corpus', () => {
  it('the gateway still answers a valid PROLOG with 200', async () => {
    const res = await accepted({ headers: FI_ZLIB, body: z(xmlProlog('still-alive-1')) });
    expect(res.text).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><PROLOG_FREQ>24</PROLOG_FREQ><RESPONSE>SEND</RESPONSE></REPLY>\n',
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
