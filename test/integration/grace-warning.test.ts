/**
 * The rotation warning: while a rotated key version's grace window closes within a day, the devices that
 * still use only that version are counted (log + metric in the server), and a device that moved to the new
 * version stops counting.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

let ctx: TestContext;
const actor = { name: 'test', remoteAddr: null };
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'required', SECRET_CACHE_TTL: '0' });
});
afterAll(async () => {
  await ctx.close();
});

const prolog = (deviceid: string) =>
  zlib.deflateSync(
    textOf('fusioninventory-plain', '0001-post-prolog.json').replace(/<DEVICEID>[^<]+/, `<DEVICEID>${deviceid}`),
  );
const basic = (secret: string) => `Basic ${Buffer.from(`inventory:${secret}`).toString('base64')}`;

it('counts devices still on a version that closes soon, until they move to the new one', async () => {
  const { secret: v1 } = await ctx.deps.admin.createKey({ name: 'site-w' }, actor);
  for (const d of ['w-1', 'w-2']) {
    const res = await send(ctx.app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic(v1) },
      body: prolog(d),
    });
    expect(res.status).toBe(200);
  }
  expect(await ctx.deps.admin.expiringVersionsInUse(86400)).toEqual([]);
  const { secret: v2 } = await ctx.deps.admin.rotateKey('site-w', 3 * 86400, actor);
  // Three days of grace: nothing closes within the next day yet.
  expect(await ctx.deps.admin.expiringVersionsInUse(86400)).toEqual([]);
  ctx.clock.advance(2.5 * 86400 * 1000);
  expect(await ctx.deps.admin.expiringVersionsInUse(86400)).toEqual([
    expect.objectContaining({ keyName: 'site-w', version: 1, devices: 2 }),
  ]);
  await send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic(v2) },
    body: prolog('w-1'),
  });
  expect(await ctx.deps.admin.expiringVersionsInUse(86400)).toEqual([
    expect.objectContaining({ version: 1, devices: 1 }),
  ]);
});
