/**
 * Threat: one source address floods two replicas sharing one Redis, to get past its per-address budget
 * (RATE_LIMIT_IP_PER_MINUTE) or its invalid-credential budget (RATE_LIMIT_AUTH_FAILURES_PER_15MIN) through
 * the allowances each replica answers from memory (src/http/edge-memory.ts). Protection: an allowance is
 * reserved in the shared counter when it is made, so the replicas together never admit more than the
 * budget; an address with an invalid credential gets none, and its allowance ends at the first one, so
 * brute force gains at most one attempt per replica that held an allowance when the failures began.
 */
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { type Gate, basic, startGate } from './support.js';

const REDIS_URL = TEST_REDIS_URL.replace(/\/\d+$/, '/13');
const LIMITS = {
  REDIS_URL,
  TRUST_PROXY: 'loopback',
  RATE_LIMIT_IP_PER_MINUTE: '400',
  RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '3',
};
const prolog = zlib.deflateSync(
  Buffer.from(
    '<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>flood-2026-12-03-10-00-00</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>\n',
  ),
);

let gates: Gate[] = [];
beforeEach(async () => {
  gates = [await startGate(LIMITS), await startGate(LIMITS)];
});
afterEach(async () => {
  await Promise.all(gates.map((g) => g.close()));
});

/** An address of this run's own (the Redis database is shared with earlier runs and never flushed). */
const address = () => `198.19.${crypto.randomInt(256)}.${crypto.randomInt(1, 255)}`;

function from(gate: Gate, ip: string, authz?: string) {
  return gate.raw({
    method: 'POST',
    path: '/',
    headers: {
      'Content-Type': 'application/x-compress-zlib',
      'X-Forwarded-For': ip,
      ...(authz ? { Authorization: authz } : {}),
    },
    body: prolog,
  });
}

describe('allowances across replicas', () => {
  it('never admit one address past its budget, however it spreads its flood over the replicas', async () => {
    const ip = address();
    const statuses: Record<number, number> = {};
    let next = 0;
    // 8 connections at once, each request to the replica after the previous one's.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < 1000) {
          const res = await from(gates[next++ % 2]!, ip);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }),
    );
    expect(Object.keys(statuses).sort()).toEqual(['401', '429']);
    expect(statuses[401], 'requests let past the per-address limit').toBeLessThanOrEqual(400);
    // Not wasted either: what a replica reserved and did not use goes back (at most 32 each outstanding).
    expect(statuses[401]).toBeGreaterThanOrEqual(400 - 2 * 32);
    for (const g of gates) expect(g.glpi.requests).toEqual([]);
  });

  it('give brute force at most one more attempt per replica that held an allowance', async () => {
    const ip = address();
    const wrong = basic('inventory', 'not-the-key-0123456789');
    // Both replicas hold an allowance for the address (it made one ordinary first attempt through each).
    expect((await from(gates[0]!, ip)).status).toBe(401);
    expect((await from(gates[1]!, ip)).status).toBe(401);
    // Three invalid credentials through the first: its budget, then refused there.
    const first = [];
    for (let i = 0; i < 4; i++) first.push((await from(gates[0]!, ip, wrong)).status);
    expect(first).toEqual([401, 401, 401, 429]);
    // The second replica's allowance predates the failures: one attempt more, and then it is refused too.
    const second = [];
    for (let i = 0; i < 3; i++) second.push((await from(gates[1]!, ip, wrong)).status);
    expect(second).toEqual([401, 429, 429]);
    // Refused now even without a credential, on both.
    expect((await from(gates[0]!, ip)).status).toBe(429);
    expect((await from(gates[1]!, ip)).status).toBe(429);
    for (const g of gates) expect(g.glpi.requests).toEqual([]);
  });
});
