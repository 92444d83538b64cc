/**
 * Forwarding accepted inventories to GLPI through the outbox, against a fake GLPI on 127.0.0.1 and the real
 * PostgreSQL: byte-identical sends with the agent's headers, nothing lost and per-device order kept while
 * GLPI is down, slow or failing, approval releasing the held full inventory first, dead letters after
 * UPSTREAM_MAX_ATTEMPTS refusals, two workers never sending one item (or one device) at once, and the one
 * allowed duplicate (a crash between send and mark: at least once). Retries are driven by the test clock
 * and runOnce(), never by sleeping through back-off.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { type Deps, createDeps } from '../../src/deps.js';
import { createForwarder } from '../../src/services/forwarder.js';
import { claimDue, markDelivered } from '../../src/store/outbox-store.js';
import { type TestContext, createTestContext, replay, send } from '../helpers/context.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { FakeGlpi, type GlpiRequest } from '../helpers/fake-glpi.js';
import { bodyOf, loadScenario } from '../helpers/fixtures.js';

const actor = { name: 'test', remoteAddr: null };
const MAX_ATTEMPTS = 3;
const glpi = new FakeGlpi();
let ctx: TestContext;

beforeAll(async () => {
  await glpi.up();
  ctx = await createTestContext({
    AGENT_AUTH: 'off',
    UPSTREAM_URL: glpi.url,
    UPSTREAM_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    UPSTREAM_WORKERS: '4',
    UPSTREAM_RATE: '0', // paced sends are tested on their own below
  });
});
afterAll(async () => {
  await ctx?.close();
  await glpi.down();
});
beforeEach(() => glpi.reset());

const zlibType = { 'Content-Type': 'application/x-compress-zlib' };

async function prolog(deviceid: string): Promise<void> {
  const body = zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY><TOKEN>12345678</TOKEN></REQUEST>`,
  );
  expect((await send(ctx.app, { method: 'POST', path: '/', headers: zlibType, body })).status).toBe(200);
}

async function approve(...deviceids: string[]) {
  return ctx.deps.review.decide(deviceids, 'approve', null, actor);
}

/** A FusionInventory XML inventory; `marker` tells the sends apart upstream. */
async function xmlInventory(deviceid: string, marker: string): Promise<void> {
  const text = `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><CONTENT><HARDWARE><NAME>${deviceid}</NAME><DESCRIPTION>${marker}</DESCRIPTION></HARDWARE><VERSIONCLIENT>FusionInventory-Agent_v2.6-3</VERSIONCLIENT></CONTENT><DEVICEID>${deviceid}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`;
  const res = await send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { ...zlibType, 'User-Agent': 'FusionInventory-Agent_v2.6-3' },
    body: zlib.deflateSync(text),
  });
  expect(res.status).toBe(200);
}

/** A GLPI Agent JSON inventory, full or partial. */
async function jsonInventory(deviceid: string, marker: string, partial: boolean): Promise<void> {
  const doc = {
    action: 'inventory',
    content: { hardware: { description: marker, name: deviceid }, versionclient: 'GLPI-Agent_v1.12' },
    deviceid,
    itemtype: 'Computer',
    ...(partial ? { partial: true } : {}),
  };
  const res = await send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: {
      ...zlibType,
      'User-Agent': 'GLPI-Agent_v1.12',
      'GLPI-Agent-ID': `00000000-0000-4000-8000-${deviceid
        .replace(/[^0-9a-f]/g, '')
        .padStart(12, '0')
        .slice(-12)}`,
    },
    body: zlib.deflateSync(JSON.stringify(doc, null, 3)),
  });
  expect(res.status).toBe(200);
}

function markerOf(r: GlpiRequest): string | null {
  return /<DESCRIPTION>([^<]*)</.exec(r.text)?.[1] ?? /"description"\s*:\s*"([^"]*)"/.exec(r.text)?.[1] ?? null;
}

async function outbox(deviceid?: string) {
  return ctx.sql<
    {
      id: number;
      submissionId: number;
      state: string;
      attempts: number;
      nextAttemptAt: Date | null;
      lastStatus: number | null;
      lastError: string | null;
      lastResponse: string | null;
    }[]
  >`
    select id, submission_id as "submissionId", state, attempts, next_attempt_at as "nextAttemptAt", last_status as "lastStatus", last_error as "lastError", last_response as "lastResponse"
    from outbox ${deviceid ? ctx.sql`where deviceid = ${deviceid}` : ctx.sql``} order by id`;
}

