/**
 * An agent holding the registration key of one entity (paris) claims another entity's tag (lyon) to land its
 * machine there in GLPI — GLPI's entity rules read the TAG, which any agent can set. With UPSTREAM_TAG=key
 * (the default) what reaches GLPI carries its key's tag, whatever it claims; the claim is recorded and
 * visible (claimedTag, claimedTagMismatch, the registration's claimedTag, a metric), and the lyon device is
 * untouched. Tricks to make GLPI read a second tag (two ACCOUNTINFO, a root-level TAG, a JSON "Tag") are
 * refused at the door: 400, nothing stored, nothing for GLPI. A per-agent client's tag works the same way
 * and wins over the key's for a device bound to that client. Real captured traffic of both agents.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CapturedRequest, loadScenario } from '../helpers/fixtures.js';
import { type Gate, agentHeaders, basic, drain, expectVictimUntouched, snapshot, startGate } from './support.js';

const setup = { name: 'test:tag-setup', remoteAddr: null };
const PARIS_SECRET = 'entity-paris-key-0123456789';
const LYON_SECRET = 'entity-lyon-key-0123456789';
const GA = loadScenario('glpi-tag').find((r) => r.file === '0003-post-inventory.json')!;
const FI = loadScenario('fusioninventory-tag').find((r) => r.file === '0002-post-inventory.json')!;
let gate: Gate;
const VICTIM = 'lyon-ws01-2026-01-01-00-00-00';

beforeAll(async () => {
  gate = await startGate();
  await gate.ctx.deps.admin.createKey({ name: 'entity-paris', tag: 'paris', secret: PARIS_SECRET }, setup);
  await gate.ctx.deps.admin.createKey({ name: 'entity-lyon', tag: 'lyon', secret: LYON_SECRET }, setup);
  // The victim: lyon's own machine, approved and forwarded with its key's tag.
  expect((await post(GA, VICTIM, LYON_SECRET, claimLyonJson)).status).toBe(200);
  await approve(VICTIM);
  await drain(gate);
  expect(gate.glpi.delivered().map((r) => tagOf(r.text))).toEqual(['lyon']);
  gate.glpi.reset();
});
afterAll(async () => {
  await gate?.close();
});

function post(r: CapturedRequest, deviceid: string, secret: string, change: (text: string) => string, user = 'any') {
  const text = change(r.decoded_text.split(r.classified.deviceid!).join(deviceid));
  return gate.raw({
    headers: { ...agentHeaders(r), Authorization: basic(user, secret) },
    body: zlib.deflateSync(Buffer.from(text)),
  });
}

async function approve(deviceid: string): Promise<void> {
  const res = await gate.api('POST', '/api/v1/devices/approve', { ids: [deviceid], reason: 'known' });
  expect(res.json.results[0]).toMatchObject({ deviceid, to: 'approved' });
}

/** The tag GLPI reads: the JSON top-level tag, or the lone CONTENT ACCOUNTINFO TAG entry. */
function tagOf(text: string): string | null {
  if (text.trimStart().startsWith('{')) return (JSON.parse(text) as { tag?: string }).tag ?? null;
  const infos = text.match(/<ACCOUNTINFO>[\s\S]*?<\/ACCOUNTINFO>/g) ?? [];
  if (infos.length !== 1) return null;
  return /<KEYNAME>TAG<\/KEYNAME>\s*<KEYVALUE>([^<]*)<\/KEYVALUE>/.exec(infos[0] ?? '')?.[1] ?? null;
}

const claimLyonJson = (t: string) => t.replace('"tag": "acceptance-tag"', '"tag": "lyon"');
const claimLyonXml = (t: string) => t.replace('<KEYVALUE>acceptance-tag</KEYVALUE>', '<KEYVALUE>lyon</KEYVALUE>');

