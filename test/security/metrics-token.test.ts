/**
 * METRICS_TOKEN guesses are brute force like operator tokens: each wrong one is a 401, a security event
 * (`invalid_metrics_token`, never its value) and counts towards RATE_LIMIT_AUTH_FAILURES_PER_15MIN for the
 * address — after which the right metrics token, an operator token and an agent's key all get 429.
 * A scrape without any Authorization is not a guess: a 401, not counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FI_HEADERS,
  FI_INVENTORY,
  type Gate,
  KEY_A_SECRET,
  basic,
  expectVictimUntouched,
  securityEvents,
  startGate,
  victim,
} from './support.js';
import { bodyOf } from '../helpers/fixtures.js';

const METRICS_TOKEN = 'mtk_bRute-ForceTest_7hK2pQ9zW4nX6cV1bL8mT3';

describe('wrong METRICS_TOKEN guesses', () => {
  let gate: Gate;
  beforeAll(async () => {
    gate = await startGate({ METRICS_TOKEN, RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '3' });
  });
  afterAll(async () => {
    await gate.close();
  });

  const scrape = (authorization?: string) =>
    gate.raw({ method: 'GET', path: '/metrics', headers: authorization ? { Authorization: authorization } : {} });

  it('count towards the brute-force limit and are security events that never hold the guess', async () => {
    const { deviceid, before } = await victim(gate);
    expect((await scrape(`Bearer ${METRICS_TOKEN}`)).status).toBe(200);
    // No header at all: a scraper not yet configured, not a guess.
    for (let i = 0; i < 5; i++) expect((await scrape()).status).toBe(401);
    expect((await securityEvents(gate)).filter((e) => e.kind === 'invalid_metrics_token')).toEqual([]);

    const guesses = ['mtk_guess-one-aaaaaaaaaaaaaaaaaaaaaaaa', 'mtk_guess-two-bbbbbbbbbbbbbbbbbbbbbbbb'];
    for (const g of guesses) {
      const res = await scrape(`Bearer ${g}`);
      expect(res.status).toBe(401);
      expect(res.body.toString()).not.toContain('agentgate_'); // no metrics in a refusal
    }
    expect((await scrape('Basic bWV0cmljczp4')).status).toBe(401); // not a bearer token: a guess too
    const events = (await securityEvents(gate)).filter((e) => e.kind === 'invalid_metrics_token');
    expect(events).toHaveLength(3);
    expect(events[0]).toMatchObject({ deviceid: null, details: { path: '/metrics', reason: 'wrong token' } });
    expect(events[2]).toMatchObject({ details: { reason: 'not a bearer token' } });
    for (const g of guesses) expect(JSON.stringify(events)).not.toContain(g);

    // The budget is spent: the right token is not even looked at (a right guess must not show).
    const blocked = await scrape(`Bearer ${METRICS_TOKEN}`);
    expect(blocked.status).toBe(429);
    expect(JSON.parse(blocked.body.toString())).toMatchObject({ status: 'error', code: 'rate_limited' });
    expect(blocked.body.toString()).not.toContain('agentgate_');
    // Same address, same budget: the operator API and the agent endpoint refuse it too.
    const api = await gate.raw({
      method: 'GET',
      path: '/api/v1/me',
      headers: { Authorization: `Bearer ${gate.adminToken}` },
    });
    expect(api.status).toBe(429);
    const agent = await gate.raw({
      path: '/',
      headers: { ...FI_HEADERS, Authorization: basic('inventory', KEY_A_SECRET) },
      body: bodyOf(FI_INVENTORY),
    });
    expect(agent.status).toBe(429);
    // Nothing was written for anyone, and nothing reached GLPI.
    await expectVictimUntouched(gate, deviceid, before);
  });
});
