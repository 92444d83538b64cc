/**
 * Conformance: the real FusionInventory agent 2.6 (Debian package) against a real running gateway
 * (startServer on 127.0.0.1, random port, its own Postgres schema, AGENT_AUTH=off). Each scenario is one
 * foreground agent run with its own storage directory, judged the way a user would: the device and its
 * registrations in the gateway, and the agent's log and saved state (the agent exits 0 even on failures).
 *
 * The agent is required, not optional: without it these tests fail with an install hint (CI installs it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { createRecords } from '../../src/services/records.js';
import { viewFromBody } from '../../src/services/inventory-view.js';
import { startTestServer } from '../helpers/context.js';
import {
  type AgentInstall,
  type AgentRun,
  logExcerpt,
  removeRunDir,
  requireAgent,
  runAgent,
} from '../helpers/fusioninventory.js';

const RUN_TIMEOUT = 60_000;
const DEVICEID = /^.+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$/;

interface Gateway {
  server: RunningServer;
  records: ReturnType<typeof createRecords>;
  close(): Promise<void>;
}

const cleanups: (() => void | Promise<void>)[] = [];
let agentPromise: Promise<AgentInstall> | undefined;

/** Resolves the installed agent once per file; a missing agent fails every scenario with the install hint. */
function agent(): Promise<AgentInstall> {
  agentPromise ??= requireAgent();
  return agentPromise;
}

async function startGateway(): Promise<Gateway> {
  const { server, close } = await startTestServer({ AGENT_AUTH: 'off' });
  cleanups.push(close);
  return { server, records: createRecords(server.deps.db.sql), close };
}

/** One scenario: a fresh gateway, one agent run with its own storage directory. */
async function scenario(name: string, args: string[] = []): Promise<{ gw: Gateway; run: AgentRun }> {
  const install = await agent();
  const gw = await startGateway();
  const run = await runAgent(install, { serverUrl: gw.server.url, args, timeoutMs: 45_000 });
  cleanups.push(() => removeRunDir(run));
  console.info(
    `fusioninventory-agent scenario "${name}": ${(run.durationMs / 1000).toFixed(1)} s (exit ${run.exitCode}${run.timedOut ? ', killed after timeout' : ''})`,
  );
  return { gw, run };
}

function messages(run: AgentRun, level: string): string[] {
  return run.entries.filter((e) => e.level === level).map((e) => e.message);
}

/** What every successful run shows, whatever the options. */
function expectCleanRun(run: AgentRun): void {
  const why = logExcerpt(run);
  expect(run.timedOut, why).toBe(false);
  expect(run.exitCode, why).toBe(0);
  expect(run.entries.length, `the agent wrote no log\n${why}`).toBeGreaterThan(0);
  // The agent must have used our throw-away storage directory, never /var/lib/fusioninventory-agent.
  expect(run.log).toContain(`Storage directory: ${run.vardir}\n`);
  expect(messages(run, 'error'), why).toEqual([]);
  expect(messages(run, 'warning'), why).toEqual([]);
  expect(run.deviceid, `no deviceid in the agent's state file\n${why}`).toMatch(DEVICEID);
}

async function deviceAndRegistrations(gw: Gateway, deviceid: string) {
  const devices = await gw.records.devices({});
  const registrations = (await gw.records.registrations({ limit: 100 })).reverse(); // oldest first
  return { devices, registrations, device: devices.find((d) => d.deviceid === deviceid) };
}

afterAll(async () => {
  const errors: unknown[] = [];
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
});

