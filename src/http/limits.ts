/**
 * Abuse limits at the agent edge, with express-rate-limit and the rate-limit-redis store (shared by every
 * replica). Two layers run before any body is read or inflated: requests per source address, and
 * invalid credentials per source address (brute force). Only these abusive sources get 429 — the agents'
 * normal unauthenticated first attempts never count, and legitimate load is not shed with errors.
 *
 * Redis trouble: the store fails over to a per-process memory store and says so loudly, re-checks Redis
 * every few seconds and goes back by itself (RATE_LIMIT_REDIS_FAILURE=memory, the default); with
 * `closed`, limited routes answer 503 while Redis is away.
 */
import type { Request, RequestHandler, Response } from 'express';
import {
  type ClientRateLimitInfo,
  type IncrementResponse,
  MemoryStore,
  type Options,
  type Store,
  ipKeyGenerator,
  rateLimit,
} from 'express-rate-limit';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RedisStore } from 'rate-limit-redis';
import { AppError } from '../errors.js';
import {
  ACTIVE_MS,
  type AdmissionBackend,
  type AdmissionQuery,
  BUDGET_WINDOW_MS,
  CREDENTIAL_WINDOW_MS,
  DEVICE_WINDOW_MS,
  type DeferReason,
  createMemoryAdmission,
} from '../services/admission.js';
import { sendAgentError } from './agent-answer.js';
import { ALLOWANCE_MAX, ALLOWANCE_SHARE, EdgeMemory, type EdgeLimiter } from './edge-memory.js';
import type { Metrics } from '../metrics.js';

export type RedisFailureMode = 'memory' | 'closed';

export interface LimitsDeps {
  redis: Redis | null;
  logger: Logger;
  metrics: Metrics;
  ipPerMinute: number;
  authFailuresPer15Min: number;
  redisFailure: RedisFailureMode;
  prologFreqHours: number;
}

const RECHECK_MS = 5000;

/**
 * The failover state of one user of Redis (a limiter's FailoverStore, RedisAdmission): on Redis until a
 * failure, which is logged once (`reportDown`) and reported (`onMode`); then a re-check every RECHECK_MS,
 * one attempt at a time, that brings the user back once Redis answers a PING and `restore` succeeds.
 * Another user of the same Redis can tell it Redis is away (`markDown`, no log line) or back (`recoverNow`).
 */
class RedisHealth {
  healthy = true;
  private recheck: NodeJS.Timeout | null = null;
  private recovering = false;

  constructor(
    private readonly redis: Redis,
    private readonly onMode: (usingRedis: boolean) => void,
    private readonly reportDown: (err: unknown) => void,
    /** What to set up again once Redis answers (throws while it is still away). */
    private readonly restore: () => Promise<void>,
  ) {}

  markDown(): void {
    if (!this.healthy) return;
    this.healthy = false;
    this.startRecheck();
  }

  fail(err: unknown): void {
    if (this.healthy) {
      this.reportDown(err);
      this.onMode(false);
    }
    this.healthy = false;
    this.startRecheck();
  }

  recoverNow(): void {
    if (!this.healthy) void this.tryRecover();
  }

  shutdown(): void {
    if (this.recheck) clearInterval(this.recheck);
  }

  private startRecheck(): void {
    this.recheck ??= setInterval(() => void this.tryRecover(), RECHECK_MS);
    this.recheck.unref();
  }

  private async tryRecover(): Promise<void> {
    if (this.recovering || this.healthy) return;
    this.recovering = true;
    try {
      await this.redis.ping();
      await this.restore();
      this.healthy = true;
      clearInterval(this.recheck!);
      this.recheck = null;
      this.onMode(true);
    } catch {
      /* still away */
    } finally {
      this.recovering = false;
    }
  }
}

