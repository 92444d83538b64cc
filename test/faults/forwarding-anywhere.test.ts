/**
 * Forwarding decided by the database, not by who approved (issue 16, item 6): a real gateway process with
 * UPSTREAM_URL (the fake GLPI) receives a FusionInventory run from a new, quarantined device; an admin
 * approves it with the CLI from a shell without UPSTREAM_URL (nothing of the gateway's environment but
 * DATABASE_URL). The approval answers releasedSubmissions: 1 and the running gateway delivers that
 * inventory to GLPI. Then `forward status --json` from the same shell shows the switch on and the gateway
 * as a forwarder with its breaker closed.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { eventually } from '../helpers/eventually.js';
import { FakeGlpi } from '../helpers/fake-glpi.js';
import { type FaultGateway, RUN, judge, makeAgents, markerOf, message, post, startFaultGateway } from './support.js';

/** The CLI as run from an admin's shell: only DATABASE_URL, none of the gateway's other settings. */
const cli = (databaseUrl: string, args: string[]) => runCli(args, { DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' });

describe('an approval from a CLI without UPSTREAM_URL', () => {
  const glpi = new FakeGlpi();
  let gw: FaultGateway;
  beforeAll(async () => {
    await glpi.up();
    gw = await startFaultGateway({ env: { UPSTREAM_URL: glpi.url, UPSTREAM_RATE: '0' } });
  }, 90_000);
  afterAll(async () => {
    await gw?.close();
    await glpi.down();
  }, 30_000);

  it('is forwarded to GLPI by the running gateway', async () => {
    const [agent] = makeAgents(1, crypto.randomBytes(3).toString('hex'));
    const markers: string[] = [];
    for (const step of RUN[agent!.kind]) {
      const m = message(agent!, step);
      expect(judge(m, await post(gw.port, m))).toBe('ok');
      if (m.marker) markers.push(m.marker);
    }
    // Quarantined: held, nothing sent.
    const [held] = await gw.admin.unsafe<{ state: string }[]>(
      `select state from "${gw.schema}".devices where deviceid = $1`,
      [agent!.deviceid],
    );
    expect(held?.state).toBe('quarantined');
    expect(glpi.requests).toHaveLength(0);

    const approved = await cli(gw.databaseUrl, ['devices', 'approve', agent!.deviceid, '--json']);
    expect(approved.code, approved.stderr).toBe(0);
    expect(JSON.parse(approved.stdout)).toMatchObject([{ deviceid: agent!.deviceid, releasedSubmissions: 1 }]);

    await eventually(() => expect(glpi.delivered()).toHaveLength(1), {
      timeout: 20_000,
      message: 'the released inventory reaches GLPI',
    });
    const sent = glpi.delivered()[0]!;
    expect(sent.deviceid).toBe(agent!.deviceid);
    expect(markerOf(sent.body, 'zlib')).toBe(markers[0]);

    const status = await cli(gw.databaseUrl, ['forward', 'status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as {
      forwarding: { enabled: boolean };
      outbox: { byState: Record<string, number> };
      forwarders: { breaker: string; alive: boolean; upstreamHost: string }[];
    };
    expect(s.forwarding.enabled).toBe(true);
    expect(s.outbox.byState).toMatchObject({ pending: 0, in_flight: 0, dead: 0 });
    expect(s.forwarders).toMatchObject([{ breaker: 'closed', alive: true, upstreamHost: `127.0.0.1:${glpi.port}` }]);
  }, 90_000);
});
