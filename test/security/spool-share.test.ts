/**
 * Threat: during a PostgreSQL outage, the holder of one registration key (site-a) floods the gateway with
 * full inventories under fresh deviceids, to fill the local spool so that every other site's agents — told
 * to send before the outage — get a 503 and lose their inventory until their next run.
 * Protection (README "One credential cannot fill the spool", spool.ts spoolShare): each credential holds at
 * most SPOOL_MAX / n of the spool (n credentials spooling; half while alone). Past its share the attacker's
 * inventories are not spooled: they go to the database (at most 60 s) and get a 503 while it is away, writing
 * nothing; site-b's inventories are still spooled (200) and recorded once the database answers.
 *
 * A real gateway process (`agent-gate serve`) whose PostgreSQL goes through a TCP proxy the test pauses; the
 * shared server is never touched. The inventories are the captured ones (test/fixtures), deviceid changed.
 */
import crypto from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/env.js';
import { eventually } from '../helpers/eventually.js';
import { FakeGlpi } from '../helpers/fake-glpi.js';
import { TEST_ADMIN_TOKEN } from '../helpers/secrets.js';
import {
  type Acked,
  type FaultGateway,
  type Message,
  type Outcome,
  RUN,
  type SimAgent,
  TcpProxy,
  decoded,
  hostPort,
  isAnswer,
  judge,
  makeAgents,
  message,
  metric,
  missingRows,
  post,
  startFaultGateway,
  storedMarkers,
} from '../faults/support.js';
import { basic, snapshotOf } from './support.js';

/** The smallest SPOOL_MAX the gateway takes (1 MiB): about 57 captured inventories (~18 KB each, compressed). */
const SPOOL_MAX = 1024 * 1024;
/** The attacker's share while it is alone in the spool, and with one other credential: half. */
const SHARE = SPOOL_MAX / 2;
/** More than the whole spool holds: without the share, the flood would fill it. */
const FLOOD_MAX = 80;
/** Refusals the attacker gets before it gives up (each waits for the database, then a 503). */
const REFUSALS = 3;
const SITE_B_AGENTS = 4;