/** A Store that uses Redis while it answers and a local MemoryStore while it does not. */
export class FailoverStore implements Store {
  private memory = new MemoryStore();
  private redisStore: RedisStore | null = null;
  private options: Options | null = null;
  private readonly health: RedisHealth;
  private starting: Promise<void> = Promise.resolve();
  localKeys = false;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    private readonly mode: RedisFailureMode,
    logger: Logger,
    private readonly onMode: (usingRedis: boolean) => void,
  ) {
    this.health = new RedisHealth(
      redis,
      onMode,
      (err) =>
        logger.error(
          { err: (err as Error).message, limiter: prefix },
          mode === 'memory'
            ? 'REDIS UNREACHABLE: rate limits fall back to this process only (in memory) until it returns'
            : 'REDIS UNREACHABLE: limited requests are refused (RATE_LIMIT_REDIS_FAILURE=closed)',
        ),
      async () => {
        const store = this.makeRedisStore();
        await store.init(this.options!);
        this.redisStore = store;
        logger.warn({ limiter: prefix }, 'redis is back: rate limits are shared again');
      },
    );
  }

  private makeRedisStore(): RedisStore {
    return new RedisStore({
      prefix: this.prefix,
      sendCommand: (command: string, ...args: string[]) => this.redis.call(command, ...args) as never,
    });
  }

  init(options: Options): Promise<void> {
    this.options = options;
    this.memory.init(options);
    // express-rate-limit does not wait for init: the first requests wait here instead of failing over.
    this.starting = (async () => {
      const store = this.makeRedisStore();
      try {
        await this.ready();
        await store.init(options);
        this.redisStore = store;
        this.onMode(true);
      } catch (err) {
        this.health.fail(err);
      }
    })();
    return this.starting;
  }

  /** The connection is still being made at start-up: give it a moment before judging Redis away. */
  private async ready(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('redis not ready within 3 s')), 3000);
      this.redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Another limiter on the same Redis found it away: stop waiting on it here too (no extra log line). */
  markDown(): void {
    this.health.markDown();
  }

  /** Another limiter found Redis back: try it now rather than at this store's next re-check. */
  recoverNow(): void {
    this.health.recoverNow();
  }

  /** Waits for the start-up connection; then true while this store counts in Redis (not failed over). */
  async onRedis(): Promise<boolean> {
    await this.starting;
    return this.health.healthy && this.redisStore !== null;
  }

  /** Redis (or this store's memory, or `unavailable` with RATE_LIMIT_REDIS_FAILURE=closed) failed: fail over. */
  failed(err: unknown): void {
    this.health.fail(err);
  }

  private async run<T>(viaRedis: (s: RedisStore) => Promise<T>, viaMemory: () => Promise<T> | T): Promise<T> {
    await this.starting;
    if (this.health.healthy && this.redisStore) {
      try {
        return await viaRedis(this.redisStore);
      } catch (err) {
        this.health.fail(err);
      }
    }
    if (this.mode === 'closed') throw new AppError('unavailable', 'Service temporarily unavailable');
    return viaMemory();
  }

  increment(key: string): Promise<IncrementResponse> {
    return this.run(
      (s) => s.increment(key),
      () => this.memory.increment(key),
    );
  }

  decrement(key: string): Promise<void> {
    return this.run(
      (s) => s.decrement(key),
      () => this.memory.decrement(key),
    );
  }

  resetKey(key: string): Promise<void> {
    return this.run(
      (s) => s.resetKey(key),
      () => this.memory.resetKey(key),
    );
  }

  get(key: string): Promise<ClientRateLimitInfo | undefined> {
    return this.run(
      async (s) => {
        // rate-limit-redis reads a missing key's GET as `false` (node-redis); ioredis gives null, which it
        // parses to NaN hits. A key Redis does not have is no record, as MemoryStore answers.
        const info = await s.get(key);
        return Number.isFinite(info?.totalHits) ? info : undefined;
      },
      () => this.memory.get(key),
    );
  }

  shutdown(): void {
    this.health.shutdown();
    this.memory.shutdown();
  }
}

/** A fixed-window counter: `hit(key)` counts one and resolves to the number of hits in the window so far. */
export interface WindowCounter {
  hit(key: string): Promise<number>;
}

