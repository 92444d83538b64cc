/**
 * Impersonation of a known device by someone holding a valid credential that is not the device's own
 * (issue "Trust what the gateway verified, not what the agent claims"): a shared registration key, another
 * key, a per-agent client bound to another host, a bearer token, a stolen key that was revoked or rotated
 * away. Each test: the attacker's answer; the victim's row unchanged (or `conflict`, where that is the
 * defence); nothing new queued for GLPI and nothing reaching the fake GLPI.
 */
import { describe, expect, it } from 'vitest';
import {
  FI_DEVICEID,
  FI_HEADERS,
  GA_HEADERS,
  KEY_A_SECRET,
  KEY_B_SECRET,
  REALM_HEADER,
  ROGUE_NICS,
  basic,
  expectLastSubmissionHeld,
  expectSameAsWrongPassword,
  expectVictimUntouched,
  fiInventoryText,
  header,
  jsonBody,
  securityEvents,
  snapshot,
  useGate,
  textOfAnswer,
  victim,
  xmlBody,
  drain,
  FI_INVENTORY,
  gaInventoryDoc,
  GA_DEVICEID,
} from './support.js';
import { eventually } from '../helpers/eventually.js';
import { bodyOf } from '../helpers/fixtures.js';

const gate = useGate();

/** The attacker's full inventory under the victim's deviceid: a rogue machine's NICs and name. */
const rogueInventory = (deviceid = FI_DEVICEID) =>
  xmlBody(fiInventoryText({ deviceid, name: 'rogue', nics: ROGUE_NICS, os: 'Kali GNU/Linux Rolling' }));

const prolog = (deviceid: string) =>
  xmlBody(
    `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>\n  <DEVICEID>${deviceid}</DEVICEID>\n  <QUERY>PROLOG</QUERY>\n  <TOKEN>12345678</TOKEN>\n</REQUEST>\n`,
  );

async function createClient(device?: string): Promise<{ clientId: string; clientSecret: string }> {
  const res = await gate.api(
    'POST',
    '/api/v1/clients',
    { name: `c-${Math.random().toString(36).slice(2, 8)}`, ...(device ? { device } : {}) },
    'admin',
  );
  expect(res.status).toBe(201);
  return res.json as { clientId: string; clientSecret: string };
}

async function bearerFor(client: { clientId: string; clientSecret: string }): Promise<string> {
  const res = await gate.raw({
    path: '/api.php/token',
    headers: { 'Content-Type': 'application/json' },
    body: Buffer.from(
      JSON.stringify({
        grant_type: 'client_credentials',
        client_id: client.clientId,
        client_secret: client.clientSecret,
        scope: 'inventory',
      }),
    ),
  });
  expect(res.status).toBe(200);
  return (JSON.parse(res.body.toString('utf8')) as { access_token: string }).access_token;
}

