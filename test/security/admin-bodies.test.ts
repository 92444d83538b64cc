/**
 * An admin's intent is never silently replaced by a default: the emergency rotation of a leaked key sent
 * as a form (`curl -d '{"grace":"0"}'` without a JSON Content-Type) is refused with 415, and the old secret
 * is not left valid for the default grace of 7 days.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext } from '../helpers/context.js';

let TOKEN: string;
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  ({ token: TOKEN } = await ctx.deps.admin.createOperator(
    { name: 'incident', role: 'admin' },
    { name: 'test', remoteAddr: null },
  ));
});
afterAll(async () => {
  await ctx.close();
});

describe('admin API bodies', () => {
  it.each([
    ['a form', 'application/x-www-form-urlencoded'],
    ['plain text', 'text/plain'],
    ['no type at all', ''],
  ])('a rotation sent as %s is refused with 415 and rotates nothing', async (_what, type) => {
    const name = `leaked-${type.length}`;
    await ctx.deps.admin.createKey({ name }, { name: 'test', remoteAddr: null });
    let req = request(ctx.app).post(`/api/v1/keys/${name}/rotate`).set('Authorization', `Bearer ${TOKEN}`);
    if (type) req = req.set('Content-Type', type);
    const res = await req.send(Buffer.from('{"grace":"0"}'));
    expect(res.status).toBe(415);
    expect(res.body).toMatchObject({ code: 'unsupported_media_type', requestId: res.headers['x-request-id'] });
    const versions =
      await ctx.sql`select v.version from key_versions v join registration_keys k on k.id = v.key_id where k.name = ${name}`;
    expect(versions).toHaveLength(1);
  });

  it('the same rotation as JSON cuts the old version off at once', async () => {
    await ctx.deps.admin.createKey({ name: 'leaked-json' }, { name: 'test', remoteAddr: null });
    const res = await request(ctx.app)
      .post('/api/v1/keys/leaked-json/rotate')
      .set('Authorization', `Bearer ${TOKEN}`)
      .send({ grace: '0' });
    expect(res.status).toBe(200);
    const [old] = await ctx.sql<{ expiresAt: Date }[]>`
      select v.expires_at as "expiresAt" from key_versions v join registration_keys k on k.id = v.key_id
      where k.name = 'leaked-json' and v.version = 1`;
    expect(old!.expiresAt.getTime()).toBeLessThanOrEqual(ctx.clock.now().getTime());
  });

  it('a POST without a body needs no Content-Type', async () => {
    await ctx.deps.admin.createKey({ name: 'to-revoke' }, { name: 'test', remoteAddr: null });
    const res = await request(ctx.app).post('/api/v1/keys/to-revoke/revoke').set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
  });
});
