/**
 * The registration key decides where a device lands in GLPI: with UPSTREAM_TAG=key (the default), the fake
 * GLPI receives the tag of the key (or client) the device is pinned to, in the agent's own format, for the
 * real captured inventories of both agents — XML and JSON, full and partial, with and without a tag of
 * their own, zlib, gzip and uncompressed — and the body is otherwise byte-identical once decoded. A key
 * without a tag, or UPSTREAM_TAG=agent, forwards the agent's bytes as received.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createForwarder } from '../../src/services/forwarder.js';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { FakeGlpi, type GlpiRequest } from '../helpers/fake-glpi.js';
import { type CapturedRequest, headersOf, loadScenario } from '../helpers/fixtures.js';

const actor = { name: 'test', remoteAddr: null };
const PARIS = 'paris-dc2';
const glpi = new FakeGlpi();
let ctx: TestContext;
let parisKey = '';
let untaggedKey = '';

beforeAll(async () => {
  await glpi.up();
  ctx = await createTestContext({
    AGENT_AUTH: 'required',
    SECRET_CACHE_TTL: '0',
    UPSTREAM_URL: glpi.url,
    UPSTREAM_WORKERS: '0',
    UPSTREAM_MAX_ATTEMPTS: '1',
  });
  parisKey = (await ctx.deps.admin.createKey({ name: 'entity-paris', tag: PARIS }, actor)).secret;
  untaggedKey = (await ctx.deps.admin.createKey({ name: 'untagged' }, actor)).secret;
});
afterAll(async () => {
  await ctx?.close();
  await glpi.down();
});
beforeEach(() => glpi.reset());

const inventory = (scenario: string, file: string): CapturedRequest =>
  loadScenario(scenario).find((r) => r.file === file)!;
const FI_TAG = inventory('fusioninventory-tag', '0002-post-inventory.json');
const FI_PLAIN = inventory('fusioninventory-plain', '0002-post-inventory.json');
const FI_UNCOMPRESSED = inventory('fusioninventory-no-compression', '0002-post-inventory.json');
const GA_FULL_TAG = inventory('glpi-second-run-tag', '0002-post-inventory.json');
const GA_PARTIAL_TAG = inventory('glpi-second-run-tag', '0007-post-inventory.json');
const GA_FULL_PLAIN = inventory('glpi-second-run', '0003-post-inventory.json');
const GA_PARTIAL_PLAIN = inventory('glpi-second-run', '0007-post-inventory.json');
const GA_UNCOMPRESSED = inventory('glpi-no-compression', '0003-post-inventory.json');

type Encoding = 'zlib' | 'gzip' | 'none';
let seq = 0;

/** A captured inventory under a deviceid of this test's own (the captures share some), as the agent encodes it. */
function variant(r: CapturedRequest, deviceid: string): string {
  return r.decoded_text.split(r.classified.deviceid!).join(deviceid);
}

function encode(text: string, encoding: Encoding): Buffer {
  const raw = Buffer.from(text, 'utf8');
  return encoding === 'zlib' ? zlib.deflateSync(raw) : encoding === 'gzip' ? zlib.gzipSync(raw) : raw;
}

const CONTENT_TYPES = { zlib: 'application/x-compress-zlib', gzip: 'application/x-compress-gzip' } as const;

async function submit(r: CapturedRequest, text: string, secret: string, encoding: Encoding): Promise<void> {
  const headers = headersOf(r);
  const type =
    encoding === 'none'
      ? r.classified.format === 'json'
        ? 'application/json'
        : 'application/xml'
      : CONTENT_TYPES[encoding];
  for (const k of Object.keys(headers)) if (k.toLowerCase() === 'content-type') delete headers[k];
  const res = await send(ctx.app, {
    method: 'POST',
    path: r.path,
    headers: {
      ...headers,
      'Content-Type': type,
      Authorization: `Basic ${Buffer.from(`any:${secret}`).toString('base64')}`,
    },
    body: encode(text, encoding),
  });
  expect(res.status, res.text).toBe(200);
}