async function unsent(): Promise<number> {
  const [row] = await ctx.sql<
    { n: number }[]
  >`select count(*)::int as n from outbox where state in ('pending', 'in_flight')`;
  return row!.n;
}

/** agentgate_forward_breaker_open of the test's process. */
async function breakerGauge(): Promise<number | undefined> {
  const m = await ctx.deps.metrics.registry.getSingleMetric('agentgate_forward_breaker_open')?.get();
  return m?.values[0]?.value;
}

/** Runs the worker until nothing is left to send, moving the clock past back-off when nothing is due. */
async function drain(run: () => Promise<number> = () => ctx.deps.forwarder.runOnce(), rounds = 60): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if ((await run()) > 0) continue;
    if ((await unsent()) === 0) return;
    ctx.clock.advance(11 * 60_000); // past the longest back-off (10 min)
  }
  throw new Error(`outbox not drained: ${JSON.stringify(await outbox())}`);
}

describe('an approved device', () => {
  it("has its inventory written to the outbox with the agent's answer and sent upstream byte-identical, with its headers", async () => {
    const run = loadScenario('glpi-contact-pending');
    const inventory = run.find((r) => r.file === '0002-post-inventory.json')!;
    const deviceid = inventory.classified.deviceid!;
    expect((await replay(ctx.app, run[0]!)).status).toBe(200); // PROLOG: the device exists, quarantined
    await approve(deviceid);
    expect((await replay(ctx.app, inventory)).status).toBe(200);
    // Answered without GLPI: the item is in the outbox, nothing sent yet.
    expect(glpi.requests).toHaveLength(0);
    const [row] = await outbox(deviceid);
    expect(row).toMatchObject({ state: 'pending', attempts: 0 });
    const [sub] = await ctx.sql<{ state: string; body: Buffer; remoteAddr: string }[]>`
      select s.state, s.body, r.remote_addr as "remoteAddr" from submissions s join registrations r on r.id = s.registration_id where s.id = ${row!.submissionId}`;
    expect(sub!.state).toBe('stored');

    expect(await ctx.deps.forwarder.runOnce()).toBe(1);
    expect(glpi.requests).toHaveLength(1);
    const got = glpi.requests[0]!;
    expect(got.path).toBe('/front/inventory.php');
    expect(got.body.equals(bodyOf(inventory))).toBe(true);
    expect(got.body.equals(sub!.body)).toBe(true);
    expect(got.headers['content-type']).toBe('application/x-compress-zlib');
    expect(got.headers['user-agent']).toBe('GLPI-Agent_v1.12-dev');
    expect(got.headers['glpi-agent-id']).toBe('4ee6b0cc-e6aa-11f1-9c38-544f3454743c');
    expect(got.headers['x-forwarded-for']).toBe(sub!.remoteAddr);
    expect(sub!.remoteAddr).toMatch(/127\.0\.0\.1/);
    expect(got.headers['content-length']).toBe(String(bodyOf(inventory).length));
    expect(got.headers.authorization).toBeUndefined();
    const [done] = await outbox(deviceid);
    expect(done).toMatchObject({
      state: 'delivered',
      attempts: 1,
      lastStatus: 200,
      lastError: null,
      nextAttemptAt: null,
    });
    expect(done!.lastResponse).toBe('{"expiration":24,"status":"ok"}'); // GLPI's zlib answer, kept decoded
    expect(await ctx.deps.forwarder.runOnce()).toBe(0); // once, not again
  });

  it('a FusionInventory XML inventory goes as sent, without GLPI-Agent-ID', async () => {
    const run = loadScenario('fusioninventory-plain');
    const deviceid = run[0]!.classified.deviceid!;
    expect((await replay(ctx.app, run[0]!)).status).toBe(200);
    await approve(deviceid);
    expect((await replay(ctx.app, run[1]!)).status).toBe(200);
    await drain();
    expect(glpi.requests).toHaveLength(1);
    const got = glpi.requests[0]!;
    expect(got.body.equals(bodyOf(run[1]!))).toBe(true);
    expect(got.headers['user-agent']).toBe('FusionInventory-Agent_v2.6-3');
    expect(got.headers['content-type']).toBe('application/x-compress-zlib');
    expect(got.headers['glpi-agent-id']).toBeUndefined();
    expect(got.text).toContain('<QUERY>INVENTORY</QUERY>');
  });

  it('network-task messages and non-inventory messages are not forwarded', async () => {
    const before = (await outbox()).length;
    const netdiscovery =
      '<?xml version="1.0"?><REQUEST><CONTENT><DEVICE><IP>192.0.2.7</IP></DEVICE><MODULEVERSION>6.1</MODULEVERSION><PROCESSNUMBER>7</PROCESSNUMBER></CONTENT><DEVICEID>foo</DEVICEID><QUERY>NETDISCOVERY</QUERY></REQUEST>';
    expect(
      (await send(ctx.app, { method: 'POST', path: '/', headers: zlibType, body: zlib.deflateSync(netdiscovery) }))
        .status,
    ).toBe(200);
    await prolog('fw-prolog-only');
    await approve('fw-prolog-only');
    await prolog('fw-prolog-only');
    expect((await outbox()).length).toBe(before);
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
  });
});

