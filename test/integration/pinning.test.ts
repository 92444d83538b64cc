/**
 * Who may speak for a device (src/services/conflicts.ts), through the agent endpoint with real captured
 * inventories: a device is pinned to the credential that registered it, a full inventory that contradicts
 * its hardware is held as a conflict without touching its record, and a reviewer moves the pin with
 * `rebind` (API and CLI), audited.
 */
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

const actor = { name: 'test:setup', remoteAddr: null };
// The captured VM reports no serial or UUID: this one has both, as a real machine does.
const INVENTORY = textOf('fusioninventory-plain', '0002-post-inventory.json')
  .replace('<SSN></SSN>', '<SSN>CZC4318XKQ</SSN>')
  .replace('<HARDWARE>', '<HARDWARE>\n      <UUID>4c4c4544-0042-3510-8052-b4c04f4e3732</UUID>');
const rename = (xml: string, name: string) => xml.replace(/(<HARDWARE>[\s\S]*?<NAME>)[^<]*(<\/NAME>)/, `$1${name}$2`);
const DEVICEID = /<DEVICEID>([^<]*)<\/DEVICEID>/.exec(INVENTORY)![1]!;

const basic = (password: string) => `Basic ${Buffer.from(`agent:${password}`).toString('base64')}`;
const post = (ctx: TestContext, authorization: string, xml: string) =>
  send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: authorization },
    body: zlib.deflateSync(xml),
  });
const device = async (ctx: TestContext) => {
  const [row] = await ctx.sql<
    { id: number; state: string; name: string; macs: string[]; uuid: string | null; serial: string | null }[]
  >`select id, state, name, macs, uuid, serial from devices where deviceid = ${DEVICEID}`;
  return row!;
};
const heldCount = async (ctx: TestContext) =>
  (await ctx.sql<{ n: number }[]>`select count(*)::int as n from submissions where state = 'held'`)[0]!.n;

const referenceInventory = async (ctx: TestContext) =>
  (await ctx.sql<{ id: number }[]>`select full_submission_id as id from inventories`)[0]?.id;

let ctx: TestContext;
beforeEach(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
  await ctx.deps.admin.createKey({ name: 'site-a', secret: 'agk_site-a-secret-000000000000' }, actor);
  await ctx.deps.admin.createKey({ name: 'site-b', secret: 'agk_site-b-secret-000000000000' }, actor);
  expect((await post(ctx, basic('agk_site-a-secret-000000000000'), INVENTORY)).status).toBe(200);
  await ctx.deps.review.decide([DEVICEID], 'approve', 'vetted', actor);
});
afterEach(async () => {
  await ctx.close();
});

