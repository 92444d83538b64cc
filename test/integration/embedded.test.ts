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
import { textOf } from '../helpers/fixtures.js';

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
