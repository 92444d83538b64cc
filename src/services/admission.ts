/**
 * Admission of a PROLOG/CONTACT: whether the agent may send its inventory now or is told "not now, come
 * back later" (a deferral the agents honour, with no error in their logs). Checked in this order: per
 * device (RATE_LIMIT_DEVICE_PER_HOUR), per credential (RATE_LIMIT_KEY_PER_MINUTE), then the inventory
 * budget (INVENTORY_BUDGET_PER_SECOND), shared fairly between the tenants that have demand. It never
 * refuses: an inventory that arrives is never turned away for load.
 *
 * Fair budget. A tenant is the verified credential (registration key, client, certificate), or with
 * AGENT_AUTH=off the source address (an IPv6 address by its /64). The tenants that asked within the last
 * ACTIVE_MS are "active"; each is entitled to `budget / active` admissions per one-second window:
 *   - within its share, a tenant is admitted while the window's budget lasts;
 *   - over its share, it is admitted only from budget the other active tenants are not going to use: their
 *     unused share, which is released in proportion to the time gone in the window (a tenant that asked a
 *     few seconds ago but stays quiet gives its share back by the end of the window). So a tenant alone, or
 *     with quiet neighbours, still gets the whole budget, spread over the second;
 *   - past the window's budget, or over its share with no spare budget, it is deferred: `share` when it was
 *     over its share while others had demand, `budget` otherwise.
 * A flood through one key therefore defers that key's agents, not everyone's.
 *
 * The whole decision (device and credential counters included) is one atomic step: one Lua script in Redis
 * (src/http/limits.ts, one round trip, shared by the replicas) or, without Redis or while it is away,
 * `createMemoryAdmission` below, which follows the same rules in this process.
 */
import net from 'node:net';
import type { Metrics } from '../metrics.js';

export type DeferReason = 'device' | 'key' | 'budget' | 'share' | 'spike';

/** The budget window (the budget is per second). */
export const BUDGET_WINDOW_MS = 1000;
/** A tenant that asked within this long shares the budget. */
export const ACTIVE_MS = 10_000;
export const DEVICE_WINDOW_MS = 3_600_000;
export const CREDENTIAL_WINDOW_MS = 60_000;

export interface AdmissionInput {
  deviceid: string;
  /** The verified credential (`key:<id>`, `client:<id>`, `cert:<id>`), or null with AGENT_AUTH=off. */
  credential: string | null;
  /** The request's source address: the tenant when there is no credential. */
  remoteAddr?: string | null;
}

export interface AdmissionQuery {
  deviceid: string;
  credential: string | null;
  /** Whose share of the budget this is (see tenantOf). */
  tenant: string;
  devicePerHour: number;
  credentialPerMinute: number;
  budgetPerSecond: number;
  /** Epoch ms; null = the backend's own clock (Redis TIME, so the replicas agree on the window). */
  nowMs: number | null;
}

/** One atomic admission decision: null = admitted. */
export interface AdmissionBackend {
  decide(q: AdmissionQuery): Promise<DeferReason | null>;
}

export interface AdmissionDeps {
  backend: AdmissionBackend;
  devicePerHour: number;
  credentialPerMinute: number;
  budgetPerSecond: number;
  metrics: Pick<Metrics, 'deferred'>;
}

/** The tenant of a request: its credential, else its address (IPv4 as is, IPv6 by its /64). */
export function tenantOf(credential: string | null, remoteAddr: string | null | undefined): string {
  if (credential) return credential;
  const addr = remoteAddr ?? '';
  const plain = addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
  if (net.isIPv6(plain)) {
    const full = plain.includes('::') ? expandV6(plain) : plain.split(':');
    return `addr:${full.slice(0, 4).join(':')}::/64`;
  }
  return `addr:${plain.slice(0, 64) || 'unknown'}`;
}

