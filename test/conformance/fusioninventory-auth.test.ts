/**
 * Conformance: the real FusionInventory agent 2.6 (Debian package) with HTTP Basic credentials against a real
 * gateway with AGENT_AUTH=required (PROTOCOL.md §3.8), through the life of a registration key: the bootstrap
 * key "default" works; after a rotation the old secret keeps working within the grace window and the new one
 * works too, each recorded with its key version; once the key is revoked the agent's run fails cleanly with
 * the agent's own "wrong credentials" error and nothing is accepted.
 *
 * Each step of that story has a gateway of its own, brought to that point of the key's life by the step's own
 * setup (so the steps pass in any order, and alone); every agent run has its own storage directory, so each
 * run is a distinct agent (a fleet where some agents got the new secret and some did not yet).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistrationRecord } from '../../src/store/read-store.js';
import { eventually } from '../helpers/eventually.js';
import {
  type AgentInstall,
  type AgentRun,
  logExcerpt,
  removeRunDir,
  requireAgent,
  runAgent,
} from '../helpers/fusioninventory.js';
import {
  type AuthGateway,
  BOOTSTRAP_SECRET,
  WRONG_CREDENTIALS_ERROR,
  basicAuthArgs,
  logMessages,
  startAuthGateway,
} from '../helpers/fusioninventory-auth.js';

const RUN_TIMEOUT = 60_000;
const DEVICEID = /^.+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$/;
const USER = 'inventory';
const actor = { name: 'test:conformance', remoteAddr: null };

let install: AgentInstall;
const runs: AgentRun[] = [];
const gateways: AuthGateway[] = [];

beforeAll(async () => {
  // Required, not optional: without the agent every scenario fails with the install hint.
  install = await requireAgent();
}, RUN_TIMEOUT);

afterAll(async () => {
  for (const run of runs) removeRunDir(run);
  await Promise.all(gateways.map((g) => g.close()));
});

/** A fresh gateway whose only key is the bootstrap key "default", version 1. */
async function gateway(): Promise<AuthGateway> {
  const gw = await startAuthGateway();
  gateways.push(gw);
  return gw;
}

interface Step {
  run: AgentRun;
  /** Registrations the gateway wrote during this run, oldest first. */
  registrations: RegistrationRecord[];
}

/** One foreground agent run with the given password; the registrations it left are those above the watermark. */
async function agentRun(gw: AuthGateway, name: string, password: string): Promise<Step> {
  const watermark = await gw.lastRegistrationId();
  const run = await runAgent(install, {
    serverUrl: gw.server.url,
    args: basicAuthArgs(USER, password),
    timeoutMs: 45_000,
  });
  runs.push(run);
  console.info(
    `fusioninventory-agent auth scenario "${name}": ${(run.durationMs / 1000).toFixed(1)} s (exit ${run.exitCode}${run.timedOut ? ', killed after timeout' : ''})`,
  );
  return { run, registrations: await gw.registrationsAfter(watermark) };
}

/** The agent exited on its own, with status 0, without a Perl crash, well before its timeout. */
function expectNormalExit(run: AgentRun): void {
  const why = logExcerpt(run);
  expect(run.timedOut, why).toBe(false);
  expect(run.signal, why).toBeNull();
  expect(run.exitCode, why).toBe(0);
  expect(run.stderr, why).toBe('');
  expect(run.durationMs, why).toBeLessThan(30_000);
  expect(run.log).toContain(`Storage directory: ${run.vardir}\n`);
  // A Perl die inside the agent shows up as an [error] "... at /usr/share/... line N".
  expect(
    logMessages(run, 'error').filter((m) => / line \d+\.?$/.test(m)),
    why,
  ).toEqual([]);
}

/** A run that sent its PROLOG and inventory with the credentials and had both understood. */
function expectCompletedRun(run: AgentRun): void {
  expectNormalExit(run);
  const why = logExcerpt(run);
  expect(logMessages(run, 'error'), why).toEqual([]);
  expect(logMessages(run, 'warning'), why).toEqual([]);
  // The 401 challenge was answered with the configured credentials, for each message.
  expect(
    logMessages(run, 'debug').filter((m) => m === '[http client] authentication required, submitting credentials'),
    why,
  ).toHaveLength(2);
  expect(logMessages(run, 'info'), why).toContain(`New inventory from ${run.deviceid} for server0`);
  expect(run.deviceid, why).toMatch(DEVICEID);
  expect(
    run.lastStateSaved,
    `the agent did not save its state: it did not understand the inventory answer\n${why}`,
  ).toBe(true);
}

/** The device the run registered, and its registrations: prolog then inventory, as that key version. */
async function expectRecordedAs(gw: AuthGateway, step: Step, keyVersion: number): Promise<void> {
  const { run, registrations } = step;
  const [device] = await gw.server.deps.records.devices({ deviceid: run.deviceid! });
  expect(device, `no device ${run.deviceid} recorded`).toBeDefined();
  expect(device!.agentVersion).toMatch(/^FusionInventory-Agent_v2\./);
  expect(device!.lastInventoryAt).not.toBeNull();
  // A message the gateway took is "accepted" for an approved device, else labelled with the device's state.
  const taken = device!.state === 'approved' ? 'accepted' : device!.state;
  expect(
    registrations.map((r) => ({
      kind: r.kind,
      status: r.status,
      outcome: r.outcome,
      deviceid: r.deviceid,
      authType: r.authType,
      authUser: r.authUser,
      keyName: r.keyName,
      keyVersion: r.keyVersion,
    })),
  ).toEqual(
    ['prolog', 'inventory'].map((kind) => ({
      kind,
      status: 200,
      outcome: taken,
      deviceid: run.deviceid,
      authType: 'key:basic',
      authUser: USER,
      keyName: 'default',
      keyVersion,
    })),
  );
}

