/**
 * Section names become keys of the stored inventory view (a primary key of inventory_sections: a btree,
 * whose entries cannot exceed ~2.7 KB). An inventory whose content names a section with a very long name
 * is refused with 400, XML or JSON, before anything is stored: accepted, it would make the device's view
 * impossible to build, so its page could not show the security team the inventory it holds, and every
 * later partial inventory would fail. Real agents name sections with at most ~20 characters.
 */
import crypto from 'node:crypto';
import { expect, it } from 'vitest';
import {
  FI_HEADERS,
  GA_HEADERS,
  KEY_B_SECRET,
  ROGUE_HW,
  ROGUE_NICS,
  basic,
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

const gate = useGate();
const auth = { Authorization: basic('inventory', KEY_B_SECRET) };
/** A name that does not compress: PostgreSQL compresses large index entries, so a repeated letter might fit. */
const longName = (n: number) => `s${crypto.randomBytes(n).toString('hex')}`.slice(0, n);

it('a JSON inventory naming a section with 4000 characters is refused; the device page keeps working', async () => {
  const { deviceid: victimId } = await victim(gate);
  const before = await snapshot(gate, victimId);
  const deviceid = 'longname-2026-12-04-21-00-00';
  const doc = gaInventoryDoc({ deviceid, hw: ROGUE_HW, nics: ROGUE_NICS });
  doc.content[longName(4000)] = [{ name: 'x' }];
  const res = await gate.raw({ headers: { ...GA_HEADERS, ...auth }, body: jsonBody(doc) });
  expect(res.status).toBe(400);
  expect(JSON.parse(textOfAnswer(res))).toMatchObject({
    status: 'error',
    message: expect.stringMatching(/section name longer than 100 characters/),
  });
  await expectRefusedUnread(gate, deviceid, 400, /section name/);
  await expectVictimUntouched(gate, victimId, before);

  // 100 characters are still a section like any other.
  const fine = gaInventoryDoc({ deviceid, hw: ROGUE_HW, nics: ROGUE_NICS });
  const name = longName(100);
  fine.content[name] = [{ name: 'x' }];
  expect((await gate.raw({ headers: { ...GA_HEADERS, ...auth }, body: jsonBody(fine) })).status).toBe(200);
  const list = await gate.api('GET', `/api/v1/devices?q=${deviceid}`);
  const id = (list.json as { id: number }[])[0]!.id;
  const inv = await gate.api('GET', `/api/v1/devices/id:${id}/inventory`);
  expect(inv.status).toBe(200);
  expect((inv.json.sections as { key: string }[]).map((s) => s.key)).toContain(name);
});

it('an XML inventory naming a section with 4000 characters is refused', async () => {
  const { deviceid: victimId } = await victim(gate);
  const before = await snapshot(gate, victimId);
  const deviceid = 'longname-2026-12-04-21-00-01';
  const name = longName(4000).toUpperCase();
  const text = fiInventoryText({ deviceid, hw: ROGUE_HW, nics: ROGUE_NICS, extraXml: `<${name}><A>1</A></${name}>` });
  const res = await gate.raw({ headers: { ...FI_HEADERS, ...auth }, body: xmlBody(text) });
  expect(res.status).toBe(400);
  expect(textOfAnswer(res)).toMatch(/section name longer than 100 characters/);
  await expectRefusedUnread(gate, deviceid, 400, /section name/);
  await expectVictimUntouched(gate, victimId, before);
});
