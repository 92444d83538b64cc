/**
 * Device lists at fleet size: keyset paging (X-Next-Cursor) gives the same rows as offset paging, once each,
 * ties on last_seen included; "contains" search; and the device page's inventory summary, made at ingest (or,
 * for the odd document only a full parse can summarise, by the background pass), never on the request path.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, createTestContext, replay } from '../helpers/context.js';
import { loadScenario } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

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

describe('GET /api/v1/devices?sort=&dir=', () => {
  // Their own rows (state conflict: the lists above read quarantined devices): names with case, ties and none.
  const names = ['beta', 'Alpha', null, 'gamma', 'alpha', 'Delta', 'beta', null, 'epsilon', 'Zeta', 'eta'];
  beforeAll(async () => {
    for (const [i, name] of names.entries())
      await ctx.sql`
        insert into devices (deviceid, state, name, serial, os, first_seen, last_seen)
        values (${`ds-${i}`}, 'conflict', ${name}, ${`S${(i * 7) % 11}`}, ${i % 2 ? 'Windows 11' : 'debian 12'},
                timestamptz '2026-02-01' + ${i % 4} * interval '1 day', timestamptz '2026-03-01' + ${i} * interval '1.000001 seconds')`;
  });

  type Row = { id: number; deviceid: string; name: string | null; firstSeen: string };
  async function all(query: string): Promise<Row[]> {
    return (await get(`/api/v1/devices?state=conflict&limit=1000&${query}`).expect(200)).body as Row[];
  }
  async function byCursor(query: string, size: number): Promise<Row[][]> {
    const out: Row[][] = [];
    let cursor: string | undefined;
    do {
      const res = await get(
        `/api/v1/devices?state=conflict&${query}&limit=${size}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      out.push(res.body as Row[]);
      cursor = res.headers['x-next-cursor'];
    } while (cursor && out.length < 20);
    return out;
  }
  const key = (r: Row) => (r.name ?? '').toLowerCase();

  it('sorts by name (case-insensitive, empty first, ties by id) both ways, and the cursor pages in that order', async () => {
    const asc = await all('sort=name');
    expect(asc).toHaveLength(names.length);
    const expected = [...asc].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a.id - b.id));
    expect(asc.map((r) => r.deviceid)).toEqual(expected.map((r) => r.deviceid));
    expect(asc.map((r) => r.name).slice(0, 4)).toEqual([null, null, 'Alpha', 'alpha']);
    expect(asc.at(-1)!.name).toBe('Zeta');
    const pages = await byCursor('sort=name&dir=asc', 3);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 3, 2]);
    expect(pages.flat().map((r) => r.deviceid)).toEqual(asc.map((r) => r.deviceid));
    // Descending is the exact reverse (ties by id descending too), by cursor and by offset alike.
    const desc = await all('sort=name&dir=desc');
    expect(desc.map((r) => r.deviceid)).toEqual([...asc].reverse().map((r) => r.deviceid));
    expect((await byCursor('sort=name&dir=desc', 4)).flat().map((r) => r.deviceid)).toEqual(
      desc.map((r) => r.deviceid),
    );
    const offsetPage = (await get('/api/v1/devices?state=conflict&sort=name&dir=desc&limit=4&offset=4').expect(200))
      .body as Row[];
    expect(offsetPage.map((r) => r.deviceid)).toEqual(desc.slice(4, 8).map((r) => r.deviceid));
  });

  it('sorts by first seen newest first by default, and by every other column the queue sorts by', async () => {
    const first = await all('sort=firstSeen');
    const t = first.map((r) => Date.parse(r.firstSeen));
    expect(t).toEqual([...t].sort((a, b) => b - a));
    expect(new Set(t).size).toBe(4); // ties, broken by id (descending)
    expect((await byCursor('sort=firstSeen', 2)).flat().map((r) => r.deviceid)).toEqual(first.map((r) => r.deviceid));
    const oldest = await all('sort=firstSeen&dir=asc');
    expect(oldest.map((r) => r.deviceid)).toEqual([...first].reverse().map((r) => r.deviceid));
    // lastSeen is the default order: sort=lastSeen (desc) gives what no sort gives.
    expect((await all('sort=lastSeen')).map((r) => r.deviceid)).toEqual((await all('')).map((r) => r.deviceid));
    for (const sort of ['state', 'deviceid', 'serial', 'os', 'agent', 'address']) {
      const rows = await all(`sort=${sort}`);
      expect(rows, sort).toHaveLength(names.length);
      expect(
        (await byCursor(`sort=${sort}`, 4)).flat().map((r) => r.deviceid),
        sort,
      ).toEqual(rows.map((r) => r.deviceid));
    }
    const serials = ((await all('sort=serial')) as unknown as { serial: string }[]).map((r) => r.serial.toLowerCase());
    expect(serials).toEqual([...serials].sort());
  });

  it('devices list --sort name --desc --json prints the same order as the API; a bad --sort is refused', async () => {
    const env = { DATABASE_URL: ctx.databaseUrl, LOG_LEVEL: 'warn' };
    const r = await runCli(['devices', 'list', '--state', 'conflict', '--sort', 'name', '--desc', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const api = await all('sort=name&dir=desc');
    expect((JSON.parse(r.stdout) as Row[]).map((d) => d.deviceid)).toEqual(api.map((d) => d.deviceid));
    const asc = await runCli(['devices', 'list', '--state', 'conflict', '--sort', 'firstSeen', '--asc', '--json'], env);
    expect((JSON.parse(asc.stdout) as Row[]).map((d) => d.deviceid)).toEqual(
      (await all('sort=firstSeen&dir=asc')).map((d) => d.deviceid),
    );
    const bad = await runCli(['devices', 'list', '--sort', 'secret'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/--sort.*must be one of lastSeen, firstSeen, name/);
  });

  it('refuses an unknown sort or dir naming the value, and a cursor given for another order', async () => {
    const bad = await get('/api/v1/devices?sort=secret');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/sort: must be one of lastSeen, firstSeen, name, .* \(not "secret"\)/);
    const badDir = await get('/api/v1/devices?sort=name&dir=up');
    expect(badDir.status).toBe(400);
    expect(badDir.body.message).toBe('Invalid query: dir: must be asc or desc (not "up")');
    const res = await get('/api/v1/devices?state=conflict&sort=name&limit=2').expect(200);
    const cursor = res.headers['x-next-cursor'] as string;
    expect(cursor).toBeTruthy();
    for (const other of ['sort=name&dir=desc', 'sort=serial', '']) {
      const mixed = await get(`/api/v1/devices?state=conflict&${other}&limit=2&cursor=${cursor}`);
      expect(mixed.status, other).toBe(400);
      expect(mixed.body.message).toMatch(/^cursor continues sort=name&dir=asc, not sort=/);
    }
    // A forged cursor (well-formed JSON, wrong fields) is refused like any other it did not give.
    const forged = Buffer.from(JSON.stringify({ s: 'name; drop table devices', d: 'asc', k: 'a', i: 1 })).toString(
      'base64url',
    );
    expect((await get(`/api/v1/devices?sort=name&cursor=${forged}`)).body.message).toBe(
      'cursor is not one this server gave',
    );
  });
});

describe('the device page of a device with a large full inventory', () => {
  type Summary = {
    pending?: boolean;
    softwareCount: number | null;
    networkCount: number | null;
    sections: string[];
    os: unknown;
  };

  it('has its summary at once: made at ingest from what the parse read, the stored XML never parsed again', async () => {
    const run = loadScenario('fusioninventory-plain');
    for (const r of run) expect((await replay(ctx.app, r)).status).toBe(200);
    const deviceid = run[0]!.classified.deviceid!;
    const [sub] = await ctx.sql<{ size: number }[]>`
      select s.decoded_size as size from submissions s join devices d on d.id = s.device_id where d.deviceid = ${deviceid}`;
    expect(sub!.size).toBeGreaterThan(64 * 1024);
    // The background pass is not running in this gateway, and has nothing to do.
    const shown = (await get(`/api/v1/devices/${deviceid}`).expect(200)).body as { inventory: Summary };
    expect(shown.inventory.pending).toBeUndefined();
    expect(shown.inventory.softwareCount).toBeGreaterThan(100);
    expect(shown.inventory.networkCount).toBeGreaterThan(0);
    expect(shown.inventory.sections).toContain('softwares');
    expect(shown.inventory.os).toEqual(expect.any(String));
    expect(await ctx.deps.inventorySummaries.runOnce()).toBe(0);
  });

  it('a document whose section names are not all upper case: pending, then prepared by the background pass', async () => {
    const [inventory] = loadScenario('fusioninventory-plain').filter((r) => /<QUERY>INVENTORY/.test(r.decoded_text));
    const deviceid = 'lower-case-sections-2026-12-02-00-00-00';
    // <ACCESSLOG> written <accesslog>: the view folds names to lower case, so only a full parse can summarise it.
    const text = inventory!.decoded_text
      .split(inventory!.classified.deviceid!)
      .join(deviceid)
      .replace(/<(\/?)ACCESSLOG>/g, '<$1accesslog>');
    expect(text).toContain('<accesslog>');
    const res = await request(ctx.app).post('/').set('Content-Type', 'application/xml').send(text);
    expect(res.status).toBe(200);
    const before = (await get(`/api/v1/devices/${deviceid}`).expect(200)).body as { inventory: Summary };
    expect(before.inventory).toMatchObject({ pending: true, softwareCount: null });
    expect(await ctx.deps.inventorySummaries.runOnce()).toBe(1);
    const after = (await get(`/api/v1/devices/${deviceid}`).expect(200)).body as { inventory: Summary };
    expect(after.inventory.pending).toBeUndefined();
    expect(after.inventory.softwareCount).toBeGreaterThan(100);
    expect(after.inventory.sections).toContain('accesslog');
    expect(await ctx.deps.inventorySummaries.runOnce()).toBe(0);
  });
});
