/**
 * security.spike: an attacker guessing credentials — many wrong secrets from one address, or for one
 * credential (a client id) — past SECURITY_SPIKE_FAILURES within SPIKE_WINDOW fires exactly one signed
 * webhook per subject and window. The address counted is the one the socket shows: a spoofed
 * X-Forwarded-For does not move the count to another (innocent or random) address unless TRUST_PROXY says
 * that proxy is trusted. Each test: the attacker's answer (a plain 401, as for any wrong password), the
 * victim's row unchanged, nothing reaching GLPI, and the webhooks the security team receives.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { webhookSignature } from '../../src/services/notifier.js';
import { eventually } from '../helpers/eventually.js';
import { closeNow, listenLoopback } from '../helpers/raw-http.js';
import {
  FI_DEVICEID,
  FI_HEADERS,
  REALM_HEADER,
  type Gate,
  basic,
  expectVictimUntouched,
  header,
  startGate,
  victim,
  xmlBody,
} from './support.js';

const SECRET = 'spike-webhook-secret-0123456789';
const THRESHOLD = 3;

/** The security team's webhook receiver on 127.0.0.1: records every delivery, answers 200. */
const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
  });
});
let receiverPort = 0;
beforeAll(async () => {
  receiverPort = await listenLoopback(receiver);
});
afterAll(async () => {
  await closeNow(receiver);
});

let gate: Gate | undefined;
afterEach(async () => {
  await gate?.close();
  gate = undefined;
  received.length = 0;
});

function spikeGate(env: Record<string, string> = {}): Promise<Gate> {
  return startGate({
    SECURITY_SPIKE_FAILURES: String(THRESHOLD),
    WEBHOOK_URLS: `http://127.0.0.1:${receiverPort}/security`,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: 'security.spike',
    ...env,
  });
}

const prolog = (deviceid: string) =>
  xmlBody(
    `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>\n  <DEVICEID>${deviceid}</DEVICEID>\n  <QUERY>PROLOG</QUERY>\n  <TOKEN>12345678</TOKEN>\n</REQUEST>\n`,
  );

/** One guess: the victim's deviceid, a wrong secret, and whatever X-Forwarded-For the attacker likes. */
async function guess(g: Gate, user: string, password: string, forwardedFor?: string) {
  const res = await g.raw({
    headers: {
      ...FI_HEADERS,
      Authorization: basic(user, password),
      ...(forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {}),
    },
    body: prolog(FI_DEVICEID),
  });
  // The attacker learns nothing but "wrong": the agents' own 401 and its challenge.
  expect(res.status).toBe(401);
  expect(header(res, 'www-authenticate')).toEqual([REALM_HEADER]);
  return res;
}

async function failuresRecorded(g: Gate, n: number): Promise<{ remoteAddr: string }[]> {
  return eventually(async () => {
    const rows = await g.ctx.sql<{ remoteAddr: string }[]>`
      select remote_addr as "remoteAddr" from security_events
      where kind in ('invalid_credential', 'invalid_client') order by id`;
    expect(rows).toHaveLength(n);
    return rows;
  });
}

type Spike = { scope: string; subject: string; failures: number; threshold: number; lastType: string };

/** The security.spike rows written, then delivered (signed) to the receiver. */
async function spikesDelivered(g: Gate, n: number): Promise<Spike[]> {
  await eventually(async () => {
    const [row] = await g.ctx.sql<{ n: number }[]>`
      select count(*)::int as n from webhook_deliveries where event = 'security.spike'`;
    expect(row!.n).toBe(n);
  });
  while ((await g.ctx.deps.notifier.runOnce()) > 0);
  expect(received).toHaveLength(n);
  return received.map((r) => {
    const ts = String(r.headers['x-agentgate-timestamp']);
    const given = Buffer.from(String(r.headers['x-agentgate-signature']));
    const expected = Buffer.from(webhookSignature(SECRET, ts, r.body));
    expect(given.length === expected.length && crypto.timingSafeEqual(given, expected), 'signed').toBe(true);
    expect(r.headers['x-agentgate-event']).toBe('security.spike');
    return (JSON.parse(r.body) as { data: Spike }).data;
  });
}

describe('security.spike', () => {
  it('fires once for failures from one address; spoofed X-Forwarded-For values are not counted as addresses (no TRUST_PROXY)', async () => {
    gate = await spikeGate();
    const { before } = await victim(gate);
    // Six guesses from this socket, each claiming another origin through X-Forwarded-For.
    for (let i = 1; i <= THRESHOLD + 3; i++) await guess(gate, 'inventory', `guess-${i}`, `203.0.113.${i}`);
    const events = await failuresRecorded(gate, THRESHOLD + 3);
    const socketAddr = events[0]!.remoteAddr;
    expect(socketAddr).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    expect(events.every((e) => e.remoteAddr === socketAddr)).toBe(true);

    const spikes = await spikesDelivered(gate, 1);
    expect(spikes).toEqual([
      expect.objectContaining({
        scope: 'address',
        subject: socketAddr,
        failures: THRESHOLD + 1,
        threshold: THRESHOLD,
        lastType: 'invalid_credential',
      }),
    ]);
    expect(JSON.stringify(spikes)).not.toContain('203.0.113.');
    // No other alert later in the window (the seventh guess included).
    await guess(gate, 'inventory', 'guess-7', '203.0.113.7');
    await failuresRecorded(gate, THRESHOLD + 4);
    expect(await gate.ctx.deps.notifier.runOnce()).toBe(0);
    expect(received).toHaveLength(1);
    await expectVictimUntouched(gate, FI_DEVICEID, before);
  });

  it('fires once for failures naming one client id from many addresses, and per forwarded address only behind a trusted proxy (TRUST_PROXY)', async () => {
    gate = await spikeGate({ TRUST_PROXY: 'loopback' });
    const { before } = await victim(gate);
    const client = await gate.api('POST', '/api/v1/clients', { name: 'spike-target' }, 'admin');
    expect(client.status).toBe(201);
    const clientId = client.json.clientId as string;
    // Four wrong secrets for the client, each from another (trusted) forwarded address: one credential spike.
    for (let i = 1; i <= THRESHOLD + 1; i++) await guess(gate, clientId, `ags_wrong-${i}`, `198.51.100.${i}`);
    const events = await failuresRecorded(gate, THRESHOLD + 1);
    // Each forwarded address is recorded (in whatever order the events' writes committed).
    expect(events.map((e) => e.remoteAddr).sort()).toEqual([
      '198.51.100.1',
      '198.51.100.2',
      '198.51.100.3',
      '198.51.100.4',
    ]);
    let spikes = await spikesDelivered(gate, 1);
    expect(spikes[0]).toMatchObject({ scope: 'credential', subject: clientId, failures: THRESHOLD + 1 });

    // Now four registration-key guesses from one forwarded address: an address spike for that address,
    // and none for the proxy's own (loopback) address.
    for (let i = 1; i <= THRESHOLD + 1; i++) await guess(gate, 'inventory', `key-guess-${i}`, '192.0.2.77');
    await failuresRecorded(gate, 2 * (THRESHOLD + 1));
    spikes = await spikesDelivered(gate, 2);
    expect(spikes[1]).toMatchObject({ scope: 'address', subject: '192.0.2.77', failures: THRESHOLD + 1 });
    expect(JSON.stringify(spikes)).not.toMatch(/127\.0\.0\.1/);
    await expectVictimUntouched(gate, FI_DEVICEID, before);
  });
});
