/**
 * A newcomer's first contact: `agent-gate --version`; the CLI run outside the gateway's directory says where
 * it looked and how to point it instead of creating an empty database there; one log line per device that
 * arrives and is quarantined, never one per message. (The first start's progress lines: embedded.test.ts.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import type { Express } from 'express';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { type Deps, createDeps } from '../../src/deps.js';
import { VERSION } from '../../src/version.js';
import { runCli } from '../helpers/cli.js';
import { GENEROUS_ADMISSION, createSchema, send } from '../helpers/context.js';
import { loadScenario, textOf } from '../helpers/fixtures.js';

const actor = { name: 'test:setup', remoteAddr: null };

describe('agent-gate --version', () => {
  it.each([['--version'], ['-V']])('%s prints the version and exits 0', async (flag) => {
    const res = await runCli([flag], {});
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`${VERSION}\n`);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
    expect(res.stderr).toBe('');
  });
});

describe('the CLI outside the gateway directory', () => {
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-gate-elsewhere-'));
  afterAll(() => fs.rmSync(elsewhere, { recursive: true, force: true }));

  it('without DATABASE_URL or DATA_DIR: says where it looked and how to point it, creates nothing, exits 1', async () => {
    const res = await runCli(['devices', 'list'], { LOG_LEVEL: 'silent' }, { cwd: elsewhere });
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    const looked = path.join(fs.realpathSync(elsewhere), 'data');
    expect(res.stderr).toContain(
      `no embedded database in ${looked} (the default DATA_DIR, relative to this directory)`,
    );
    expect(res.stderr).toContain('DATABASE_URL is not set');
    expect(res.stderr).toMatch(/DATABASE_URL=postgres:\/\/…/);
    expect(res.stderr).toMatch(/DATA_DIR=\/path\/to\/data or --data-dir \/path\/to\/data/);
    expect(res.stderr).not.toMatch(/\n\s+at /); // one message, no stack trace
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });

  it('with a DATA_DIR, or --data-dir, that holds no database: names it, creates nothing', async () => {
    const dir = path.join(elsewhere, 'nothing-here');
    const env = await runCli(['secrets', 'list', '--json'], { DATA_DIR: dir, LOG_LEVEL: 'silent' }, { cwd: elsewhere });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain(`no embedded database in ${dir} (DATA_DIR)`);
    const flag = await runCli(['--data-dir', dir, 'devices', 'list'], { LOG_LEVEL: 'silent' }, { cwd: elsewhere });
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain(`no embedded database in ${dir} (DATA_DIR)`);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('commands that need no database still work there', async () => {
    const res = await runCli(['config'], {}, { cwd: elsewhere });
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('DATA_DIR');
    const help = await runCli(['--help'], {}, { cwd: elsewhere });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--data-dir');
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });
});

describe('one log line per newly quarantined device', () => {
  let deps: Deps;
  let app: Express;
  let drop: () => Promise<void>;
  let secret = '';
  let autoSecret = '';
  const lines: Record<string, unknown>[] = [];
  const quarantinedLines = () => lines.filter((l) => String(l.msg).startsWith('new device quarantined'));

  const prolog = textOf('fusioninventory-plain', '0001-post-prolog.json');
  const inventory = loadScenario('fusioninventory-plain').find((r) => r.classified.kind === 'inventory')!.decoded_text;
  const withId = (text: string, deviceid: string) =>
    text.replace(/<DEVICEID>[^<]*<\/DEVICEID>/, `<DEVICEID>${deviceid}</DEVICEID>`);
  const basic = (password: string) => `Basic ${Buffer.from(`inventory:${password}`).toString('base64')}`;
  function post(text: string, password: string) {
    return send(app, {
      method: 'POST',
      path: '/',
      headers: { 'Content-Type': 'application/x-compress-zlib', Authorization: basic(password) },
      body: zlib.deflateSync(text),
    });
  }

  beforeAll(async () => {
    const schema = await createSchema();
    drop = schema.drop;
    const config = loadConfig({
      DATABASE_URL: schema.url,
      AGENT_AUTH: 'required',
      LOG_LEVEL: 'info',
      SECRET_CACHE_TTL: '0',
      RATE_LIMIT_IP_PER_MINUTE: '1000000',
      RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '1000000',
      ...GENEROUS_ADMISSION,
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as never);
        done();
      },
    });
    deps = await createDeps(config, pino({ level: 'info' }, sink), { role: 'server', migrate: true });
    app = buildApp(deps);
    secret = (await deps.admin.createKey({ name: 'site-a' }, actor)).secret;
    autoSecret = (await deps.admin.createKey({ name: 'auto' }, actor)).secret;
    await deps.policies.add({ action: 'approve', match: { key: 'auto' }, comment: 'lab', position: null }, actor);
  });
  afterAll(async () => {
    await deps?.close();
    await drop?.();
  });

  it('names the device, its address and key, at info level, once', async () => {
    expect((await post(withId(prolog, 'fc-ws-1'), secret)).status).toBe(200);
    expect(quarantinedLines()).toHaveLength(1);
    // Its later messages (inventory, PROLOG again) add no line: it is already waiting.
    expect((await post(withId(inventory, 'fc-ws-1'), secret)).status).toBe(200);
    expect((await post(withId(prolog, 'fc-ws-1'), secret)).status).toBe(200);
    expect((await post(withId(inventory, 'fc-ws-1'), secret)).status).toBe(200);
    const [line] = quarantinedLines();
    expect(quarantinedLines()).toHaveLength(1);
    const device = await deps.records.device('fc-ws-1');
    expect(line).toMatchObject({
      level: 30,
      deviceid: 'fc-ws-1',
      id: device!.id,
      address: '127.0.0.1',
      key: 'site-a',
    });
    expect(line!.msg).toBe(
      `new device quarantined: (deviceid fc-ws-1) from 127.0.0.1 with registration key "site-a"; ` +
        `approve it with: agent-gate devices approve id:${device!.id}`,
    );
  });

  it('names it when the agent sent a name, and says nothing for a device a policy approved', async () => {
    expect((await post(withId(inventory, 'fc-ws-2'), secret)).status).toBe(200);
    expect(quarantinedLines()).toHaveLength(2);
    const device = await deps.records.device('fc-ws-2');
    expect(device!.name).toEqual(expect.any(String));
    expect(quarantinedLines()[1]).toMatchObject({ deviceid: 'fc-ws-2', name: device!.name });
    expect(quarantinedLines()[1]!.msg).toContain(`new device quarantined: "${device!.name}" (deviceid fc-ws-2)`);

    expect((await post(withId(prolog, 'fc-ws-auto'), autoSecret)).status).toBe(200);
    expect((await deps.records.device('fc-ws-auto'))!.state).toBe('approved');
    expect(quarantinedLines()).toHaveLength(2);
  });
});