describe('A: a device is pinned to the credential that registered it', () => {
  it('device registered through a client: the shared key under its deviceid gets the wrong-password 401 and a device_credential_mismatch event', async () => {
    const client = await createClient();
    const { deviceid, before } = await victim(gate, { authorization: basic(client.clientId, client.clientSecret) });
    expect(before.device!.registeredClientPk).not.toBeNull();
    for (const body of [rogueInventory(), bodyOf(FI_INVENTORY), prolog(deviceid)]) {
      const req = { headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) }, body };
      const res = await gate.raw(req);
      expect(res.status).toBe(401);
      expect(header(res, 'www-authenticate')).toEqual([REALM_HEADER]);
      await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, res);
    }
    await eventually(async () => {
      const events = (await securityEvents(gate)).filter((e) => e.kind === 'device_credential_mismatch');
      expect(events.length).toBeGreaterThanOrEqual(3);
      expect(events.every((e) => e.deviceid === deviceid)).toBe(true);
    });
    await expectVictimUntouched(gate, deviceid, before);
  });

  it("device registered through client X: client Y's bearer token under its deviceid gets the wrong-password 401", async () => {
    const x = await createClient();
    const { deviceid, before } = await victim(gate, { authorization: basic(x.clientId, x.clientSecret) });
    const y = await createClient(); // unbound: the attacker's own agent credential
    const token = await bearerFor(y);
    const body = rogueInventory();
    const res = await gate.raw({ headers: { ...FI_HEADERS, Authorization: `Bearer ${token}` }, body });
    await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, res);
    // …and client Y over Basic, the same.
    const viaBasic = await gate.raw({
      headers: { ...FI_HEADERS, Authorization: basic(y.clientId, y.clientSecret) },
      body,
    });
    await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, viaBasic);
    await eventually(async () => {
      const kinds = (await securityEvents(gate)).filter((e) => e.deviceid === deviceid).map((e) => e.kind);
      expect(kinds.filter((k) => k === 'device_credential_mismatch').length).toBeGreaterThanOrEqual(2);
    });
    await expectVictimUntouched(gate, deviceid, before);
  });

  it('device registered through key A: key B under its deviceid puts it in conflict, its inventory held, nothing queued', async () => {
    const { deviceid, before } = await victim(gate);
    const res = await gate.raw({
      headers: { ...FI_HEADERS, Authorization: basic('x', KEY_B_SECRET) },
      body: rogueInventory(),
    });
    // The agent is answered normally (it must not learn anything), but a person decides.
    expect(res.status).toBe(200);
    expect(textOfAnswer(res)).toContain('<REPLY>');
    const after = await expectVictimUntouched(gate, deviceid, before, { state: 'conflict' });
    await expectLastSubmissionHeld(gate, before, after);
    const [reg] = await gate.ctx.sql<{ outcome: string }[]>`
      select outcome from registrations where deviceid = ${deviceid} order by id desc limit 1`;
    expect(reg!.outcome).toBe('conflict');
  });

  it("key B replaying the victim's own captured inventory bytes: conflict as well (same bytes, other credential)", async () => {
    const { deviceid, before } = await victim(gate);
    const res = await gate.raw({
      headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_B_SECRET) },
      body: bodyOf(FI_INVENTORY),
    });
    expect(res.status).toBe(200);
    const after = await expectVictimUntouched(gate, deviceid, before, { state: 'conflict' });
    await expectLastSubmissionHeld(gate, before, after);
  });

  it('rotation of key A within grace keeps the device working: every version of one key is one credential', async () => {
    const { deviceid, before } = await victim(gate);
    const rotated = await gate.api('POST', '/api/v1/keys/site-a/rotate', { grace: '7d' }, 'admin');
    expect(rotated.status).toBe(200);
    const newSecret = rotated.json.secret as string;
    // The old version (within grace) and the new one: both accepted, stored and queued for GLPI.
    for (const secret of [KEY_A_SECRET, newSecret]) {
      const res = await gate.raw({
        headers: { ...FI_HEADERS, Authorization: basic('inventory', secret) },
        body: bodyOf(FI_INVENTORY),
      });
      expect(res.status).toBe(200);
    }
    const after = await snapshot(gate, deviceid);
    expect(after.device).toEqual(before.device);
    expect(after.outbox.length).toBe(before.outbox.length + 2);
    await drain(gate);
    expect(gate.glpi.delivered().map((r) => r.deviceid)).toEqual([deviceid, deviceid]);
  });

  it('a stolen key rotated past its grace (grace 0): the wrong-password 401, victim untouched', async () => {
    const { deviceid, before } = await victim(gate);
    expect((await gate.api('POST', '/api/v1/keys/site-a/rotate', { grace: '0' }, 'admin')).status).toBe(200);
    const body = rogueInventory();
    const res = await gate.raw({ headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) }, body });
    await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, res);
    await expectVictimUntouched(gate, deviceid, before);
  });

  it('a stolen key that was revoked: the wrong-password 401, victim untouched', async () => {
    const { deviceid, before } = await victim(gate);
    expect((await gate.api('POST', '/api/v1/keys/site-a/revoke', {}, 'admin')).status).toBe(200);
    for (const body of [rogueInventory(), bodyOf(FI_INVENTORY), prolog(deviceid)]) {
      const res = await gate.raw({ headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) }, body });
      await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, res);
    }
    await expectVictimUntouched(gate, deviceid, before);
  });
});

