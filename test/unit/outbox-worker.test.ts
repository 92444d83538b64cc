/**
 * The pure parts of the outbox worker shared by webhooks and forwarding: the back-off schedules (with their
 * jitter), the verdict per outcome and attempt, the classification of an HTTP status, error texts and the
 * host named in logs.
 */
import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  classifyStatus,
  hostOf,
  httpErrorText,
  networkErrorText,
  verdictOf,
} from '../../src/services/outbox-worker.js';
import { WEBHOOK_BACKOFF } from '../../src/services/notifier.js';
import { FORWARD_BACKOFF } from '../../src/services/forwarder.js';

describe('backoffMs', () => {
  it('webhooks: 5 s, 10 s, 20 s… at most 1 h, minus up to 20 % jitter', () => {
    expect([1, 2, 3, 4].map((n) => backoffMs(n, WEBHOOK_BACKOFF, 0))).toEqual([5000, 10_000, 20_000, 40_000]);
    expect(backoffMs(11, WEBHOOK_BACKOFF, 0)).toBe(3_600_000);
    expect(backoffMs(1, WEBHOOK_BACKOFF, 1)).toBe(4000);
    expect(backoffMs(1000, WEBHOOK_BACKOFF, 0.5)).toBe(3_240_000);
  });

  it('forwarding: 5 s, 10 s, 20 s… at most 10 min', () => {
    expect([1, 2, 3].map((n) => backoffMs(n, FORWARD_BACKOFF, 0))).toEqual([5000, 10_000, 20_000]);
    expect(backoffMs(30, FORWARD_BACKOFF, 0)).toBe(600_000);
    expect(backoffMs(0, FORWARD_BACKOFF, 0)).toBe(5000);
  });

  it('jitter stays within 80–100 % of the delay', () => {
    for (let i = 0; i < 100; i++) {
      const ms = backoffMs(3, FORWARD_BACKOFF);
      expect(ms).toBeGreaterThanOrEqual(16_000);
      expect(ms).toBeLessThanOrEqual(20_000);
    }
  });
});

describe('verdictOf', () => {
  const webhooks = { transient: 3, refused: 1 };
  const forwarding = { transient: Infinity, refused: 3 };

  it('webhooks: transient failures retried until the last attempt, refusals given up at once', () => {
    expect(verdictOf('delivered', 3, webhooks)).toBe('delivered');
    expect(verdictOf('transient', 2, webhooks)).toBe('retry');
    expect(verdictOf('transient', 3, webhooks)).toBe('give-up');
    expect(verdictOf('refused', 1, webhooks)).toBe('give-up');
  });

  it('forwarding: transient failures retried without limit, refusals until the last attempt (dead letter)', () => {
    expect(verdictOf('transient', 10_000, forwarding)).toBe('retry');
    expect(verdictOf('refused', 2, forwarding)).toBe('retry');
    expect(verdictOf('refused', 3, forwarding)).toBe('give-up');
  });
});

describe('classifyStatus', () => {
  const retryable = (s: number) => s >= 500 || s === 429;
  it('2xx delivered, retryable statuses transient, the rest (3xx, 4xx) refused', () => {
    expect([200, 204, 299].map((s) => classifyStatus(s, retryable))).toEqual(['delivered', 'delivered', 'delivered']);
    expect([500, 503, 429].map((s) => classifyStatus(s, retryable))).toEqual(['transient', 'transient', 'transient']);
    expect([301, 302, 400, 404, 408].map((s) => classifyStatus(s, retryable))).toEqual(Array(5).fill('refused'));
  });
});

describe('error texts and hosts', () => {
  it('HTTP status with the start of a detail, on one line', () => {
    expect(httpErrorText(500)).toBe('HTTP 500');
    expect(httpErrorText(500, '')).toBe('HTTP 500');
    expect(httpErrorText(503, ' busy\n  try later ')).toBe('HTTP 503: busy try later');
    expect(httpErrorText(400, 'x'.repeat(500))).toBe(`HTTP 400: ${'x'.repeat(200)}`);
  });

  it('timeouts, stops and network errors with their cause', () => {
    const timeout = Object.assign(new Error('t'), { name: 'TimeoutError' });
    expect(networkErrorText(timeout, 10_000, null)).toBe('timeout after 10 s');
    expect(networkErrorText(new Error('x'), 10_000, 'forwarder')).toBe('aborted: forwarder stopping');
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    expect(networkErrorText(refused, 10_000, null)).toBe('fetch failed: ECONNREFUSED');
    expect(networkErrorText(new Error('plain'), 10_000, null)).toBe('plain');
  });

  it('names only the host of a receiver URL', () => {
    expect(hostOf('https://user:pw@hooks.example:8443/t/0123-secret?x=1')).toBe('hooks.example:8443');
    expect(hostOf('not a url')).toBe('(bad url)');
    expect(hostOf(undefined)).toBe('(none)');
  });
});
