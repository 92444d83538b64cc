/**
 * Threat: one holder of registration key A sends PROLOGs with fresh deviceids far above
 * INVENTORY_BUDGET_PER_SECOND, so that every other site's agents are told to come back in 1-4 h, and each
 * PROLOG fills the review queue with a quarantined device.
 * Protection: the budget is shared fairly between the credentials with demand (src/services/admission.ts,
 * one Lua script in Redis); a deferred PROLOG/CONTACT of a new deviceid creates no device; past
 * SPIKE_NEW_DEVICES_PER_KEY the key is frozen, alerted on, and its new deviceids are deferred.
 * So key B's agents keep being answered SEND (inventory enabled) at their share, A's flood is deferred, and
 * A adds at most SPIKE_NEW_DEVICES_PER_KEY devices to the queue.
 */
import zlib from 'node:zlib';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from '../helpers/env.js';
import {
  type Gate,
  KEY_A_SECRET,
  KEY_B_SECRET,
  basic,
  expectVictimUntouched,
  startGate,
  textOfAnswer,
  victim,
} from './support.js';

const REDIS_URL = TEST_REDIS_URL.replace(/\/\d+$/, '/10');
const BUDGET = 4;
const SPIKE_PER_KEY = 30;

const prolog = (deviceid: string) =>
  zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>\n  <DEVICEID>${deviceid}</DEVICEID>\n  <QUERY>PROLOG</QUERY>\n  <TOKEN>12345678</TOKEN>\n</REQUEST>\n`,
  );
const contact = (deviceid: string) =>
  zlib.deflateSync(JSON.stringify({ action: 'contact', deviceid, name: 'GLPI-Agent', version: '1.12', tag: '' }));
const ZLIB = 'application/x-compress-zlib';

let gate: Gate;
beforeAll(async () => {
  const r = new Redis(REDIS_URL);
  await r.flushdb();
  r.disconnect();
  gate = await startGate({
    REDIS_URL,
    INVENTORY_BUDGET_PER_SECOND: String(BUDGET),
    SPIKE_NEW_DEVICES_PER_KEY: String(SPIKE_PER_KEY),
  });
});
afterAll(async () => {
  await gate.close();
});

interface Sent {
  deviceid: string;
  key: 'A' | 'B';
  kind: 'prolog' | 'contact';
  status: number;
  text: string;
}

const admitted = (s: Sent) =>
  s.kind === 'prolog'
    ? s.text.includes('<RESPONSE>SEND</RESPONSE>')
    : !(JSON.parse(s.text) as { disabled: string[] }).disabled.includes('inventory');

async function agent(key: 'A' | 'B', kind: 'prolog' | 'contact', deviceid: string): Promise<Sent> {
  const res = await gate.raw({
    headers: {
      'Content-Type': ZLIB,
      'User-Agent': kind === 'prolog' ? 'FusionInventory-Agent_v2.6-3' : 'GLPI-Agent_v1.12',
      ...(kind === 'contact'
        ? { 'GLPI-Agent-ID': `00000000-0000-4000-8000-${deviceid.slice(-12).padStart(12, '0')}` }
        : {}),
      Authorization: basic('inventory', key === 'A' ? KEY_A_SECRET : KEY_B_SECRET),
    },
    body: kind === 'prolog' ? prolog(deviceid) : contact(deviceid),
  });
  return { deviceid, key, kind, status: res.status, text: textOfAnswer(res) };
}

async function metricsText(): Promise<string> {
  return (await gate.raw({ method: 'GET', path: '/metrics' })).body.toString('utf8');
}

describe('a PROLOG flood through one key', () => {
  it("defers that key's agents, not the other key's, and does not fill the review queue", async () => {
    const v = await victim(gate); // an approved device of key A (site-a)
    const sent: Sent[] = [];
    // Site B's agents were already arriving before the flood.
    sent.push(await agent('B', 'prolog', 'site-b-pc-000000'));
    // The flood runs for as long as site B's agents keep arriving.
    const started = Date.now();
    let flooding = true;
    let n = 0;
    const flooders = Array.from({ length: 16 }, async () => {
      while (flooding) {
        const i = n++;
        sent.push(await agent('A', 'prolog', `flood-${String(i).padStart(6, '0')}`));
      }
    });
    // Site B: six new agents, each at least 700 ms after the previous one (traffic shaping of the simulated
    // fleet, not a wait), PROLOG and CONTACT alternately: at most two in any one-second window, its share
    // of half the budget.
    const siteB = (async () => {
      for (let i = 1; i <= 6; i++) {
        await new Promise((r) => setTimeout(r, 700));
        sent.push(await agent('B', i % 2 ? 'contact' : 'prolog', `site-b-pc-${String(i).padStart(6, '0')}`));
      }
      flooding = false;
    })();
    await Promise.all([...flooders, siteB]);
    const elapsed = (Date.now() - started) / 1000;
    const a = sent.filter((s) => s.key === 'A');
    const b = sent.filter((s) => s.key === 'B');

    // (1) The answers: every one a 200; B's all admitted, A's mostly deferred, with the 1-4 h PROLOG_FREQ.
    expect(sent.every((s) => s.status === 200)).toBe(true);
    expect(a.length / elapsed, 'the flood runs well over the budget').toBeGreaterThan(2 * BUDGET);
    expect(b.filter((s) => !admitted(s)).map((s) => s.deviceid)).toEqual([]);
    const aAdmitted = a.filter(admitted);
    const windows = Math.ceil(elapsed) + 1;
    expect(aAdmitted.length).toBeLessThanOrEqual(BUDGET * windows);
    for (const d of a.filter((s) => !admitted(s))) {
      const freq = Number(/<PROLOG_FREQ>(\d+)<\/PROLOG_FREQ>/.exec(d.text)?.[1]);
      expect(freq).toBeGreaterThanOrEqual(1);
      expect(freq).toBeLessThanOrEqual(4);
    }

    // (2) The rows: B's devices registered (quarantined, pinned to site-b); A's deferred PROLOGs created no
    // device, so the queue holds at most SPIKE_NEW_DEVICES_PER_KEY of A's, exactly those answered SEND.
    const devices = await gate.ctx.sql<{ deviceid: string; state: string; key: string | null }[]>`
      select d.deviceid, d.state, k.name as key from devices d left join registration_keys k on k.id = d.registered_key_id
      where d.deviceid like 'site-b-pc-%' or d.deviceid like 'flood-%'`;
    const bDevices = devices.filter((d) => d.deviceid.startsWith('site-b-pc-'));
    expect(bDevices.map((d) => d.deviceid).sort()).toEqual(b.map((s) => s.deviceid).sort());
    expect(new Set(bDevices.map((d) => `${d.state}/${d.key}`))).toEqual(new Set(['quarantined/site-b']));
    const aDevices = devices.filter((d) => d.deviceid.startsWith('flood-'));
    expect(aDevices.map((d) => d.deviceid).sort()).toEqual(aAdmitted.map((s) => s.deviceid).sort());
    expect(aDevices.length).toBeLessThanOrEqual(SPIKE_PER_KEY);
    const outcomes = await gate.ctx.sql<{ outcome: string; n: number }[]>`
      select outcome, count(*)::int as n from registrations where deviceid like 'flood-%' group by outcome`;
    const byOutcome = Object.fromEntries(outcomes.map((o) => [o.outcome, o.n]));
    expect(byOutcome['deferred:share'], 'A deferred as over its share').toBeGreaterThan(0);
    expect(byOutcome['deferred:spike'], 'A deferred as a spike').toBeGreaterThan(0);

    // Visible: the key is frozen by the spike detector, and the metrics say which key floods.
    const [key] = await gate.ctx.sql<{ frozenReason: string | null }[]>`
      select frozen_reason as "frozenReason" from registration_keys where name = 'site-a'`;
    expect(key!.frozenReason).toMatch(/^spike: \d+ new devices from key site-a/);
    // What the console's key list shows (the "frozen" badge, with the reason as its title).
    const keys = await gate.api('GET', '/api/v1/keys', undefined, 'admin');
    const byName = new Map(
      (keys.json as { name: string; frozenAt: string | null; frozenReason: string | null }[]).map((k) => [k.name, k]),
    );
    expect(byName.get('site-a')!.frozenReason).toMatch(/^spike: /);
    expect(byName.get('site-b')!.frozenAt).toBeNull();
    const m = await metricsText();
    expect(m).toContain('agentgate_spike_alerts_total{scope="key"} 1');
    expect(m).toMatch(/^agentgate_new_deviceids_total\{key="site-a",outcome="deferred"\} [1-9]\d*$/m);
    expect(m).toMatch(/^agentgate_deferred_total\{reason="share"\} [1-9]\d*$/m);
    expect(m).not.toMatch(/agentgate_new_deviceids_total\{key="site-b",outcome="deferred"\}/);

    // (3) The victim's rows are unchanged and nothing reached GLPI.
    await expectVictimUntouched(gate, v.deviceid, v.before);
  });
});