describe('a quarantined device', () => {
  it('sends nothing upstream while held; approval releases the newest held full inventory first, then the partials after it', async () => {
    const id = 'fw-held-1';
    await jsonInventory(id, 'P0', true); // a partial before any full one (superseded)
    await jsonInventory(id, 'F1', false); // an older full inventory (superseded)
    await jsonInventory(id, 'P1', true);
    await jsonInventory(id, 'F2', false); // the newest full inventory
    await jsonInventory(id, 'P2', true);
    await jsonInventory(id, 'P3', true);
    expect(await outbox(id)).toHaveLength(0);
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    const [r] = await approve(id);
    expect(r!.releasedSubmissions).toBe(6);
    // Enqueued by the approval's own transaction.
    expect((await outbox(id)).map((o) => o.state)).toEqual(['pending', 'pending', 'pending']);
    // An inventory that arrives after the approval goes after what it released.
    await jsonInventory(id, 'P4', true);
    await drain();
    expect(glpi.requests.map(markerOf)).toEqual(['F2', 'P2', 'P3', 'P4']);
    expect(glpi.requests[0]!.text).not.toContain('"partial"');
    expect(glpi.requests.slice(1).every((q) => q.text.includes('"partial": true'))).toBe(true);
  });

  it('auto-approved by a policy as its first inventory arrives: that inventory is forwarded', async () => {
    const rule = await ctx.deps.policies.add(
      { action: 'approve', match: { manufacturer: 'FwAutoVendor' }, comment: 'forwarding test' },
      actor,
    );
    try {
      const id = 'fw-auto-1';
      const text = `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><CONTENT><BIOS><SMANUFACTURER>FwAutoVendor</SMANUFACTURER></BIOS><HARDWARE><NAME>${id}</NAME><DESCRIPTION>AUTO1</DESCRIPTION></HARDWARE></CONTENT><DEVICEID>${id}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`;
      expect(
        (await send(ctx.app, { method: 'POST', path: '/', headers: zlibType, body: zlib.deflateSync(text) })).status,
      ).toBe(200);
      const [d] = await ctx.sql<{ state: string }[]>`select state from devices where deviceid = ${id}`;
      expect(d!.state).toBe('approved');
      expect((await outbox(id)).map((o) => o.state)).toEqual(['pending']);
      await drain();
      expect(glpi.delivered().map(markerOf)).toEqual(['AUTO1']);
    } finally {
      await ctx.deps.policies.remove(rule.rule.id, actor);
    }
  });

  it('an undone approval takes back what was not sent yet; the next approval sends it once', async () => {
    const id = 'fw-undo-1';
    await xmlInventory(id, 'U1');
    await approve(id);
    expect(await outbox(id)).toHaveLength(1);
    await ctx.deps.review.undo(id, actor);
    expect(await outbox(id)).toHaveLength(0);
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    await approve(id);
    await drain();
    expect(glpi.requests.map(markerOf)).toEqual(['U1']);
    // Approve → undo → approve again after delivery: not sent a second time.
    await ctx.deps.review.undo(id, actor);
    await approve(id);
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    expect((await outbox(id)).map((o) => o.state)).toEqual(['delivered']);
  });

  it('a device rejected before its inventories were sent: they become dead letters, never sent', async () => {
    const id = 'fw-reject-1';
    await prolog(id);
    await approve(id);
    await xmlInventory(id, 'R1');
    await ctx.deps.review.decide([id], 'reject', 'stolen', actor);
    expect((await outbox(id)).map((o) => o.state)).toEqual(['dead']);
    expect((await outbox(id))[0]!.lastError).toMatch(/rejected before delivery/);
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    expect(glpi.requests).toHaveLength(0);
  });
});

