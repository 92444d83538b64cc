/**
 * A key holder's JSON inventory with two keys that one reader sees as one and another as two (equal once
 * lower-cased, once NUL is dropped, or written twice: JSON.parse and PHP keep the last, other readers the
 * first) could show the gateway one serial or deviceid and GLPI another. src/protocol/json-keys.ts refuses
 * such a document whole, and its fast path for plain lower-case keys must not let either order through:
 * each is answered 400, no device is created, the victim's rows are unchanged and nothing reaches GLPI.
 */
import zlib from 'node:zlib';
import { expect, it } from 'vitest';
import {
  GA_HEADERS,
  KEY_B_SECRET,
  ROGUE_HW,
  VICTIM_HW,
  basic,
  expectVictimUntouched,
  gaInventoryDoc,
  useGate,
  textOfAnswer,
  victim,
} from './support.js';

const gate = useGate();

const ATTACKER = 'rogue-json-keys-2026-12-03-17-00-00';

/** The captured GLPI Agent inventory as the attacker's, with `pair` written first into its bios. */
function withBiosPair(pair: string, deviceid = ATTACKER): Buffer {
  const text = JSON.stringify(gaInventoryDoc({ deviceid, hw: ROGUE_HW }));
  const at = text.indexOf('"bios":{') + '"bios":{'.length;
  expect(at).toBeGreaterThan(8);
  return zlib.deflateSync(`${text.slice(0, at)}${pair},${text.slice(at)}`);
}

it.each([
  [
    "a plain key with the victim's serial, then its upper-case twin",
    `"ssn":"${VICTIM_HW.serial}","SSN":"x"`,
    /differ only in case/,
  ],
  [
    "an upper-case key with the victim's serial, then the plain one",
    `"SSN":"${VICTIM_HW.serial}","ssn":"x"`,
    /differ only in case/,
  ],
  [
    "the victim's serial beside a key equal once NUL is dropped",
    `"ssn":"${VICTIM_HW.serial}","ss\\u0000n":"x"`,
    /invisible characters/,
  ],
  ["the victim's serial written twice under one key", `"ssn":"x","ssn":"${VICTIM_HW.serial}"`, /duplicate key "ssn"/],
])('%s: refused whole, the victim untouched', async (_, pair, message) => {
  const set = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
  const res = await gate.raw({
    headers: { ...GA_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) },
    body: withBiosPair(pair),
  });
  expect(res.status).toBe(400);
  expect((JSON.parse(textOfAnswer(res)) as { message: string }).message).toMatch(message);
  expect(await gate.ctx.sql`select 1 from devices where deviceid = ${ATTACKER}`).toHaveLength(0);
  await expectVictimUntouched(gate, set.deviceid, set.before);
});

it("the victim's deviceid written after the attacker's own: refused, no device, the victim untouched", async () => {
  const set = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
  const text = JSON.stringify(gaInventoryDoc({ deviceid: ATTACKER, hw: ROGUE_HW })).replace(
    `"deviceid":"${ATTACKER}"`,
    `"deviceid":"${ATTACKER}","deviceid":"${set.deviceid}"`,
  );
  expect(text).toContain(set.deviceid);
  const res = await gate.raw({
    headers: { ...GA_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) },
    body: zlib.deflateSync(text),
  });
  expect(res.status).toBe(400);
  expect((JSON.parse(textOfAnswer(res)) as { message: string }).message).toMatch(/duplicate key "deviceid"/);
  expect(await gate.ctx.sql`select 1 from devices where deviceid = ${ATTACKER}`).toHaveLength(0);
  await expectVictimUntouched(gate, set.deviceid, set.before);
});
