/**
 * The inventory summary the security team reads on a device page is made at ingest from the message parse
 * (protocol/summary.ts), no second parse. A key holder who writes section names in mixed case must not get a
 * page that says something the stored document does not: two spellings of one section (which the view and
 * GLPI fold into one, the last winning) are refused like two readings of an identity section; a lone
 * lower-case section is left to the full parse, and the page shows what that parse reads. Each time the
 * victim's rows are unchanged and nothing reaches GLPI.
 */
import { expect, it } from 'vitest';
import { decodeStoredBody, summarize, viewFromBody } from '../../src/services/inventory-view.js';
import {
  FI_HEADERS,
  KEY_B_SECRET,
  VICTIM_HW,
  basic,
  expectVictimUntouched,
  fiInventoryText,
  useGate,
  textOfAnswer,
  victim,
  xmlBody,
} from './support.js';

const gate = useGate();

/** The attacker's own device, through key site-b: the captured inventory under a new deviceid, plus `extra`. */
const sendAttackerInventory = (deviceid: string, extra: string) =>
  gate.raw({
    headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) },
    body: xmlBody(fiInventoryText({ deviceid, name: 'shadow', extraXml: extra })),
  });

async function pageOf(deviceid: string) {
  const list = await gate.api('GET', `/api/v1/devices?q=${encodeURIComponent(deviceid)}`);
  expect(list.status).toBe(200);
  const id = (list.json as { id: number; deviceid: string }[]).find((d) => d.deviceid === deviceid)!.id;
  const page = await gate.api('GET', `/api/v1/devices/id:${id}`);
  expect(page.status).toBe(200);
  return { id, page: page.json };
}

/** What a full parse of the stored body reads: the summary the page must show. */
async function fullParseSummary(deviceid: string) {
  const [s] = await gate.ctx.sql<{ body: Buffer; compression: string; format: 'xml' | 'json' }[]>`
    select s.body, s.compression, s.format from submissions s join devices d on d.id = s.device_id
    where d.deviceid = ${deviceid} order by s.id desc limit 1`;
  expect(decodeStoredBody(s!.body, s!.compression).length).toBeGreaterThan(0);
  return summarize(viewFromBody(s!.body, s!.compression, s!.format));
}

async function storedSummary(deviceid: string) {
  const [row] = await gate.ctx.sql<{ summary: unknown; fresh: boolean }[]>`
    select i.summary, i.summary_submission_id is not distinct from i.full_submission_id as fresh
    from inventories i join devices d on d.id = i.device_id where d.deviceid = ${deviceid}`;
  return row;
}

it('a lower-case software section beside the upper-case ones is refused: the view and GLPI would read one of them', async () => {
  const { before } = await victim(gate, { hw: VICTIM_HW });
  const deviceid = 'shadow-2026-12-02-10-00-00';
  const res = await sendAttackerInventory(
    deviceid,
    '<softwares><name>hidden-tool</name><version>1</version></softwares>',
  );
  expect(res.status).toBe(400);
  expect(textOfAnswer(res)).toContain('&lt;softwares&gt; beside &lt;SOFTWARES&gt;');
  expect(await gate.ctx.sql`select 1 from devices where deviceid = ${deviceid}`).toHaveLength(0);
  await expectVictimUntouched(gate, victimDeviceid(), before);
});

it('a lone lower-case section: the page shows what the full parse reads (ingest leaves it to the background pass)', async () => {
  const { before } = await victim(gate, { hw: VICTIM_HW });
  const deviceid = 'shadow-2026-12-02-10-00-02';
  const res = await sendAttackerInventory(deviceid, '<licenseinfos/>');
  expect(res.status).toBe(200);
  const expected = await fullParseSummary(deviceid);
  expect(expected.sections).toContain('licenseinfos');
  expect((await storedSummary(deviceid))?.summary).toBeNull();
  // Until the pass has run, the page says so and shows the device's own columns, never a guess.
  const { page } = await pageOf(deviceid);
  expect(page.state).toBe('quarantined');
  expect(page.inventory).toMatchObject({ pending: true, softwareCount: null, sections: [] });
  expect(await gate.ctx.deps.inventorySummaries.runOnce()).toBeGreaterThanOrEqual(1);
  expect(await storedSummary(deviceid)).toEqual({ summary: expected, fresh: true });
  expect((await pageOf(deviceid)).page.inventory).toMatchObject(expected);
  await expectVictimUntouched(gate, victimDeviceid(), before);
});

it("a lower-case bios claiming the victim's serial after the real one is refused: two readings of who the device is", async () => {
  const { before } = await victim(gate, { hw: VICTIM_HW });
  const deviceid = 'shadow-2026-12-02-10-00-01';
  const res = await sendAttackerInventory(
    deviceid,
    `<bios><ssn>${VICTIM_HW.serial}</ssn><smanufacturer>Dell Inc.</smanufacturer></bios>`,
  );
  expect(res.status).toBe(400);
  expect(textOfAnswer(res)).toMatch(/bios/i);
  expect(await gate.ctx.sql`select 1 from devices where deviceid = ${deviceid}`).toHaveLength(0);
  await expectVictimUntouched(gate, victimDeviceid(), before);
});

function victimDeviceid(): string {
  return fiInventoryText().match(/<DEVICEID>([^<]*)<\/DEVICEID>/)![1]!;
}
