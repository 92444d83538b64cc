/**
 * Gateway limits for benchmarks and load runs, which send everything from 127.0.0.1 (one address for the
 * whole fleet) and replay the same devices far more often than real agents do. Each setting is kept only
 * when src/config.ts has the key and accepts the value, so the scripts follow the limits the gateway has.
 */
import { CONFIG_KEYS } from '../../src/config.js';

/**
 * Per-address, per-key and per-device limits, the inventory budget and the new-device spike detector,
 * raised out of the way. The spike thresholds matter most: every simulated device comes from 127.0.0.0/24,
 * so past SPIKE_NEW_DEVICES_PER_SUBNET (200) new deviceids the key is frozen and the rest of the fleet's
 * first contacts are deferred (no device made), and the counters outlive a run by SPIKE_WINDOW: a case
 * meant for known devices would measure unknown ones.
 */
export const RAISED_LIMITS: [string, string][] = [
  ['RATE_LIMIT_IP_PER_MINUTE', '10000000'],
  ['RATE_LIMIT_KEY_PER_MINUTE', '10000000'],
  ['RATE_LIMIT_DEVICE_PER_HOUR', '1000000'],
  ['INVENTORY_BUDGET_PER_SECOND', '1000000'],
  ['SPIKE_NEW_DEVICES_PER_KEY', '10000000'],
  ['SPIKE_NEW_DEVICES_PER_SUBNET', '10000000'],
];

export function hasConfigKey(name: string): boolean {
  return CONFIG_KEYS.some((k) => k.env === name);
}

/** The settings this gateway version knows and accepts (later entries win). */
export function limitSettings(wanted: [string, string][]): Record<string, string> {
  const set: Record<string, string> = {};
  for (const [name, value] of wanted) {
    const key = CONFIG_KEYS.find((k) => k.env === name);
    if (!key) continue;
    try {
      key.parse(value);
      set[name] = value;
    } catch {
      /* outside what this version accepts: left at its default */
    }
  }
  return set;
}
