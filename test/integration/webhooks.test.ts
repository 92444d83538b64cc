/**
 * Webhook notifications end to end: events recorded in the transaction of their cause, delivered signed to
 * a real HTTP receiver on 127.0.0.1, retried with back-off (driven by runOnce() and the test clock, never by
 * sleeping) when the receiver fails, hangs or is down, given up after WEBHOOK_MAX_ATTEMPTS, filtered by
 * WEBHOOK_EVENTS, not written at all without WEBHOOK_URLS, and never marked by a worker whose lease ended
 * (the newer attempt's result and lease stand).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ConfigError, loadConfig } from '../../src/config.js';
import { createNotifier, webhookSignature } from '../../src/services/notifier.js';
import { type TestContext, createTestContext, send, startTestServer } from '../helpers/context.js';
import { eventually } from '../helpers/eventually.js';
import { closeNow, listenLoopback } from '../helpers/raw-http.js';

const SECRET = 'webhook-test-secret-0123456789';
const actor = { name: 'test', remoteAddr: null };

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A status; 'hang' never answers; 'hold' answers when the test calls release(). */
type Answer = number | 'hang' | 'hold';

/** A webhook receiver on 127.0.0.1 that records every request and answers as scripted (default 200). */
class Receiver {
  readonly requests: Received[] = [];
  /** Answers for the next requests, in order; then `otherwise`. */
  script: Answer[] = [];
  otherwise: Answer = 200;
  /** Requests answered 'hold', oldest first, until release(). */
  private held: http.ServerResponse[] = [];
  /** Called on every request received (see received()). */
  private arrivals = new Set<() => void>();
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.requests.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const answer = this.script.shift() ?? this.otherwise;
      for (const arrived of this.arrivals) arrived();
      if (answer === 'hang') return; // never answers; cut when the receiver goes down
      if (answer === 'hold') return void this.held.push(res);
      Receiver.answer(res, answer);
    });
  });

  private static answer(res: http.ServerResponse, status: number): void {
    res.writeHead(status, { 'Content-Type': 'text/plain' }).end(status >= 400 ? `scripted ${status}` : 'ok');
  }

  /** Resolves once `n` requests have arrived since the last reset() (no polling: on each arrival). */
  received(n: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.requests.length < n) return;
        this.arrivals.delete(check);
        resolve();
      };
      this.arrivals.add(check);
      check();
    });
  }

  /** Answers the oldest held request with `status`. */
  release(status: number): void {
    const res = this.held.shift();
    if (!res) throw new Error('no request is held');
    Receiver.answer(res, status);
  }
  port = 0;

  async up(): Promise<void> {
    this.port = await listenLoopback(this.server, this.port);
  }

  /** Stops listening: connections are refused until up() again (same port). */
  async down(): Promise<void> {
    await closeNow(this.server);
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  reset(): void {
    this.requests.length = 0;
    this.script = [];
    this.otherwise = 200;
  }
}