/**
 * The whole admission decision of src/services/admission.ts (budgetVerdict) in one Lua script: the device
 * and credential counters, the active tenants and the fair share of the current budget window, atomically,
 * in one round trip. Keys: agentgate:device:<deviceid>, agentgate:key:<credential> (fixed windows),
 * agentgate:budget:active (tenant -> last ask, ms) and agentgate:budget:<window> (a hash: total, u = admitted
 * within their share, a:<tenant>, w:<tenant>). Returns '' (admitted) or the deferral reason.
 */
export const ADMISSION_LUA = `
local function hit(k, ms)
  local n = redis.call('INCR', k)
  if n == 1 or redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, ms) end
  return n
end
local now = tonumber(ARGV[8])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local reason = ''
if hit(ARGV[1], tonumber(ARGV[10])) > tonumber(ARGV[5]) then reason = 'device' end
if ARGV[2] ~= '' and hit(ARGV[2], tonumber(ARGV[11])) > tonumber(ARGV[6]) and reason == '' then reason = 'key' end
if reason ~= '' then return reason end
local budget = tonumber(ARGV[7])
local activeMs = tonumber(ARGV[9])
local windowMs = tonumber(ARGV[12])
local tenant = ARGV[4]
local active = ARGV[3] .. 'active'
redis.call('ZADD', active, now, tenant)
redis.call('ZREMRANGEBYSCORE', active, '-inf', now - activeMs)
redis.call('PEXPIRE', active, activeMs)
local n = redis.call('ZCARD', active)
local win = ARGV[3] .. math.floor(now / windowMs)
local v = redis.call('HMGET', win, 'total', 'u', 'a:' .. tenant, 'w:' .. tenant)
local total, withinAll = tonumber(v[1]) or 0, tonumber(v[2]) or 0
local admitted, within = tonumber(v[3]) or 0, tonumber(v[4]) or 0
local share = budget / n
if total >= budget then
  if n > 1 and admitted >= share then return 'share' end
  return 'budget'
end
if admitted < share then
  redis.call('HINCRBY', win, 'u', 1)
  redis.call('HINCRBY', win, 'w:' .. tenant, 1)
else
  local others = (n - 1) * share
  local reserve = math.min(math.ceil(others - (withinAll - within)), math.ceil(others * (1 - (now % windowMs) / windowMs)))
  if reserve < 0 then reserve = 0 end
  if budget - total <= reserve then return 'share' end
end
redis.call('HINCRBY', win, 'total', 1)
redis.call('HINCRBY', win, 'a:' .. tenant, 1)
redis.call('PEXPIRE', win, 2 * windowMs)
return ''
`;

/**
 * The agent edge's two limits in one round trip (http/agent-endpoint.ts): counts the request in its
 * address's per-minute window, as rate-limit-redis's increment script does on the same key (so the token
 * endpoint's limiter shares the count), and reads the address's invalid-credential count as its get script
 * does. Then, for an address admitted far from its budget and without an invalid credential, reserves an
 * allowance for this process (http/edge-memory.ts) in the same counter: min(ARGV[5], floor((limit - hits)
 * / ARGV[4])) requests. KEYS: agentgate:ip:<address>, agentgate:authfail:<address>; ARGV: the per-address
 * window in ms, the reserved requests this process gives back unused (dropped when the window has ended),
 * the per-address limit, the share and the most one allowance reserves. Returns {hits in the window (this
 * request included, the new reservation not), invalid credentials in theirs, ms left in each window (the
 * second -2 when there is none), the requests reserved}.
 */
export const EDGE_LUA = `
local hits
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  ttl = tonumber(ARGV[1])
  redis.call('SET', KEYS[1], 1, 'PX', ttl)
  hits = 1
else
  hits = redis.call('INCRBY', KEYS[1], 1 - (tonumber(ARGV[2]) or 0))
end
local failures = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local limit = tonumber(ARGV[3])
local reserved = 0
if failures == 0 and hits <= limit then
  reserved = math.min(tonumber(ARGV[5]), math.floor((limit - hits) / tonumber(ARGV[4])))
  if reserved > 0 then redis.call('INCRBY', KEYS[1], reserved) else reserved = 0 end
end
return {hits, failures, ttl, redis.call('PTTL', KEYS[2]), reserved}
`;

const REASONS = new Set<string>(['device', 'key', 'budget', 'share']);