describe('C: a client bound to one device, used for another', () => {
  it("the attacker's own host-bound client over Basic, under the victim's deviceid: the wrong-password 401 and client_device_mismatch", async () => {
    const { deviceid, before } = await victim(gate);
    // The attacker has a local account on host "lab-pc" and reads its agent configuration.
    const own = await createClient('lab-pc-2026-01-05-08-00-00');
    for (const body of [rogueInventory(), prolog(deviceid)]) {
      const res = await gate.raw({
        headers: { ...FI_HEADERS, Authorization: basic(own.clientId, own.clientSecret) },
        body,
      });
      await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, res);
    }
    const events = (await securityEvents(gate)).filter((e) => e.kind === 'client_device_mismatch');
    expect(events.map((e) => e.deviceid)).toEqual([deviceid, deviceid]);
    expect(events[0]!.details).toMatchObject({ clientId: own.clientId, boundDeviceid: 'lab-pc-2026-01-05-08-00-00' });
    await expectVictimUntouched(gate, deviceid, before);
  });

  it("a bearer token of client A (bound to host A) used for client B's bound device: the wrong-password 401", async () => {
    // Victim: a GLPI Agent whose own client B is bound to its deviceid, registered over OAuth-like Basic with B.
    const b = await createClient(GA_DEVICEID);
    const { deviceid, before } = await victim(gate, { agent: 'ga', authorization: basic(b.clientId, b.clientSecret) });
    expect(before.device!.registeredClientPk).not.toBeNull();
    const a = await createClient('host-a-2026-02-02-10-00-00');
    const token = await bearerFor(a);
    const body = jsonBody(gaInventoryDoc({ name: 'rogue', nics: ROGUE_NICS }));
    const res = await gate.raw({ headers: { ...GA_HEADERS, Authorization: `Bearer ${token}` }, body });
    await expectSameAsWrongPassword(gate, { headers: GA_HEADERS, body }, res);
    const events = (await securityEvents(gate)).filter((e) => e.kind === 'client_device_mismatch');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ deviceid, details: { clientId: a.clientId } });
    await expectVictimUntouched(gate, deviceid, before);
    // Control: client B's own token still works for its device.
    const own = await gate.raw({
      headers: { ...GA_HEADERS, Authorization: `Bearer ${await bearerFor(b)}` },
      body: jsonBody(gaInventoryDoc()),
    });
    expect(own.status).toBe(200);
  });
});

describe('ambiguous credentials', () => {
  const cases: [string, () => string[]][] = [
    ['the valid key first, a wrong one second', () => [basic('inventory', KEY_A_SECRET), basic('x', 'nope-nope')]],
    ['a wrong one first, the valid key second', () => [basic('x', 'nope-nope'), basic('inventory', KEY_A_SECRET)]],
    ['the valid key twice', () => [basic('inventory', KEY_A_SECRET), basic('inventory', KEY_A_SECRET)]],
    ['key A and key B', () => [basic('inventory', KEY_A_SECRET), basic('inventory', KEY_B_SECRET)]],
  ];
  it.each(cases)('two Authorization headers (%s): the wrong-password 401, victim untouched', async (_name, values) => {
    const { deviceid, before } = await victim(gate);
    const body = rogueInventory();
    // Node sends an array header value as separate header lines.
    const headers = { ...FI_HEADERS, Authorization: values() as unknown as string };
    const res = await gate.raw({ headers, body });
    await expectSameAsWrongPassword(gate, { headers: FI_HEADERS, body }, res);
    await expectVictimUntouched(gate, deviceid, before);
  });
});

