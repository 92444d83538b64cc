/**
 * Admission of a PROLOG/CONTACT: whether the agent may send its inventory now or is told "not now, come
 * back later" (a deferral the agents honour, with no error in their logs). Three windows, checked in this
 * order: per device (RATE_LIMIT_DEVICE_PER_HOUR), per credential (RATE_LIMIT_KEY_PER_MINUTE) and the
 * gateway-wide inventory budget (INVENTORY_BUDGET_PER_SECOND). It never refuses: an inventory that arrives
 * is never turned away for load. The counters are shared by the replicas (Redis) and injected.
 */
import type { Metrics } from '../metrics.js';

export type DeferReason = 'device' | 'key' | 'budget';

/** A fixed-window counter: `hit(key)` counts one and resolves to the number of hits in the window so far. */
export interface WindowCounter {
  hit(key: string): Promise<number>;
}

export interface AdmissionInput {
  deviceid: string;
  /** The verified credential (`key:<id>`, `client:<id>`), or null with AGENT_AUTH=off. */
  credential: string | null;
}

export interface AdmissionDeps {
  perDevice: WindowCounter;
  perCredential: WindowCounter;
  budget: WindowCounter;
  devicePerHour: number;
  credentialPerMinute: number;
  budgetPerSecond: number;
  metrics: Pick<Metrics, 'deferred'>;
}

export function createAdmission(deps: AdmissionDeps) {
  return {
    /** null: admitted; else why the agent is told to come back later. */
    async admit(input: AdmissionInput): Promise<DeferReason | null> {
      // The device and the credential count every message, even one already deferred: a device that keeps
      // asking stays over its limit. The budget counts only messages that would be admitted.
      let reason: DeferReason | null = null;
      if ((await deps.perDevice.hit(input.deviceid)) > deps.devicePerHour) reason = 'device';
      if (input.credential !== null && (await deps.perCredential.hit(input.credential)) > deps.credentialPerMinute)
        reason ??= 'key';
      if (reason === null && (await deps.budget.hit('gateway')) > deps.budgetPerSecond) reason = 'budget';
      if (reason) deps.metrics.deferred(reason);
      return reason;
    },
  };
}

export type Admission = ReturnType<typeof createAdmission>;