function expandV6(a: string): string[] {
  const [head, tail] = a.split('::') as [string, string];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  return [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
}

export function createAdmission(deps: AdmissionDeps) {
  return {
    /** null: admitted; else why the agent is told to come back later. */
    async admit(input: AdmissionInput): Promise<DeferReason | null> {
      // The device and the credential count every message, even one already deferred: a device that keeps
      // asking stays over its limit. The budget counts only messages that would be admitted.
      const reason = await deps.backend.decide({
        deviceid: input.deviceid,
        credential: input.credential,
        tenant: tenantOf(input.credential, input.remoteAddr),
        devicePerHour: deps.devicePerHour,
        credentialPerMinute: deps.credentialPerMinute,
        budgetPerSecond: deps.budgetPerSecond,
        nowMs: null,
      });
      if (reason) deps.metrics.deferred(reason);
      return reason;
    },
  };
}

export type Admission = ReturnType<typeof createAdmission>;

/** What the fair-budget rule needs to know about the current window (see the header comment). */
export interface BudgetWindowState {
  /** Active tenants, this one included. */
  active: number;
  /** Admitted in this window: all tenants. */
  total: number;
  /** Admitted in this window within their share: all tenants. */
  withinAll: number;
  /** Admitted in this window: this tenant, and how many of them within its share. */
  admitted: number;
  within: number;
  /** Time gone in the window, 0..1. */
  elapsed: number;
}

/**
 * The fair-budget rule: 'within' (admitted within its share), 'spare' (admitted over its share from budget
 * the others will not use), or the deferral. The Lua script in src/http/limits.ts is this function.
 */
export function budgetVerdict(s: BudgetWindowState, budget: number): 'within' | 'spare' | 'budget' | 'share' {
  const share = budget / s.active;
  if (s.total >= budget) return s.active > 1 && s.admitted >= share ? 'share' : 'budget';
  if (s.admitted < share) return 'within';
  const others = (s.active - 1) * share;
  // Whole admissions: a part of one still reserved keeps it for the others.
  const reserve = Math.max(
    0,
    Math.min(Math.ceil(others - (s.withinAll - s.within)), Math.ceil(others * (1 - s.elapsed))),
  );
  return budget - s.total > reserve ? 'spare' : 'share';
}

/**
 * The same admission in this process only (no REDIS_URL, or while Redis is away). Its state is bounded:
 * expired windows are swept as time goes on.
 */
export function createMemoryAdmission(clock: () => number = Date.now): AdmissionBackend & { clear(): void } {
  const counters = new Map<string, { n: number; resetAt: number }>();
  const active = new Map<string, number>();
  let window = {
    id: -1,
    total: 0,
    withinAll: 0,
    admitted: new Map<string, number>(),
    within: new Map<string, number>(),
  };
  let nextSweep = 0;

  function hit(key: string, windowMs: number, now: number): number {
    const c = counters.get(key);
    if (!c || c.resetAt <= now) {
      counters.set(key, { n: 1, resetAt: now + windowMs });
      return 1;
    }
    return ++c.n;
  }

  function sweep(now: number): void {
    if (now < nextSweep) return;
    nextSweep = now + 10_000;
    for (const [k, c] of counters) if (c.resetAt <= now) counters.delete(k);
    for (const [t, at] of active) if (at <= now - ACTIVE_MS) active.delete(t);
  }

  return {
    async decide(q) {
      const now = q.nowMs ?? clock();
      sweep(now);
      let reason: DeferReason | null = null;
      if (hit(`device:${q.deviceid}`, DEVICE_WINDOW_MS, now) > q.devicePerHour) reason = 'device';
      if (q.credential !== null && hit(`key:${q.credential}`, CREDENTIAL_WINDOW_MS, now) > q.credentialPerMinute)
        reason ??= 'key';
      if (reason) return reason;
      active.set(q.tenant, now);
      let n = 0;
      for (const [t, at] of active) {
        if (at <= now - ACTIVE_MS) active.delete(t);
        else n++;
      }
      const id = Math.floor(now / BUDGET_WINDOW_MS);
      if (window.id !== id) window = { id, total: 0, withinAll: 0, admitted: new Map(), within: new Map() };
      const admitted = window.admitted.get(q.tenant) ?? 0;
      const within = window.within.get(q.tenant) ?? 0;
      const verdict = budgetVerdict(
        {
          active: n,
          total: window.total,
          withinAll: window.withinAll,
          admitted,
          within,
          elapsed: (now % BUDGET_WINDOW_MS) / BUDGET_WINDOW_MS,
        },
        q.budgetPerSecond,
      );
      if (verdict === 'budget' || verdict === 'share') return verdict;
      if (verdict === 'within') {
        window.withinAll++;
        window.within.set(q.tenant, within + 1);
      }
      window.total++;
      window.admitted.set(q.tenant, admitted + 1);
      return null;
    },
    clear() {
      counters.clear();
      active.clear();
      window = { id: -1, total: 0, withinAll: 0, admitted: new Map(), within: new Map() };
    },
  };
}