/** Sends the inventories as one device, approves it (releasing them to the outbox) and forwards them. */
async function forward(
  docs: { r: CapturedRequest; encoding?: Encoding }[],
  secret: string,
): Promise<{ sent: string[]; got: GlpiRequest[]; deviceid: string }> {
  const deviceid = `tagfw-${++seq}-2026-01-01-00-00-00`;
  const sent: string[] = [];
  for (const d of docs) {
    const text = variant(d.r, deviceid);
    sent.push(text);
    await submit(d.r, text, secret, d.encoding ?? 'zlib');
  }
  const [decided] = await ctx.deps.review.decide([deviceid], 'approve', null, actor);
  expect(decided).toMatchObject({ to: 'approved' });
  for (let i = 0; i < 10 && (await ctx.deps.forwarder.runOnce()) > 0; i++);
  const got = glpi.requests.filter((q) => q.deviceid === deviceid);
  expect(got.map((q) => q.status)).toEqual(docs.map(() => 200));
  return { sent, got, deviceid };
}

const ENTRY = `<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>${PARIS}</KEYVALUE></ACCOUNTINFO>`;
/** The document as it must reach GLPI: the captured one with only the tag changed or added. */
function withParis(text: string): string {
  if (text.trimStart().startsWith('<')) {
    if (text.includes('<KEYVALUE>acceptance-tag</KEYVALUE>'))
      return text.replace('<KEYVALUE>acceptance-tag</KEYVALUE>', `<KEYVALUE>${PARIS}</KEYVALUE>`);
    expect(text).not.toContain('ACCOUNTINFO');
    return text.replace('<CONTENT>\n    <', `<CONTENT>\n    ${ENTRY}\n    <`);
  }
  if (text.includes('"tag": "acceptance-tag"')) return text.replace('"tag": "acceptance-tag"', `"tag": "${PARIS}"`);
  expect(text).not.toMatch(/\n {3}"tag"/);
  return text.replace(/\n\}\n$/, `,\n   "tag": "${PARIS}"\n}\n`);
}

