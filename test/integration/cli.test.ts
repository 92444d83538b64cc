/**
 * The real command line, as an operator runs it: `node bin/agent-gate.js …` in a child process, against a
 * Postgres schema of its own (DATABASE_URL only; no other configuration leaks in from the test's
 * environment). Judged by exit code, stdout (one JSON document with --json) and stderr (one clear line, no
 * stack trace). The device and registration listings are checked after real agent messages went through a
 * gateway started on the same schema.
 *
 * Each test runs on a schema of its own, which it brings to the state it needs through the CLI itself (the
 * listings: through a gateway started on it), so the tests pass in any order and alone.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CONFIG_KEYS, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { migrate } from '../../src/store/migrate.js';
import { createSchema } from '../helpers/context.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'agent-gate.js');
const CLI_TIMEOUT = 30_000;

const KINDS = ['prolog', 'contact', 'inventory', 'getconfig', 'get_params', 'netdiscovery', 'netinventory', 'other'];
const FORMATS = ['xml', 'json', 'none'];
const DEVICE_STATES = ['quarantined', 'approved', 'rejected', 'conflict'];
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// vitest types its asymmetric matchers (expect.any, expect.stringMatching) as any; in an expected object of a
// typed result they are cast to the type they stand for.
/** What a stack trace or an unhandled rejection would print. */
const STACK = /^\s+at .+[:(]\d+|Error: |node:internal|UnhandledPromiseRejection/m;

/** The schema the CLI runs against now; every one made is dropped at the end. */
let schema: { url: string; drop: () => Promise<void> };
const schemas: { drop: () => Promise<void> }[] = [];

/** A fresh schema for the next commands: empty, or with the migrations applied (in-process, quicker). */
async function freshSchema(opts: { migrated: boolean }): Promise<void> {
  schema = await createSchema();
  schemas.push(schema);
  if (!opts.migrated) return;
  const sql = postgres(schema.url, { onnotice: () => {}, max: 1 });
  try {
    await migrate(sql);
  } finally {
    await sql.end();
  }
}

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of an operator's shell with only DATABASE_URL (plus `env`) configured. */
function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const key of CONFIG_KEYS) delete out[key.env];
  return { ...out, DATABASE_URL: schema.url, ...env };
}

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: cliEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT - 2_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function show(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** A successful --json command: exit 0, nothing on stderr, stdout is exactly one JSON document. */
async function cliJson<T = unknown>(args: string[]): Promise<T> {
  const r = await cli([...args, '--json']);
  expect(r.code, show(r)).toBe(0);
  expect(r.stderr, show(r)).toBe('');
  let parsed: T;
  try {
    parsed = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout of agent-gate ${args.join(' ')} --json is not one JSON document\n${show(r)}`);
  }
  return parsed;
}

/** A refused command: non-zero exit, nothing on stdout, a clear first stderr line, no stack trace. */
function expectRefused(r: CliResult, firstLine: RegExp): string[] {
  expect(r.signal, show(r)).toBeNull();
  expect(r.code, show(r)).not.toBe(0);
  expect(r.code, show(r)).not.toBeNull();
  expect(r.stdout, show(r)).toBe('');
  expect(r.stderr, show(r)).not.toMatch(STACK);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines[0], show(r)).toMatch(firstLine);
  return lines;
}

afterAll(async () => {
  for (const s of schemas) await s.drop();
});

/** `secrets create --name <name> [--tag <tag>] --json`: the new key's first secret. */
async function createKey(name: string, tag?: string): Promise<string> {
  const args = ['secrets', 'create', '--name', name, ...(tag ? ['--tag', tag] : [])];
  return (await cliJson<{ secret: string }>(args)).secret;
}

describe('agent-gate migrate', () => {
  beforeEach(() => freshSchema({ migrated: false }));

  it('applies the migrations, then says the database is up to date', async () => {
    const first = await cli(['migrate']);
    expect(first.code, show(first)).toBe(0);
    expect(first.stderr, show(first)).toBe('');
    expect(first.stdout, show(first)).toMatch(/^applied migrations: 1(, \d+)*\n$/);

    const second = await cli(['migrate']);
    expect(second.code, show(second)).toBe(0);
    expect(second.stderr, show(second)).toBe('');
    expect(second.stdout, show(second)).toBe('database is up to date\n');
  });
});

describe('agent-gate credentials', () => {
  beforeEach(() => freshSchema({ migrated: true }));

  it('secrets create --json prints one JSON document with the secret', async () => {
    const created = await cliJson<{ name: string; version: number; secret: string }>([
      'secrets',
      'create',
      '--name',
      'site-a',
      '--tag',
      'paris-dc2',
    ]);
    expect(created).toMatchObject({ name: 'site-a', version: 1, secret: expect.any(String) as string });
    expect(created.secret.length).toBeGreaterThanOrEqual(20);
  });

  it('secrets list --json shows the key but never its secret', async () => {
    const secret = await createKey('site-a');
    const r = await cli(['secrets', 'list', '--json']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).not.toContain(secret);
    const keys = JSON.parse(r.stdout) as { name: string; versions: { version: number; secret: string }[] }[];
    expect(keys.map((k) => k.name)).toEqual(['site-a']);
    expect(keys[0]!.versions.map((v) => v.version)).toEqual([1]);
    expect(keys[0]!.versions[0]!.secret).not.toBe(secret);
  });

  it('secrets rotate --grace 7d --json makes version 2; older versions expire in about 7 days', async () => {
    const secret = await createKey('site-a');
    const before = Date.now();
    const rotated = await cliJson<{ name: string; version: number; secret: string; previousVersionsExpireAt: string }>([
      'secrets',
      'rotate',
      '--name',
      'site-a',
      '--grace',
      '7d',
    ]);
    const after = Date.now();
    expect(rotated).toMatchObject({ name: 'site-a', version: 2, secret: expect.any(String) as string });
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.previousVersionsExpireAt).toMatch(ISO);
    const expires = Date.parse(rotated.previousVersionsExpireAt);
    const week = 7 * 86400 * 1000;
    expect(expires).toBeGreaterThanOrEqual(before + week - 1_000);
    expect(expires).toBeLessThanOrEqual(after + week + 1_000);

    const list = await cli(['secrets', 'list', '--json']);
    expect(list.code, show(list)).toBe(0);
    expect(list.stdout).not.toContain(secret);
    expect(list.stdout).not.toContain(rotated.secret);
  });

  it('secrets rotate of an unknown key: non-zero exit, one clear line on stderr', async () => {
    const r = await cli(['secrets', 'rotate', '--name', 'nope']);
    const lines = expectRefused(r, /^agent-gate: .*"nope"/);
    expect(lines, show(r)).toHaveLength(1);
    expect(lines[0]).toMatch(/no registration key/i);
  });

  it('clients create --json prints a clientId and a clientSecret', async () => {
    const c = await cliJson<{ clientId: string; clientSecret: string; name: string }>([
      'clients',
      'create',
      '--name',
      'c1',
    ]);
    expect(c).toMatchObject({
      name: 'c1',
      clientId: expect.stringMatching(/^agc_\w+$/) as string,
      clientSecret: expect.any(String) as string,
    });
    expect(c.clientSecret.length).toBeGreaterThanOrEqual(20);
  });

  it('operators create --role reviewer --json prints a token', async () => {
    const op = await cliJson<{ name: string; role: string; token: string }>([
      'operators',
      'create',
      '--name',
      'rev',
      '--role',
      'reviewer',
    ]);
    expect(op).toMatchObject({ name: 'rev', role: 'reviewer', token: expect.any(String) as string });
    expect(op.token.length).toBeGreaterThanOrEqual(20);
  });

  it('operators create with an unknown role: non-zero exit, a clear message, nothing created', async () => {
    const r = await cli(['operators', 'create', '--name', 'x', '--role', 'boss']);
    expectRefused(r, /boss.*reviewer or admin|reviewer or admin.*boss/);
    const ops = await cliJson<{ name: string }[]>(['operators', 'list']);
    expect(ops.map((o) => o.name)).toEqual([]);
  });

  it('audit list --json records each action with the cli: actor', async () => {
    const secret = await createKey('site-a');
    const { secret: rotatedSecret } = await cliJson<{ secret: string }>([
      'secrets',
      'rotate',
      '--name',
      'site-a',
      '--grace',
      '7d',
    ]);
    await cliJson(['clients', 'create', '--name', 'c1']);
    await cliJson(['operators', 'create', '--name', 'rev', '--role', 'reviewer']);
    // Refused commands, which must leave no entry.
    expectRefused(await cli(['secrets', 'rotate', '--name', 'nope']), /^agent-gate: /);
    expectRefused(await cli(['operators', 'create', '--name', 'x', '--role', 'boss']), /boss/);
    const entries = await cliJson<{ id: number; actor: string; action: string; targetId: string | null }[]>([
      'audit',
      'list',
    ]);
    for (const [action, targetId] of [
      ['key.create', 'site-a'],
      ['key.rotate', 'site-a'],
      ['client.create', expect.stringMatching(/^agc_/) as string],
      ['operator.create', 'rev'],
    ] as const) {
      const mine = entries.filter((e) => e.action === action);
      expect(mine, `${action} in ${JSON.stringify(entries.map((e) => e.action))}`).toHaveLength(1);
      expect(mine[0]).toMatchObject({ actor: expect.stringMatching(/^cli:.+/) as string, targetId });
    }
    // Nothing of the refused commands got in.
    expect(entries.map((e) => e.action).sort()).toEqual([
      'client.create',
      'key.create',
      'key.rotate',
      'operator.create',
    ]);
    // Audit entries show masked secrets only.
    expect(JSON.stringify(entries)).not.toContain(secret);
    expect(JSON.stringify(entries)).not.toContain(rotatedSecret);
  });
});

describe('devices and registrations, after agent traffic through a gateway on the same database', () => {
  const DEVICEID = 'cli-ws17-2024-06-03-08-41-55';
  const MAC = '3c:52:82:11:4e:0a';
  let server: RunningServer;

  // One agent run for the tests below (only the last one decides the device, and it checks it first).
  beforeAll(async () => {
    await freshSchema({ migrated: true });
    const secret = await createKey('site-a', 'paris-dc2');
    // The production start (no migration left to do, no bootstrap: a key exists already).
    const config = loadConfig({
      DATABASE_URL: schema.url,
      PORT: '0',
      HOST: '127.0.0.1',
      AGENT_AUTH: 'required',
      SECRET_CACHE_TTL: '0',
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, createLogger({ level: 'silent', pretty: false }));
    const authorization = `Basic ${Buffer.from(`site-a-agent:${secret}`).toString('base64')}`;
    const post = (xml: string) =>
      fetch(`${server.url}/`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/xml',
          'User-Agent': 'FusionInventory-Agent_v2.6-3',
          Authorization: authorization,
          ...(xml.includes('<QUERY>INVENTORY') ? { 'GLPI-Proxy-ID': 'relay-paris, relay-core' } : {}),
        },
        body: xml,
      });
    const prolog = await post(
      `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>${DEVICEID}</DEVICEID><QUERY>PROLOG</QUERY><TOKEN>12345678</TOKEN></REQUEST>\n`,
    );
    expect(prolog.status).toBe(200);
    expect(await prolog.text()).toContain('<RESPONSE>SEND</RESPONSE>');
    const inventory = await post(
      `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><CONTENT>` +
        '<ACCOUNTINFO><KEYNAME>TAG</KEYNAME><KEYVALUE>claimed-lyon</KEYVALUE></ACCOUNTINFO>' +
        '<BIOS><SSN>CZC4318XKQ</SSN><MSN>PXKQC0B8L1</MSN><SMANUFACTURER>HP</SMANUFACTURER><SMODEL>Z2 G4</SMODEL></BIOS>' +
        '<HARDWARE><NAME>cli-ws17</NAME><UUID>7D1E4C2A-0F3B-4A55-9C1E-2B8D6F0A9E11</UUID><VMSYSTEM>Physical</VMSYSTEM></HARDWARE>' +
        `<NETWORKS><DESCRIPTION>eno1</DESCRIPTION><MACADDR>${MAC}</MACADDR><VIRTUALDEV>0</VIRTUALDEV></NETWORKS>` +
        '<SOFTWARES><NAME>openssh-server</NAME><VERSION>1:9.6p1-3ubuntu13</VERSION></SOFTWARES>' +
        '<VERSIONCLIENT>FusionInventory-Agent_v2.6-3</VERSIONCLIENT>' +
        `</CONTENT><DEVICEID>${DEVICEID}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>\n`,
    );
    expect(inventory.status).toBe(200);
    expect(await inventory.text()).toContain('<REPLY>');
  });

  afterAll(async () => {
    await server?.close();
  });

  it('devices list --json prints a JSON array of devices with their identity and dates', async () => {
    const devices = await cliJson<Record<string, unknown>[]>(['devices', 'list']);
    expect(Array.isArray(devices)).toBe(true);
    expect(devices).toHaveLength(1);
    const d = devices[0]!;
    for (const field of ['id', 'deviceid', 'name', 'serial', 'uuid', 'macs', 'tag', 'state', 'firstSeen', 'lastSeen'])
      expect(d, field).toHaveProperty(field);
    expect(d).toMatchObject({
      id: expect.any(Number) as number,
      deviceid: DEVICEID,
      name: 'cli-ws17',
      serial: 'CZC4318XKQ',
      tag: 'paris-dc2', // the registration key's tag
      claimedTag: 'claimed-lyon', // what the agent sent
    });
    expect(String(d.uuid).toLowerCase()).toBe('7d1e4c2a-0f3b-4a55-9c1e-2b8d6f0a9e11');
    expect(d.macs).toEqual([MAC]);
    expect(DEVICE_STATES).toContain(d.state);
    expect(d.firstSeen).toMatch(ISO);
    expect(d.lastSeen).toMatch(ISO);
    expect(Date.parse(d.lastSeen as string)).toBeGreaterThanOrEqual(Date.parse(d.firstSeen as string));
  });

  it('registrations list --deviceid --json prints the prolog and the inventory, newest first', async () => {
    const regs = await cliJson<Record<string, unknown>[]>(['registrations', 'list', '--deviceid', DEVICEID]);
    expect(regs.map((r) => r.kind)).toEqual(['inventory', 'prolog']);
    for (const r of regs) {
      for (const field of ['id', 'deviceid', 'kind', 'format', 'outcome', 'receivedAt'])
        expect(r, field).toHaveProperty(field);
      expect(r).toMatchObject({
        id: expect.any(Number) as number,
        deviceid: DEVICEID,
        format: 'xml',
        outcome: expect.any(String) as string,
      });
      expect(KINDS).toContain(r.kind);
      expect(FORMATS).toContain(r.format);
      expect(r.receivedAt).toMatch(ISO);
    }
    expect((regs[0]!.id as number) > (regs[1]!.id as number)).toBe(true);
    expect(regs.map((r) => r.proxyChain)).toEqual([['relay-paris', 'relay-core'], []]);
    const other = await cliJson<unknown[]>(['registrations', 'list', '--deviceid', 'no-such-device']);
    expect(other).toEqual([]);
  });

  it('devices list --state bogus: non-zero exit and a clear message', async () => {
    const r = await cli(['devices', 'list', '--state', 'bogus']);
    expectRefused(r, /bogus.*quarantined, approved, rejected, conflict/);
  });

  it('devices show, approve --filter (count first, then --yes), undo and reject work by deviceid', async () => {
    const shown = await cliJson<{
      state: string;
      inventory: { softwareCount: number } | null;
      history: { to: string }[];
      proxies: { proxyChain: string[] }[];
    }>(['devices', 'show', DEVICEID]);
    expect(shown.state).toBe('quarantined');
    expect(shown.inventory?.softwareCount).toBe(1);
    expect(shown.proxies.map((p) => p.proxyChain)).toEqual([['relay-paris', 'relay-core']]);
    const text = await cli(['devices', 'show', DEVICEID]);
    expect(text.stdout).toMatch(/^claimed tag\s+claimed-lyon \(sent by the agent, not verified\)$/m);
    expect(text.stdout).toMatch(/^tag mismatch\s+the agent claims another tag than its own/m);
    expect(text.stdout).toMatch(/^via proxies\s+relay-paris > relay-core$/m);
    const dry = await cli([
      'devices',
      'approve',
      '--filter',
      'tag=paris-dc2,state=quarantined',
      '--reason',
      'paris batch',
    ]);
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toMatch(/1 device\(s\) match\. Re-run with --yes to approve them\./);
    expect((await cliJson<{ state: string }[]>(['devices', 'list']))[0]!.state).toBe('quarantined');
    const done = await cliJson<{ dryRun: boolean; count: number }>([
      'devices',
      'approve',
      '--filter',
      'tag=paris-dc2,state=quarantined',
      '--reason',
      'paris batch',
      '--yes',
    ]);
    expect(done).toMatchObject({ dryRun: false, count: 1 });
    expect((await cliJson<{ state: string }[]>(['devices', 'list']))[0]!.state).toBe('approved');
    expect(await cliJson(['devices', 'undo', DEVICEID])).toMatchObject({ to: 'quarantined' });
    const rejected = await cliJson<{ deviceid: string; to: string }[]>([
      'devices',
      'reject',
      DEVICEID,
      '--reason',
      'not ours',
    ]);
    expect(rejected).toEqual([expect.objectContaining({ deviceid: DEVICEID, to: 'rejected' })]);
    const unknown = await cli(['devices', 'approve', 'no-such-device']);
    expectRefused(unknown, /Unknown device\(s\): no-such-device/);
  }, 90_000); // about ten CLI processes, each starting tsx: 15 s alone, far more on a loaded machine
});

describe('agent-gate policies', () => {
  // A schema of its own: a rule added here acts on the quarantine queue at once, so not on the one above.
  beforeEach(() => freshSchema({ migrated: true }));

  it('policies add and policies test refuse an approve rule on a MAC allowlist alone, saying why', async () => {
    await createKey('site-a', 'paris-dc2');
    const csv = path.join(os.tmpdir(), `agent-gate-macs-${process.pid}.csv`);
    const rules = path.join(os.tmpdir(), `agent-gate-rules-${process.pid}.json`);
    fs.writeFileSync(csv, `mac\n3c:52:82:11:4e:0a\n`);
    fs.writeFileSync(rules, JSON.stringify([{ action: 'approve', match: { allowlist: 'lan' } }]));
    try {
      expect(
        await cliJson(['policies', 'allowlist', 'import', '--name', 'lan', '--kind', 'mac', '--file', csv]),
      ).toEqual({ name: 'lan', kind: 'mac', entries: 1 });
      const why = /allowlist "lan" holds MAC addresses, and a MAC alone cannot approve .*--key, --cidr/;
      expectRefused(await cli(['policies', 'add', '--action', 'approve', '--allowlist', 'lan']), why);
      expectRefused(await cli(['policies', 'test', '--file', rules]), why);
      expect((await cliJson<{ rules: unknown[] }>(['policies', 'list'])).rules).toEqual([]);
      const ok = await cliJson<{ rule: { id: number } }>([
        'policies',
        'add',
        '--action',
        'approve',
        '--allowlist',
        'lan',
        '--key',
        'site-a',
      ]);
      expect(ok.rule.id).toEqual(expect.any(Number));
    } finally {
      fs.rmSync(csv, { force: true });
      fs.rmSync(rules, { force: true });
    }
  });
});

describe('agent-gate with an invalid configuration', () => {
  beforeEach(() => freshSchema({ migrated: false }));

  it('exits non-zero with ONE error that lists every bad key', async () => {
    const r = await cli(['devices', 'list', '--json'], { PORT: '99999', LOG_LEVEL: 'loud' });
    const lines = expectRefused(r, /^agent-gate: invalid configuration/);
    expect(r.stderr.match(/invalid configuration/g), show(r)).toHaveLength(1);
    expect(r.stderr.match(/^agent-gate:/gm), show(r)).toHaveLength(1);
    const problems = lines.slice(1);
    expect(problems, show(r)).toHaveLength(2);
    expect(
      problems.some((l) => /PORT.*99999/.test(l)),
      show(r),
    ).toBe(true);
    expect(
      problems.some((l) => /LOG_LEVEL.*loud/.test(l)),
      show(r),
    ).toBe(true);
  });
});
