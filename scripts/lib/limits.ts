/**
 * Gateway limits for benchmarks and load runs, which send everything from 127.0.0.1 (one address for the
 * whole fleet) and replay the same devices far more often than real agents do. Each setting is kept only
 * when src/config.ts has the key and accepts the value, so the scripts follow the limits the gateway has.
 */
import { CONFIG_KEYS } from '../../src/config.js';

/** Per-address, per-key and per-device limits and the inventory budget, raised out of the way. */
export const RAISED_LIMITS: [string, string][] = [
  ['RATE_LIMIT_IP_PER_MINUTE', '10000000'],
  ['RATE_LIMIT_KEY_PER_MINUTE', '10000000'],
  ['RATE_LIMIT_DEVICE_PER_HOUR', '1000000'],
  ['INVENTORY_BUDGET_PER_SECOND', '1000000'],
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