function expectParis(got: GlpiRequest, sent: string, r: CapturedRequest, encoding: Encoding = 'zlib'): void {
  const expected = withParis(sent);
  expect(expected).not.toBe(sent);
  expect(got.text).toBe(expected); // byte-identical once decoded, but for the tag
  expect(got.headers['user-agent']).toBe(headersOf(r)['User-Agent']);
  if (encoding === 'none') {
    expect(got.body.equals(Buffer.from(expected, 'utf8'))).toBe(true);
    expect(got.headers['content-type']).toBe(r.classified.format === 'json' ? 'application/json' : 'application/xml');
  } else {
    expect(got.headers['content-type']).toBe(CONTENT_TYPES[encoding]);
    // zlib at the default level: the "78 9C" header, the only one FusionInventory reads.
    if (encoding === 'zlib') expect([...got.body.subarray(0, 2)]).toEqual([0x78, 0x9c]);
    else expect([...got.body.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
  }
  expect(got.headers['content-length']).toBe(String(got.body.length));
}

describe("UPSTREAM_TAG=key: GLPI gets the key's tag", () => {
  it('FusionInventory XML sent with a tag of its own: only the KEYVALUE differs', async () => {
    expect(FI_TAG.decoded_text).toContain('<KEYVALUE>acceptance-tag</KEYVALUE>');
    const { sent, got } = await forward([{ r: FI_TAG }], parisKey);
    expectParis(got[0]!, sent[0]!, FI_TAG);
  });

  it('FusionInventory XML without a tag: one TAG entry added, nothing else changed', async () => {
    const { sent, got } = await forward([{ r: FI_PLAIN }], parisKey);
    expectParis(got[0]!, sent[0]!, FI_PLAIN);
  });

  it('GLPI Agent JSON with a tag, full then partial: both carry the key tag', async () => {
    expect(GA_PARTIAL_TAG.classified.partial).toBe(true);
    const { sent, got } = await forward([{ r: GA_FULL_TAG }, { r: GA_PARTIAL_TAG }], parisKey);
    expect(got).toHaveLength(2);
    expectParis(got[0]!, sent[0]!, GA_FULL_TAG);
    expectParis(got[1]!, sent[1]!, GA_PARTIAL_TAG);
    expect(got[1]!.text).toContain('"partial": true');
    expect(got[0]!.headers['glpi-agent-id']).toBe(headersOf(GA_FULL_TAG)['GLPI-Agent-ID']);
  });

  it('GLPI Agent JSON without a tag, full then partial: a top-level "tag" added', async () => {
    const { sent, got } = await forward([{ r: GA_FULL_PLAIN }, { r: GA_PARTIAL_PLAIN }], parisKey);
    expectParis(got[0]!, sent[0]!, GA_FULL_PLAIN);
    expectParis(got[1]!, sent[1]!, GA_PARTIAL_PLAIN);
  });

  it('uncompressed and gzip bodies go back in the same encoding', async () => {
    const a = await forward([{ r: FI_UNCOMPRESSED, encoding: 'none' }], parisKey);
    expectParis(a.got[0]!, a.sent[0]!, FI_UNCOMPRESSED, 'none');
    const b = await forward([{ r: GA_UNCOMPRESSED, encoding: 'none' }], parisKey);
    expectParis(b.got[0]!, b.sent[0]!, GA_UNCOMPRESSED, 'none');
    const c = await forward([{ r: FI_TAG, encoding: 'gzip' }], parisKey);
    expectParis(c.got[0]!, c.sent[0]!, FI_TAG, 'gzip');
    const d = await forward([{ r: GA_FULL_TAG, encoding: 'gzip' }], parisKey);
    expectParis(d.got[0]!, d.sent[0]!, GA_FULL_TAG, 'gzip');
  });

  it("the gateway keeps the agent's bytes: only what is sent upstream carries the key tag", async () => {
    const { deviceid } = await forward([{ r: FI_TAG }], parisKey);
    const [row] = await ctx.sql<{ body: Buffer; tag: string | null; claimed: string | null }[]>`
      select s.body, d.assigned_tag as tag, d.tag as claimed from submissions s join devices d on d.id = s.device_id
      where d.deviceid = ${deviceid}`;
    expect(zlib.inflateSync(row!.body).toString('utf8')).toContain('<KEYVALUE>acceptance-tag</KEYVALUE>');
    expect(row).toMatchObject({ tag: PARIS, claimed: 'acceptance-tag' });
  });
});

describe("the agent's tag goes as sent", () => {
  it('for a key without a tag: the exact stored bytes, XML and JSON', async () => {
    for (const r of [FI_TAG, GA_FULL_TAG, FI_PLAIN]) {
      const deviceid = `tagfw-${seq + 1}-2026-01-01-00-00-00`;
      const { got } = await forward([{ r }], untaggedKey);
      expect(got[0]!.text).toBe(variant(r, deviceid));
      expect(got[0]!.body.equals(zlib.deflateSync(Buffer.from(variant(r, deviceid))))).toBe(true);
    }
  });

  it('with UPSTREAM_TAG=agent, even for a key with a tag', async () => {
    const agentMode = createForwarder({
      sql: ctx.sql,
      clock: ctx.clock,
      logger: ctx.deps.logger,
      config: { ...ctx.deps.config, upstreamTag: 'agent', upstreamWorkers: 0 },
    });
    const deviceid = `tagfw-${++seq}-2026-01-01-00-00-00`;
    const text = variant(GA_FULL_TAG, deviceid);
    await submit(GA_FULL_TAG, text, parisKey, 'zlib');
    await ctx.deps.review.decide([deviceid], 'approve', null, actor);
    expect(await agentMode.runOnce()).toBe(1);
    const got = glpi.requests.filter((q) => q.deviceid === deviceid);
    expect(got).toHaveLength(1);
    expect(got[0]!.text).toBe(text);
    expect(got[0]!.text).toContain('"tag": "acceptance-tag"');
  });
});
