/**
 * The embedded database (no DATABASE_URL: the quick start) is private to the gateway's user: PGlite has no
 * authentication, so it is served on a Unix socket inside DATA_DIR and on no TCP port; DATA_DIR is 0700 and
 * its files owner-only, so another local account can neither connect nor read an inventory. The CLI
 * started beside the gateway still joins it. A DATA_DIR shared with other users and other files is refused.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT, freePort } from '../../scripts/lib/processes.js';
import { CONFIG_KEYS } from '../../src/config.js';
import { eventually } from '../helpers/eventually.js';

const BIN = path.join(ROOT, 'bin', 'agent-gate.js');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-priv-'));
const dataDir = path.join(base, 'data');
const env: NodeJS.ProcessEnv = { ...process.env };
for (const k of CONFIG_KEYS) delete env[k.env];
Object.assign(env, { DATA_DIR: dataDir, AGENT_AUTH: 'off', LOG_LEVEL: 'info', HOST: '127.0.0.1' });
let port = 0;
let log = '';
let server: ChildProcess;

beforeAll(async () => {
  port = await freePort();
  server = spawn(process.execPath, [BIN, 'serve'], { cwd: ROOT, env: { ...env, PORT: String(port) } });
  server.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await eventually(
    () => {
      if (!log.includes('agent-gate listening') && server.exitCode === null)
        throw new Error(`not listening yet; its log so far:\n${log}`);
    },
    // PGlite creates its database on the first start: slow on a loaded machine.
    { timeout: 150_000, interval: 200, message: 'the embedded gateway starts' },
  );
  expect(server.exitCode, log).toBeNull();
}, 160_000);

afterAll(async () => {
  if (server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(base, { recursive: true, force: true });
});

const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

/** Every path under `dir` whose mode lets group or others in. */
function openToOthers(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    if (modeOf(p) & 0o077) out.push(`${p} ${modeOf(p).toString(8)}`);
    if (e.isDirectory()) out.push(...openToOthers(p));
  }
  return out;
}

/** The TCP ports the process listens on: its socket inodes matched against /proc/net/tcp{,6} in LISTEN. */
function listeningTcpPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9]!)) continue; // 0A = LISTEN
      ports.add(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort();
}

it('DATA_DIR is 0700, its files owner-only, embedded.json names a Unix socket (0600) and no TCP port', () => {
  expect(modeOf(dataDir).toString(8)).toBe('700');
  expect(openToOthers(dataDir)).toEqual([]);
  const info = JSON.parse(fs.readFileSync(path.join(dataDir, 'embedded.json'), 'utf8')) as Record<string, unknown>;
  expect(Object.keys(info).sort()).toEqual(['pid', 'socket']);
  expect(info.socket).toBe(path.join(dataDir, 'embedded.sock'));
  expect(fs.statSync(info.socket as string).isSocket()).toBe(true);
  expect(modeOf(info.socket as string).toString(8)).toBe('600');
  expect(modeOf(path.join(dataDir, 'embedded.json')).toString(8)).toBe('600');
});

it('the gateway listens on no TCP port but its own', () => {
  expect(listeningTcpPorts(server.pid!)).toEqual([port]);
});

it('the CLI beside it joins the same database through the socket', async () => {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  expect(res.status).toBe(200);
  const cli = spawnSync(process.execPath, [BIN, 'operators', 'list', '--json'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(cli.status, cli.stderr).toBe(0);
  expect(JSON.parse(cli.stdout)).toEqual([expect.objectContaining({ name: 'admin', role: 'admin' })]);
}, 130_000);

it('a DATA_DIR open to other users that holds other files is refused, and left as it was', () => {
  const shared = path.join(base, 'shared');
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o755);
  fs.writeFileSync(path.join(shared, 'notes.txt'), 'not the gateway’s');
  const res = spawnSync(process.execPath, [BIN, 'serve'], {
    cwd: ROOT,
    env: { ...env, DATA_DIR: shared, PORT: '0' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(res.status).not.toBe(0);
  expect(res.stderr).toMatch(/DATA_DIR .*shared is open to other users \(mode 755\).*chmod 700/);
  expect(modeOf(shared).toString(8)).toBe('755');
  expect(fs.readdirSync(shared)).toEqual(['notes.txt']);
}, 130_000);
