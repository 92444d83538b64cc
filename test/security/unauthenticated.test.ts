/**
 * Threat: anyone who can reach the agent port, with no credential at all, writes rows — under a victim's
 * deviceid (a getConfig GET naming it as its machineid), or without bound (a 100 KB path or query, huge
 * headers). Protection: getConfig GETs and refusals before authentication write nothing (they are counted
 * in agentgate_agent_requests_total); every text column of a registration is cut to a documented length
 * (REGISTRATION_TEXT_MAX), and so is the path kept with an invalid-credential security event.
 */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { REGISTRATION_TEXT_MAX } from '../../src/store/agent-store.js';
import {
  FI_HEADERS,
  KEY_A_SECRET,
  basic,
  expectVictimUntouched,
  fiInventoryText,
  snapshot,
  useGate,
  victim,
} from './support.js';

const gate = useGate({ BODY_LIMIT: '64kb' });

async function counts() {
  const [c] = await gate.ctx.sql<{ registrations: number; devices: number; events: number }[]>`
    select (select count(*)::int from registrations) as registrations, (select count(*)::int from devices) as devices,
           (select count(*)::int from security_events) as events`;
  return c!;
}

async function victimRegistrations(deviceid: string) {
  return gate.ctx.sql<{ id: number; kind: string }[]>`
    select id::int, kind from registrations where deviceid = ${deviceid} order by id`;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = (await gate.raw({ method: 'GET', path: '/metrics' })).body.toString('utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return Number(line?.split(' ').at(-1) ?? 0);
}

describe('unauthenticated requests', () => {
  it("a getConfig GET naming the victim's deviceid is answered and writes nothing", async () => {
    const v = await victim(gate);
    const regsBefore = await victimRegistrations(v.deviceid);
    const before = await counts();
    const counted = await metric('agentgate_agent_requests_total', 'kind="getconfig",format="none",outcome="accepted"');
    for (const task of ['Deploy%5D=3.3', 'Collect%5D=2.9', 'ESX%5D=2.11']) {
      const res = await gate.raw({
        method: 'GET',
        path: `/?action=getConfig&machineid=${encodeURIComponent(v.deviceid)}&task%5B${task}`,
        headers: { 'User-Agent': 'GLPI-Agent_v1.12', 'Content-Type': 'application/json' },
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString('utf8'))).toEqual({ configValidityPeriod: 600, schedule: [] });
    }
    // Even with a (wrong) credential: the answer needs none, and nothing is written either way.
    const withBadCredential = await gate.raw({
      method: 'GET',
      path: `/?action=getConfig&machineid=${encodeURIComponent(v.deviceid)}`,
      headers: { Authorization: basic('x', 'not-a-key') },
    });
    expect(withBadCredential.status).toBe(200);
    expect(await victimRegistrations(v.deviceid)).toEqual(regsBefore);
    expect(await counts()).toEqual(before);
    await expectVictimUntouched(gate, v.deviceid, v.before);
    expect(
      (await metric('agentgate_agent_requests_total', 'kind="getconfig",format="none",outcome="accepted"')) - counted,
    ).toBe(4);
  });

  it('a refusal before authentication (a body over BODY_LIMIT naming the victim) writes nothing', async () => {
    const v = await victim(gate);
    const before = await counts();
    const big = zlib.deflateSync(
      fiInventoryText({ extraXml: `<SOFTWARES><NAME>${'x'.repeat(400_000)}</NAME></SOFTWARES>` }),
      { level: 0 },
    );
    expect(big.length).toBeGreaterThan(64 * 1024);
    const res = await gate.raw({ headers: FI_HEADERS, body: big });
    expect(res.status).toBe(413);
    // Unauthenticated and within the limit: the normal 401, nothing written either.
    const small = await gate.raw({ headers: FI_HEADERS, body: zlib.deflateSync(fiInventoryText()) });
    expect(small.status).toBe(401);
    expect(await counts()).toEqual(before);
    await expectVictimUntouched(gate, v.deviceid, v.before);
  });

  it('a 100 KB path or query is refused and stores nothing', async () => {
    const before = await counts();
    const longQuery = await gate.raw({
      method: 'GET',
      path: `/?action=getConfig&machineid=${'m'.repeat(100 * 1024)}`,
    });
    expect(longQuery.status).toBe(431); // Node's own limit on the request head (16 KB)
    const longPath = await gate.raw({
      path: `/plugins/fusioninventory/${'p'.repeat(100 * 1024)}`,
      headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) },
      body: zlib.deflateSync(fiInventoryText({ deviceid: 'long-path-1' })),
    });
    expect(longPath.status).toBe(431);
    expect(await counts()).toEqual(before);
  });

  it('what does get stored from a long path and long headers is cut to the documented lengths', async () => {
    const before = await counts();
    const longHeaders = {
      'User-Agent': `FusionInventory-Agent_v2.6-3 ${'u'.repeat(3000)}`,
      'GLPI-Agent-ID': `00000000-0000-0000-0000-000000000000${'i'.repeat(1000)}`,
      'GLPI-Proxy-ID': Array.from({ length: 40 }, (_, i) => `proxy-${i}-${'x'.repeat(40)}`).join(','),
      'GLPI-Request-ID': 'R'.repeat(1000),
    };
    const path = `/plugins/fusioninventory/${'p'.repeat(6000)}`;
    // An invalid credential on that path: a security event, its path cut.
    const refused = await gate.raw({
      path,
      headers: { 'Content-Type': 'application/x-compress-zlib', ...longHeaders, Authorization: basic('u', 'wrong') },
      body: zlib.deflateSync(fiInventoryText({ deviceid: 'long-fields-1' })),
    });
    expect(refused.status).toBe(401);
    // The same with the key: recorded, every text column within its bound.
    const res = await gate.raw({
      path,
      headers: {
        'Content-Type': 'application/x-compress-zlib',
        ...longHeaders,
        Authorization: basic(`user-${'n'.repeat(2000)}`, KEY_A_SECRET),
      },
      body: zlib.deflateSync(fiInventoryText({ deviceid: 'long-fields-1' })),
    });
    expect(res.status).toBe(200);
    const rows = await gate.ctx.sql<Record<string, string | null>[]>`
      select deviceid, method, path, kind, format, compression, remote_addr as "remoteAddr", user_agent as "userAgent",
             agent_id as "agentId", proxy_id as "proxyId", request_id as "requestId", outcome, message,
             auth_type as "authType", auth_user as "authUser", cert_fingerprint as "certFingerprint",
             cert_subject as "certSubject"
      from registrations where deviceid = 'long-fields-1'`;
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    for (const [column, max] of Object.entries(REGISTRATION_TEXT_MAX)) {
      const value = row[column];
      if (value !== null && value !== undefined) expect(value.length, column).toBeLessThanOrEqual(max);
    }
    // Cut, not dropped: the leading part of what was sent is what is kept.
    expect(row.path).toBe(path.slice(0, REGISTRATION_TEXT_MAX.path));
    expect(row.userAgent).toBe(longHeaders['User-Agent'].slice(0, REGISTRATION_TEXT_MAX.userAgent));
    expect(row.requestId).toBe('R'.repeat(REGISTRATION_TEXT_MAX.requestId));
    const events = await gate.ctx.sql<{ details: { path: string } }[]>`
      select details from security_events order by id desc limit 1`;
    expect(events[0]!.details.path).toBe(path.slice(0, 256));
    const after = await counts();
    expect(after.registrations - before.registrations).toBe(1);
    expect(after.events - before.events).toBe(1);
    expect((await snapshot(gate, 'long-fields-1')).device?.state).toBe('quarantined');
  });
});
