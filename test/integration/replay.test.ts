/**
 * Every captured exchange of both real agents, replayed through HTTP against real Postgres: the answer
 * bytes the agent needs, and the rows written.
 */
import { deflateSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AgentResponse, type TestContext, createTestContext, replay } from '../helpers/context.js';
import { type CapturedRequest, SCENARIOS, loadScenario } from '../helpers/fixtures.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off' });
});
afterAll(async () => {
  await ctx.close();
});

/** Scenarios replayed as a plain, credential-free run (auth scenarios keep only their authorized request). */
function agentRequests(scenario: string): CapturedRequest[] {
  const all = loadScenario(scenario);
  if (!scenario.endsWith('basic-auth')) return all;
  return all.filter((r) => r.headers.some(([k]) => k.toLowerCase() === 'authorization'));
}

function expectedAnswerShape(r: CapturedRequest): (text: string) => void {
  const kind = r.classified.kind;
  const glpiAgent = r.headers.some(([k]) => k.toLowerCase() === 'glpi-agent-id');
  if (r.method === 'GET' && r.query.includes('getConfig'))
    return (t) => expect(JSON.parse(t)).toEqual({ configValidityPeriod: 600, schedule: [] });
  if (kind === 'prolog' && glpiAgent) return (t) => expect(JSON.parse(t)).toEqual({ status: 'ok', expiration: 24 });
  if (kind === 'prolog')
    return (t) => expect(t).toMatch(/<REPLY><PROLOG_FREQ>24<\/PROLOG_FREQ><RESPONSE>SEND<\/RESPONSE><\/REPLY>/);
  if (kind === 'contact')
    return (t) => {
      const a = JSON.parse(t) as {
        status: string;
        tasks: { inventory: { server: string; version: string } };
        disabled: string[];
      };
      expect(a.status).toBe('ok');
      expect(a.tasks.inventory.server).toBe('glpi');
      expect(a.tasks.inventory.version).not.toBe('');
      expect(a.disabled).not.toContain('inventory');
      expect(a.disabled).toEqual(expect.arrayContaining(['collect', 'deploy', 'esx']));
    };
  if (r.classified.format === 'json') return (t) => expect(JSON.parse(t)).toEqual({ status: 'ok', expiration: 24 });
  return (t) => expect(t).toMatch(/<REPLY><RESPONSE>SEND<\/RESPONSE><\/REPLY>/);
}

// The pending poll GET only makes sense after a "pending" answer, which this gateway never gives.
const replayable = (s: string) => agentRequests(s).filter((r) => !(r.method === 'GET' && r.query === ''));
const REPLAYABLE = SCENARIOS.map((s) => [s, replayable(s)] as const);

/** Replays the requests in order (one agent run, as captured) and hands back each answer. */
async function replayAll(c: TestContext, requests: CapturedRequest[]): Promise<AgentResponse[]> {
  const answers: AgentResponse[] = [];
  for (const r of requests) answers.push(await replay(c.app, r));
  return answers;
}

describe.each(REPLAYABLE)('%s', (scenario, requests) => {
  // The scenario's run, replayed once for the tests below (they only read what it left).
  let answers: AgentResponse[];
  beforeAll(async () => {
    answers = await replayAll(ctx, requests);
  });

  it('every message gets the answer the agent needs, encoded as it expects', () => {
    for (const [i, r] of requests.entries()) {
      const res = answers[i]!;
      expect(res.status, `${r.file}`).toBe(200);
      expectedAnswerShape(r)(res.text);
      expect(res.headers['cache-control']).toBe('no-cache, no-store');
      if (r.method === 'GET') {
        expect(res.headers['content-type']).toBe('application/json');
      } else if (r.compression === 'zlib') {
        // FusionInventory accepts only default-level zlib (78 9C); the GLPI Agent only this exact type.
        expect(res.headers['content-type']).toBe('application/x-compress-zlib');
        expect(res.raw.subarray(0, 2).toString('hex')).toBe('789c');
      } else {
        expect(res.headers['content-type']).toBe(
          r.classified.format === 'json' || r.headers.some(([k]) => k === 'GLPI-Agent-ID')
            ? 'application/json'
            : 'application/xml',
        );
      }
      const sentRequestId = r.headers.find(([k]) => k === 'GLPI-Request-ID')?.[1];
      if (sentRequestId) expect(res.headers['glpi-request-id']).toBe(sentRequestId);
      const agentId = r.headers.find(([k]) => k === 'GLPI-Agent-ID')?.[1];
      if (agentId) expect(res.headers['glpi-agent-id']).toBe(agentId);
    }
  });

  it('records every request and the device with its identity', async () => {
    const deviceid = requests.find((r) => r.classified.deviceid)!.classified.deviceid!;
    const regs = await ctx.sql<
      { kind: string; format: string; outcome: string; deviceid: string | null; partial: boolean }[]
    >`
      select r.kind, r.format, r.outcome, r.deviceid, r.partial from registrations r
      where r.deviceid = ${deviceid} order by r.id`;
    // getConfig GETs carry no credential and are not recorded (only counted): what they name is only asserted.
    const expectedKinds = requests.filter((r) => r.method !== 'GET').map((r) => r.classified.kind);
    // Replays of one scenario share a deviceid with others only for the FusionInventory captures.
    expect(regs.slice(-expectedKinds.length).map((r) => r.kind)).toEqual(expectedKinds);
    // An unknown device is quarantined (its agent still gets normal answers).
    expect(regs.slice(-expectedKinds.length).map((r) => r.outcome)).toEqual(expectedKinds.map(() => 'quarantined'));
    expect(regs.map((r) => r.kind)).not.toContain('getconfig');
    const [device] = await ctx.sql<
      {
        deviceid: string;
        name: string | null;
        macs: string[];
        tag: string | null;
        agentVersion: string | null;
        lastInventoryAt: Date | null;
      }[]
    >`
      select deviceid, name, macs, tag, agent_version as "agentVersion", last_inventory_at as "lastInventoryAt" from devices where deviceid = ${deviceid}`;
    expect(device).toBeDefined();
    expect(device!.name).toBe('vm');
    expect(device!.lastInventoryAt).not.toBeNull();
    expect(device!.agentVersion).toMatch(/^(FusionInventory-Agent_v2\.6|GLPI-Agent_v1\.12)/);
    // 00:00:00:00:00:00 is junk; the container's real interface is kept, non-virtual first.
    expect(device!.macs[0]).toBe('02:fc:00:00:00:01');
    expect(device!.macs).not.toContain('00:00:00:00:00:00');
    const tagged = requests.find((r) => r.classified.tag);
    if (tagged) expect(device!.tag).toBe(tagged.classified.tag);
  });
});

