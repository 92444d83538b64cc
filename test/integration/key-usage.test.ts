/**
 * Key usage from key_version_usage, kept on the ingest path, not from the registrations history: a first
 * request of the day is in the table when the agent has its answer, later ones are counted exactly once
 * flushed, usage pages with a cursor cover every row once, and neither usage nor the rotation check change
 * when the registrations they came from are deleted (retention).
 */
import zlib from 'node:zlib';
import request from 'supertest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

let ctx: TestContext;
let adminToken: string;
const actor = { name: 'test', remoteAddr: null };
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
  adminToken = (await ctx.deps.admin.createOperator({ name: 'usage-admin', role: 'admin' }, actor)).token;
});
afterAll(async () => {
  await ctx.close();
});

const prolog = (deviceid: string) =>
  zlib.deflateSync(
    textOf('fusioninventory-plain', '0001-post-prolog.json').replace(/<DEVICEID>[^<]+/, `<DEVICEID>${deviceid}`),
  );
const basic = (secret: string) => `Basic ${Buffer.from(`inventory:${secret}`).toString('base64')}`;

async function contact(secret: string, deviceid: string): Promise<void> {
  const res = await send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic(secret) },
    body: prolog(deviceid),
  });
  expect(res.status).toBe(200);
}

const rows = (keyName: string) =>
  ctx.sql<{ version: number; deviceid: string; requests: number }[]>`
    select v.version, u.deviceid, u.requests::int as requests
    from key_version_usage u join key_versions v on v.id = u.key_version_id
    join registration_keys k on k.id = v.key_id where k.name = ${keyName} order by v.version, u.deviceid`;

it('a first request of the day is recorded before the answer; later ones are counted exactly', async () => {
  const { secret } = await ctx.deps.admin.createKey({ name: 'ku-count' }, actor);
  await contact(secret, 'ku-1');
  // Read straight from the table: no flush has run, the row is there with its first request.
  expect(await rows('ku-count')).toEqual([{ version: 1, deviceid: 'ku-1', requests: 1 }]);
  await contact(secret, 'ku-1');
  await contact(secret, 'ku-1');
  const { usage } = await ctx.deps.admin.keyUsage('ku-count');
  expect(usage).toEqual([
    expect.objectContaining({ version: 1, deviceid: 'ku-1', requests: 3, remoteAddr: expect.any(String) }),
  ]);
  expect(await rows('ku-count')).toEqual([{ version: 1, deviceid: 'ku-1', requests: 3 }]);
});

it('usage pages with a cursor: every row exactly once, by version then most recent first', async () => {
  const { secret: v1 } = await ctx.deps.admin.createKey({ name: 'ku-pages' }, actor);
  const devices = Array.from({ length: 7 }, (_, i) => `kp-${i}`);
  for (const d of devices) {
    await contact(v1, d);
    ctx.clock.advance(1000);
  }
  const { secret: v2 } = await ctx.deps.admin.rotateKey('ku-pages', 86400, actor);
  for (const d of devices.slice(0, 3)) {
    await contact(v2, d);
    ctx.clock.advance(1000);
  }
  const seen: { version: number; deviceid: string | null }[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const res = await request(ctx.app)
      .get(`/api/v1/keys/ku-pages/usage?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
      .set('Authorization', `Bearer ${adminToken}`);
    expect(res.status).toBe(200);
    const body = res.body as { usage: { version: number; deviceid: string }[]; nextCursor: string | null };
    expect(body.usage.length).toBeLessThanOrEqual(3);
    seen.push(...body.usage.map((u) => ({ version: u.version, deviceid: u.deviceid })));
    cursor = body.nextCursor ?? undefined;
    pages++;
  } while (cursor && pages < 10);
  expect(pages).toBe(4);
  expect(seen).toEqual([
    ...[...devices].reverse().map((deviceid) => ({ version: 1, deviceid })),
    ...devices
      .slice(0, 3)
      .reverse()
      .map((deviceid) => ({ version: 2, deviceid })),
  ]);
  const bad = await request(ctx.app)
    .get('/api/v1/keys/ku-pages/usage?cursor=nonsense')
    .set('Authorization', `Bearer ${adminToken}`);
  expect(bad.status).toBe(400);
});

it('usage and the rotation check do not read registrations: deleting them changes neither', async () => {
  const { secret: v1 } = await ctx.deps.admin.createKey({ name: 'ku-history' }, actor);
  await contact(v1, 'kh-1');
  await contact(v1, 'kh-2');
  const { secret: v2 } = await ctx.deps.admin.rotateKey('ku-history', 3600, actor);
  await contact(v2, 'kh-1');
  const closingOf = async () =>
    (await ctx.deps.admin.expiringVersionsInUse(86400)).filter((c) => c.keyName === 'ku-history');
  const closing = await closingOf();
  expect(closing).toEqual([expect.objectContaining({ keyName: 'ku-history', version: 1, devices: 1 })]);
  const before = (await ctx.deps.admin.keyUsage('ku-history')).usage;
  expect(before.map((u) => [u.version, u.deviceid])).toEqual([
    [1, 'kh-2'],
    [1, 'kh-1'],
    [2, 'kh-1'],
  ]);
  await ctx.sql`delete from registrations where deviceid in ('kh-1', 'kh-2')`;
  expect((await ctx.deps.admin.keyUsage('ku-history')).usage).toEqual(before);
  expect(await closingOf()).toEqual(closing);
});