describe('FusionInventory agent 2.6, default run (zlib)', () => {
  let gw: Gateway;
  let run: AgentRun;
  beforeAll(async () => {
    ({ gw, run } = await scenario('default'));
  }, RUN_TIMEOUT);

  it('finishes without any [error] or [warning] in its log', () => {
    expectCleanRun(run);
  });

  it('leaves one quarantined device with the agent’s deviceid and a prolog then a held XML inventory', async () => {
    const { devices, registrations, device } = await deviceAndRegistrations(gw, run.deviceid!);
    expect(devices.map((d) => d.deviceid)).toEqual([run.deviceid]);
    expect(device).toMatchObject({ state: 'quarantined', tag: null });
    expect(device!.lastRemoteAddr).toMatch(/127\.0\.0\.1$/);
    expect(device!.agentVersion).toMatch(/^FusionInventory-Agent_v2\./);
    expect(device!.name).toBeTruthy();
    expect(device!.lastInventoryAt).not.toBeNull();

    expect(
      registrations.map((r) => ({
        kind: r.kind,
        outcome: r.outcome,
        format: r.format,
        compression: r.compression,
        status: r.status,
        method: r.method,
        path: r.path,
        deviceid: r.deviceid,
      })),
    ).toEqual([
      {
        kind: 'prolog',
        outcome: 'quarantined',
        format: 'xml',
        compression: 'zlib',
        status: 200,
        method: 'POST',
        path: '/',
        deviceid: run.deviceid,
      },
      {
        kind: 'inventory',
        outcome: 'quarantined',
        format: 'xml',
        compression: 'zlib',
        status: 200,
        method: 'POST',
        path: '/',
        deviceid: run.deviceid,
      },
    ]);
    for (const r of registrations) {
      expect(r.userAgent).toBe(device!.agentVersion);
      expect(r.deviceId).toBe(device!.id);
    }
  });

  it('keeps the inventory as sent: the stored body decodes to the agent’s host', async () => {
    const sql = gw.server.deps.db.sql;
    const rows = await sql<{ body: Buffer; compression: string; format: string; kind: string }[]>`
      select s.body, s.compression, s.format, s.kind from submissions s join devices d on d.id = s.device_id where d.deviceid = ${run.deviceid}`;
    expect(rows.map((r) => [r.kind, r.format, r.compression])).toEqual([['inventory', 'xml', 'zlib']]);
    const view = viewFromBody(rows[0]!.body, rows[0]!.compression, rows[0]!.format) as {
      hardware?: { name?: string };
      versionclient?: string;
    };
    const [device] = await gw.records.devices({ deviceid: run.deviceid! });
    expect(view.hardware?.name).toBe(device!.name);
    expect(view.versionclient).toBe(device!.agentVersion);
  });

  it('understood both answers: sent PROLOG and INVENTORY, received SEND, saved its state', () => {
    const why = logExcerpt(run);
    const info = messages(run, 'info');
    expect(info, why).toContain('sending prolog request to server0');
    expect(info, why).toContain('running task Inventory');
    expect(info, why).toContain(`New inventory from ${run.deviceid} for server0`);

    const debug2 = messages(run, 'debug2');
    const sent = debug2.filter((m) => m.startsWith('[http client] sending message:'));
    const received = debug2.filter((m) => m.startsWith('[http client] receiving message:'));
    expect(
      sent.map((m) => /<QUERY>(\w+)<\/QUERY>/.exec(m)?.[1]),
      why,
    ).toEqual(['PROLOG', 'INVENTORY']);
    expect(
      sent.every((m) => m.includes(`<DEVICEID>${run.deviceid}</DEVICEID>`)),
      why,
    ).toBe(true);
    expect(received, why).toHaveLength(2);
    expect(received[0]).toMatch(/<REPLY>[\s\S]*<PROLOG_FREQ>24<\/PROLOG_FREQ>[\s\S]*<\/REPLY>/);
    expect(received[0]).toContain('<RESPONSE>SEND</RESPONSE>');
    expect(received[1]).toContain('<REPLY>');
    // FusionInventory recognises a zlib answer only by the 78 9C header: it must have seen zlib both times.
    expect(
      debug2.filter((m) => m.startsWith('format: ')),
      why,
    ).toEqual(['format: Zlib', 'format: Zlib']);

    // Only a parsed inventory answer makes the agent save its section checksums…
    expect(run.lastStateSaved, `no last_state in ${run.targetDir}\n${why}`).toBe(true);
    // …and PROLOG_FREQ 24 became its maximum delay between contacts.
    expect(run.target?.maxDelay).toBe(24 * 3600);
  });
});

describe('FusionInventory agent 2.6, --tag acceptance-ci', () => {
  let gw: Gateway;
  let run: AgentRun;
  beforeAll(async () => {
    ({ gw, run } = await scenario('tag', ['--tag', 'acceptance-ci']));
  }, RUN_TIMEOUT);

  it('finishes without any [error] or [warning] in its log', () => {
    expectCleanRun(run);
  });

  it("records the tag acceptance-ci as the device's claimed tag", async () => {
    const { devices, device, registrations } = await deviceAndRegistrations(gw, run.deviceid!);
    expect(devices).toHaveLength(1);
    // What the agent claims is recorded as claimedTag; `tag` is its key's (none here: AGENT_AUTH=off).
    expect(device?.claimedTag).toBe('acceptance-ci');
    expect(device?.tag).toBeNull();
    expect(registrations.map((r) => `${r.kind}:${r.outcome}`)).toEqual(['prolog:quarantined', 'inventory:quarantined']);
    const inventory = messages(run, 'debug2').find(
      (m) => m.startsWith('[http client] sending message:') && m.includes('<QUERY>INVENTORY</QUERY>'),
    );
    expect(inventory).toMatch(/<KEYNAME>TAG<\/KEYNAME>\s*<KEYVALUE>acceptance-ci<\/KEYVALUE>/);
  });
});

describe('FusionInventory agent 2.6, --no-compression', () => {
  let gw: Gateway;
  let run: AgentRun;
  beforeAll(async () => {
    ({ gw, run } = await scenario('no-compression', ['--no-compression']));
  }, RUN_TIMEOUT);

  it('finishes without any [error] or [warning] in its log', () => {
    expectCleanRun(run);
    expect(messages(run, 'debug')).not.toContain('[http client] Using Compress::Zlib for compression');
  });

  it('sends plain XML, recorded with compression none, and understands the plain answers', async () => {
    const { devices, registrations } = await deviceAndRegistrations(gw, run.deviceid!);
    expect(devices.map((d) => d.deviceid)).toEqual([run.deviceid]);
    expect(
      registrations.map((r) => ({ kind: r.kind, outcome: r.outcome, format: r.format, compression: r.compression })),
    ).toEqual([
      { kind: 'prolog', outcome: 'quarantined', format: 'xml', compression: 'none' },
      { kind: 'inventory', outcome: 'quarantined', format: 'xml', compression: 'none' },
    ]);
    const why = logExcerpt(run);
    expect(
      messages(run, 'debug2').filter((m) => m.startsWith('format: ')),
      why,
    ).toEqual(['format: Plaintext', 'format: Plaintext']);
    expect(
      messages(run, 'debug2').filter((m) => m.startsWith('[http client] receiving message:')),
      why,
    ).toHaveLength(2);
    expect(run.lastStateSaved, why).toBe(true);
  });
});
