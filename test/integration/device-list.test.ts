/**
 * Device lists at fleet size: keyset paging (X-Next-Cursor) gives the same rows as offset paging, once each,
 * ties on last_seen included; "contains" search; and the device page's inventory summary, prepared by the
 * background pass after a large full inventory is stored instead of parsed on the request path.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, replay } from '../helpers/context.js';
import { loadScenario } from '../helpers/fixtures.js';

let ctx: TestContext;
let reviewer: string;
const actor = { name: 'test', remoteAddr: null };
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off' });
  reviewer = (await ctx.deps.admin.createOperator({ name: 'list-rev', role: 'reviewer' }, actor)).token;
});
afterAll(async () => {
  await ctx.close();
});

const get = (path: string) => request(ctx.app).get(path).set('Authorization', `Bearer ${reviewer}`);

describe('GET /api/v1/devices', () => {
  beforeAll(async () => {
    // 23 devices, last_seen with microseconds and ties (groups of three share one instant), two tags.
    await ctx.sql`
      insert into devices (deviceid, state, name, serial, macs, assigned_tag, first_seen, last_seen)
      select 'dl-' || g, 'quarantined', 'LT-' || lpad(g::text, 4, '0'), 'SN' || (g * 7), array['aa:bb:cc:00:00:' || lpad(to_hex(g), 2, '0')],
             case when g % 2 = 0 then 'paris' else 'lyon' end, now() - interval '40 days',
             timestamptz '2026-01-01' + (g / 3) * interval '1.234567 seconds'
      from generate_series(1, 23) g`;
  });

  async function pages(query: string, size: number): Promise<string[][]> {
    const out: string[][] = [];
    let cursor: string | undefined;
    do {
      const res = await get(
        `/api/v1/devices?${query}&limit=${size}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status).toBe(200);
      out.push((res.body as { deviceid: string }[]).map((d) => d.deviceid));
      cursor = res.headers['x-next-cursor'];
    } while (cursor && out.length < 20);
    return out;
  }

  it('pages by cursor: the same rows as offset paging, each once, in last_seen desc, id desc order', async () => {
    const all = (await get('/api/v1/devices?state=quarantined&limit=1000').expect(200)).body as { deviceid: string }[];
    expect(all).toHaveLength(23);
    const byCursor = await pages('state=quarantined', 5);
    expect(byCursor.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
    expect(byCursor.flat()).toEqual(all.map((d) => d.deviceid));
    // Offset paging is kept, and agrees.
    const third = (await get('/api/v1/devices?state=quarantined&limit=5&offset=10').expect(200)).body as {
      deviceid: string;
    }[];
    expect(third.map((d) => d.deviceid)).toEqual(byCursor[2]);
    // Filters page the same way.
    const paris = (await pages('tag=paris', 4)).flat();
    expect(paris).toEqual(all.map((d) => d.deviceid).filter((id) => Number(id.slice(3)) % 2 === 0));
  });

  it('refuses a cursor it did not give, and a cursor with an offset', async () => {
    expect((await get('/api/v1/devices?cursor=bm9wZQ')).status).toBe(400);
    const first = await get('/api/v1/devices?limit=2').expect(200);
    const cursor = first.headers['x-next-cursor'] as string;
    expect(cursor).toBeTruthy();
    expect((await get(`/api/v1/devices?limit=2&offset=2&cursor=${cursor}`)).status).toBe(400);
  });

  it('q finds devices whose name, serial, deviceid or MAC contains the text', async () => {
    const q = async (text: string) =>
      ((await get(`/api/v1/devices?q=${encodeURIComponent(text)}`).expect(200)).body as { deviceid: string }[])
        .map((d) => d.deviceid)
        .sort();
    expect(await q('LT-001')).toEqual([
      'dl-10',
      'dl-11',
      'dl-12',
      'dl-13',
      'dl-14',
      'dl-15',
      'dl-16',
      'dl-17',
      'dl-18',
      'dl-19',
    ]);
    expect(await q('lt-0021')).toEqual(['dl-21']);
    expect(await q('SN161')).toEqual(['dl-23']);
    expect(await q('CC:00:00:0A')).toEqual(['dl-10']);
    expect(await q('nothing-like-this')).toEqual([]);
    // Literally: LIKE's wildcards match only themselves, and no match spans two fields (name, then serial).
    expect(await q('_')).toEqual([]);
    expect(await q('%')).toEqual([]);
    expect(await q('LT-0023SN161')).toEqual([]);
    expect(await q('LT-0023\u0001SN161')).toEqual([]);
  });
});

describe('the device page of a device with a large full inventory', () => {
  it('does not parse the stored XML: the summary is prepared by the background pass', async () => {
    const run = loadScenario('fusioninventory-plain');
    for (const r of run) expect((await replay(ctx.app, r)).status).toBe(200);
    const deviceid = run[0]!.classified.deviceid!;
    const [sub] = await ctx.sql<{ size: number }[]>`
      select s.decoded_size as size from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid}`;
    expect(sub!.size).toBeGreaterThan(64 * 1024);
    // The background pass is not running in this gateway: the page shows the identity, marked pending.
    const before = (await get(`/api/v1/devices/${deviceid}`).expect(200)).body as {
      inventory: { pending?: boolean; softwareCount: number | null; os: string | null };
    };
    expect(before.inventory).toMatchObject({ pending: true, softwareCount: null });
    expect(await ctx.deps.inventorySummaries.runOnce()).toBeGreaterThanOrEqual(1);
    const after = (await get(`/api/v1/devices/${deviceid}`).expect(200)).body as {
      inventory: { pending?: boolean; softwareCount: number; networkCount: number; sections: string[] };
    };
    expect(after.inventory.pending).toBeUndefined();
    expect(after.inventory.softwareCount).toBeGreaterThan(100);
    expect(after.inventory.networkCount).toBeGreaterThan(0);
    expect(after.inventory.sections).toContain('softwares');
    // Nothing left to do until a newer full inventory arrives.
    expect(await ctx.deps.inventorySummaries.runOnce()).toBe(0);
  });
});
