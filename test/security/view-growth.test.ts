/**
 * A device's stored inventory view is a total across requests. Each partial inventory is within
 * INFLATE_LIMIT, but one holding a valid shared key could send partials that each bring new sections, and
 * pile them up under their own device without end (rows in inventory_sections, read back by every device
 * page). A partial that would grow the view past MAX_VIEW_SECTIONS sections or past INFLATE_LIMIT decoded
 * bytes is refused with 413: nothing of it is stored or forwarded, the refusal is recorded, and partials that
 * keep or shrink the view still merge. The victim's rows are unchanged and nothing of the refused partials
 * reaches GLPI.
 */
import { expect, it } from 'vitest';
import { MAX_VIEW_SECTIONS } from '../../src/protocol/message.js';
import type { RawResponse } from '../helpers/raw-http.js';
import {
  FI_HEADERS,
  GA_HEADERS,
  KEY_B_SECRET,
  ROGUE_HW,
  ROGUE_NICS,
  basic,
  drain,
  expectRefusedUnread,
  expectVictimUntouched,
  fiInventoryText,
  gaInventoryDoc,
  jsonBody,
  snapshot,
  textOfAnswer,
  useGate,
  victim,
  xmlBody,
} from './support.js';

// Small limits, so that a few partials reach them: the captured full inventory's view is ~150 KB decoded.
const INFLATE_LIMIT = 400 * 1024;
const gate = useGate({ BODY_LIMIT: '300kb', INFLATE_LIMIT: String(INFLATE_LIMIT) });

const DEVICEID = 'pile-2026-12-04-20-00-00';
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- inventories are edited freely, as an attacker would
type Json = Record<string, any>;

/** The attacker's own machine, through key site-b. */
const send = (doc: Json) =>
  gate.raw({ headers: { ...GA_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) }, body: jsonBody(doc) });

/** A partial as GLPI Agent sends it, plus `extra` sections. */
function partial(extra: Json): Json {
  const doc = gaInventoryDoc({ deviceid: DEVICEID, hw: ROGUE_HW, nics: ROGUE_NICS, partial: true });
  Object.assign(doc.content as Json, extra);
  return doc;
}