const zlibXml = { 'Content-Type': 'application/x-compress-zlib' };
const prolog = (deviceid: string) =>
  zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?><REQUEST><DEVICEID>${deviceid}</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`,
  );

/** What a receiver parses out of a delivery's body. */
interface Notification {
  id: string;
  event: string;
  createdAt: string;
  data: Record<string, unknown>;
}

const parsed = (r: Received) => JSON.parse(r.body) as Notification;

function verify(r: Received, secret = SECRET): boolean {
  const ts = String(r.headers['x-agentgate-timestamp']);
  const given = String(r.headers['x-agentgate-signature']);
  const expected = webhookSignature(secret, ts, r.body);
  return given.length === expected.length && crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

async function rows(ctx: TestContext, event?: string) {
  return ctx.sql<
    {
      id: number;
      event: string;
      url: string;
      attempts: number;
      nextAttemptAt: Date | null;
      deliveredAt: Date | null;
      lastStatus: number | null;
      lastError: string | null;
    }[]
  >`
    select id, event, url, attempts, next_attempt_at as "nextAttemptAt", delivered_at as "deliveredAt", last_status as "lastStatus", last_error as "lastError"
    from webhook_deliveries ${event ? ctx.sql`where event = ${event}` : ctx.sql``} order by id`;
}

async function newDevice(ctx: TestContext, deviceid: string): Promise<void> {
  expect((await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: prolog(deviceid) })).status).toBe(
    200,
  );
}

/** Device events are recorded just after the agent's answer (fire and forget): wait for the row. */
async function quarantinedRow(ctx: TestContext): Promise<void> {
  await eventually(async () => expect(await rows(ctx, 'device.quarantined')).toHaveLength(1));
}

/**
 * Watches the notifier's emit() calls. An event that must NOT be written cannot be waited for by its row;
 * the test waits instead until the gateway has handed the event to emit() and that call has finished.
 */
function watchEmits(ctx: TestContext) {
  const spy = vi.spyOn(ctx.deps.notifier, 'emit');
  return {
    async settled(event: string, deviceid: string): Promise<void> {
      const i = await eventually(() => {
        const at = spy.mock.calls.findIndex(([, e, data]) => e === event && data.deviceid === deviceid);
        return at >= 0 ? at : false;
      });
      await spy.mock.results[i]!.value;
    },
  };
}

const receiver = new Receiver();

beforeAll(async () => {
  await receiver.up();
});
afterAll(async () => {
  await receiver.down();
});
// Every test starts with a receiver that has seen nothing and answers 200.
beforeEach(() => {
  receiver.reset();
});

describe('webhook deliveries', () => {
  // A gateway of each test's own: no delivery left pending, no counter moved, by another test.
  let ctx: TestContext;
  beforeEach(async () => {
    ctx = await createTestContext({ WEBHOOK_URLS: receiver.url(), WEBHOOK_SECRET: SECRET });
  });
  afterEach(async () => {
    await ctx?.close();
  });

  it('a new quarantined device produces one signed device.quarantined delivery', async () => {
    await newDevice(ctx, 'wh-new-1');
    await quarantinedRow(ctx);
    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    expect(receiver.requests).toHaveLength(1);
    const r = receiver.requests[0]!;
    expect(r.path).toBe('/hook');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['user-agent']).toBe('agent-gate-webhook');
    expect(r.headers['x-agentgate-event']).toBe('device.quarantined');
    expect(r.headers['x-agentgate-timestamp']).toBe(String(Math.floor(ctx.clock.now().getTime() / 1000)));
    expect(r.headers['x-agentgate-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verify(r)).toBe(true);
    expect(verify(r, 'another-secret')).toBe(false);
    expect(verify({ ...r, body: r.body.replace('wh-new-1', 'wh-new-2') })).toBe(false);
    const body = parsed(r);
    expect(body).toMatchObject({
      id: r.headers['x-agentgate-delivery'],
      event: 'device.quarantined',
      data: { deviceid: 'wh-new-1', state: 'quarantined' },
    });
    expect(Object.keys(body)).toEqual(['id', 'event', 'createdAt', 'data']);
    expect(new Date(body.createdAt).toISOString()).toBe(body.createdAt);
    expect(typeof body.data.id).toBe('number');
    const [row] = await rows(ctx, 'device.quarantined');
    expect(row).toMatchObject({ attempts: 1, lastStatus: 200, lastError: null, nextAttemptAt: null });
    expect(row!.deliveredAt).toBeInstanceOf(Date);
    expect(await ctx.deps.notifier.runOnce()).toBe(0); // delivered once, not again
  });

  it('a reviewer approval produces device.approved, recorded in the decision transaction; undo produces device.undone', async () => {
    await newDevice(ctx, 'wh-approve-1');
    await quarantinedRow(ctx);
    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    receiver.reset();
    const [decided] = await ctx.deps.review.decide(['wh-approve-1'], 'approve', 'known laptop', actor);
    expect(await rows(ctx, 'device.approved')).toHaveLength(1); // committed with the decision, before any send
    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    expect(receiver.requests.map((r) => r.headers['x-agentgate-event'])).toEqual(['device.approved']);
    expect(verify(receiver.requests[0]!)).toBe(true);
    expect(parsed(receiver.requests[0]!).data).toEqual({
      id: decided!.id,
      deviceid: 'wh-approve-1',
      from: 'quarantined',
      to: 'approved',
      actor: 'test',
      reason: 'known laptop',
    });

    await ctx.deps.review.undo('wh-approve-1', actor);
    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    expect(parsed(receiver.requests[1]!)).toMatchObject({
      event: 'device.undone',
      data: {
        deviceid: 'wh-approve-1',
        from: 'approved',
        to: 'quarantined',
        actor: 'test',
        reason: 'undo of approved',
      },
    });
  });

  it('a policy approval is announced like one by a person, with actor policy and the rule as reason', async () => {
    await ctx.deps.policies.importAllowlist('wh-fleet', 'serial', 'WH-SERIAL-1\n', actor);
    const { rule } = await ctx.deps.policies.add(
      { action: 'approve', match: { allowlist: 'wh-fleet' }, comment: 'fleet' },
      actor,
    );
    try {
      await ctx.deps.notifier.runOnce();
      receiver.reset();
      const inv = `<?xml version="1.0"?><REQUEST><CONTENT><BIOS><SSN>WH-SERIAL-1</SSN></BIOS><HARDWARE><NAME>p</NAME></HARDWARE></CONTENT><DEVICEID>wh-policy-1</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>`;
      expect(
        (await send(ctx.app, { method: 'POST', path: '/', headers: zlibXml, body: zlib.deflateSync(inv) })).status,
      ).toBe(200);
      await ctx.deps.notifier.runOnce();
      const approved = receiver.requests
        .filter((r) => r.headers['x-agentgate-event'] === 'device.approved')
        .map((r) => parsed(r).data);
      expect(approved).toEqual([
        expect.objectContaining({
          deviceid: 'wh-policy-1',
          from: 'quarantined',
          to: 'approved',
          actor: 'policy',
          reason: `policy rule #${rule.id} (fleet)`,
        }),
      ]);
    } finally {
      await ctx.deps.policies.remove(rule.id, actor);
    }
  });

  it('an event emitted in a transaction that rolls back is never sent', async () => {
    const before = (await rows(ctx)).length;
    await expect(
      ctx.sql.begin(async (tx) => {
        await ctx.deps.notifier.emit(tx, 'device.rejected', { id: 0, deviceid: 'never' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await rows(ctx)).toHaveLength(before);
  });

  it('a receiver answering 500 twice, then 200, gets the same delivery three times, on the back-off schedule', async () => {
    await newDevice(ctx, 'wh-retry-1');
    await quarantinedRow(ctx);
    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    receiver.reset();
    receiver.script = [500, 500];
    await ctx.deps.review.decide(['wh-retry-1'], 'reject', 'not ours', actor);

    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    let [row] = await rows(ctx, 'device.rejected');
    expect(row).toMatchObject({ attempts: 1, lastStatus: 500, deliveredAt: null });
    expect(row!.lastError).toMatch(/^HTTP 500: scripted 500/);
    // First retry 5 s later (minus up to 20 % jitter).
    let wait = row!.nextAttemptAt!.getTime() - ctx.clock.now().getTime();
    expect(wait).toBeGreaterThanOrEqual(4000);
    expect(wait).toBeLessThanOrEqual(5000);
    expect(await ctx.deps.notifier.runOnce()).toBe(0); // not due yet
    ctx.clock.advance(3900);
    expect(await ctx.deps.notifier.runOnce()).toBe(0);
    ctx.clock.advance(1100);

    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    [row] = await rows(ctx, 'device.rejected');
    expect(row).toMatchObject({ attempts: 2, lastStatus: 500, deliveredAt: null });
    // Second retry 10 s later.
    wait = row!.nextAttemptAt!.getTime() - ctx.clock.now().getTime();
    expect(wait).toBeGreaterThanOrEqual(8000);
    expect(wait).toBeLessThanOrEqual(10_000);
    ctx.clock.advance(5000);
    expect(await ctx.deps.notifier.runOnce()).toBe(0);
    ctx.clock.advance(5000);

    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    [row] = await rows(ctx, 'device.rejected');
    expect(row).toMatchObject({ attempts: 3, lastStatus: 200, lastError: null, nextAttemptAt: null });
    expect(await ctx.deps.notifier.runOnce()).toBe(0);

    expect(receiver.requests).toHaveLength(3);
    const ids = receiver.requests.map((r) => r.headers['x-agentgate-delivery']);
    expect(new Set(ids)).toEqual(new Set([String(row!.id)]));
    expect(new Set(receiver.requests.map((r) => r.body)).size).toBe(1); // the same bytes every time
    for (const r of receiver.requests) expect(verify(r)).toBe(true); // each attempt signed with its own timestamp
    const metrics = await ctx.deps.metrics.registry.metrics();
    expect(metrics).toMatch(/agentgate_webhook_deliveries_total\{event="device.rejected",outcome="retry"\} 2/);
    expect(metrics).toMatch(/agentgate_webhook_deliveries_total\{event="device.rejected",outcome="delivered"\} 1/);
    expect(metrics).toMatch(/agentgate_webhook_pending_deliveries 0/);
  });

  it('a receiver that is down (connection refused) gets the delivery later, once it is back', async () => {
    await receiver.down();
    try {
      await ctx.sql.begin((tx) => ctx.deps.notifier.emit(tx, 'device.rejected', { id: 0, deviceid: 'wh-down-1' }));
      expect(await ctx.deps.notifier.runOnce()).toBe(1);
    } finally {
      await receiver.up();
    }
    const row = (await rows(ctx, 'device.rejected')).at(-1)!;
    expect(row).toMatchObject({ attempts: 1, lastStatus: null, deliveredAt: null });
    expect(row.lastError).toMatch(/ECONNREFUSED/);
    expect(await ctx.deps.notifier.runOnce()).toBe(0);
    ctx.clock.advance(5000);
    expect(await ctx.deps.notifier.runOnce()).toBe(1);
    expect(receiver.requests).toHaveLength(1);
    expect(parsed(receiver.requests[0]!).data.deviceid).toBe('wh-down-1');
    expect((await rows(ctx, 'device.rejected')).at(-1)).toMatchObject({
      attempts: 2,
      lastStatus: 200,
      lastError: null,
    });
  });

  it('a receiver that hangs is cut at the timeout and retried', async () => {
    receiver.script = ['hang'];
    // The same notifier with a short timeout (10 s in production), so the test does not wait for real.
    const quick = createNotifier({
      sql: ctx.sql,
      clock: ctx.clock,
      logger: ctx.deps.logger,
      config: ctx.deps.config,
      timeoutMs: 300,
    });
    await ctx.sql.begin((tx) => quick.emit(tx, 'device.rejected', { id: 0, deviceid: 'wh-hang-1' }));
    expect(await quick.runOnce()).toBe(1);
    const row = (await rows(ctx, 'device.rejected')).at(-1)!;
    expect(row).toMatchObject({ attempts: 1, lastStatus: null, deliveredAt: null, lastError: 'timeout after 0.3 s' });
    ctx.clock.advance(5000);
    expect(await quick.runOnce()).toBe(1);
    expect(receiver.requests).toHaveLength(2);
    expect((await rows(ctx, 'device.rejected')).at(-1)).toMatchObject({ attempts: 2, lastStatus: 200 });
  });
});

describe('WEBHOOK_EVENTS, several URLs and WEBHOOK_MAX_ATTEMPTS', () => {
  let ctx2: TestContext;
  beforeEach(async () => {
    ctx2 = await createTestContext({
      WEBHOOK_URLS: `${receiver.url('/a')}, ${receiver.url('/b')}`,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: 'device.approved,device.rejected',
      WEBHOOK_MAX_ATTEMPTS: '2',
    });
  });
  afterEach(async () => {
    await ctx2?.close();
  });

  it('sends only the configured events, once per URL', async () => {
    const emits = watchEmits(ctx2);
    await newDevice(ctx2, 'wh-ev-1');
    await ctx2.deps.review.decide(['wh-ev-1'], 'approve', null, actor);
    await ctx2.deps.review.undo('wh-ev-1', actor);
    // The gateway has offered device.quarantined (not configured here): only then is "not written" a result.
    await emits.settled('device.quarantined', 'wh-ev-1');
    expect((await rows(ctx2)).map((r) => `${r.event} ${new URL(r.url).pathname}`)).toEqual([
      'device.approved /a',
      'device.approved /b',
    ]);
    expect(await ctx2.deps.notifier.runOnce()).toBe(2);
    expect(receiver.requests.map((r) => `${String(r.headers['x-agentgate-event'])} ${r.path}`).sort()).toEqual([
      'device.approved /a',
      'device.approved /b',
    ]);
    // Same event, one delivery (and id) per receiver.
    expect(new Set(receiver.requests.map((r) => r.headers['x-agentgate-delivery'])).size).toBe(2);
  });

  it('gives up after WEBHOOK_MAX_ATTEMPTS, leaving the row undelivered with its error', async () => {
    receiver.otherwise = 503;
    await newDevice(ctx2, 'wh-ev-2');
    await ctx2.deps.review.decide(['wh-ev-2'], 'reject', null, actor);
    expect(await ctx2.deps.notifier.runOnce()).toBe(2);
    ctx2.clock.advance(5000);
    expect(await ctx2.deps.notifier.runOnce()).toBe(2);
    ctx2.clock.advance(24 * 3600 * 1000);
    expect(await ctx2.deps.notifier.runOnce()).toBe(0);
    expect(receiver.requests).toHaveLength(4);
    for (const row of await rows(ctx2, 'device.rejected')) {
      expect(row).toMatchObject({ attempts: 2, lastStatus: 503, deliveredAt: null, nextAttemptAt: null });
      expect(row.lastError).toMatch(/^HTTP 503/);
    }
    expect(await ctx2.deps.metrics.registry.metrics()).toMatch(
      /agentgate_webhook_deliveries_total\{event="device.rejected",outcome="failed"\} 2/,
    );
  });

  it('does not retry a 4xx answer (other than 408 and 429)', async () => {
    receiver.script = [404, 429];
    await ctx2.sql.begin((tx) => ctx2.deps.notifier.emit(tx, 'device.approved', { id: 0, deviceid: 'wh-ev-3' }));
    expect(await ctx2.deps.notifier.runOnce()).toBe(2);
    const [a, b] = (await rows(ctx2, 'device.approved')).slice(-2);
    const [gone, retried] = a!.lastStatus === 404 ? [a!, b!] : [b!, a!];
    expect(gone).toMatchObject({ attempts: 1, lastStatus: 404, nextAttemptAt: null, deliveredAt: null });
    expect(retried).toMatchObject({ attempts: 1, lastStatus: 429, deliveredAt: null });
    expect(retried.nextAttemptAt).toBeInstanceOf(Date);
  });
});

describe('a worker whose lease ended while it was sending', () => {
  // Two gateways' workers on one database (two notifiers), one clock: the first one's attempt is held by the
  // receiver past its 60 s lease, so the second one claims the row again (attempt 2).
  let ctx4: TestContext;
  const worker = () =>
    createNotifier({ sql: ctx4.sql, clock: ctx4.clock, logger: ctx4.deps.logger, config: ctx4.deps.config });
  const latest = async () => (await rows(ctx4)).at(-1)!;
  beforeAll(async () => {
    ctx4 = await createTestContext({ WEBHOOK_URLS: receiver.url('/fence'), WEBHOOK_SECRET: SECRET });
  });
  afterAll(async () => {
    await ctx4?.close();
  });

  it('cannot overwrite the result of the attempt that claimed the row after it', async () => {
    receiver.reset();
    const [late, current] = [worker(), worker()];
    await ctx4.sql.begin((tx) => late.emit(tx, 'device.rejected', { id: 0, deviceid: 'wh-fence-1' }));
    receiver.script = ['hold', 500];
    const lateRun = late.runOnce(); // attempt 1: sent, its answer held
    await receiver.received(1);
    ctx4.clock.advance(61_000); // its lease is over
    expect(await current.runOnce()).toBe(1); // attempt 2: answered 500, due again in 10 s
    const newer = await latest();
    expect(newer).toMatchObject({ attempts: 2, lastStatus: 500, deliveredAt: null });
    expect(newer.nextAttemptAt!.getTime()).toBeGreaterThan(ctx4.clock.now().getTime());

    receiver.release(404); // attempt 1's answer, which alone would give the delivery up
    expect(await lateRun).toBe(1);
    expect(await latest()).toEqual(newer); // attempt 2's result stands: still due, not given up

    ctx4.clock.advance(10_000);
    expect(await current.runOnce()).toBe(1); // attempt 3, on attempt 2's schedule
    expect(await latest()).toMatchObject({ attempts: 3, lastStatus: 200, nextAttemptAt: null });
    expect(receiver.requests).toHaveLength(3);
    expect(new Set(receiver.requests.map((r) => r.headers['x-agentgate-delivery'])).size).toBe(1);
  });

  it('cannot cut short the lease of the attempt in flight after it', async () => {
    receiver.reset();
    const [late, current] = [worker(), worker()];
    await ctx4.sql.begin((tx) => late.emit(tx, 'device.rejected', { id: 0, deviceid: 'wh-fence-2' }));
    receiver.script = ['hold', 'hold'];
    const lateRun = late.runOnce(); // attempt 1: sent, its answer held
    await receiver.received(1);
    ctx4.clock.advance(61_000);
    const currentRun = current.runOnce(); // attempt 2: sent, its answer held too
    await receiver.received(2);
    const inFlight = await latest();
    expect(inFlight).toMatchObject({ attempts: 2, lastStatus: null, deliveredAt: null });

    receiver.release(503); // attempt 1 fails: alone, it would make the row due again in 5 s
    expect(await lateRun).toBe(1);
    expect(await latest()).toEqual(inFlight); // attempt 2's lease is untouched
    ctx4.clock.advance(6000);
    expect(await late.runOnce()).toBe(0); // so nobody sends it a third time while attempt 2 runs

    receiver.release(200);
    expect(await currentRun).toBe(1);
    expect(await latest()).toMatchObject({ attempts: 2, lastStatus: 200, lastError: null, nextAttemptAt: null });
    expect(receiver.requests).toHaveLength(2);
  });
});

describe('without WEBHOOK_URLS', () => {
  it('writes and sends nothing', async () => {
    const ctx3 = await createTestContext({});
    try {
      const emits = watchEmits(ctx3);
      await newDevice(ctx3, 'wh-off-1');
      await ctx3.deps.review.decide(['wh-off-1'], 'approve', null, actor);
      await emits.settled('device.quarantined', 'wh-off-1');
      expect(await rows(ctx3)).toHaveLength(0);
      expect(await ctx3.deps.notifier.runOnce()).toBe(0);
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await ctx3.close();
    }
  });
});

describe('the worker of a running gateway', () => {
  it('delivers on its own after start, and stops with the server', async () => {
    const gateway = await startTestServer({
      AGENT_AUTH: 'off',
      WEBHOOK_URLS: receiver.url('/live'),
      WEBHOOK_SECRET: SECRET,
    });
    const { server } = gateway;
    try {
      const res = await fetch(`${server.url}/`, { method: 'POST', headers: zlibXml, body: prolog('wh-live-1') });
      expect(res.status).toBe(200);
      await eventually(() => expect(receiver.requests.length).toBeGreaterThanOrEqual(1), { timeout: 10_000 });
      expect(receiver.requests).toHaveLength(1);
      expect(receiver.requests[0]!.path).toBe('/live');
      expect(verify(receiver.requests[0]!)).toBe(true);
    } finally {
      await gateway.close();
    }
  });
});

describe('webhook configuration', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (err) {
      return (err as ConfigError).problems;
    }
    return [];
  };

  it('is off by default, with every event and 12 attempts', () => {
    const cfg = loadConfig({});
    expect(cfg.webhookUrls).toBeUndefined();
    expect(cfg.webhookEvents).toEqual([
      'device.quarantined',
      'device.conflict',
      'device.approved',
      'device.rejected',
      'device.undone',
      'spike.detected',
      'security.spike',
    ]);
    expect(cfg.webhookMaxAttempts).toBe(12);
  });

  it('reads a URL list and an event list', () => {
    const cfg = loadConfig({
      WEBHOOK_URLS: ' https://a.example/h , http://b.example:8080/x?t=1,',
      WEBHOOK_SECRET: 's',
      WEBHOOK_EVENTS: 'device.approved, DEVICE.REJECTED',
      WEBHOOK_MAX_ATTEMPTS: '3',
    });
    expect(cfg).toMatchObject({
      webhookUrls: ['https://a.example/h', 'http://b.example:8080/x?t=1'],
      webhookEvents: ['device.approved', 'device.rejected'],
      webhookMaxAttempts: 3,
    });
  });

  it.each([
    [{ WEBHOOK_URLS: 'not a url', WEBHOOK_SECRET: 's' }, /^WEBHOOK_URLS: /],
    [{ WEBHOOK_URLS: 'ftp://a.example/', WEBHOOK_SECRET: 's' }, /^WEBHOOK_URLS: .*http or https/],
    [{ WEBHOOK_URLS: 'https://u:p@a.example/', WEBHOOK_SECRET: 's' }, /^WEBHOOK_URLS: /],
    [{ WEBHOOK_EVENTS: 'device.approved,device.exploded' }, /^WEBHOOK_EVENTS: .*device\.exploded/],
    [{ WEBHOOK_EVENTS: ' , ' }, /^WEBHOOK_EVENTS: /],
    [{ WEBHOOK_MAX_ATTEMPTS: '0' }, /^WEBHOOK_MAX_ATTEMPTS: /],
    [{ WEBHOOK_URLS: 'https://a.example/h' }, /^WEBHOOK_SECRET: required when WEBHOOK_URLS is set$/],
  ])('refuses %j', (env, problem) => {
    const p = problems(env);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(problem);
  });

  it('never echoes the secret', () => {
    expect(problems({ WEBHOOK_SECRET: 'hunter2-webhook', WEBHOOK_EVENTS: 'nope' }).join('\n')).not.toContain(
      'hunter2-webhook',
    );
  });
});
