/**
 * Shared set-up for the adversarial tests ("trust what the gateway verified, not what the agent claims"):
 * a gateway as in production (AGENT_AUTH=required, GLPI forwarding on, towards a fake GLPI on 127.0.0.1),
 * listening on a real loopback socket so refusals can be compared byte for byte; a victim device registered
 * by the real captured agent traffic, approved by a reviewer and already forwarded; and the three things
 * every threat asserts: the attacker's answer, the victim's row unchanged, nothing new for GLPI.
 *
 * Every test builds its own gateway (a schema of its own), so no test leans on another one's rows.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { afterEach, beforeEach, expect } from 'vitest';
import type { Queryable } from '../../src/store/db.js';
import { type TestContext, createTestContext, decodeAnswer } from '../helpers/context.js';
import { FakeGlpi } from '../helpers/fake-glpi.js';
import { type CapturedRequest, bodyOf, loadScenario } from '../helpers/fixtures.js';
import { type RawResponse, comparable, listenLoopback, rawSend } from '../helpers/raw-http.js';

const setupActor = { name: 'test:security-setup', remoteAddr: null };

/** The password in the captured Basic traffic (`inventory:acceptance-pw`): registration key "site-a". */
export const KEY_A_SECRET = 'acceptance-pw';
/** A second registration key, e.g. another site's, that the attacker may hold instead. */
export const KEY_B_SECRET = 'site-b-key-0123456789abcdef';
export const REALM_HEADER = 'Basic realm="agent-gate"';

export const FI_RUN = loadScenario('fusioninventory-basic-auth');
export const GA_RUN = loadScenario('glpi-basic-auth');
export const FI_INVENTORY = FI_RUN.find((r) => r.file === '0006-post-inventory.json')!;
export const GA_INVENTORY = GA_RUN.find((r) => r.file === '0009-post-inventory.json')!;
export const FI_DEVICEID = FI_INVENTORY.classified.deviceid!;
export const GA_DEVICEID = GA_INVENTORY.classified.deviceid!;
/** The one non-virtual MAC of the captured machine (eth0); the other two are ifb0/ifb1, VIRTUALDEV=1. */
export const VICTIM_MAC = '02:fc:00:00:00:01';

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export interface Gate {
  ctx: TestContext;
  glpi: FakeGlpi;
  port: number;
  reviewerToken: string;
  adminToken: string;
  /** One request over a real socket, as an agent (or an attacker) sends it. */
  raw(r: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer }): Promise<RawResponse>;
  /** A JSON admin API call with the reviewer (or admin) token. */
  api(method: 'GET' | 'POST', path: string, body?: unknown, role?: 'reviewer' | 'admin'): Promise<ApiAnswer>;
  close(): Promise<void>;
}

export interface ApiAnswer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- admin API answers are asserted on by shape
  json: any;
}

/**
 * The file's gateway, a fresh one for every test (started before it, closed after it): `const gate =
 * useGate()` at the top of a test file, then `gate` read inside its tests is that test's gateway.
 */
export function useGate(env: Record<string, string> = {}): Gate {
  let current: Gate | null = null;
  beforeEach(async () => {
    current = await startGate(env);
  });
  afterEach(async () => {
    await current?.close();
    current = null;
  });
  return new Proxy({} as Gate, {
    get(_target, prop) {
      if (!current) throw new Error('useGate(): the gateway exists only while a test runs');
      return Reflect.get(current, prop) as unknown;
    },
  });
}

export async function startGate(env: Record<string, string> = {}): Promise<Gate> {
  const glpi = new FakeGlpi();
  await glpi.up();
  const ctx = await createTestContext({
    AGENT_AUTH: 'required',
    SECRET_CACHE_TTL: '0',
    UPSTREAM_URL: glpi.url,
    // No background workers: the test drives forwarding (drain) and sees exactly what would reach GLPI.
    UPSTREAM_WORKERS: '0',
    ...env,
  });
  await ctx.deps.admin.createKey({ name: 'site-a', secret: KEY_A_SECRET }, setupActor);
  await ctx.deps.admin.createKey({ name: 'site-b', secret: KEY_B_SECRET }, setupActor);
  const reviewerToken = (await ctx.deps.admin.createOperator({ name: 'rev', role: 'reviewer' }, setupActor)).token;
  const adminToken = (await ctx.deps.admin.createOperator({ name: 'adm', role: 'admin' }, setupActor)).token;
  const server = http.createServer(ctx.app);
  const port = await listenLoopback(server);
  const raw: Gate['raw'] = (r) => rawSend(port, r);
  return {
    ctx,
    glpi,
    port,
    reviewerToken,
    adminToken,
    raw,
    async api(method, path, body, role = 'reviewer') {
      const res = await raw({
        method,
        path,
        headers: {
          Authorization: `Bearer ${role === 'admin' ? adminToken : reviewerToken}`,
          'Content-Type': 'application/json',
        },
        body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      });
      const text = res.body.toString('utf8');
      return { status: res.status, json: text ? JSON.parse(text) : null };
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await ctx.close();
      await glpi.down();
    },
  };
}

