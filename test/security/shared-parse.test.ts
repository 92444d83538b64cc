/**
 * A desktop-size inventory is parsed in the parse worker when one is loaded and free, on the event loop
 * otherwise (services/parse-pool.ts). Which one reads a key holder's document must never change what the
 * gateway decides: the same hostile document gets the same refusal from both, the attacker's own inventory
 * is recorded the same way, and each time the victim's rows are unchanged and nothing reaches GLPI.
 */
import { expect, it } from 'vitest';
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

const send = (deviceid: string, extra: string) =>
  gate.raw({
    headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) },
    body: xmlBody(fiInventoryText({ deviceid, name: 'shadow', extraXml: extra })),
  });

/** The parse pool's count of `task`, e.g. 'parse:inline'. */
const count = (task: string) => gate.ctx.deps.parser.tasks.get(task) ?? 0;

/**
 * Sends `extra`'s document twice: first as the gate's first desktop-size body (parsed on the event loop
 * while the worker it starts loads), then, after `between` (the victim's set-up) and with the worker
 * loaded, again (parsed in the worker).
 */
async function bothWays<T>(deviceid: string, extra: string, between: () => Promise<T>) {
  const inline = await send(deviceid, extra);
  expect(count('parse:inline'), 'read on the event loop').toBe(1);
  const set = await between();
  await gate.ctx.deps.parser.warm();
  const [inlineBefore, workerBefore] = [count('parse:inline'), count('parse:ok') + count('parse:refused')];
  const inWorker = await send(deviceid, extra);
  expect(count('parse:inline'), 'not on the event loop').toBe(inlineBefore);
  expect(count('parse:ok') + count('parse:refused'), 'read in the worker').toBe(workerBefore + 1);
  return { inline, inWorker, set };
}

it.each([
  ["a lower-case bios claiming the victim's serial", `<bios><ssn>${VICTIM_HW.serial}</ssn></bios>`],
  ['a lower-case software section beside the upper-case ones', '<softwares><name>hidden-tool</name></softwares>'],
  ['a DOCTYPE', '<!DOCTYPE x [<!ENTITY e "x">]>'],
])('%s: the worker refuses it exactly as the event loop does', async (_, extra) => {
  const deviceid = 'shadow-2026-12-02-20-00-00';
  const { inline, inWorker, set } = await bothWays(deviceid, extra, () => victim(gate, { hw: VICTIM_HW }));
  expect(inline.status).toBe(400);
  expect(inWorker.status).toBe(inline.status);
  expect(textOfAnswer(inWorker)).toBe(textOfAnswer(inline));
  expect(await gate.ctx.sql`select 1 from devices where deviceid = ${deviceid}`).toHaveLength(0);
  await expectVictimUntouched(gate, fiDeviceid(), set.before);
});

it("the attacker's own inventory is recorded the same way from either reading: quarantined, held, not forwarded", async () => {
  const deviceid = 'shadow-2026-12-02-20-00-01';
  const { inline, inWorker, set } = await bothWays(deviceid, '', () => victim(gate, { hw: VICTIM_HW }));
  expect([inline.status, inWorker.status]).toEqual([200, 200]);
  expect(textOfAnswer(inWorker)).toBe(textOfAnswer(inline));
  const rows = await gate.ctx.sql<{ state: string; held: number; summaries: number }[]>`
    select d.state, (count(s.id) filter (where s.state = 'held'))::int as held,
           (select count(*)::int from inventories i where i.device_id = d.id and i.summary is not null) as summaries
    from devices d left join submissions s on s.device_id = d.id where d.deviceid = ${deviceid} group by d.id`;
  expect(rows).toEqual([{ state: 'quarantined', held: 2, summaries: 1 }]);
  await expectVictimUntouched(gate, fiDeviceid(), set.before);
});

function fiDeviceid(): string {
  return fiInventoryText().match(/<DEVICEID>([^<]*)<\/DEVICEID>/)![1]!;
}