describe('GLPI down, failing or slow', () => {
  it('GLPI down: one probe at a time (circuit breaker), then every accepted inventory arrives, in per-device order', async () => {
    const devices = ['fw-down-a', 'fw-down-b', 'fw-down-c'];
    for (const d of devices) await prolog(d);
    await approve(...devices);
    await glpi.down();
    // The agents are answered at once while GLPI is down.
    for (let n = 1; n <= 3; n++) for (const d of devices) await xmlInventory(d, `${d}#${n}`);
    expect(await ctx.deps.forwarder.runOnce()).toBe(3); // one per device: the oldest of each
    for (const d of devices) {
      const rows = await outbox(d);
      expect(rows.map((o) => [o.state, o.attempts])).toEqual([
        ['pending', 1],
        ['pending', 0],
        ['pending', 0],
      ]);
      expect(rows[0]!.lastError).toMatch(/ECONNREFUSED|fetch failed/);
      expect(rows[0]!.lastStatus).toBeNull();
    }
    // Three attempts in a row without an answer: the circuit breaker opens, and the workers pause behind
    // one probe at a time instead of each row backing off on its own.
    expect(ctx.deps.forwarder.breaker.state).toBe('open');
    expect(await breakerGauge()).toBe(1);
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    ctx.clock.advance(5_000); // every row is due again by its own back-off (5 s)…
    expect(await ctx.deps.forwarder.runOnce()).toBe(1); // …but one probe goes
    expect(await ctx.deps.forwarder.runOnce()).toBe(0); // and the next waits (2 s, 4 s … at most 60 s apart)
    const attempts = async () => (await Promise.all(devices.map(outbox))).flat().reduce((n, o) => n + o.attempts, 0);
    expect(await attempts()).toBe(3 + 1);
    ctx.clock.advance(60_000);
    expect(await ctx.deps.forwarder.runOnce()).toBe(1);
    expect(await attempts()).toBe(3 + 2);

    // Up again, but answering 500, then 429 (still down for the breaker: one probe each)… then 200.
    await glpi.up();
    glpi.script = [500, 429];
    for (const status of [500, 429]) {
      ctx.clock.advance(60_000);
      expect(await ctx.deps.forwarder.runOnce()).toBe(1);
      expect(glpi.requests.at(-1)!.status).toBe(status);
      expect(ctx.deps.forwarder.breaker.state).toBe('open');
    }
    expect(glpi.maxConcurrent, 'probes go one at a time').toBe(1);
    const probed = (await Promise.all(devices.map(outbox))).flat().find((o) => o.lastStatus === 500)!;
    expect(probed).toMatchObject({ state: 'pending', lastError: 'HTTP 500' });
    expect(probed.lastResponse).toContain('scripted 500');
    // The probe that GLPI accepts closes the breaker: what backed off during the outage is due at once.
    ctx.clock.advance(60_000);
    expect(await ctx.deps.forwarder.runOnce()).toBe(1);
    expect(ctx.deps.forwarder.breaker.state).toBe('closed');
    expect(await breakerGauge()).toBe(0);
    await drain();
    for (const d of devices) {
      const got = glpi
        .delivered()
        .filter((r) => r.deviceid === d)
        .map(markerOf);
      expect(got, d).toEqual([`${d}#1`, `${d}#2`, `${d}#3`]);
      expect((await outbox(d)).every((o) => o.state === 'delivered')).toBe(true);
    }
    expect(glpi.delivered()).toHaveLength(9);
  });

  it('a slow GLPI: an attempt that times out is retried, and the answer comes next time', async () => {
    const id = 'fw-slow-1';
    await prolog(id);
    await approve(id);
    await xmlInventory(id, 'S1');
    const fast = createForwarder({
      sql: ctx.sql,
      clock: ctx.clock,
      logger: ctx.deps.logger,
      config: ctx.deps.config,
      timeoutMs: 150,
    });
    glpi.script = [{ delayMs: 1000 }];
    expect(await fast.runOnce()).toBe(1);
    const [row] = await outbox(id);
    expect(row).toMatchObject({ state: 'pending', attempts: 1, lastStatus: null, lastError: 'timeout after 0.15 s' });
    await drain(() => fast.runOnce());
    expect(glpi.delivered().map(markerOf)).toEqual(['S1']);
  });
});