/** `n` sections named prefix000…, each a list of one small entry. */
function sections(prefix: string, n: number, value: unknown = [{ name: 'x' }]): Json {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${String(i).padStart(3, '0')}`, value]));
}

/** The attacker's device registered with a full inventory (plus `extra` sections), approved, GLPI queue drained. */
async function registerAndApprove(extra: Json = {}): Promise<void> {
  const doc = gaInventoryDoc({ deviceid: DEVICEID, hw: ROGUE_HW, nics: ROGUE_NICS });
  Object.assign(doc.content as Json, extra);
  expect((await send(doc)).status).toBe(200);
  const approved = await gate.api('POST', '/api/v1/devices/approve', { ids: [DEVICEID], reason: 'looks fine' });
  expect(approved.json.results[0]).toMatchObject({ deviceid: DEVICEID, to: 'approved' });
  await drain(gate);
  gate.glpi.reset();
}

async function stored() {
  const [row] = await gate.ctx.sql<{ sections: number; bytes: number; partials: number; submissions: number }[]>`
    select (select count(*)::int from inventory_sections s where s.device_id = d.id) as sections,
           (select coalesce(sum(size), 0)::int from inventory_sections s where s.device_id = d.id) as bytes,
           (select partials_merged from inventories i where i.device_id = d.id) as partials,
           (select count(*)::int from submissions s where s.device_id = d.id) as submissions
    from devices d where d.deviceid = ${DEVICEID}`;
  return row!;
}

async function lastRegistration() {
  const [row] = await gate.ctx.sql<{ outcome: string; status: number; message: string | null }[]>`
    select outcome, status, message from registrations where deviceid = ${DEVICEID} order by id desc limit 1`;
  return row;
}

/** The answer is 413 in the agent's JSON, the refusal is recorded, and nothing of it was stored or forwarded. */
async function expectRefused(res: RawResponse, before: Awaited<ReturnType<typeof stored>>, message: RegExp) {
  expect(res.status).toBe(413);
  expect(JSON.parse(textOfAnswer(res))).toMatchObject({ status: 'error', message: expect.stringMatching(message) });
  expect(await lastRegistration()).toMatchObject({ outcome: 'refused', status: 413 });
  expect(await stored(), 'the view, its merge count and the submissions, as before the refused partial').toEqual(
    before,
  );
  await drain(gate);
  expect(
    gate.glpi.requests.map((r) => r.deviceid),
    'refused partials that reached GLPI',
  ).toEqual([]);
}

it(`partials that each bring new sections stop at ${MAX_VIEW_SECTIONS} sections`, async () => {
  const { deviceid: victimId } = await victim(gate);
  await registerAndApprove();

  const first = await send(partial(sections('a', 100)));
  expect(first.status).toBe(200);
  const afterFirst = await stored();
  expect(afterFirst.partials).toBe(1);
  expect(afterFirst.sections).toBeGreaterThan(100);
  expect(afterFirst.sections).toBeLessThanOrEqual(MAX_VIEW_SECTIONS);
  await drain(gate);
  expect(
    gate.glpi.requests.map((r) => r.deviceid),
    'the accepted partial is forwarded',
  ).toEqual([DEVICEID]);
  gate.glpi.reset();

  // Enough new sections to pass the limit: refused, though the partial alone is small and under it.
  const extra = MAX_VIEW_SECTIONS - afterFirst.sections + 1;
  expect(extra).toBeLessThan(MAX_VIEW_SECTIONS);
  const victimBefore = await snapshot(gate, victimId);
  await expectRefused(await send(partial(sections('b', extra))), afterFirst, /more than 200 sections/);
  await expectVictimUntouched(gate, victimId, victimBefore);

  // One fewer fits exactly.
  expect((await send(partial(sections('b', extra - 1)))).status).toBe(200);
  expect((await stored()).sections).toBe(MAX_VIEW_SECTIONS);
});

it(`an inventory with more than ${MAX_VIEW_SECTIONS} content sections is refused before anything is stored`, async () => {
  // 300 000 tiny sections fit in 3 MB: accepted, they were 300 000 rows of the view at the next partial.
  const full = gaInventoryDoc({ deviceid: DEVICEID, hw: ROGUE_HW, nics: ROGUE_NICS });
  Object.assign(full.content as Json, sections('f', MAX_VIEW_SECTIONS));
  const res = await send(full);
  expect(res.status).toBe(413);
  expect(JSON.parse(textOfAnswer(res))).toMatchObject({
    status: 'error',
    message: `Inventory with more than ${MAX_VIEW_SECTIONS} content sections`,
  });
  await expectRefusedUnread(gate, DEVICEID, 413, /more than 200 content sections/);

  // XML: counted by distinct name (list sections repeat, one <SOFTWARES> per package).
  const names = Array.from({ length: MAX_VIEW_SECTIONS }, (_, i) => `X${String(i).padStart(3, '0')}`);
  const xml = fiInventoryText({ deviceid: DEVICEID, extraXml: names.map((n) => `<${n}><A>1</A></${n}>`).join('') });
  const xmlRes = await gate.raw({
    headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) },
    body: xmlBody(xml),
  });
  expect(xmlRes.status).toBe(413);
  expect(textOfAnswer(xmlRes)).toContain(`Inventory with more than ${MAX_VIEW_SECTIONS} content sections`);
  await expectRefusedUnread(gate, DEVICEID, 413, /more than 200 content sections/);

  // A partial alone past the bound, on a registered device: refused the same way, nothing merged.
  await registerAndApprove();
  expect((await send(partial({}))).status).toBe(200);
  const before = await stored();
  expect((await send(partial(sections('p', MAX_VIEW_SECTIONS)))).status).toBe(413);
  expect(await stored()).toEqual(before);
});

it('a view already past the section limit (stored before it existed) still takes partials that do not add sections', async () => {
  await registerAndApprove();
  expect((await send(partial({}))).status).toBe(200); // the view is built from the full inventory
  await gate.ctx.sql`
    insert into inventory_sections (device_id, section, content, size)
    select d.id, 'f' || lpad(g::text, 3, '0'), '[{"name": "x"}]'::jsonb, pg_column_size('[{"name": "x"}]'::jsonb)
    from devices d, generate_series(0, ${MAX_VIEW_SECTIONS}) g where d.deviceid = ${DEVICEID}`;
  const keep = await send(partial(sections('f', 10, [{ name: 'changed' }])));
  expect(keep.status).toBe(200);
  const now = await stored();
  expect(now.partials).toBe(2);
  expect(now.sections).toBeGreaterThan(MAX_VIEW_SECTIONS);
  const [f000] = await gate.ctx.sql`
    select content from inventory_sections s join devices d on d.id = s.device_id
    where d.deviceid = ${DEVICEID} and section = 'f000'`;
  expect(f000!.content).toEqual([{ name: 'changed' }]);
  await drain(gate);
  gate.glpi.reset();

  await expectRefused(await send(partial({ g000: [{ name: 'one more' }] })), now, /more than 200 sections/);
});

it('partials that each bring a large new section stop at INFLATE_LIMIT decoded bytes in total', async () => {
  const { deviceid: victimId } = await victim(gate);
  await registerAndApprove();
  const filler = (i: number) => ({ [`blob${i}`]: [{ data: String(i).repeat(100 * 1024) }] });

  expect((await send(partial(filler(1)))).status).toBe(200);
  expect((await send(partial(filler(2)))).status).toBe(200);
  const full = await stored();
  expect(full.bytes).toBeLessThanOrEqual(INFLATE_LIMIT);
  expect(full.bytes + 100 * 1024).toBeGreaterThan(INFLATE_LIMIT);
  await drain(gate);
  gate.glpi.reset();

  const victimBefore = await snapshot(gate, victimId);
  await expectRefused(await send(partial(filler(3))), full, new RegExp(`more than ${INFLATE_LIMIT} bytes`));
  await expectVictimUntouched(gate, victimId, victimBefore);

  // Replacing a large section with a small one shrinks the view: accepted.
  expect((await send(partial({ blob1: [] }))).status).toBe(200);
  expect((await stored()).bytes).toBeLessThan(full.bytes - 100 * 1024);
});

it('a view already past INFLATE_LIMIT (stored before the limit was lowered) takes partials that do not grow it', async () => {
  await registerAndApprove();
  expect((await send(partial({}))).status).toBe(200); // the view is built from the full inventory
  // As if stored under an earlier, larger INFLATE_LIMIT: one more section of 500 KB.
  await gate.ctx.sql`
    insert into inventory_sections (device_id, section, content, size)
    select d.id, 'legacy', c.v, pg_column_size(c.v)
    from devices d, (select jsonb_build_array(repeat('x', 500 * 1024)) as v) c where d.deviceid = ${DEVICEID}`;
  const big = await stored();
  expect(big.bytes).toBeGreaterThan(INFLATE_LIMIT);
  await drain(gate);
  gate.glpi.reset();

  // The partial as the agent sends it replaces sections of the same size: merged.
  expect((await send(partial({}))).status).toBe(200);
  const same = await stored();
  expect(same.partials).toBe(big.partials + 1);
  await drain(gate);
  gate.glpi.reset();

  await expectRefused(
    await send(partial({ extra: [{ data: 'y'.repeat(2048) }] })),
    same,
    new RegExp(`more than ${INFLATE_LIMIT} bytes`),
  );
});
