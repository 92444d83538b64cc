/**
 * Identity continuity on a shared key (B) and known hardware under a new deviceid (D). The attacker holds
 * the victim's own registration key, so pinning cannot tell them apart: what the inventory says about the
 * hardware must. A contradicting full inventory, or a partial contradicting in the sections it carries, is
 * held as `conflict` and never merged: the victim's fields stay, nothing goes to GLPI. The victim's own
 * consistent traffic keeps flowing (positive controls), or the defence would just be "block everything".
 */
import { describe, expect, it } from 'vitest';
import {
  FI_DEVICEID,
  FI_HEADERS,
  GA_HEADERS,
  KEY_A_SECRET,
  ROGUE_HW,
  ROGUE_NICS,
  VICTIM_HW,
  VICTIM_MAC,
  basic,
  drain,
  expectLastSubmissionHeld,
  expectVictimUntouched,
  fiInventoryText,
  gaInventoryDoc,
  jsonBody,
  snapshot,
  useGate,
  victim,
  xmlBody,
} from './support.js';

const gate = useGate();

const keyA = () => basic('inventory', KEY_A_SECRET);
const VICTIM_NICS = [
  { mac: VICTIM_MAC, ip: '192.0.2.2' },
  { mac: '56:bf:77:4b:c3:80', virtual: true, description: 'ifb0' },
  { mac: 'fa:92:48:3b:c8:95', virtual: true, description: 'ifb1' },
];

async function attackXml(text: string) {
  return gate.raw({ headers: { ...FI_HEADERS, Authorization: keyA() }, body: xmlBody(text) });
}
async function attackJson(doc: Record<string, unknown>) {
  return gate.raw({ headers: { ...GA_HEADERS, Authorization: keyA() }, body: jsonBody(doc) });
}

/** The three assertions for a contradicting inventory: a normal answer, conflict + held, no change, nothing queued. */
async function expectHeldAsConflict(deviceid: string, before: Awaited<ReturnType<typeof victim>>['before']) {
  const after = await expectVictimUntouched(gate, deviceid, before, { state: 'conflict' });
  await expectLastSubmissionHeld(gate, before, after);
}

