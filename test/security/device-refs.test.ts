/**
 * A device reference means one thing everywhere (CLI, admin API, console links): `id:15` (or `#15`) is the
 * row id 15 and anything else a deviceid, so `devices reject 15` rejects the device whose deviceid is "15"
 * and never row 15. A deviceid is chosen by whoever holds a key, so a rogue agent naming itself "15" must
 * not make a reviewer's decision land on another device. In a JSON body a number is a row id.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../src/config.js';
import { ROOT } from '../../scripts/lib/processes.js';
import { textOf } from '../helpers/fixtures.js';
import {
  FI_HEADERS,
  type Gate,
  KEY_A_SECRET,
  type Snapshot,
  basic,
  expectVictimUntouched,
  startGate,
  victim,
} from './support.js';

let gate: Gate;
let victimDeviceid: string;
let before: Snapshot;

/** A PROLOG from the captured FusionInventory run under another deviceid, through key site-a. */
async function prolog(deviceid: string): Promise<void> {
  const text = textOf('fusioninventory-plain', '0001-post-prolog.json').replace(
    /<DEVICEID>[^<]+/,
    `<DEVICEID>${deviceid}`,
  );
  const res = await gate.raw({
    headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) },
    body: zlib.deflateSync(text),
  });
  expect(res.status).toBe(200);
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CONFIG_KEYS) delete env[k.env];
  env.DATABASE_URL = gate.ctx.databaseUrl;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agent-gate.js'), ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function rowOf(deviceid: string): Promise<{ id: number; state: string }> {
  const [row] = await gate.ctx.sql<{ id: number; state: string }[]>`
    select id::int, state from devices where deviceid = ${deviceid}`;
  return row!;
}

beforeAll(async () => {
  gate = await startGate();
  // The victim becomes row 15: a known machine, approved and forwarded to GLPI.
  await gate.ctx.sql`select setval(pg_get_serial_sequence('devices', 'id'), 14)`;
  ({ deviceid: victimDeviceid, before } = await victim(gate));
  expect((await rowOf(victimDeviceid)).id).toBe(15);
  // The rogue: a key holder's agent that calls itself "15".
  await prolog('15');
  expect((await rowOf('15')).id).not.toBe(15);
}, 60_000);
afterAll(async () => {
  await gate.close();
});

describe('a device whose deviceid is "15" beside row 15', () => {
  it('the API reads 15 as the deviceid, id:15 and #15 as the row', async () => {
    expect((await gate.api('GET', '/api/v1/devices/15')).json).toMatchObject({ deviceid: '15' });
    expect((await gate.api('GET', '/api/v1/devices/id:15')).json).toMatchObject({ id: 15, deviceid: victimDeviceid });
    expect((await gate.api('GET', '/api/v1/devices/%2315')).json).toMatchObject({ id: 15, deviceid: victimDeviceid });
    expect((await gate.api('GET', '/api/v1/devices/deviceid:15')).json).toMatchObject({ deviceid: '15' });
    expect((await gate.api('GET', '/api/v1/devices/id:0')).status).toBe(404);
    expect((await gate.api('GET', '/api/v1/devices/id:999999')).status).toBe(404);
  });

  it('POST reject {"ids": ["15"]} rejects the rogue only: row 15 is untouched and nothing reaches GLPI', async () => {
    const res = await gate.api('POST', '/api/v1/devices/reject', { ids: ['15'], reason: 'rogue' });
    expect(res.status).toBe(200);
    expect(res.json.results).toEqual([expect.objectContaining({ deviceid: '15', to: 'rejected' })]);
    expect((await rowOf('15')).state).toBe('rejected');
    await expectVictimUntouched(gate, victimDeviceid, before);
  });

  it('the CLI reads them the same way: show 15 is the rogue, show id:15 the row; reject 15 spares row 15', async () => {
    const shown = await cli(['devices', 'show', '15', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ deviceid: '15' });
    const byRow = await cli(['devices', 'show', 'id:15', '--json']);
    expect(byRow.code, byRow.stderr).toBe(0);
    expect(JSON.parse(byRow.stdout)).toMatchObject({ id: 15, deviceid: victimDeviceid });
    await gate.api('POST', '/api/v1/devices/approve', { ids: ['15'], reason: 'back to approved for the CLI' });
    const rejected = await cli(['devices', 'reject', '15', '--reason', 'rogue', '--json']);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect((await rowOf('15')).state).toBe('rejected');
    await expectVictimUntouched(gate, victimDeviceid, before);
  }, 60_000);

  it('a JSON number is a row id: {"ids": [15]} decides row 15', async () => {
    const res = await gate.api('POST', '/api/v1/devices/reject', { ids: [15], reason: 'by row id' });
    expect(res.status).toBe(200);
    expect(res.json.results).toEqual([expect.objectContaining({ id: 15, deviceid: victimDeviceid, to: 'rejected' })]);
    expect((await rowOf('15')).state).toBe('rejected'); // the rogue as it was
  });
});