async function mismatchCount(): Promise<number> {
  const text = await gate.ctx.deps.metrics.registry.metrics();
  return [...text.matchAll(/^agentgate_claimed_tag_mismatch_total\{kind="inventory"\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}

describe("an agent claiming another entity's tag", () => {
  for (const [agent, r, claim] of [
    ['GLPI Agent JSON', GA, claimLyonJson],
    ['FusionInventory XML', FI, claimLyonXml],
  ] as const) {
    it(`${agent}: lands in GLPI with its key's tag; the claim is recorded and visible`, async () => {
      const deviceid = `paris-${agent.startsWith('GLPI') ? 'ga' : 'fi'}-2026-01-01-00-00-00`;
      const victimBefore = await snapshot(gate, VICTIM);
      expect((await post(r, deviceid, PARIS_SECRET, (t) => t)).status).toBe(200);
      await approve(deviceid);
      const counted = await mismatchCount();
      const res = await post(r, deviceid, PARIS_SECRET, claim);
      expect(res.status).toBe(200); // answered like any inventory: the agent learns nothing
      expect(await mismatchCount()).toBe(counted + 1);
      await drain(gate);
      const sent = gate.glpi.requests.filter((q) => q.deviceid === deviceid);
      expect(sent.length).toBe(2);
      expect(sent.map((q) => tagOf(q.text))).toEqual(['paris', 'paris']);
      expect(sent[1]!.text).toBe(
        claim(r.decoded_text.split(r.classified.deviceid!).join(deviceid))
          .replace('"tag": "lyon"', '"tag": "paris"')
          .replace('<KEYVALUE>lyon</KEYVALUE>', '<KEYVALUE>paris</KEYVALUE>'),
      );
      expect(gate.glpi.requests.some((q) => tagOf(q.text) === 'lyon')).toBe(false);
      // Visible: the device list, its filter, the registration.
      const list = await gate.api('GET', '/api/v1/devices?claimedTagMismatch=true');
      expect(list.status).toBe(200);
      const listed = list.json as { deviceid: string }[];
      expect(listed.find((d) => d.deviceid === deviceid)).toMatchObject({
        tag: 'paris',
        claimedTag: 'lyon',
        claimedTagMismatch: true,
      });
      expect(listed.map((d) => d.deviceid)).not.toContain(VICTIM);
      const shown = await gate.api('GET', `/api/v1/devices/${deviceid}`);
      expect(shown.json.registrations[0]).toMatchObject({ kind: 'inventory', claimedTag: 'lyon' });
      expect(shown.json.registrations[1]).toMatchObject({ kind: 'inventory', claimedTag: 'acceptance-tag' });
      // The lyon entity's own device is as it was, and nothing was sent for it.
      const victimAfter = await snapshot(gate, VICTIM);
      expect(victimAfter.device).toEqual(victimBefore.device);
      expect(victimAfter.outbox).toEqual(victimBefore.outbox);
      expect(gate.glpi.requests.filter((q) => q.deviceid === VICTIM)).toEqual([]);
      gate.glpi.reset();
    });
  }

  it('a second tag GLPI could read instead is refused at the door: 400, nothing stored, nothing for GLPI', async () => {
    const deviceid = 'paris-trick-2026-01-01-00-00-00';
    gate.glpi.reset();
    const before = await snapshot(gate, VICTIM);
    const tricks: [CapturedRequest, (t: string) => string][] = [
      [
        FI,
        (t) =>
          t.replace(
            '</ACCOUNTINFO>',
            '</ACCOUNTINFO>\n    <ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>lyon</KEYVALUE></ACCOUNTINFO>',
          ),
      ],
      [FI, (t) => t.replace('<QUERY>INVENTORY</QUERY>', '<QUERY>INVENTORY</QUERY><TAG>lyon</TAG>')],
      [FI, (t) => t.replace('<KEYNAME>TAG</KEYNAME>', '<KEYNAME>TAG</KEYNAME><KEYNAME>TAG</KEYNAME>')],
      [GA, (t) => t.replace('"tag": "acceptance-tag"', '"tag": "acceptance-tag", "Tag": "lyon"')],
      [GA, (t) => t.replace('"tag": "acceptance-tag"', '"tag": "acceptance-tag", "tag": "lyon"')],
    ];
    for (const [r, trick] of tricks) {
      const res = await post(r, deviceid, PARIS_SECRET, trick);
      expect(res.status, trick.toString()).toBe(400);
    }
    const [stored] = await gate.ctx.sql<{ n: number }[]>`
      select count(*)::int as n from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid}`;
    expect(stored?.n ?? 0).toBe(0);
    await expectVictimUntouched(gate, VICTIM, before);
  });
});

describe('a per-agent client with a tag', () => {
  it("its devices land with the client's tag, whatever the agent claims", async () => {
    const c = await gate.ctx.deps.admin.createClient({ name: 'kiosk-nice', tag: 'nice' }, setup);
    expect(c.tag).toBe('nice');
    const deviceid = 'nice-kiosk-2026-01-01-00-00-00';
    expect((await post(GA, deviceid, c.clientSecret, claimLyonJson, c.clientId)).status).toBe(200);
    await approve(deviceid);
    await drain(gate);
    const sent = gate.glpi.requests.filter((q) => q.deviceid === deviceid);
    expect(sent.map((q) => tagOf(q.text))).toEqual(['nice']);
    const [d] = await gate.ctx.sql<
      { tag: string }[]
    >`select assigned_tag as tag from devices where deviceid = ${deviceid}`;
    expect(d!.tag).toBe('nice');
    gate.glpi.reset();
  });

  it("bound to a device registered with a key, the client's tag wins over the key's (audited)", async () => {
    const deviceid = 'paris-moved-2026-01-01-00-00-00';
    expect((await post(GA, deviceid, PARIS_SECRET, (t) => t)).status).toBe(200);
    await approve(deviceid);
    await drain(gate);
    expect(gate.glpi.requests.map((q) => tagOf(q.text))).toEqual(['paris']);
    gate.glpi.reset();
    const c = await gate.ctx.deps.admin.createClient({ name: 'moved', deviceid, tag: 'nice' }, setup);
    // From now on only that client speaks for the device: the key gets the invalid-credential 401.
    expect((await post(GA, deviceid, PARIS_SECRET, (t) => t)).status).toBe(401);
    expect((await post(GA, deviceid, c.clientSecret, (t) => t, c.clientId)).status).toBe(200);
    await drain(gate);
    expect(gate.glpi.requests.map((q) => tagOf(q.text))).toEqual(['nice']);
    const audit = await gate.api('GET', '/api/v1/audit?action=device.tag', undefined, 'admin');
    expect(audit.json[0]).toMatchObject({ targetId: deviceid, before: { tag: 'paris' }, after: { tag: 'nice' } });
  });

  it('a tag that cannot be sent unambiguously is refused when the credential is made', async () => {
    for (const tag of [' lyon', 'a\nb', 'x'.repeat(256)]) {
      const res = await gate.api('POST', '/api/v1/clients', { name: 'bad-tag', tag }, 'admin');
      expect(res.status, JSON.stringify(tag)).toBe(400);
      const key = await gate.api('POST', '/api/v1/keys', { name: 'bad-tag', tag }, 'admin');
      expect(key.status, JSON.stringify(tag)).toBe(400);
    }
  });
});
