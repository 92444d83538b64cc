/**
 * Threat: a key holder skips PROLOG/CONTACT and sends inventories under fresh deviceids: each one used to
 * create a quarantined device, outside SPIKE_NEW_DEVICES_PER_KEY's deferral and the fair share of
 * INVENTORY_BUDGET_PER_SECOND (both counted PROLOG/CONTACT only).
 * Protection: an inventory naming an unknown deviceid is a first contact like a PROLOG: past the spike, or
 * deferred by the fair budget, it is answered 429 in the agent's format (Retry-After) and no device is
 * created. The agents' real runs — FusionInventory PROLOG then INVENTORY, GLPI Agent CONTACT then
 * inventory — register at their PROLOG/CONTACT, so their inventory names a known device and goes through.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FI_HEADERS,
  GA_DEVICEID,
  GA_RUN,
  type Gate,
  KEY_A_SECRET,
  KEY_B_SECRET,
  agentHeaders,
  basic,
  expectVictimUntouched,
  fiInventoryText,
  header,
  startGate,
  victim,
  xmlBody,
} from './support.js';
import { bodyOf } from '../helpers/fixtures.js';

const SPIKE_PER_KEY = 3;

async function devicesOfKey(gate: Gate, secret: string): Promise<string[]> {
  const name = secret === KEY_B_SECRET ? 'site-b' : 'site-a';
  const rows = await gate.ctx.sql<{ deviceid: string }[]>`
    select d.deviceid from devices d join registration_keys k on k.id = d.registered_key_id
    where k.name = ${name} order by d.id`;
  return rows.map((r) => r.deviceid);
}

function inventoryFrom(gate: Gate, secret: string, deviceid: string) {
  return gate.raw({
    headers: { ...FI_HEADERS, Authorization: basic('inventory', secret) },
    body: xmlBody(fiInventoryText({ deviceid })),
  });
}

/** The real GLPI Agent run (CONTACT, then its JSON inventory) through key A: both must be accepted. */
async function realGlpiAgentRun(gate: Gate): Promise<void> {
  for (const r of GA_RUN) {
    if (r.method !== 'POST') continue;
    const headers = agentHeaders(r);
    if (!r.headers.some(([k]) => k.toLowerCase() === 'authorization')) continue; // the 401 leg of the capture
    headers.Authorization = basic('inventory', KEY_A_SECRET);
    const res = await gate.raw({ headers, body: bodyOf(r) });
    expect(res.status, `${r.file} of a real GLPI Agent run`).toBe(200);
    if (r.classified.kind === 'contact')
      expect(JSON.parse(zlib.inflateSync(res.body).toString())).toMatchObject({ status: 'ok' });
  }
  expect(await devicesOfKey(gate, KEY_A_SECRET)).toContain(GA_DEVICEID);
}

describe('inventories without PROLOG under fresh deviceids: the new-device spike', () => {
  let gate: Gate;
  beforeAll(async () => {
    gate = await startGate({
      SPIKE_NEW_DEVICES_PER_KEY: String(SPIKE_PER_KEY),
      INVENTORY_BUDGET_PER_SECOND: '10000',
    });
  });
  afterAll(async () => {
    await gate.close();
  });

  it('add at most SPIKE_NEW_DEVICES_PER_KEY devices; the rest get 429 and create nothing', async () => {
    const { deviceid, before } = await victim(gate); // key A, the real FusionInventory run
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await inventoryFrom(gate, KEY_B_SECRET, `rogue-noprolog-${i}-2026-12-02-04-00-00`);
      statuses.push(res.status);
      if (res.status === 429) {
        expect(header(res, 'Retry-After')).toEqual(['3600']);
        expect(zlib.inflateSync(res.body).toString()).toMatch(/^<\?xml/); // the agent's format and compression
      }
    }
    const created = await devicesOfKey(gate, KEY_B_SECRET);
    expect(created.length).toBeLessThanOrEqual(SPIKE_PER_KEY);
    expect(statuses.filter((s) => s === 200)).toHaveLength(created.length);
    expect(statuses.filter((s) => s === 429).length).toBe(12 - created.length);
    // The refused ones left no device and no submission behind.
    const [subs] = await gate.ctx.sql<{ n: number }[]>`
      select count(*)::int as n from submissions s join devices d on d.id = s.device_id
      where d.deviceid like 'rogue-noprolog-%'`;
    expect(subs!.n).toBe(created.length);
    await expectVictimUntouched(gate, deviceid, before);
    // Key A (not in a spike) still registers a real GLPI Agent: CONTACT, then the inventory.
    await realGlpiAgentRun(gate);
  });
});

describe('inventories without PROLOG under fresh deviceids: the fair budget', () => {
  let gate: Gate;
  beforeAll(async () => {
    gate = await startGate({ SPIKE_NEW_DEVICES_PER_KEY: '100000', INVENTORY_BUDGET_PER_SECOND: '1' });
  });
  afterAll(async () => {
    await gate.close();
  });

  it('are admitted through the budget like a PROLOG: a flood is refused, not registered', async () => {
    const { deviceid, before } = await victim(gate);
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => inventoryFrom(gate, KEY_B_SECRET, `flood-noprolog-${i}-x`)),
    );
    const ok = answers.filter((r) => r.status === 200).length;
    const refused = answers.filter((r) => r.status === 429);
    expect(ok + refused.length).toBe(30);
    expect(refused.length).toBeGreaterThan(0);
    expect(await devicesOfKey(gate, KEY_B_SECRET)).toHaveLength(ok);
    await expectVictimUntouched(gate, deviceid, before);
    // An inventory of a device the gateway knows is never refused for load (the victim's, sent again).
    const again = await gate.raw({
      headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) },
      body: xmlBody(fiInventoryText()),
    });
    expect(again.status).toBe(200);
  });
});