/** Admission through Redis (ADMISSION_LUA), falling back to this process while Redis is away, like the limiters. */
export class RedisAdmission implements AdmissionBackend {
  private readonly memory = createMemoryAdmission();
  private readonly health: RedisHealth;
  private defined = false;

  constructor(
    private readonly redis: Redis,
    private readonly mode: RedisFailureMode,
    logger: Logger,
    onMode: (usingRedis: boolean) => void,
    readonly prefix = 'agentgate:',
  ) {
    this.health = new RedisHealth(
      redis,
      onMode,
      (err) =>
        logger.error(
          { err: (err as Error).message, limiter: 'agentgate:admission' },
          mode === 'memory'
            ? 'REDIS UNREACHABLE: admission (device, key, fair budget) falls back to this process only until it returns'
            : 'REDIS UNREACHABLE: limited requests are refused (RATE_LIMIT_REDIS_FAILURE=closed)',
        ),
      () => {
        this.memory.clear();
        return Promise.resolve();
      },
    );
  }

  private run(q: AdmissionQuery): Promise<unknown> {
    if (!this.defined) {
      this.redis.defineCommand('agentgateAdmit', { numberOfKeys: 0, lua: ADMISSION_LUA });
      this.defined = true;
    }
    const p = this.prefix;
    const admit = (this.redis as unknown as Record<string, (...args: string[]) => Promise<unknown>>).agentgateAdmit!;
    return admit.call(
      this.redis,
      `${p}device:${q.deviceid}`,
      q.credential === null ? '' : `${p}key:${q.credential}`,
      `${p}budget:`,
      q.tenant,
      String(q.devicePerHour),
      String(q.credentialPerMinute),
      String(q.budgetPerSecond),
      q.nowMs === null ? '' : String(q.nowMs),
      String(ACTIVE_MS),
      String(DEVICE_WINDOW_MS),
      String(CREDENTIAL_WINDOW_MS),
      String(BUDGET_WINDOW_MS),
    );
  }

  async decide(q: AdmissionQuery): Promise<DeferReason | null> {
    if (this.health.healthy) {
      try {
        const out = await this.run(q);
        return typeof out === 'string' && REASONS.has(out) ? (out as DeferReason) : null;
      } catch (err) {
        this.health.fail(err);
      }
    }
    if (this.mode === 'closed') throw new AppError('unavailable', 'Service temporarily unavailable');
    return this.memory.decide(q);
  }

  /** Another limiter on the same Redis found it away: stop waiting on it here too (no extra log line). */
  markDown(): void {
    this.health.markDown();
  }

  /** A limiter found Redis back: try it now rather than at the next re-check. */
  recoverNow(): void {
    this.health.recoverNow();
  }

  shutdown(): void {
    this.health.shutdown();
  }
}

function tooMany(kind: string, metrics: Metrics, prologFreqHours: number, windowMs: number) {
  // One refusal per limiter, made once (an Error per 429 costs its stack trace; the answer is the same).
  const refusal = new AppError('rate_limited', 'Too many requests', { retryAfterSeconds: Math.ceil(windowMs / 1000) });
  return (req: Request, res: Response) => {
    metrics.limited(kind);
    sendAgentError(req, res, refusal, { prologFreqHours });
  };
}

/** The limiter that refuses a request at the agent edge. */
export type { EdgeLimiter } from './edge-memory.js';

export interface AgentLimits {
  /** Requests per source address. */
  perIp: RequestHandler;
  /**
   * perIp and authFailures at once, for the agent endpoint: counts the request for its address and reads
   * the address's invalid credentials (one Redis round trip); resolves to the limiter that refuses it
   * (per-address first, as perIp then authFailures would), or null.
   */
  edge(req: Request): Promise<EdgeLimiter | null>;
  /** The 429 of the limiter `edge` named (counted in agentgate_limiter_hits_total). */
  refuse(req: Request, res: Response, limiter: EdgeLimiter): void;
  /** Refuses an address past its invalid-credential budget (counted with recordAuthFailure). */
  authFailures: RequestHandler;
  /** Counts one invalid credential for the request's address; resolves once counted. */
  recordAuthFailure(req: Request): Promise<void>;
  /** True when the request's address is past its invalid-credential budget (for callers with their own answer). */
  authFailuresExceeded(req: Request): Promise<boolean>;
  /** A fixed window of `windowMs` through the same stores (shared by the replicas through Redis). */
  counter(name: string, windowMs: number): WindowCounter;
  /** PROLOG/CONTACT admission (device, credential, fair budget): one Lua script per decision in Redis. */
  admission: AdmissionBackend;
  shutdown(): void;
}