describe('a GLPI that refuses an inventory', () => {
  it(`dead-letters it after UPSTREAM_MAX_ATTEMPTS (${MAX_ATTEMPTS}) attempts with the answer kept, without holding back the device`, async () => {
    const id = 'fw-dead-1';
    await prolog(id);
    await approve(id);
    await xmlInventory(id, 'D1');
    glpi.otherwise = 400;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      expect(await ctx.deps.forwarder.runOnce()).toBe(1);
      expect((await outbox(id))[0]).toMatchObject({
        attempts: attempt,
        lastStatus: 400,
        state: attempt < MAX_ATTEMPTS ? 'pending' : 'dead',
      });
      ctx.clock.advance(11 * 60_000);
    }
    const [dead] = await outbox(id);
    expect(dead).toMatchObject({ state: 'dead', nextAttemptAt: null, lastError: 'HTTP 400' });
    expect(dead!.lastResponse).toContain('<ERROR>scripted 400</ERROR>');
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    glpi.otherwise = 200;
    await xmlInventory(id, 'D2');
    await drain();
    expect(glpi.delivered().map(markerOf)).toEqual(['D2']);
    const metrics = (await send(ctx.app, { method: 'GET', path: '/metrics' })).text;
    expect(metrics).toMatch(/^agentgate_outbox_items\{state="dead"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^agentgate_outbox_items\{state="pending"\} 0$/m);
    expect(metrics).toMatch(/^agentgate_outbox_oldest_pending_age_seconds 0$/m);
    expect(metrics).toMatch(/^agentgate_outbox_attempts_total\{outcome="dead"\} 1$/m);
    expect(metrics).toMatch(/^agentgate_outbox_attempts_total\{outcome="retry"\} \d+$/m);
    // Retry: due now, fresh attempts.
    const retried = await ctx.deps.forwarder.retry(dead!.id, actor);
    expect(retried).toMatchObject({ state: 'pending', attempts: 0 });
    await drain();
    expect(glpi.delivered().map(markerOf)).toEqual(['D2', 'D1']);
  });

  it('shows the oldest pending age in the metrics', async () => {
    const id = 'fw-age-1';
    await prolog(id);
    await approve(id);
    await glpi.down();
    await xmlInventory(id, 'A1');
    ctx.clock.advance(90_000);
    const metrics = (await send(ctx.app, { method: 'GET', path: '/metrics' })).text;
    expect(metrics).toMatch(/^agentgate_outbox_oldest_pending_age_seconds 90$/m);
    expect(metrics).toMatch(/^agentgate_outbox_items\{state="pending"\} 1$/m);
    await glpi.up();
    await drain();
  });
});

