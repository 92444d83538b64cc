/**
 * The review workflow end to end through HTTP and real Postgres: unknown devices are quarantined with their
 * inventories held, reviewers approve or reject them (one, a list, a filter), decisions can be undone for a
 * while, rejected agents are told to stop, and identity clashes land in `conflict`.
 */
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, replay, send } from '../helpers/context.js';
import { loadScenario, textOf } from '../helpers/fixtures.js';

let ctx: TestContext;
let reviewer: string;
const actor = { name: 'test', remoteAddr: null };

// A gateway of each test's own: devices, decisions and the clock (moved by the undo and retention tests)
// are only what the test itself made.
beforeEach(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off' });
  reviewer = (await ctx.deps.admin.createOperator({ name: 'rev', role: 'reviewer' }, actor)).token;
});
afterEach(async () => {
  await ctx?.close();
});

const api = (method: 'GET' | 'POST', path: string, body?: unknown) =>
  send(ctx.app, {
    method,
    path,
    headers: { Authorization: `Bearer ${reviewer}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
  });

/** The fields of the JSON answers (admin API, GLPI Agent CONTACT) that these tests read. */
interface Json {
  state?: string;
  message?: string;
  dryRun?: boolean;
  count?: number;
  results?: Record<string, unknown>[];
  inventory?: { softwareCount: number };
  history?: { to: string; actor: string }[];
  conflictDetails?: { fields: string[]; known: { uuid: string }; incoming: { uuid: string } };
  tasks?: { inventory: { server: string } };
  disabled?: string[];
}
const json = (res: { text: string }) => JSON.parse(res.text) as Json;

async function device(deviceid: string) {
  const [d] = await ctx.sql<
    { id: number; state: string; conflictWith: number | null }[]
  >`select id, state, conflict_with as "conflictWith" from devices where deviceid = ${deviceid}`;
  return d;
}

async function submissionStates(deviceid: string) {
  const rows = await ctx.sql<
    { state: string }[]
  >`select s.state from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid} order by s.id`;
  return rows.map((r) => r.state);
}

function xmlMessage(deviceid: string, query: string, content = ''): Buffer {
  return zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?><REQUEST>${content ? `<CONTENT>${content}</CONTENT>` : ''}<DEVICEID>${deviceid}</DEVICEID><QUERY>${query}</QUERY></REQUEST>`,
  );
}
const zlibXml = { 'Content-Type': 'application/x-compress-zlib' };

describe('an unknown device', () => {
  const run = loadScenario('glpi-second-run');
  const deviceid = run[0]!.classified.deviceid!;
  /** The agent's first run (PROLOG … its full inventory). */
  const firstRun = async () => {
    for (const r of run.slice(0, 5)) expect((await replay(ctx.app, r)).status).toBe(200);
  };
  /** Its second run: a CONTACT, then a partial inventory. */
  const secondRun = async () => {
    const contact = await replay(ctx.app, run[5]!);
    expect((await replay(ctx.app, run[6]!)).status).toBe(200);
    return contact;
  };

  it('is quarantined, gets normal answers, and its full inventory is held', async () => {
    await firstRun();
    expect((await device(deviceid))!.state).toBe('quarantined');
    expect(await submissionStates(deviceid)).toEqual(['held']);
  });

  it('has its later partial inventory held and merged into the view', async () => {
    await firstRun();
    const contact = await secondRun();
    expect(json(contact).tasks?.inventory.server).toBe('glpi'); // the agent is told to send its inventory
    expect(await submissionStates(deviceid)).toEqual(['held', 'held']);
    const res = await api('GET', `/api/v1/devices/${deviceid}`);
    expect(res.status).toBe(200);
    const shown = json(res);
    expect(shown.state).toBe('quarantined');
    expect(shown.inventory?.softwareCount).toBeGreaterThan(100);
    expect(shown.history?.map((h) => `${h.to}:${h.actor}`)).toEqual(['quarantined:system']);
  });

  it('is approved by a reviewer: held inventories released, transition and audit recorded, next run accepted', async () => {
    await firstRun();
    await secondRun();
    const res = await api('POST', '/api/v1/devices/approve', { ids: [deviceid], reason: 'known lab VM' });
    expect(res.status).toBe(200);
    expect(json(res).results?.[0]).toMatchObject({
      deviceid,
      from: 'quarantined',
      to: 'approved',
      changed: true,
      releasedSubmissions: 2,
    });
    expect(await submissionStates(deviceid)).toEqual(['released', 'released']);
    const [t] = await ctx.sql<
      { actor: string; reason: string }[]
    >`select actor, reason from device_transitions t join devices d on d.id = t.device_id where d.deviceid = ${deviceid} and to_state = 'approved'`;
    expect(t).toEqual({ actor: 'operator:rev', reason: 'known lab VM' });
    const [a] = await ctx.sql<
      { n: number }[]
    >`select count(*)::int as n from audit_log where action = 'device.approve' and target_id = ${deviceid}`;
    expect(a!.n).toBe(1);
    await replay(ctx.app, run[6]!);
    const [reg] = await ctx.sql<
      { outcome: string }[]
    >`select outcome from registrations where deviceid = ${deviceid} order by id desc limit 1`;
    expect(reg!.outcome).toBe('accepted');
    expect((await submissionStates(deviceid)).at(-1)).toBe('stored');
  });

  it('can have the decision undone within the window, not after', async () => {
    await firstRun();
    expect((await api('POST', '/api/v1/devices/approve', { ids: [deviceid] })).status).toBe(200);
    const undo = await api('POST', `/api/v1/devices/${deviceid}/undo`);
    expect(undo.status).toBe(200);
    expect((await device(deviceid))!.state).toBe('quarantined');
    await api('POST', '/api/v1/devices/approve', { ids: [deviceid] });
    ctx.clock.advance(16 * 60 * 1000);
    const late = await api('POST', `/api/v1/devices/${deviceid}/undo`);
    expect(late.status).toBe(409);
    expect(json(late).message).toMatch(/15 minutes/);
  });
});