describe('PostgreSQL away: one credential cannot fill the spool', () => {
  let proxy: TcpProxy;
  let glpi: FakeGlpi;
  let gw: FaultGateway;
  /** The gateway's schema, directly (not through the proxy). */
  let schemaSql: postgres.Sql;
  beforeAll(async () => {
    glpi = new FakeGlpi();
    await glpi.up();
    const pg = hostPort(TEST_DATABASE_URL, 5432);
    proxy = new TcpProxy(pg.host, pg.port);
    await proxy.start();
    gw = await startFaultGateway({
      viaPort: proxy.port,
      env: { SPOOL_MAX: String(SPOOL_MAX), UPSTREAM_URL: glpi.url },
    });
    schemaSql = postgres(gw.databaseUrl, { onnotice: () => {}, max: 1 });
  }, 90_000);
  afterAll(async () => {
    proxy?.resume();
    await schemaSql?.end();
    await gw?.close();
    await proxy?.close();
    await glpi?.down();
  }, 60_000);

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${gw.port}${path}`, {
      method,
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const createKey = async (name: string): Promise<string> => {
    const created = await api('POST', '/api/v1/keys', { name });
    expect(created.status).toBe(201);
    return String(created.json.secret);
  };
  const withKey = (agent: SimAgent, secret: string): SimAgent => ({
    ...agent,
    authorization: basic(agent.deviceid.slice(0, 16), secret),
  });
  const status = (o: Outcome) => (isAnswer(o) ? o.status : o.error);
  const countOf = async (table: 'devices' | 'registrations', deviceids: string[]) =>
    (
      await schemaSql<
        { n: number }[]
      >`select count(*)::int as n from ${schemaSql(table)} where deviceid = any(${deviceids})`
    )[0]!.n;
  const submissionsOf = async (deviceids: string[]) =>
    (
      await schemaSql<{ n: number }[]>`select count(*)::int as n from submissions s join devices d on d.id = s.device_id
                                      where d.deviceid = any(${deviceids})`
    )[0]!.n;
  /** What the flood must not change about the victim (support.ts snapshot), read in the gateway's schema. */
  const snapshot = (deviceid: string) => snapshotOf(schemaSql, deviceid);
  const send = (m: Message) => post(gw.port, m, { timeoutMs: 120_000 });
  /** The gateway's own word that an inventory was not spooled ("could not be spooled"), with its error. */
  const notSpooled = (deviceid: string) =>
    gw.errorLogs().find((l) => l.deviceid === deviceid && /could not be spooled/.test(String(l.msg)));

  it("a flood through key site-a is refused past its share, site-b's inventories are spooled and recorded, the victim untouched", async () => {
    const tag = crypto.randomBytes(3).toString('hex');
    const siteA = await createKey('site-a');
    const siteB = await createKey('site-b');

    // The victim: a site-b machine registered and approved before the outage, its inventory in GLPI.
    const victimAgent = withKey(makeAgents(1, `${tag}-victim`)[0]!, siteB);
    let victimInventoryAnswer = '';
    for (const step of RUN[victimAgent.kind]) {
      const o = await send(message(victimAgent, step));
      expect(judge(message(victimAgent, step), o), step).toBe('ok');
      if (step === 'inventory' && isAnswer(o)) victimInventoryAnswer = decoded(o);
    }
    expect(victimAgent.kind).toBe('fi');
    const approved = await api('POST', '/api/v1/devices/approve', { ids: [victimAgent.deviceid], reason: 'known' });
    expect(approved.status).toBe(200);
    await eventually(
      async () => {
        expect(glpi.delivered().map((r) => r.deviceid)).toContain(victimAgent.deviceid);
        expect((await snapshot(victimAgent.deviceid)).outbox.map((o) => o.state)).toEqual(['delivered']);
      },
      { timeout: 30_000 },
    );
    glpi.reset();
    const victimBefore = await snapshot(victimAgent.deviceid);
    expect(victimBefore.device).toMatchObject({ state: 'approved' });
    expect(victimBefore.inventory?.summary, 'the victim page has its inventory summary').toBeTruthy();

    // Site-b's agents were told to send before the outage (PROLOG/CONTACT answered), and so was the
    // attacker's key verified by this process (one PROLOG: the outage credential memory).
    const siteBAgents = makeAgents(SITE_B_AGENTS, `${tag}-b`).map((a) => withKey(a, siteB));
    for (const agent of siteBAgents)
      for (const step of RUN[agent.kind].slice(0, -1))
        expect(judge(message(agent, step), await send(message(agent, step))), `${agent.deviceid} ${step}`).toBe('ok');
    const attacker = makeAgents(2 * FLOOD_MAX, `${tag}-a`)
      .filter((a) => a.kind === 'fi')
      .map((a) => withKey(a, siteA));
    expect(judge(message(attacker[0]!, 'prolog'), await send(message(attacker[0]!, 'prolog')))).toBe('ok');

    proxy.pause('refuse');

    // The flood, one inventory after the other under fresh deviceids, until the spool share refuses them.
    const accepted: Acked[] = [];
    const refused: { deviceid: string; answer: Promise<Outcome>; err: unknown }[] = [];
    const flood = attacker.slice(1);
    for (const agent of flood) {
      if (refused.length === REFUSALS) break;
      const m = message(agent, 'inventory');
      let outcome: Outcome | null = null;
      const answer = send(m).then((o) => (outcome = o));
      const verdict = await eventually(
        () => (outcome ? judge(m, outcome) : notSpooled(agent.deviceid) ? 'not spooled' : false),
        { timeout: 30_000, message: `the answer to ${agent.deviceid}, or the gateway's refusal to spool it` },
      );
      if (verdict === 'ok') accepted.push({ deviceid: agent.deviceid, marker: m.marker! });
      else if (verdict === 'not spooled' || verdict === 'unavailable') {
        const line = await eventually(() => notSpooled(agent.deviceid) ?? false, {
          message: `the gateway's log says why ${agent.deviceid} was not spooled`,
        });
        refused.push({ deviceid: agent.deviceid, answer, err: line.err });
      } else throw new Error(`flood inventory ${agent.deviceid}: ${verdict}`);
    }
    expect(refused.length, 'the flood is refused before the attacker runs out of deviceids').toBe(REFUSALS);
    const bytesAfterFlood = Number(await metric(gw.port, 'agentgate_spool_bytes'));
    const messagesAfterFlood = Number(await metric(gw.port, 'agentgate_spool_messages'));

    // Site-b's agents send their inventories during the outage: all spooled and acknowledged.
    const siteBInventories = siteBAgents.map((a) => message(a, 'inventory'));
    const siteBAnswers = await Promise.all(siteBInventories.map(send));
    expect(
      siteBInventories.map((m, i) => `${m.agent.deviceid} ${status(siteBAnswers[i]!)} ${judge(m, siteBAnswers[i]!)}`),
    ).toEqual(siteBInventories.map((m) => `${m.agent.deviceid} 200 ok`));
    // The answer they would have had with the database there (an inventory's does not depend on the device):
    // a FusionInventory agent's is the one the victim's inventory got before the outage.
    expect(siteBAnswers.map((o) => isAnswer(o) && decoded(o))).toEqual(
      siteBInventories.map((m) => (m.agent.kind === 'fi' ? victimInventoryAnswer : '{"status":"ok","expiration":24}')),
    );
    expect(Number(await metric(gw.port, 'agentgate_spool_messages'))).toBe(accepted.length + SITE_B_AGENTS);
    for (const m of siteBInventories) expect(notSpooled(m.agent.deviceid)).toBeUndefined();

    // It was the attacker's share that refused it (half while alone), not a full spool: the flood holds at
    // most SPOOL_MAX / 2 and filled it (one more of its ~18 KB inventories would not have fitted).
    for (const r of refused)
      expect(r.err).toMatchObject({
        type: 'SpoolFull',
        message: expect.stringMatching(new RegExp(`^spool share full \\(\\d+ of ${SHARE} bytes\\)$`)) as unknown,
      });
    expect(messagesAfterFlood).toBe(accepted.length);
    expect(accepted.length, 'the attacker spooled up to its share').toBeGreaterThan(0);
    expect(bytesAfterFlood).toBeLessThanOrEqual(SHARE);
    expect(SHARE - bytesAfterFlood).toBeLessThan(SHARE / accepted.length);

    // The refused inventories went to the database instead (the last chance), which is away: a 503 in the
    // agent's format (at once here: its connections are refused; the gateway waits at most 60 s for it).
    for (const r of refused) {
      const o = await r.answer;
      expect(status(o), r.deviceid).toBe(503);
      expect(isAnswer(o) && o.headers['content-type']).toBe('application/x-compress-zlib');
      expect(isAnswer(o) && decoded(o)).toBe(
        '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><ERROR>Service temporarily unavailable</ERROR></REPLY>\n',
      );
    }

    proxy.resume();
    const siteBAcked = siteBInventories.map((m) => ({ deviceid: m.agent.deviceid, marker: m.marker! }));
    await eventually(
      async () => {
        expect(await metric(gw.port, 'agentgate_spool_messages')).toBe('0');
        expect(await missingRows(gw.admin, gw.schema, [...siteBAcked, ...accepted])).toEqual([]);
      },
      { timeout: 60_000, interval: 200, message: 'the spool replayed' },
    );
    // Every acknowledged inventory (site-b's and the attacker's within its share) recorded exactly once, as spooled.
    const stored = await storedMarkers(gw.admin, gw.schema);
    const acked = [...siteBAcked, ...accepted];
    expect(acked.map((a) => stored.get(a.marker) ?? 0)).toEqual(acked.map(() => 1));
    expect(
      (
        await schemaSql<{ n: number }[]>`select count(*)::int as n from registrations
          where details->>'spooled' = 'true' and deviceid = any(${acked.map((a) => a.deviceid)})`
      )[0]!.n,
    ).toBe(acked.length);
    // The refused inventories wrote nothing: no device, no registration, no submission.
    const refusedIds = refused.map((r) => r.deviceid);
    expect(await countOf('devices', refusedIds)).toBe(0);
    expect(await countOf('registrations', refusedIds)).toBe(0);
    expect(await submissionsOf(refusedIds)).toBe(0);
    // The victim is as it was, nothing new is queued for GLPI, and nothing of the attacker's reached it.
    expect(await snapshot(victimAgent.deviceid)).toEqual(victimBefore);
    const attackerIds = new Set(flood.map((a) => a.deviceid));
    expect(glpi.requests.filter((r) => attackerIds.has(r.deviceid ?? ''))).toEqual([]);
    // The only errors logged are the refusals, each naming an attacker's refused inventory.
    expect(
      gw
        .errorLogs()
        .filter((l) => !refusedIds.includes(String(l.deviceid)))
        .map((l) => l.msg),
    ).toEqual([]);
    expect(new Set(gw.errorLogs().map((l) => l.msg))).toEqual(
      new Set([
        'inventory could not be spooled: waiting for the database',
        'agent request refused: Service temporarily unavailable',
      ]),
    );
  }, 170_000);
});
