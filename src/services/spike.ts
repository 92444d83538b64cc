/**
 * The spike detector: new devices per registration key and per source subnet within SPIKE_WINDOW (counted
 * in Redis, so every replica sees the same totals). Past a threshold the key is frozen for auto-approval —
 * its new devices stay quarantined even where a policy would approve — and the security team hears of it:
 * an error log line, agentgate_spike_alerts_total, and a `spike.detected` webhook. An admin unfreezes it
 * (`agent-gate secrets unfreeze`); a confirmed leak is cut off with `secrets revoke` or `rotate --grace 0`.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Queryable } from '../store/db.js';
import type { Policies } from './policies.js';

export interface SpikeDeps {
  countNewDevice(scope: string): Promise<number>;
  policies: Policies;
  logger: Logger;
  metrics: { spike(scope: string): void };
  emit?: (q: Queryable | null, event: 'spike.detected', data: Record<string, unknown>) => Promise<void>;
  perKey: number;
  perSubnet: number;
  windowSeconds: number;
}

/** The /24 (IPv4) or /64 (IPv6) an address belongs to. */
export function subnetOf(addr: string | null): string | null {
  if (!addr) return null;
  const plain = addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
  if (net.isIPv4(plain)) return `${plain.split('.').slice(0, 3).join('.')}.0/24`;
  if (net.isIPv6(plain)) {
    const groups = plain.split('::')[0]!.split(':');
    return `${[...groups, '0', '0', '0', '0'].slice(0, 4).join(':')}::/64`;
  }
  return null;
}

export function createSpikeDetector(deps: SpikeDeps) {
  async function alert(scope: 'key' | 'subnet', subject: string, count: number, keyName: string | null): Promise<void> {
    deps.metrics.spike(scope);
    const threshold = scope === 'key' ? deps.perKey : deps.perSubnet;
    deps.logger.error(
      { scope, subject, newDevices: count, threshold, windowSeconds: deps.windowSeconds, key: keyName },
      `SPIKE: ${count} new devices from ${scope} ${subject} within ${deps.windowSeconds}s${keyName ? `; registration key "${keyName}" frozen for auto-approval` : ''}`,
    );
    if (keyName)
      await deps.policies.setFrozen(
        keyName,
        true,
        `spike: ${count} new devices from ${scope} ${subject} within ${deps.windowSeconds}s`,
        { name: 'system:spike-detector', remoteAddr: null },
      );
    await deps.emit?.(null, 'spike.detected', {
      scope,
      subject,
      newDevices: count,
      threshold,
      windowSeconds: deps.windowSeconds,
      frozenKey: keyName,
    });
  }

  return {
    /**
     * Called once per message naming a new deviceid, before it is recorded (so a flood that is only deferred
     * is counted too); alerts exactly when a count crosses its threshold. True while the key is past its
     * threshold in this window: its new deviceids are then told to come back later (admission `spike`).
     */
    async newDevice(d: { keyName: string | null; remoteAddr: string | null }): Promise<boolean> {
      let spiking = false;
      if (d.keyName) {
        const n = await deps.countNewDevice(`key:${d.keyName}`);
        if (n === deps.perKey + 1) await alert('key', d.keyName, n, d.keyName);
        spiking = n > deps.perKey;
      }
      const subnet = subnetOf(d.remoteAddr);
      if (subnet) {
        const n = await deps.countNewDevice(`subnet:${subnet}`);
        if (n === deps.perSubnet + 1) await alert('subnet', subnet, n, d.keyName);
      }
      return spiking;
    },
  };
}

export type SpikeDetector = ReturnType<typeof createSpikeDetector>;