describe('a rejected device', () => {
  it('is told to skip its inventory and come back rarely; what it still sends is recorded, not kept', async () => {
    const deviceid = 'rejected-ws-2026-01-01-00-00-00';
    await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: xmlMessage(deviceid, 'PROLOG') });
    const rej = await api('POST', '/api/v1/devices/reject', { ids: [deviceid], reason: 'not ours' });
    expect(rej.status).toBe(200);
    const prolog = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: xmlMessage(deviceid, 'PROLOG'),
    });
    expect(prolog.status).toBe(200);
    expect(prolog.text).toContain('<PROLOG_FREQ>240</PROLOG_FREQ>');
    expect(prolog.text).not.toContain('SEND');
    // A GLPI Agent's PROLOG is answered in XML too: a JSON answer would not stop this run's inventory.
    const gaProlog = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { ...zlibXml, 'GLPI-Agent-ID': 'x-1' },
      body: xmlMessage(deviceid, 'PROLOG'),
    });
    expect(gaProlog.text).toMatch(/^<\?xml[\s\S]*<REPLY><PROLOG_FREQ>240<\/PROLOG_FREQ><\/REPLY>/);
    const contact = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/json', 'GLPI-Agent-ID': 'x-1' },
      body: Buffer.from(JSON.stringify({ action: 'contact', deviceid })),
    });
    const answer = json(contact);
    expect(answer).toMatchObject({ status: 'ok', expiration: 240 });
    expect(answer.disabled).toContain('inventory');
    const inv = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: xmlMessage(deviceid, 'INVENTORY', '<HARDWARE><NAME>x</NAME></HARDWARE>'),
    });
    expect(inv.status).toBe(200);
    const regs = await ctx.sql<
      { kind: string; outcome: string }[]
    >`select kind, outcome from registrations where deviceid = ${deviceid} order by id`;
    expect(regs.map((r) => `${r.kind}:${r.outcome}`)).toEqual([
      'prolog:quarantined',
      'prolog:rejected',
      'prolog:rejected',
      'contact:rejected',
      'inventory:rejected',
    ]);
    expect(await submissionStates(deviceid)).toEqual([]);
  });
});