export function header(res: RawResponse, name: string): string[] {
  return res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

export function textOfAnswer(res: RawResponse): string {
  return decodeAnswer(header(res, 'content-type')[0], res.body);
}

/** The headers an agent sent, minus Authorization and what the socket sets itself. */
export function agentHeaders(r: CapturedRequest): Record<string, string> {
  const skip = new Set(['host', 'content-length', 'authorization', 'connection', 'keep-alive', 'te']);
  return Object.fromEntries(r.headers.filter(([k]) => !skip.has(k.toLowerCase())));
}

/** Replays a captured run as the agent sent it (its 401, 401, 200 pattern), with its own Authorization lines. */
async function replayRun(gate: Gate, run: CapturedRequest[], inventoryBody?: Buffer, authorization?: string) {
  for (const r of run) {
    if (r.method !== 'POST') continue; // getConfig GETs need no credential and touch no device
    const authorized = r.headers.some(([k]) => k.toLowerCase() === 'authorization');
    const headers = agentHeaders(r);
    if (authorized) headers.Authorization = authorization ?? r.headers.find(([k]) => k === 'Authorization')![1];
    const body = r.classified.kind === 'inventory' && inventoryBody ? inventoryBody : bodyOf(r);
    const res = await gate.raw({ headers, body });
    expect(res.status, `${r.file} of the victim's own run`).toBe(authorized ? 200 : 401);
  }
}

export interface Hardware {
  uuid?: string;
  serial?: string;
}

/** Victim hardware used where a test needs the SMBIOS identity the captured container lacks. */
export const VICTIM_HW = { uuid: '4c4c4544-0042-3510-8051-b7c04f4a4b31', serial: 'VICTIM-SN-7Q3K9' } as const;

/**
 * The victim: a device registered by the captured traffic (FusionInventory XML or GLPI Agent JSON) through
 * key "site-a" (or the given Authorization), approved by a reviewer through the admin API, its inventory
 * forwarded to (fake) GLPI. With `hw`, the captured inventory carries that UUID/serial (the container it
 * was captured on has none); otherwise its bytes are exactly the captured ones.
 */
export async function victim(
  gate: Gate,
  opts: { agent?: 'fi' | 'ga'; hw?: Hardware; authorization?: string } = {},
): Promise<{ deviceid: string; before: Snapshot }> {
  const agent = opts.agent ?? 'fi';
  const run = agent === 'fi' ? FI_RUN : GA_RUN;
  const deviceid = agent === 'fi' ? FI_DEVICEID : GA_DEVICEID;
  const body = opts.hw
    ? agent === 'fi'
      ? xmlBody(fiInventoryText({ hw: opts.hw }))
      : jsonBody(gaInventoryDoc({ hw: opts.hw }))
    : undefined;
  await replayRun(gate, run, body, opts.authorization);
  const approved = await gate.api('POST', '/api/v1/devices/approve', { ids: [deviceid], reason: 'known machine' });
  expect(approved.status).toBe(200);
  expect(approved.json.results[0]).toMatchObject({ deviceid, to: 'approved' });
  await drain(gate);
  expect(gate.glpi.delivered().length, 'the victim is forwarded to GLPI').toBeGreaterThan(0);
  gate.glpi.reset();
  const before = await snapshot(gate, deviceid);
  expect(before.device?.state).toBe('approved');
  expect(before.outbox.length).toBeGreaterThan(0);
  expect(before.inventory?.summary, 'the victim page has its inventory summary').toBeTruthy();
  expect(before.inventory?.summarySubmissionId).toBe(before.inventory?.fullSubmissionId);
  return { deviceid, before };
}

/** Runs the forwarder until nothing is due (GLPI answers 200, so nothing waits on back-off). */
export async function drain(gate: Gate): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await gate.ctx.deps.forwarder.runOnce()) === 0) return;
  }
  throw new Error('outbox did not drain');
}

export interface Snapshot {
  device: Record<string, unknown> | undefined;
  outbox: { id: number; submissionId: number; state: string }[];
  submissions: { id: number; state: string }[];
  /** What the device page shows of its inventory: the stored full inventory, its view and its summary. */
  inventory: Record<string, unknown> | undefined;
  outboxTotal: number;
}

/**
 * What an attack must not change about a device: its identity, its registered credential, its GLPI queue and
 * the inventory the security team reads on its page.
 */