describe('several workers', () => {
  let other: Deps;
  beforeAll(async () => {
    // A second gateway on the same database: its own connection pool, its own forwarder.
    other = await createDeps(ctx.deps.config, ctx.deps.logger, { role: 'cli', clock: ctx.clock });
  });
  afterAll(async () => {
    await other?.close();
  });

  it('two forwarders never send the same item, nor two items of one device, at once; each is sent once, in order', async () => {
    const devices = Array.from({ length: 6 }, (_, i) => `fw-pair-${i}`);
    for (const d of devices) await prolog(d);
    await approve(...devices);
    for (let n = 1; n <= 4; n++) for (const d of devices) await jsonInventory(d, `${d}#${n}`, n > 1);
    glpi.otherwise = { delayMs: 30 };
    const loop = async (f: Deps['forwarder']) => {
      for (let i = 0; i < 400 && (await unsent()) > 0; i++)
        // The workload itself (workers competing for the outbox): a worker that found nothing to claim, the
        // device's next item being in flight elsewhere, pauses 5 ms instead of spinning on the database.
        if ((await f.runOnce(3)) === 0) await new Promise((r) => setTimeout(r, 5));
    };
    await Promise.all([
      loop(ctx.deps.forwarder),
      loop(other.forwarder),
      loop(ctx.deps.forwarder),
      loop(other.forwarder),
    ]);
    expect(await unsent()).toBe(0);
    expect(glpi.overlaps).toEqual({ sameItem: 0, sameDevice: 0 });
    expect(glpi.maxConcurrent).toBeGreaterThan(1); // they did work side by side
    expect(glpi.requests).toHaveLength(24);
    expect(new Set(glpi.requests.map(markerOf)).size).toBe(24);
    for (const d of devices)
      expect(glpi.requests.filter((r) => r.deviceid === d).map(markerOf)).toEqual([1, 2, 3, 4].map((n) => `${d}#${n}`));
  });

  it('at least once: a worker that dies between the send and the mark has its item sent again after the lease', async () => {
    const id = 'fw-crash-1';
    await prolog(id);
    await approve(id);
    await xmlInventory(id, 'C1');
    // The "crashed" worker: claims, sends, and never marks.
    const now = ctx.clock.now();
    const [claimed] = await claimDue(ctx.sql, { now, leaseUntil: new Date(now.getTime() + 180_000), limit: 10 });
    expect(claimed!.deviceid).toBe(id);
    await fetch(glpi.url, {
      method: 'POST',
      headers: { 'Content-Type': claimed!.contentType! },
      body: claimed!.body as Uint8Array<ArrayBuffer>,
    });
    // While the lease runs nobody else takes it…
    expect(await ctx.deps.forwarder.runOnce()).toBe(0);
    expect(await other.forwarder.runOnce()).toBe(0);
    // …then it is sent again: the one duplicate at-least-once allows.
    ctx.clock.advance(181_000);
    expect(await other.forwarder.runOnce()).toBe(1);
    expect(glpi.requests.map(markerOf)).toEqual(['C1', 'C1']);
    const [row] = await outbox(id);
    expect(row).toMatchObject({ state: 'delivered', attempts: 2 });
    // A late mark by the dead claim changes nothing.
    expect(
      await markDelivered(ctx.sql, claimed!, { status: 200, error: null, response: 'late' }, ctx.clock.now()),
    ).toBe(false);
    expect((await outbox(id))[0]!.lastResponse).not.toBe('late');
  });
});

describe('UPSTREAM_RATE', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterAll(() => {
    redis?.disconnect();
  });

  it('two forwarders sharing Redis send no more than the rate in the first second, and then everything', async () => {
    const RATE = 4;
    const devices = Array.from({ length: 8 }, (_, i) => `fw-rate-${i}`);
    for (const d of devices) await prolog(d);
    await approve(...devices);
    for (const d of devices) await xmlInventory(d, `${d}#1`);
    // Two processes' forwarders (same database, same Redis), each taking four rows at once.
    const forwarder = () =>
      createForwarder({
        sql: ctx.sql,
        clock: ctx.clock,
        logger: ctx.deps.logger,
        config: { ...ctx.deps.config, upstreamRate: RATE, upstreamWorkers: 4 },
        redis,
      });
    const [a, b] = [forwarder(), forwarder()];
    expect((await Promise.all([a.runOnce(4), b.runOnce(4)])).reduce((x, y) => x + y)).toBe(8);
    const times = glpi.requests.map((r) => r.receivedAt).sort((x, y) => x - y);
    const first = times[0]!;
    // One slot every 250 ms: 4 in the first second (one more at most on its edge), not 8 at once.
    const inFirstSecond = times.filter((t) => t < first + 1000).length;
    expect(
      inFirstSecond,
      `arrivals (ms after the first): ${times.map((t) => t - first).join(', ')}`,
    ).toBeLessThanOrEqual(RATE + 1);
    expect(glpi.delivered()).toHaveLength(8);
  });
});