export function createAgentLimits(deps: LimitsDeps): AgentLimits {
  const stores: Store[] = [];
  /**
   * Everything that falls back from Redis: the first to see it away tells the others, and the first to find
   * it back tells them too, so that they are not on different backends for up to a re-check interval.
   */
  type Participant = { markDown(): void; recoverNow(): void };
  const participants: Participant[] = [];
  const usingRedis = new Map<string, boolean>();
  /** `name` (one participant, `self`) is now on Redis or off it: the gauge, and the others told. */
  const backendChanged = (name: string, self: Participant, up: boolean): void => {
    usingRedis.set(name, up);
    deps.metrics.limiterBackend([...usingRedis.values()].every(Boolean));
    // One request must not wait out a timeout per limiter: the first to see Redis away tells the others.
    for (const other of participants) {
      if (other === self) continue;
      if (up) other.recoverNow();
      else other.markDown();
    }
  };
  const store = (prefix: string): FailoverStore | null => {
    if (!deps.redis) return null; // a MemoryStore instead
    const s: FailoverStore = new FailoverStore(deps.redis, prefix, deps.redisFailure, deps.logger, (up) =>
      backendChanged(prefix, s, up),
    );
    stores.push(s);
    participants.push(s);
    return s;
  };
  // validate: false — the configuration is fixed here and checked by tests; the per-request checks cost time.
  const common = { standardHeaders: false as const, legacyHeaders: false, passOnStoreError: false, validate: false };
  const ipWindowMs = 60_000;
  const ipFailover = store('agentgate:ip:');
  const ipStore: Store = ipFailover ?? new MemoryStore();
  if (!ipFailover) stores.push(ipStore);
  const refuseIp = tooMany('ip', deps.metrics, deps.prologFreqHours, ipWindowMs);
  const perIp = rateLimit({
    ...common,
    windowMs: ipWindowMs,
    limit: deps.ipPerMinute,
    store: ipStore, // initialised by rateLimit
    handler: refuseIp,
  });
  // Brute force: only invalid credentials count. express-rate-limit's own way (count every request on
  // arrival, forgive the good ones when answered) refuses a burst of valid agents behind one address while
  // they are in flight, so this layer reads and counts through the same store, with its windows, directly.
  const authWindowMs = 15 * 60_000;
  const authFailover = store('agentgate:authfail:');
  const authStore: Store = authFailover ?? new MemoryStore();
  if (!authFailover) stores.push(authStore);
  void authStore.init?.({ windowMs: authWindowMs } as Options);
  const refuseBruteForce = tooMany('auth_failures', deps.metrics, deps.prologFreqHours, authWindowMs);
  const authFailures: RequestHandler = (req, res, next) => {
    const key = ipKeyGenerator(req.ip ?? 'unknown');
    Promise.resolve(authStore.get?.(key))
      .then((seen) => {
        if (seen && seen.totalHits >= deps.authFailuresPer15Min) return refuseBruteForce(req, res);
        next();
      })
      .catch(next);
  };

  const redis = deps.redis;
  if (redis) redis.defineCommand('agentgateEdge', { numberOfKeys: 2, lua: EDGE_LUA });
  const edgeScript = redis
    ? (
        redis as unknown as Record<string, (...args: string[]) => Promise<[number, number, number, number, number]>>
      ).agentgateEdge!.bind(redis)
    : null;
  interface EdgeCounts {
    /** Requests in the address's current minute, this one included. */
    hits: number;
    /** Invalid credentials in the address's current 15 minutes. */
    failures: number;
    /** Milliseconds left in each of those windows (unknown: 0). */
    ipLeftMs: number;
    authLeftMs: number;
  }
  // The edge script's arguments that never change (its window; the limit, share and most of an allowance).
  const windowArg = String(ipWindowMs);
  const allowanceArgs = [String(deps.ipPerMinute), String(ALLOWANCE_SHARE), String(ALLOWANCE_MAX)];
  /**
   * The address's two counts: one script while both counters are in Redis, which also gives back `unused`
   * reserved requests and may reserve new ones (`reserved`). Without Redis each store on its own.
   */
  async function edgeCounts(key: string, unused: number): Promise<EdgeCounts & { reserved: number }> {
    if (edgeScript && ipFailover && authFailover && (await ipFailover.onRedis()) && (await authFailover.onRedis())) {
      try {
        const [hits, failures, ipLeft, authLeft, reserved] = await edgeScript(
          `${ipFailover.prefix}${key}`,
          `${authFailover.prefix}${key}`,
          windowArg,
          String(unused),
          ...allowanceArgs,
        );
        return {
          reserved: Number(reserved),
          hits: Number(hits),
          failures: Number(failures),
          ipLeftMs: Number(ipLeft),
          authLeftMs: Math.max(0, Number(authLeft)),
        };
      } catch (err) {
        ipFailover.failed(err); // tells the other limiters too; the counts below come from memory
      }
    }
    // Without Redis, or while it is away: each store on its own (memory, or `unavailable` when closed).
    const [hit, seen] = await Promise.all([ipStore.increment(key), authStore.get?.(key)]);
    const left = (reset: Date | undefined) => (reset ? Math.max(0, reset.getTime() - Date.now()) : 0);
    return {
      reserved: 0,
      hits: hit.totalHits,
      failures: seen?.totalHits ?? 0,
      ipLeftMs: left(hit.resetTime),
      authLeftMs: left(seen?.resetTime),
    };
  }
  /** Refusals and allowances between round trips (http/edge-memory.ts), by address key. */
  const known = new EdgeMemory();
  let admission: AdmissionBackend;
  if (deps.redis) {
    const a: RedisAdmission = new RedisAdmission(deps.redis, deps.redisFailure, deps.logger, (up) =>
      backendChanged('agentgate:admission', a, up),
    );
    participants.push(a);
    stores.push({ shutdown: () => a.shutdown() } as unknown as Store);
    admission = a;
  } else admission = createMemoryAdmission();
  return {
    perIp,
    authFailures,
    admission,
    async edge(req) {
      const key = ipKeyGenerator(req.ip ?? 'unknown');
      const k = known.take(key);
      if ('refused' in k) return k.refused;
      if ('allowed' in k) return null;
      const c = await edgeCounts(key, k.unused);
      if (c.hits > deps.ipPerMinute) {
        known.refuse(key, 'ip', c.ipLeftMs);
        return 'ip';
      }
      // Refused on a count past the budget only: a count that is not a number refuses nobody.
      if (c.failures >= deps.authFailuresPer15Min) {
        known.refuse(key, 'auth_failures', c.authLeftMs);
        return 'auth_failures';
      }
      known.reserved(key, c.reserved, c.ipLeftMs);
      return null;
    },
    refuse(req, res, limiter) {
      (limiter === 'ip' ? refuseIp : refuseBruteForce)(req, res);
    },
    async recordAuthFailure(req) {
      const key = ipKeyGenerator(req.ip ?? 'unknown');
      known.revoke(key); // the address's next request asks the shared counters, and sees this failure
      await authStore.increment(key);
    },
    async authFailuresExceeded(req) {
      const seen = await authStore.get?.(ipKeyGenerator(req.ip ?? 'unknown'));
      return seen !== undefined && seen.totalHits >= deps.authFailuresPer15Min;
    },
    counter(name, windowMs) {
      const counted: Store = store(`agentgate:${name}:`) ?? new MemoryStore();
      if (!deps.redis) stores.push(counted);
      void counted.init?.({ windowMs } as Options);
      return { hit: async (key) => (await counted.increment(key)).totalHits };
    },
    shutdown: () => {
      for (const s of stores) void s.shutdown?.();
    },
  };
}