describe('pinning', () => {
  it('the same key (any version) keeps speaking for its device', async () => {
    await ctx.deps.admin.rotateKey('site-a', 3600, actor);
    expect((await post(ctx, basic('agk_site-a-secret-000000000000'), INVENTORY)).status).toBe(200);
    expect((await device(ctx)).state).toBe('approved');
  });

  it('another key: the device is held as a conflict, its record unchanged', async () => {
    const before = await device(ctx);
    const renamed = rename(INVENTORY, 'rogue');
    const res = await post(ctx, basic('agk_site-b-secret-000000000000'), renamed);
    expect(res.status).toBe(200);
    const after = await device(ctx);
    expect(after).toEqual({ ...before, state: 'conflict' });
    expect(await heldCount(ctx)).toBe(1);
  });

  it('a device registered by a client is refused to everyone else with the invalid-credential 401', async () => {
    const { clientId, clientSecret } = await ctx.deps.admin.createClient({ name: 'own', deviceid: null }, actor);
    await ctx.deps.review.rebind(DEVICEID, { client: clientId }, 'moved to its own credential', actor);
    const wrong = await post(ctx, basic('not-a-secret'), INVENTORY);
    const res = await post(ctx, basic('agk_site-a-secret-000000000000'), INVENTORY);
    expect(res.status).toBe(401);
    expect({ ...res.headers, date: '' }).toEqual({ ...wrong.headers, date: '' });
    expect(res.raw).toEqual(wrong.raw);
    const events = await ctx.sql`select kind from security_events where kind = 'device_credential_mismatch'`;
    expect(events).toHaveLength(1);
    expect(
      (await post(ctx, `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, INVENTORY)).status,
    ).toBe(200);
    expect((await device(ctx)).state).toBe('approved');
  });

  it('a client created for the device (--device) is its own credential: the shared key no longer speaks for it', async () => {
    const { clientId, clientSecret } = await ctx.deps.admin.createClient({ name: 'own', deviceid: DEVICEID }, actor);
    const before = await device(ctx);
    const wrong = await post(ctx, basic('not-a-secret'), INVENTORY);
    const res = await post(ctx, basic('agk_site-a-secret-000000000000'), rename(INVENTORY, 'rogue'));
    expect(res.status).toBe(401);
    expect(res.raw).toEqual(wrong.raw);
    expect(await device(ctx)).toEqual(before);
    expect(await heldCount(ctx)).toBe(0);
    const own = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
    expect((await post(ctx, own, INVENTORY)).status).toBe(200);
  });

  it('rebind is audited and moves the pin: the new key speaks for the device, the old one no longer', async () => {
    const res = await ctx.deps.review.rebind(DEVICEID, { key: 'site-b' }, 'site moved', actor);
    expect(res).toMatchObject({ deviceid: DEVICEID, key: 'site-b' });
    const [audit] = await ctx.sql`select action, reason, after from audit_log where action = 'device.rebind'`;
    expect(audit).toMatchObject({ action: 'device.rebind', reason: 'site moved', after: { key: 'site-b' } });
    expect((await post(ctx, basic('agk_site-b-secret-000000000000'), INVENTORY)).status).toBe(200);
    expect((await device(ctx)).state).toBe('approved');
    await post(ctx, basic('agk_site-a-secret-000000000000'), INVENTORY);
    expect((await device(ctx)).state).toBe('conflict');
  });
});

describe('continuity on the same key', () => {
  it.each([
    ['the serial blanked', (x: string) => x.replace(/<SSN>[^<]*<\/SSN>/, '<SSN></SSN>')],
    ['the serial replaced by junk', (x: string) => x.replace(/<SSN>[^<]*<\/SSN>/, '<SSN>To Be Filled By O.E.M.</SSN>')],
    ['another serial', (x: string) => x.replace(/<SSN>[^<]*<\/SSN>/, '<SSN>ROGUE-0001</SSN>')],
    ['the UUID removed', (x: string) => x.replace(/<UUID>[^<]*<\/UUID>/, '')],
    [
      'no MAC in common',
      (x: string) => x.replace(/<MACADDR>([0-9a-f:]+)<\/MACADDR>/gi, '<MACADDR>02:de:ad:be:ef:01</MACADDR>'),
    ],
  ])('%s: held as a conflict, the record unchanged', async (_what, mutate) => {
    const before = await device(ctx);
    const reference = await referenceInventory(ctx);
    const changed = mutate(rename(INVENTORY, 'rogue'));
    expect(changed).not.toBe(INVENTORY);
    expect((await post(ctx, basic('agk_site-a-secret-000000000000'), changed)).status).toBe(200);
    expect(await device(ctx)).toEqual({ ...before, state: 'conflict' });
    expect(await heldCount(ctx)).toBe(1);
    // The device's reference inventory is still the approved one, not the held arrival.
    expect(await referenceInventory(ctx)).toBe(reference);
  });

  it('the same hardware again is accepted and updates the record', async () => {
    const renamed = rename(INVENTORY, 'renamed-host');
    expect((await post(ctx, basic('agk_site-a-secret-000000000000'), renamed)).status).toBe(200);
    expect(await device(ctx)).toMatchObject({ state: 'approved', name: 'renamed-host' });
  });
});