describe('FusionInventory 2.6 with --user/--password: the bootstrap key "default"', () => {
  let gw: AuthGateway;
  let step: Step;
  beforeAll(async () => {
    gw = await gateway();
    step = await agentRun(gw, 'bootstrap secret', BOOTSTRAP_SECRET);
  }, RUN_TIMEOUT);

  it('completes its run without any [error] in its log', () => {
    expectCompletedRun(step.run);
  });

  it('is recorded: the device, then a prolog and an inventory as key "default" version 1, user "inventory"', async () => {
    await expectRecordedAs(gw, step, 1);
  });
});

describe('FusionInventory 2.6 after the key is rotated (grace 1 h)', () => {
  let gw: AuthGateway;
  let newSecret: string;
  let oldSecretStep: Step;
  let newSecretStep: Step;
  beforeAll(async () => {
    gw = await gateway();
    const rotated = await gw.server.deps.admin.rotateKey('default', 3600, actor);
    expect(rotated.version).toBe(2);
    newSecret = rotated.secret;
    oldSecretStep = await agentRun(gw, 'old secret within grace', BOOTSTRAP_SECRET);
    newSecretStep = await agentRun(gw, 'new secret', newSecret);
  }, 2 * RUN_TIMEOUT);

  it('the old secret still completes a run, recorded as version 1', async () => {
    expectCompletedRun(oldSecretStep.run);
    await expectRecordedAs(gw, oldSecretStep, 1);
  });

  it('the new secret completes a run, recorded as version 2', async () => {
    expect(newSecret).not.toBe(BOOTSTRAP_SECRET);
    expectCompletedRun(newSecretStep.run);
    await expectRecordedAs(gw, newSecretStep, 2);
  });

  it('usage per version shows which device used which version', async () => {
    const { usage } = await gw.server.deps.admin.keyUsage('default');
    const byVersion = (v: number) => usage.filter((u) => u.version === v).map((u) => u.deviceid);
    expect(byVersion(1)).toContain(oldSecretStep.run.deviceid);
    expect(byVersion(2)).toEqual([newSecretStep.run.deviceid]);
  });
});

describe('FusionInventory 2.6 after the key is revoked', () => {
  let gw: AuthGateway;
  let newSecret: string;
  let step: Step;
  let devicesBefore: number;
  beforeAll(async () => {
    gw = await gateway();
    // A rotated key (the step above shows both versions working), then switched off: every version stops at
    // once (cache TTL 0). The agent tries the newest (version 2) secret.
    const rotated = await gw.server.deps.admin.rotateKey('default', 3600, actor);
    expect(rotated.version).toBe(2);
    newSecret = rotated.secret;
    const key = await gw.server.deps.admin.setKeyActive('default', false, actor);
    expect(key.active).toBe(false);
    devicesBefore = (await gw.server.deps.records.devices({})).length;
    step = await agentRun(gw, 'revoked key', newSecret);
  }, RUN_TIMEOUT);

  it('fails cleanly: the agent logs its "wrong credentials" error and exits normally', () => {
    const { run } = step;
    expectNormalExit(run);
    const why = logExcerpt(run);
    const errors = logMessages(run, 'error');
    expect(errors, why).toContain(WRONG_CREDENTIALS_ERROR);
    // It stops at the PROLOG (no inventory is even built), and says the server gave no usable answer.
    expect(errors, why).toEqual([WRONG_CREDENTIALS_ERROR, `No answer from server at ${gw.server.url}/`]);
    expect(logMessages(run, 'info'), why).toContain('sending prolog request to server0');
    expect(logMessages(run, 'info'), why).not.toContain('running task Inventory');
    expect(run.lastStateSaved, why).toBe(false);
  });

  it('leaves no accepted registration and no new device in the gateway', async () => {
    const { run, registrations } = step;
    expect(registrations.filter((r) => r.status < 400)).toEqual([]);
    expect(registrations.filter((r) => r.kind === 'inventory')).toEqual([]);
    expect((await gw.server.deps.records.devices({})).length).toBe(devicesBefore);
    if (run.deviceid) expect(await gw.server.deps.records.devices({ deviceid: run.deviceid })).toEqual([]);
  });

  it('records the refused credential as a security event (user "inventory"), never the secret', async () => {
    await eventually(
      async () => {
        const events = await gw.server.deps.admin.listSecurityEvents(50);
        const refused = events.filter((e) => e.kind === 'invalid_credential');
        expect(refused.length).toBeGreaterThan(0);
        expect(refused[0]!.details).toMatchObject({ scheme: 'basic', user: USER });
        expect(JSON.stringify(events)).not.toContain(newSecret);
      },
      { timeout: 5_000, interval: 100 },
    );
  });
});