describe('B: a full inventory contradicting the known hardware (same shared key, same deviceid)', () => {
  const contradictions: [string, { uuid?: string | null; serial?: string | null }][] = [
    ['the known UUID missing', { uuid: null, serial: VICTIM_HW.serial }],
    ['the known serial missing', { uuid: VICTIM_HW.uuid, serial: null }],
    [
      'the UUID replaced by the all-zero UUID',
      { uuid: '00000000-0000-0000-0000-000000000000', serial: VICTIM_HW.serial },
    ],
    ['the UUID replaced by all-F junk', { uuid: 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', serial: VICTIM_HW.serial }],
    ['the serial replaced by "To Be Filled By O.E.M."', { uuid: VICTIM_HW.uuid, serial: 'To Be Filled By O.E.M.' }],
    ['the serial replaced by "Not Specified"', { uuid: VICTIM_HW.uuid, serial: 'Not Specified' }],
    ['another UUID', { uuid: ROGUE_HW.uuid, serial: VICTIM_HW.serial }],
    ['another serial', { uuid: VICTIM_HW.uuid, serial: ROGUE_HW.serial }],
    ['both other', { ...ROGUE_HW }],
  ];
  it.each(contradictions)('XML with %s: held as conflict, never merged or forwarded', async (_name, hw) => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    expect(before.device).toMatchObject({ uuid: VICTIM_HW.uuid, serial: VICTIM_HW.serial });
    // Only the hardware ids differ, plus a rogue name: the name must not be merged either.
    const text = fiInventoryText({ hw: { uuid: hw.uuid ?? undefined, serial: hw.serial ?? undefined }, name: 'rogue' });
    const res = await attackXml(text);
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it('physical MACs sharing none with the known ones (no UUID/serial known, the captured container): conflict', async () => {
    const { deviceid, before } = await victim(gate);
    const res = await attackXml(fiInventoryText({ name: 'rogue', nics: ROGUE_NICS, os: 'Kali GNU/Linux Rolling' }));
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it("new physical MACs dressed up with the victim's virtual MACs (overlap only on virtual ones): conflict", async () => {
    const { deviceid, before } = await victim(gate);
    const nics = [...ROGUE_NICS, ...VICTIM_NICS.filter((n) => n.virtual)];
    const res = await attackXml(fiInventoryText({ name: 'rogue', nics }));
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it('a JSON (GLPI Agent) inventory with other hardware for a device registered in XML: conflict', async () => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    const res = await attackJson(gaInventoryDoc({ deviceid, hw: ROGUE_HW, name: 'rogue', nics: ROGUE_NICS }));
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it('control: the victim moving to GLPI Agent JSON with the same hardware (UUID in upper case) is accepted and forwarded', async () => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    const res = await attackJson(
      gaInventoryDoc({ deviceid, hw: { uuid: VICTIM_HW.uuid.toUpperCase(), serial: VICTIM_HW.serial } }),
    );
    expect(res.status).toBe(200);
    const after = await snapshot(gate, deviceid);
    expect(after.device).toEqual(before.device);
    expect(after.outbox.length).toBe(before.outbox.length + 1);
    await drain(gate);
    expect(gate.glpi.delivered().map((r) => r.deviceid)).toEqual([deviceid]);
  });

  it('control: the victim adding a NIC (known MAC kept, same UUID/serial) is accepted, merged and forwarded', async () => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    const nics = [...VICTIM_NICS, { mac: '3c:52:82:aa:bb:02', ip: '198.51.100.9', description: 'eth1' }];
    const res = await attackXml(fiInventoryText({ hw: VICTIM_HW, nics }));
    expect(res.status).toBe(200);
    const after = await snapshot(gate, deviceid);
    expect(after.device!.state).toBe('approved');
    expect(after.device!.macs).toContain('3c:52:82:aa:bb:02');
    expect(after.outbox.length).toBe(before.outbox.length + 1);
    await drain(gate);
    expect(gate.glpi.delivered()).toHaveLength(1);
  });
});

describe('B: partial inventories are judged on the sections they carry', () => {
  it('a partial carrying hardware/bios with another UUID and serial: conflict, not merged', async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
    const res = await attackJson(gaInventoryDoc({ partial: true, hw: ROGUE_HW, name: 'rogue' }));
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it('a partial carrying a networks section with other physical MACs: conflict, not merged', async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
    const doc = gaInventoryDoc({ partial: true, keep: ['networks'], hw: VICTIM_HW, nics: ROGUE_NICS });
    const res = await attackJson(doc);
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it('a partial whose hardware section drops the known UUID: conflict', async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
    const res = await attackJson(gaInventoryDoc({ partial: true, hw: { serial: VICTIM_HW.serial }, name: 'rogue' }));
    expect(res.status).toBe(200);
    await expectHeldAsConflict(deviceid, before);
  });

  it("control: the victim's own partial (same UUID/serial, no networks section) is accepted and forwarded", async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
    const res = await attackJson(gaInventoryDoc({ partial: true, hw: VICTIM_HW }));
    expect(res.status).toBe(200);
    const after = await snapshot(gate, deviceid);
    expect(after.device).toEqual(before.device);
    expect(after.outbox.length).toBe(before.outbox.length + 1);
  });
});

describe('D: known hardware arriving under a new deviceid', () => {
  it("the victim's UUID and serial under a fresh deviceid: the new device is conflict, the victim untouched", async () => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    const newId = 'rogue-2026-03-03-03-03-03';
    const res = await attackXml(fiInventoryText({ deviceid: newId, hw: VICTIM_HW, name: 'rogue', nics: ROGUE_NICS }));
    expect(res.status).toBe(200);
    await expectVictimUntouched(gate, deviceid, before);
    const rogue = await snapshot(gate, newId);
    expect(rogue.device).toMatchObject({ state: 'conflict', id: expect.any(Number) });
    expect(rogue.outbox).toEqual([]);
  });
});

describe("deviceid variants of the victim's", () => {
  // Variants that are other strings to the database: a new device (quarantined or conflict), never the victim.
  const others: [string, string][] = [
    ['upper case', FI_DEVICEID.toUpperCase()],
    ['first letter upper case', `V${FI_DEVICEID.slice(1)}`],
    ['Cyrillic look-alike "м"', FI_DEVICEID.replace('m', '\u043c')],
    ['a zero-width space inside', FI_DEVICEID.replace('-', '-\u200b')],
    ['a fullwidth hyphen', FI_DEVICEID.replace('-', '\uff0d')],
  ];
  it.each(others)(
    '%s, carrying the victim hardware: a new device held for a person, the victim untouched',
    async (_name, variant) => {
      const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
      const res = await attackXml(
        fiInventoryText({ deviceid: variant, hw: VICTIM_HW, name: 'rogue', nics: ROGUE_NICS }),
      );
      expect(res.status).toBe(200);
      await expectVictimUntouched(gate, deviceid, before);
      const rogue = await snapshot(gate, variant);
      expect(rogue.device?.deviceid).toBe(variant);
      expect(rogue.device?.state).toBe('conflict'); // D: the victim's UUID/serial under another deviceid
    },
  );

  it.each(others)(
    '%s, no hardware ids (container): quarantined as a new device, the victim untouched',
    async (_n, v) => {
      const { deviceid, before } = await victim(gate);
      const res = await attackXml(fiInventoryText({ deviceid: v, name: 'rogue', nics: ROGUE_NICS }));
      expect(res.status).toBe(200);
      await expectVictimUntouched(gate, deviceid, before);
      expect((await snapshot(gate, v)).device?.state).toBe('quarantined');
    },
  );

  // Surrounding whitespace is trimmed: these ARE the victim's deviceid, so they get the victim's defences.
  const same: [string, string][] = [
    ['a trailing space', `${FI_DEVICEID} `],
    ['a leading space', ` ${FI_DEVICEID}`],
    ['a trailing no-break space', `${FI_DEVICEID}\u00a0`],
  ];
  it.each(same)(
    '%s is read as the victim itself: contradicting hardware is a conflict, no second row',
    async (_n, v) => {
      const { deviceid, before } = await victim(gate);
      const res = await attackXml(fiInventoryText({ deviceid: v, name: 'rogue', nics: ROGUE_NICS }));
      expect(res.status).toBe(200);
      await expectHeldAsConflict(deviceid, before);
      const [n] = await gate.ctx.sql<{ n: number }[]>`select count(*)::int as n from devices`;
      expect(n!.n).toBe(1);
    },
  );
});

describe('parser differentials (what GLPI would read from the forwarded bytes)', () => {
  // GLPI reads the forwarded bytes itself: a second DEVICEID or HARDWARE section must not slip past the gateway.
  it('a second DEVICEID element naming another machine is not forwarded as the victim', async () => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    const text = fiInventoryText({ hw: VICTIM_HW }).replace(
      '</REQUEST>',
      '  <DEVICEID>rogue-2026-04-04-04-04-04</DEVICEID>\n</REQUEST>',
    );
    const res = await attackXml(text);
    // Refused, or held: either way nothing reaches GLPI under an identity the gateway did not vet.
    expect([200, 400]).toContain(res.status);
    const after = await snapshot(gate, deviceid);
    expect(after.device).toMatchObject({ name: before.device!.name, uuid: VICTIM_HW.uuid });
    expect(after.outbox).toEqual(before.outbox);
  });

  it('a second HARDWARE section with another UUID is not forwarded as the victim', async () => {
    const { deviceid, before } = await victim(gate, { hw: VICTIM_HW });
    const text = fiInventoryText({
      hw: VICTIM_HW,
      extraXml: `<HARDWARE><NAME>rogue</NAME><UUID>${ROGUE_HW.uuid}</UUID></HARDWARE><BIOS><SSN>${ROGUE_HW.serial}</SSN></BIOS>`,
    });
    const res = await attackXml(text);
    expect([200, 400]).toContain(res.status);
    const after = await snapshot(gate, deviceid);
    expect(after.device).toMatchObject({ name: before.device!.name, uuid: VICTIM_HW.uuid, serial: VICTIM_HW.serial });
    expect(after.outbox).toEqual(before.outbox);
  });

  it('a JSON inventory with two "deviceid" keys: whichever the gateway reads, the victim is not impersonated', async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga', hw: VICTIM_HW });
    const doc = JSON.stringify(gaInventoryDoc({ hw: ROGUE_HW, name: 'rogue', nics: ROGUE_NICS }));
    // JSON.parse and PHP's json_decode both keep the last key: put the victim's last.
    const text = doc.replace(`"deviceid":"${deviceid}"`, `"deviceid":"rogue-2026-05-05","deviceid":"${deviceid}"`);
    expect(text).not.toBe(doc);
    const res = await gate.raw({
      headers: { ...GA_HEADERS, Authorization: keyA() },
      body: xmlBody(text), // zlib, as the agent sends
    });
    expect([200, 400]).toContain(res.status);
    const after = await snapshot(gate, deviceid);
    expect(after.device).toMatchObject({ name: before.device!.name, uuid: VICTIM_HW.uuid });
    expect(after.outbox).toEqual(before.outbox);
  });
});
