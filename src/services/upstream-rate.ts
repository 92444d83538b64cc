/**
 * UPSTREAM_RATE: at most N inventories per second handed to GLPI, whose own import is the slow part (a
 * production GLPI with 15k computers peaks near 4 agents a second). One slot every 1/N s, reserved in
 * turn (GCRA without burst: the theoretical arrival time of the next send is kept, each caller takes the
 * next slot and waits for it). With Redis the slot is reserved there, on Redis's clock, so every replica
 * and every `agent-gate forward` share one rate; without Redis (or while it is away) it is per process.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Reserves the next slot; returns how many ms until it. KEYS[1] = the key, ARGV[1] = interval in ms. */
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], tostring(start + interval), 'PX', math.ceil(start + interval - now) + 1000)
return start - now`;

export interface RateGate {
  /** Per second; 0 = unlimited. */
  readonly rate: number;
  /** Waits for this caller's slot; rejects when `signal` aborts first. */
  take(signal?: AbortSignal): Promise<void>;
}

export function createRateGate(o: { rate: number; redis: Redis | null; key: string; logger: Logger }): RateGate {
  const interval = o.rate > 0 ? 1000 / o.rate : 0;
  let tat = 0;
  let redisDown = false;

  function local(): number {
    const now = Date.now();
    const start = Math.max(tat, now);
    tat = start + interval;
    return start - now;
  }

  async function reserve(): Promise<number> {
    if (!o.redis) return local();
    try {
      const wait = Number(await o.redis.eval(RESERVE, 1, o.key, String(interval)));
      if (redisDown) o.logger.warn('forwarder: Redis is back, UPSTREAM_RATE is shared again');
      redisDown = false;
      return wait;
    } catch (err) {
      if (!redisDown)
        o.logger.warn({ err: (err as Error).message }, 'forwarder: Redis unreachable, UPSTREAM_RATE is per process');
      redisDown = true;
      return local();
    }
  }

  return {
    rate: o.rate,
    async take(signal?: AbortSignal): Promise<void> {
      if (interval === 0) return;
      const wait = await reserve();
      if (wait <= 0) return;
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          signal?.removeEventListener('abort', aborted);
          resolve();
        };
        const timer = setTimeout(done, wait);
        const aborted = () => {
          clearTimeout(timer);
          reject(signal!.reason as Error);
        };
        if (signal?.aborted) return aborted();
        signal?.addEventListener('abort', aborted, { once: true });
      });
    },
  };
}