describe('identity conflicts', () => {
  const inventory = (deviceid: string, uuid: string, serial: string) =>
    xmlMessage(
      deviceid,
      'INVENTORY',
      `<BIOS><SSN>${serial}</SSN></BIOS><HARDWARE><NAME>ws</NAME><UUID>${uuid}</UUID></HARDWARE>`,
    );

  it('the same deviceid reporting other hardware lands in conflict, with both fingerprints', async () => {
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: inventory('clone-a', 'AAAAAAAA-0000-0000-0000-000000000001', 'SN-CLONE-1'),
    });
    await api('POST', '/api/v1/devices/approve', { ids: ['clone-a'] });
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: inventory('clone-a', 'BBBBBBBB-0000-0000-0000-000000000002', 'SN-CLONE-2'),
    });
    expect((await device('clone-a'))!.state).toBe('conflict');
    const shown = json(await api('GET', '/api/v1/devices/clone-a'));
    expect(shown.conflictDetails?.fields).toEqual(['uuid', 'serial']);
    expect(shown.conflictDetails?.known.uuid).toBe('aaaaaaaa-0000-0000-0000-000000000001');
    expect(shown.conflictDetails?.incoming.uuid).toBe('bbbbbbbb-0000-0000-0000-000000000002');
    expect((await submissionStates('clone-a')).at(-1)).toBe('held');
  });

  it('known hardware under a new deviceid lands in conflict, pointing at the known device', async () => {
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: inventory('imaged-1', 'CCCCCCCC-0000-0000-0000-000000000003', 'SN-IMG-1'),
    });
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: inventory('imaged-2', 'CCCCCCCC-0000-0000-0000-000000000003', 'SN-IMG-2'),
    });
    const first = await device('imaged-1');
    const second = await device('imaged-2');
    expect(second).toMatchObject({ state: 'conflict', conflictWith: first!.id });
  });

  it('junk identity values never make two machines clash', async () => {
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: inventory('oem-1', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', 'To Be Filled By O.E.M.'),
    });
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: inventory('oem-2', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', 'To Be Filled By O.E.M.'),
    });
    expect((await device('oem-2'))!.state).toBe('quarantined');
  });
});

describe('bulk decisions by filter', () => {
  // AGENT_AUTH=off: no key gives a tag, so the agents' own (claimed) tags are what a person filters on.
  it('show the count first, refuse a stale count, then decide', async () => {
    const prolog = textOf('fusioninventory-plain', '0001-post-prolog.json');
    for (let i = 0; i < 3; i++) {
      const inv = `<?xml version="1.0"?><REQUEST><CONTENT><ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>paris</KEYVALUE></ACCOUNTINFO></CONTENT><DEVICEID>paris-${i}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`;
      await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: zlib.deflateSync(inv) });
    }
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: zlib.deflateSync(prolog.replace(/<DEVICEID>[^<]+/, '<DEVICEID>lyon-1')),
    });
    const dry = json(await api('POST', '/api/v1/devices/approve', { filter: 'claimedTag=paris,state=quarantined' }));
    expect(dry).toMatchObject({ dryRun: true, count: 3 });
    expect((await device('paris-0'))!.state).toBe('quarantined');
    const stale = await api('POST', '/api/v1/devices/approve', {
      filter: 'claimedTag=paris,state=quarantined',
      confirmCount: 2,
    });
    expect(stale.status).toBe(409);
    const done = json(
      await api('POST', '/api/v1/devices/approve', {
        filter: 'claimedTag=paris,state=quarantined',
        confirmCount: 3,
        reason: 'paris batch',
      }),
    );
    expect(done).toMatchObject({ dryRun: false, count: 3 });
    expect((await device('paris-2'))!.state).toBe('approved');
    expect((await device('lyon-1'))!.state).toBe('quarantined');
  });

  it('refuse an empty filter and unknown ids before changing anything', async () => {
    const prolog = textOf('fusioninventory-plain', '0001-post-prolog.json');
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: zlib.deflateSync(prolog.replace(/<DEVICEID>[^<]+/, '<DEVICEID>lyon-1')),
    });
    expect((await device('lyon-1'))!.state).toBe('quarantined');
    expect((await api('POST', '/api/v1/devices/reject', { filter: '' })).status).toBe(400);
    const res = await api('POST', '/api/v1/devices/reject', { ids: ['lyon-1', 'no-such-device'] });
    expect(res.status).toBe(404);
    expect((await device('lyon-1'))!.state).toBe('quarantined');
  });
});

describe('retention', () => {
  it('purges what a rejected device sent once the retention has passed since the rejection, with an audit entry', async () => {
    const deviceid = 'retained-ws';
    await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: zlibXml,
      body: xmlMessage(deviceid, 'INVENTORY', '<HARDWARE><NAME>r</NAME></HARDWARE>'),
    });
    await api('POST', '/api/v1/devices/reject', { ids: [deviceid], reason: 'unknown hardware' });
    expect(await submissionStates(deviceid)).toEqual(['rejected']);
    const retention = 30 * 86400;
    expect((await ctx.deps.review.purgeRejected(retention)).submissions).toBe(0); // kept during the retention
    ctx.clock.advance((retention + 60) * 1000);
    const purged = await ctx.deps.review.purgeRejected(retention);
    expect(purged.devices).toContainEqual({ deviceid, n: 1 });
    expect(await submissionStates(deviceid)).toEqual([]);
    const [a] = await ctx.sql<
      { actor: string; after: { submissions: number } }[]
    >`select actor, after from audit_log where action = 'submissions.purge' order by id desc limit 1`;
    expect(a!.actor).toBe('system:retention');
    expect(a!.after.submissions).toBe(purged.submissions);
  });
});