export function snapshot(gate: Gate, deviceid: string): Promise<Snapshot> {
  return snapshotOf(gate.ctx.sql, deviceid);
}

/** snapshot() through any connection whose search_path is the gateway's schema (a gateway process's, too). */
export async function snapshotOf(sql: Queryable, deviceid: string): Promise<Snapshot> {
  const [device] = await sql<Record<string, unknown>[]>`
    select id::int, deviceid, state, name, uuid, serial, msn, asset_tag as "assetTag", manufacturer, model, macs, ips, os,
           tag, registered_key_id::int as "registeredKeyId", registered_client_pk::int as "registeredClientPk",
           assigned_tag as "assignedTag"
    from devices where deviceid = ${deviceid}`;
  const deviceId = (device?.id as number | undefined) ?? -1; // no device: nothing of it to match
  const outbox = await sql<Snapshot['outbox']>`
    select id::int, submission_id::int as "submissionId", state from outbox
    where deviceid = ${deviceid} or device_id = ${deviceId} order by id`;
  const submissions = await sql<Snapshot['submissions']>`
    select id::int, state from submissions where device_id = ${deviceId} order by id`;
  const [inventory] = await sql<Record<string, unknown>[]>`
    select full_submission_id::int as "fullSubmissionId", format, v.view, partials_merged as "partialsMerged", summary,
           summary_submission_id::int as "summarySubmissionId"
    from inventories i join inventory_views v using (device_id) where device_id = ${deviceId}`;
  const [total] = await sql<{ n: number }[]>`select count(*)::int as n from outbox`;
  return { device, outbox, submissions, inventory, outboxTotal: total!.n };
}

/**
 * Assertions (2) and (3): the victim's identity fields and registered credential are as before (its state
 * too, unless `state` names the documented change), nothing new was queued for it or for anyone, and
 * nothing reaches GLPI once the forwarder has run.
 */
export async function expectVictimUntouched(
  gate: Gate,
  deviceid: string,
  before: Snapshot,
  opts: { state?: string } = {},
): Promise<Snapshot> {
  const after = await snapshot(gate, deviceid);
  expect(after.device, 'victim row').toEqual({ ...before.device, state: opts.state ?? before.device!.state });
  expect(after.outbox, 'victim outbox rows').toEqual(before.outbox);
  expect(after.inventory, 'victim inventory (what its page shows)').toEqual(before.inventory);
  expect(after.outboxTotal, 'outbox rows in total').toBe(before.outboxTotal);
  await drain(gate);
  expect(
    gate.glpi.requests.map((r) => r.deviceid),
    'inventories that reached GLPI',
  ).toEqual([]);
  return after;
}

/**
 * Refused while it was read, before anything was stored: no device under `deviceid`, and the refusal is
 * the newest registration (with no deviceid: the message was not understood).
 */
export async function expectRefusedUnread(gate: Gate, deviceid: string, status: number, message: RegExp) {
  expect(await gate.ctx.sql`select 1 from devices where deviceid = ${deviceid}`).toHaveLength(0);
  const [r] = await gate.ctx.sql<{ outcome: string; status: number; message: string }[]>`
    select outcome, status, message from registrations order by id desc limit 1`;
  expect(r).toMatchObject({ outcome: 'refused', status, message: expect.stringMatching(message) });
}

/** Held, not stored: the newest submission of the device (the attacker's) waits for a person. */
export async function expectLastSubmissionHeld(gate: Gate, before: Snapshot, after: Snapshot): Promise<void> {
  expect(after.submissions.length, 'the attacker submission is kept for review').toBe(before.submissions.length + 1);
  expect(after.submissions.at(-1)!.state).toBe('held');
  expect(after.submissions.slice(0, -1)).toEqual(before.submissions);
}

export async function securityEvents(
  gate: Gate,
): Promise<{ kind: string; deviceid: string | null; details: Record<string, unknown> }[]> {
  return gate.ctx.sql`select kind, deviceid, details from security_events order by id`;
}

/**
 * Assertion (1) for a refused credential: the answer is byte for byte the one a wrong password gets for
 * the very same request, so the attacker cannot tell "pinned elsewhere" from "wrong secret".
 */
export async function expectSameAsWrongPassword(
  gate: Gate,
  req: { headers: Record<string, string>; body: Buffer },
  res: RawResponse,
): Promise<void> {
  const reference = await gate.raw({
    headers: { ...req.headers, Authorization: basic('inventory', 'wrong-password-for-reference') },
    body: req.body,
  });
  expect(reference.status).toBe(401);
  expect(header(reference, 'www-authenticate')).toEqual([REALM_HEADER]);
  expect(comparable(res)).toEqual(comparable(reference));
}

// ---- Inventories built from the captured ones -------------------------------------------------------------

