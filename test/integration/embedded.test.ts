/**
 * The zero-service default: `agent-gate serve` with no DATABASE_URL runs on an embedded PGlite under
 * DATA_DIR, says so in its log, records agents, and the CLI started beside it joins the same database.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT, freePort } from '../../scripts/lib/processes.js';
import { eventually } from '../helpers/eventually.js';
import { bodyOf, loadScenario, textOf } from '../helpers/fixtures.js';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-gate-embedded-'));
const env = {
  ...process.env,
  DATA_DIR: dataDir,
  DATABASE_URL: '',
  REDIS_URL: '',
  AGENT_AUTH: 'off',
  LOG_LEVEL: 'info',
  HOST: '127.0.0.1',
};
let port = 0;
let log = '';
let server: ReturnType<typeof spawn>;

beforeAll(async () => {
  port = await freePort();
  server = spawn(process.execPath, [path.join(ROOT, 'bin', 'agent-gate.js'), 'serve'], {
    cwd: ROOT,
    env: { ...env, PORT: String(port) },
  });
  server.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  // Listening, or exited (the first test then shows its log).
  await eventually(
    () => {
      if (!log.includes('agent-gate listening') && server.exitCode === null)
        throw new Error(`not listening yet; its log so far:\n${log}`);
    },
    // PGlite creates its database on the first start: that takes a minute or more on a loaded machine.
    { timeout: 150_000, interval: 100, message: 'the embedded gateway starts' },
  );
}, 160_000);

afterAll(async () => {
  if (server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

it('starts with no services and says so clearly', () => {
  expect(log).toContain('agent-gate listening');
  expect(log).toMatch(/database: embedded PGlite \(no DATABASE_URL\)/);
  expect(log).toMatch(/redis: none \(no REDIS_URL\)/);
});

it('the first start says what it is doing while the embedded database initialises, then where to go', () => {
  const lines = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; level: number; time: number } & Record<string, unknown>);
  const at = (re: RegExp) => {
    const i = lines.findIndex((l) => re.test(l.msg));
    expect(i, `a line matching ${re}; the log:\n${log}`).toBeGreaterThanOrEqual(0);
    return i;
  };
  const dir = fs.realpathSync(dataDir);
  const initialising = at(/^initialising the embedded database in .* \(first start, ~20 s\)…$/);
  expect(lines[initialising]!.msg).toContain(dir);
  // The first line the gateway writes: nothing before the long wait.
  expect(initialising).toBe(0);
  const initialised = at(/^embedded database initialised in \d+(\.\d)? s$/);
  const applying = at(/^applying \d+ database migrations…$/);
  const applied = at(/^database migrations applied: \d+ \(schema at version \d+\)$/);
  const pending = Number(/applying (\d+)/.exec(lines[applying]!.msg)![1]);
  expect(pending).toBeGreaterThan(10);
  expect(lines[applied]).toMatchObject({ count: pending, version: pending });
  const ready = at(/^agent-gate listening: /);
  expect(lines[ready]!.msg).toMatch(
    new RegExp(
      `^agent-gate listening: point agents at http://127\\.0\\.0\\.1:${port}/; web console at http://127\\.0\\.0\\.1:${port}/console \\(ready in \\d+(\\.\\d)? s\\)$`,
    ),
  );
  expect([initialising, initialised, applying, applied, ready]).toEqual(
    [initialising, initialised, applying, applied, ready].sort((a, b) => a - b),
  );
  for (const i of [initialising, initialised, applying, applied, ready]) expect(lines[i]!.level).toBe(30);
});

it('records an agent, and the CLI beside it reads the same database', async () => {
  const prolog = textOf('fusioninventory-plain', '0001-post-prolog.json').replace(
    /<DEVICEID>[^<]+/,
    '<DEVICEID>embedded-ws-1',
  );
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-compress-zlib' },
    body: zlib.deflateSync(prolog),
  });
  expect(res.status).toBe(200);
  expect(zlib.inflateSync(Buffer.from(await res.arrayBuffer())).toString()).toContain('<RESPONSE>SEND</RESPONSE>');
  const cli = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'agent-gate.js'), 'devices', 'list', '--json'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  });
  expect(cli.status, cli.stderr).toBe(0);
  const devices = JSON.parse(cli.stdout) as { deviceid: string; state: string }[];
  expect(devices).toEqual([expect.objectContaining({ deviceid: 'embedded-ws-1', state: 'quarantined' })]);
  // The gateway logged it once, as a newcomer watching the log would see it (its output comes through a pipe).
  await eventually(
    () =>
      expect(log.match(/new device quarantined: [^\n]*\(deviceid embedded-ws-1\) from 127\.0\.0\.1/g)).toHaveLength(1),
    { timeout: 10_000, interval: 50, message: 'the quarantine log line' },
  );
});

it('the CLI run from another directory reaches the same database with --data-dir', () => {
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-gate-cli-elsewhere-'));
  try {
    const { DATA_DIR: _unset, ...shell } = env;
    const run = (args: string[]) =>
      spawnSync(process.execPath, [path.join(ROOT, 'bin', 'agent-gate.js'), ...args], {
        cwd: elsewhere,
        env: shell,
        encoding: 'utf8',
      });
    const lost = run(['devices', 'list', '--json']);
    expect(lost.status).toBe(1);
    expect(lost.stderr).toContain(`no embedded database in ${path.join(fs.realpathSync(elsewhere), 'data')}`);
    const found = run(['--data-dir', dataDir, 'devices', 'list', '--json']);
    expect(found.status, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout)).toEqual([expect.objectContaining({ deviceid: 'embedded-ws-1' })]);
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  } finally {
    fs.rmSync(elsewhere, { recursive: true, force: true });
  }
});

it('refuses a second gateway on the same embedded database', () => {
  const second = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'agent-gate.js'), 'serve'], {
    cwd: ROOT,
    env: { ...env, PORT: '0' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(second.status).not.toBe(0);
  expect(second.stderr).toMatch(/in use by process \d+; set DATABASE_URL to run several gateways/);
});

it('merges a GLPI Agent partial inventory into the stored sections, as on PostgreSQL', async () => {
  // The agent's second run: PROLOG, full inventory, then CONTACT and a partial (hardware, bios…).
  const run = loadScenario('glpi-second-run').filter((r) => r.method === 'POST');
  for (const r of run) {
    const res = await fetch(`http://127.0.0.1:${port}${r.path}`, {
      method: 'POST',
      headers: { 'Content-Type': r.content_type ?? 'application/x-compress-zlib' },
      body: new Uint8Array(bodyOf(r)),
    });
    expect(res.status, r.file).toBe(200);
  }
  const [full, partial] = run.filter((r) => r.classified.kind === 'inventory');
  const hardware = (r: typeof full) =>
    (JSON.parse(r!.decoded_text) as { content: { hardware: object } }).content.hardware;
  const cli = spawnSync(
    process.execPath,
    [path.join(ROOT, 'bin', 'agent-gate.js'), 'devices', 'show', full!.classified.deviceid!, '--inventory', '--json'],
    { cwd: ROOT, env, encoding: 'utf8' },
  );
  expect(cli.status, cli.stderr).toBe(0);
  const shown = JSON.parse(cli.stdout) as {
    source: { partialsMerged: number };
    sections: { key: string; items: object[] }[];
  };
  expect(shown.source.partialsMerged).toBe(1);
  const hw = shown.sections.find((s) => s.key === 'hardware')!.items[0] as Record<string, unknown>;
  expect(hw).toMatchObject(hardware(partial));
  expect(shown.sections.map((s) => s.key)).toContain('softwares');
}, 90_000);