describe('stored inventories', () => {
  // A gateway of each test's own, with only the run the test replays itself.
  let own: TestContext;
  beforeEach(async () => {
    own = await createTestContext({ AGENT_AUTH: 'off' });
  });
  afterEach(async () => {
    await own?.close();
  });

  it('keep the raw bytes as received and merge a partial inventory into the view', async () => {
    for (const res of await replayAll(own, replayable('glpi-second-run'))) expect(res.status).toBe(200);
    const [full, partial] = loadScenario('glpi-second-run').filter((r) => r.classified.kind === 'inventory');
    const deviceid = full!.classified.deviceid!;
    const [inv] = await own.sql<
      { body: Buffer; view: Record<string, unknown> | null; partials: number; compression: string | null }[]
    >`
      select s.body, v.view, i.partials_merged as partials,
             (select pg_column_compression(content) from inventory_sections
              where device_id = i.device_id and section = 'softwares') as compression
      from inventories i join inventory_views v using (device_id)
      join devices d on d.id = i.device_id left join submissions s on s.id = i.full_submission_id
      where d.deviceid = ${deviceid}`;
    // After the second run the full inventory is still the reference bytes…
    expect(inv!.body.equals(Buffer.from(full!.body_b64, 'base64'))).toBe(true);
    expect(inv!.partials).toBe(1);
    // …and the view holds the full inventory's sections with the partial's sections replaced.
    const fullContent = (JSON.parse(full!.decoded_text) as { content: Record<string, unknown> }).content;
    const partialContent = (JSON.parse(partial!.decoded_text) as { content: Record<string, unknown> }).content;
    expect(Object.keys(inv!.view!).sort()).toEqual(Object.keys(fullContent).sort());
    expect(inv!.view!.softwares).toEqual(fullContent.softwares);
    for (const section of Object.keys(partialContent).filter((s) => s !== 'hardware'))
      expect(inv!.view![section]).toEqual(partialContent[section]);
    expect(inv!.view!.hardware).toEqual(partialContent.hardware);
    // The software section (~130 KB, written with each full inventory's view) is compressed with lz4, not
    // pglz (migrations 0016, 0017).
    expect(inv!.compression).toBe('lz4');
  });

  it("keep the last logged user when a partial inventory's hardware arrives without it", async () => {
    // The agent drops lastloggeduser/datelastloggeduser with the users section; the stored ones survive.
    const [prolog, full, contact, partial] = replayable('glpi-second-run').filter((r) => r.method === 'POST');
    const doc = JSON.parse(partial!.decoded_text) as { content: { hardware: Record<string, unknown> } };
    const { lastloggeduser: _u, datelastloggeduser: _d, ...rest } = doc.content.hardware;
    doc.content.hardware = { ...rest, memory: 32768 };
    const text = JSON.stringify(doc);
    const edited = { ...partial!, decoded_text: text, body_b64: deflateSync(text).toString('base64') };
    for (const r of [prolog!, full!, contact!, edited]) expect((await replay(own.app, r)).status).toBe(200);
    const [inv] = await own.sql<{ hardware: Record<string, unknown> }[]>`
      select content as hardware from inventory_sections where section = 'hardware'`;
    const fullHardware = (JSON.parse(full!.decoded_text) as typeof doc).content.hardware;
    expect(inv!.hardware).toEqual({
      ...rest,
      memory: 32768,
      lastloggeduser: fullHardware.lastloggeduser,
      datelastloggeduser: fullHardware.datelastloggeduser,
    });
  });

  it('never store the password an agent run with --debug copies into perl_args', async () => {
    const authorized = loadScenario('fusioninventory-basic-auth').find(
      (r) => r.classified.kind === 'inventory' && r.headers.some(([k]) => k === 'Authorization'),
    )!;
    expect(authorized.decoded_text).toContain('acceptance-pw');
    for (const res of await replayAll(own, replayable('fusioninventory-basic-auth'))) expect(res.status).toBe(200);
    const rows = await own.sql<{ body: Buffer; compression: string }[]>`
      select s.body, s.compression from submissions s join devices d on d.id = s.device_id where d.deviceid = ${authorized.classified.deviceid!}`;
    expect(rows.length).toBeGreaterThan(0);
    const { inflateSync } = await import('node:zlib');
    for (const row of rows) {
      const text = (row.compression === 'zlib' ? inflateSync(row.body) : row.body).toString('utf8');
      expect(text).not.toContain('acceptance-pw');
    }
  });
});