export interface Nic {
  mac: string;
  virtual?: boolean;
  ip?: string;
  description?: string;
}

export interface InventoryChanges {
  deviceid?: string;
  name?: string;
  /** UUID/serial to put in; a key present with `undefined`… is not possible in JSON: use null to leave it out. */
  hw?: { uuid?: string | null; serial?: string | null };
  nics?: Nic[];
  os?: string;
  /** Extra text appended inside CONTENT (XML) — e.g. a second section. */
  extraXml?: string;
}

/** The captured FusionInventory inventory text with the given changes (identity sections only). */
export function fiInventoryText(c: InventoryChanges = {}): string {
  let t = FI_INVENTORY.decoded_text;
  if (c.hw?.serial) t = t.replace('<SSN></SSN>', `<SSN>${c.hw.serial}</SSN>`);
  if (c.hw?.uuid) t = t.replace('<NAME>vm</NAME>', `<NAME>vm</NAME>\n      <UUID>${c.hw.uuid}</UUID>`);
  if (c.name)
    t = t.replace('<NAME>vm</NAME>', `<NAME>${c.name}</NAME>`).replace('<FQDN>vm</FQDN>', `<FQDN>${c.name}</FQDN>`);
  if (c.os) t = t.replace(/<FULL_NAME>[^<]*<\/FULL_NAME>/, `<FULL_NAME>${c.os}</FULL_NAME>`);
  if (c.nics) {
    const blocks = c.nics
      .map(
        (n) =>
          `<NETWORKS>\n      <DESCRIPTION>${n.description ?? 'eth0'}</DESCRIPTION>\n      ${n.ip ? `<IPADDRESS>${n.ip}</IPADDRESS>\n      ` : ''}<MACADDR>${n.mac}</MACADDR>\n      <STATUS>Up</STATUS>\n      <VIRTUALDEV>${n.virtual ? 1 : 0}</VIRTUALDEV>\n    </NETWORKS>`,
      )
      .join('\n    ');
    const first = t.indexOf('<NETWORKS>');
    const last = t.lastIndexOf('</NETWORKS>') + '</NETWORKS>'.length;
    t = t.slice(0, first) + blocks + t.slice(last);
  }
  if (c.extraXml) t = t.replace('</CONTENT>', `${c.extraXml}\n  </CONTENT>`);
  if (c.deviceid !== undefined) t = t.replace(/<DEVICEID>[^<]*<\/DEVICEID>/, `<DEVICEID>${c.deviceid}</DEVICEID>`);
  return t;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- inventories are edited freely, as an attacker would
type Json = Record<string, any>;

/** The captured GLPI Agent JSON inventory with the given changes; `partial` keeps only the sections a partial carries. */
export function gaInventoryDoc(c: InventoryChanges & { partial?: boolean; keep?: string[] } = {}): Json {
  const doc = JSON.parse(GA_INVENTORY.decoded_text) as Json;
  const content = doc.content as Json;
  if (c.hw?.serial) content.bios.ssn = c.hw.serial;
  if (c.hw?.uuid) content.hardware.uuid = c.hw.uuid;
  if (c.name) {
    content.hardware.name = c.name;
    content.operatingsystem.fqdn = c.name;
  }
  if (c.os) content.operatingsystem.full_name = c.os;
  if (c.nics)
    content.networks = c.nics.map((n) => ({
      description: n.description ?? 'eth0',
      mac: n.mac,
      ...(n.ip ? { ipaddress: n.ip } : {}),
      status: 'up',
      virtualdev: n.virtual === true,
    }));
  if (c.partial) {
    // What GLPI Agent always sends in a partial (PROTOCOL §4.3), plus the changed sections named in `keep`.
    const always = ['accesslog', 'bios', 'hardware', 'versionclient', 'versionprovider', ...(c.keep ?? [])];
    for (const k of Object.keys(content)) if (!always.includes(k)) delete content[k];
    doc.partial = true;
  }
  if (c.deviceid !== undefined) doc.deviceid = c.deviceid;
  return doc;
}

export function xmlBody(text: string): Buffer {
  return zlib.deflateSync(text);
}

export function jsonBody(doc: Json): Buffer {
  return zlib.deflateSync(JSON.stringify(doc, null, 3));
}

export const FI_HEADERS = agentHeaders(FI_INVENTORY);
export const GA_HEADERS = agentHeaders(GA_INVENTORY);

/** A rogue machine's NICs: nothing in common with the victim's. */
export const ROGUE_NICS: Nic[] = [{ mac: '3c:52:82:aa:bb:01', ip: '192.0.2.66', description: 'enp0s31f6' }];
export const ROGUE_HW = { uuid: '9f1c2d3e-4b5a-4697-8a1b-2c3d4e5f6071', serial: 'ROGUE-SN-0001' } as const;