describe('messages that carry no inventory', () => {
  it("a CONTACT under the victim's deviceid with the shared key changes nothing about the victim's identity", async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga' });
    const body = jsonBody({
      action: 'contact',
      deviceid,
      name: 'GLPI-Agent',
      version: '1.12',
      'enabled-tasks': ['inventory', 'deploy'],
      'installed-tasks': ['inventory', 'deploy'],
    });
    const res = await gate.raw({
      headers: {
        ...GA_HEADERS,
        'GLPI-Agent-ID': '00000000-0000-4000-8000-00000000a77a',
        Authorization: basic('x', KEY_A_SECRET),
      },
      body,
    });
    expect(res.status).toBe(200);
    await expectVictimUntouched(gate, deviceid, before);
  });

  it("a CONTACT under the victim's deviceid cannot change the victim's tag", async () => {
    const { deviceid, before } = await victim(gate, { agent: 'ga' });
    const res = await gate.raw({
      headers: { ...GA_HEADERS, Authorization: basic('x', KEY_A_SECRET) },
      body: jsonBody({ action: 'contact', deviceid, name: 'GLPI-Agent', version: '1.12', tag: 'paris-servers' }),
    });
    expect(res.status).toBe(200);
    await expectVictimUntouched(gate, deviceid, before);
  });

  it("a NETDISCOVERY under the victim's deviceid neither changes the victim nor goes to GLPI", async () => {
    const { deviceid, before } = await victim(gate);
    const text = `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><CONTENT><DEVICE><IP>192.0.2.66</IP><MAC>3c:52:82:aa:bb:01</MAC><NETBIOSNAME>rogue</NETBIOSNAME></DEVICE><MODULEVERSION>6.1</MODULEVERSION><PROCESSNUMBER>7</PROCESSNUMBER></CONTENT><DEVICEID>${deviceid}</DEVICEID><QUERY>NETDISCOVERY</QUERY></REQUEST>`;
    const res = await gate.raw({
      headers: { ...FI_HEADERS, Authorization: basic('x', KEY_A_SECRET) },
      body: xmlBody(text),
    });
    expect(res.status).toBe(200);
    await expectVictimUntouched(gate, deviceid, before);
  });
});

describe("replay of the victim's own captured bytes with the same shared key", () => {
  it('is indistinguishable from the victim (expected): accepted and forwarded, but never as another identity', async () => {
    const { deviceid, before } = await victim(gate);
    const captured = bodyOf(FI_INVENTORY);
    const res = await gate.raw({ headers: { ...FI_HEADERS, Authorization: basic('x', KEY_A_SECRET) }, body: captured });
    expect(res.status).toBe(200);
    const after = await snapshot(gate, deviceid);
    // Same bytes, same key: the gateway cannot tell. What it does keep: the same identity, the same device.
    expect(after.device).toEqual(before.device);
    expect(after.outbox.length).toBe(before.outbox.length + 1);
    await drain(gate);
    const sent = gate.glpi.delivered();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.deviceid).toBe(deviceid);
    // Byte for byte what GLPI got from the victim itself (the stored, secret-redacted copy of the same bytes).
    const [own] = await gate.ctx.sql<{ body: Buffer }[]>`
      select s.body from submissions s where s.id = ${before.outbox[0]!.submissionId}`;
    expect(sent[0]!.body.equals(own!.body)).toBe(true);
    // The replay is visible afterwards: its own registration, with the attacker's user name and address.
    const regs = await gate.ctx.sql<{ authUser: string }[]>`
      select auth_user as "authUser" from registrations where deviceid = ${deviceid} and kind = 'inventory' order by id`;
    expect(regs.map((r) => r.authUser)).toEqual(['inventory', 'x']);
  });
});
