/**
 * The forwarder's circuit breaker: when GLPI is down, the workers pause behind one probe instead of every
 * outbox row backing off on its own (and GLPI being hammered by all of them the moment it returns).
 *
 * - closed: rows are claimed as usual. BREAKER_THRESHOLD attempts in a row without an answer from GLPI
 *   (network error, timeout, 5xx, 429) open it.
 * - open: nothing is claimed but one probe — a real attempt, the next due row — at a time, every
 *   2 s, 4 s, 8 s… at most 60 s apart. A probe that GLPI answers (2xx, or a refusal: GLPI is up) closes
 *   it; the forwarder then makes due again the rows that backed off during the outage.
 *
 * Per process: each forwarding process probes on its own (so N replicas send at most N probes at once).
 */
import type { Clock } from '../clock.js';
import { type Backoff, backoffMs } from './outbox-worker.js';
import type { Outcome } from './outbox-worker.js';

export const BREAKER_THRESHOLD = 3;
export const PROBE_BACKOFF: Backoff = { baseMs: 2000, capMs: 60_000 };

export type BreakerState = 'closed' | 'open';

export interface BreakerOptions {
  clock: Clock;
  threshold?: number;
  probe?: Backoff;
  /** On every change of state, with the error that opened it. */
  onChange?(state: BreakerState, error: string | null): void;
}

export function createBreaker(o: BreakerOptions) {
  const threshold = o.threshold ?? BREAKER_THRESHOLD;
  const probe = o.probe ?? PROBE_BACKOFF;
  let state: BreakerState = 'closed';
  let failures = 0;
  let failedProbes = 0;
  let probeAt = 0;
  let probing = false;
  let lastError: string | null = null;

  const now = () => o.clock.now().getTime();

  function set(next: BreakerState): void {
    if (next === state) return;
    state = next;
    o.onChange?.(state, lastError);
  }

  return {
    get state(): BreakerState {
      return state;
    },
    get lastError(): string | null {
      return lastError;
    },
    /** When the next probe may go (open only). */
    get nextProbeAt(): Date | null {
      return state === 'open' ? new Date(probeAt) : null;
    },

    /** How many rows may be claimed now: all wanted when closed; one probe at a time when open. */
    allowance(wanted: number): number {
      if (state === 'closed') return wanted;
      if (probing || now() < probeAt) return 0;
      probing = true;
      return 1;
    },

    /** What the claim gave: a probe with nothing to send is no probe (the next poll tries again). */
    claimed(n: number): void {
      if (state === 'open' && n === 0) probing = false;
    },

    /** One attempt's outcome. */
    record(outcome: Outcome, error: string | null): void {
      if (outcome === 'transient') {
        lastError = error;
        if (state === 'open') {
          probing = false;
          failedProbes++;
          probeAt = now() + backoffMs(failedProbes + 1, probe, 0);
          return;
        }
        if (++failures >= threshold) {
          failedProbes = 0;
          probeAt = now() + backoffMs(1, probe, 0);
          probing = false;
          set('open');
        }
        return;
      }
      // GLPI answered (delivered, or refused this one inventory): it is up.
      failures = 0;
      probing = false;
      lastError = null;
      set('closed');
    },
  };
}

export type Breaker = ReturnType<typeof createBreaker>;
