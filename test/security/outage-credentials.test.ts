/**
 * Threats while PostgreSQL is away (a real gateway process; PostgreSQL cut by a TCP proxy the test controls):
 * - a key revoked before the outage, or a secret nobody issued, is used while the gateway cannot ask the
 *   database: the outage credential cache (OUTAGE_CREDENTIAL_TTL) must keep the revocation and never take
 *   an unknown secret;
 * Each: the attacker's answers, the victim device's row unchanged, nothing recorded for the attacker.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/env.js';
import { eventually } from '../helpers/eventually.js';
import { TEST_ADMIN_TOKEN } from '../helpers/secrets.js';
import {
  type FaultGateway,
  type Outcome,
  type SimAgent,
  TcpProxy,
  hostPort,
  isAnswer,
  judge,
  makeAgents,
  message,
  metric,
  post,
} from '../faults/support.js';

describe('PostgreSQL away: the outage credential cache', () => {
  let proxy: TcpProxy;
  let gw: FaultGateway;
  let api: (method: string, path: string, body?: unknown) => Promise<{ status: number; json: Record<string, unknown> }>;
  beforeAll(async () => {
    const { startFaultGateway } = await import('../faults/support.js');
    const pg = hostPort(TEST_DATABASE_URL, 5432);
    proxy = new TcpProxy(pg.host, pg.port);
    await proxy.start();
    gw = await startFaultGateway({ viaPort: proxy.port, env: { SECRET_CACHE_TTL: '0' } });
    api = async (method, path, body) => {
      const res = await fetch(`http://127.0.0.1:${gw.port}${path}`, {
        method,
        headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
  }, 90_000);
  afterAll(async () => {
    proxy?.resume();
    await gw?.close();
    await proxy?.close();
  }, 60_000);

  const withKey = (agent: SimAgent, secret: string): SimAgent => ({
    ...agent,
    authorization: `Basic ${Buffer.from(`agent:${secret}`).toString('base64')}`,
  });
  const send = (agent: SimAgent, step: 'prolog' | 'inventory', timeoutMs = 100_000) =>
    post(gw.port, message(agent, step), { timeoutMs });
  const status = (o: Outcome) => (isAnswer(o) ? o.status : o.error);
  const rowOf = async (deviceid: string) =>
    (await gw.admin.unsafe(`select * from "${gw.schema}".devices where deviceid = $1`, [deviceid]))[0];
  const registrationsOf = async (like: string) =>
    Number(
      (
        await gw.admin.unsafe(`select count(*)::int as n from "${gw.schema}".registrations where deviceid like $1`, [
          like,
        ])
      )[0]!.n,
    );

  it('keeps a revoked key refused and takes no unknown secret, while a verified credential is spooled', async () => {
    const tag = crypto.randomBytes(3).toString('hex');
    const fleet = makeAgents(6, tag).filter((a) => a.kind === 'fi');
    const [victimAgent, revokedAgent, strangerAgent] = fleet;
    const doomed = await api('POST', '/api/v1/keys', { name: 'doomed' });
    expect(doomed.status).toBe(201);
    const doomedSecret = String(doomed.json.secret);

    // Before the outage: the victim (bootstrap key) registers; the flood and doomed keys are verified.
    expect(judge(message(victimAgent!, 'prolog'), await send(victimAgent!, 'prolog'))).toBe('ok');
    expect(status(await send(victimAgent!, 'inventory'))).toBe(200);
    const revoked = withKey(revokedAgent!, doomedSecret);
    expect(status(await send(revoked, 'prolog'))).toBe(200);
    expect((await api('POST', '/api/v1/keys/doomed/revoke', {})).status).toBe(200);
    expect(status(await send(revoked, 'prolog')), 'revoked, seen by this process').toBe(401);
    const victimBefore = await rowOf(victimAgent!.deviceid);
    expect(victimBefore).toBeDefined();

    proxy.pause('refuse');
    // Another credential this process verified is still taken from memory: the victim's inventory is spooled
    // (the revocation of another key just before the outage forgot that key only, not every verification).
    expect(status(await send(victimAgent!, 'inventory', 30_000))).toBe(200);
    // The revoked key stays refused: the outage cache forgot it when it was revoked, so nothing it sends is
    // taken from memory — its PROLOG is not told to send; its inventory is not spooled (it waits for the
    // database to check it, then a 503: never a 200).
    expect(judge(message(revoked, 'prolog'), await send(revoked, 'prolog'))).toBe('deferred');
    // A secret nobody issued is not taken either: its PROLOG is only told "not now" (nothing can be checked),
    // its inventory is not spooled.
    const stranger = withKey(strangerAgent!, 'agk_never-issued-secret-aaaaaaaaaaaaaaaa');
    expect(judge(message(stranger, 'prolog'), await send(stranger, 'prolog'))).toBe('deferred');
    const [revokedInventory, strangerInventory] = await Promise.all([
      send(revoked, 'inventory'),
      send(stranger, 'inventory'),
    ]);
    expect(status(revokedInventory)).toBe(503);
    expect(status(strangerInventory)).toBe(503);
    expect(Number(await metric(gw.port, 'agentgate_spool_messages'))).toBeGreaterThan(0);

    proxy.resume();
    // Once the database answers, both are what they are: wrong credentials.
    await eventually(async () => expect(status(await send(stranger, 'inventory'))).toBe(401), { timeout: 30_000 });
    expect(status(await send(revoked, 'inventory'))).toBe(401);
    // Nothing was recorded for the revoked key's or the stranger's device; the victim's row is as it was
    // (but for last_seen and what its own inventories update).
    await eventually(
      async () => {
        expect(await metric(gw.port, 'agentgate_spool_messages')).toBe('0');
      },
      { timeout: 60_000 },
    );
    expect(await rowOf(revokedAgent!.deviceid)).toMatchObject({ state: 'quarantined' }); // from its pre-revocation PROLOG
    expect(await rowOf(strangerAgent!.deviceid)).toBeUndefined();
    expect(await registrationsOf(strangerAgent!.deviceid)).toBe(0);
    const victimAfter = await rowOf(victimAgent!.deviceid);
    for (const k of ['id', 'deviceid', 'state', 'registered_key_id', 'uuid', 'serial', 'name'])
      expect(victimAfter![k], k).toEqual(victimBefore![k]);
  }, 170_000);
});
