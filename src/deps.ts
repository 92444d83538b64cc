/**
 * Everything the app needs, built once from the config: database (PostgreSQL or embedded), Redis (or the
 * in-memory fallback), logger, clock, metrics and the services. Tests build the same thing with their own
 * config and clock, so what they exercise is what production runs.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { type Database, openDatabase } from './store/db.js';
import { migrate } from './store/migrate.js';
import { createAgentService } from './services/agent-service.js';
import { createRecordBatcher } from './store/batcher.js';
import { createMetrics } from './metrics.js';
import { type Clock, systemClock } from './clock.js';
import { type CredentialService, createCredentialService } from './services/credentials.js';
import { type Admin, createAdmin } from './services/admin.js';
import { type Records, createRecords } from './services/records.js';
import { type Review, createReview } from './services/review.js';
import { type Notifier, createNotifier } from './services/notifier.js';
import { type Forwarder, createForwarder } from './services/forwarder.js';
import { type AgentLimits, createAgentLimits } from './http/limits.js';
import { createSpikeDetector } from './services/spike.js';
import { type Admission, createAdmission } from './services/admission.js';
import { type Readiness, createReadiness } from './services/readiness.js';
import { type Policies, createPolicies } from './services/policies.js';
import { type ParsePool, createParsePool } from './services/parse-pool.js';

export interface Deps {
  config: Readonly<Config>;
  logger: Logger;
  db: Database;
  redis: Redis | null;
  clock: Clock;
  metrics: ReturnType<typeof createMetrics>;
  agentService: ReturnType<typeof createAgentService>;
  credentials: CredentialService;
  admin: Admin;
  records: Records;
  review: Review;
  /** Abuse limits at the edge (per address, invalid credentials per address) and their counters. */
  limits: AgentLimits;
  /** Admission of PROLOG/CONTACT: per device, per credential, the inventory budget. */
  admission: Admission;
  readiness: Readiness;
  /** Webhook outbox and its delivery worker (started by the server). */
  notifier: Notifier;
  /** GLPI outbox and its forwarding worker (started by the server and by `agent-gate forward`). */
  forwarder: Forwarder;
  policies: Policies;
  /** Worker threads for large parses and inventory views (PARSE_WORKERS). */
  parser: ParsePool;
  /** Runs `fn` when the deps close (timers of things built on them). */
  onClose(fn: () => void): void;
  close(): Promise<void>;
}

export interface DepsOptions {
  role: 'server' | 'cli';
  clock?: Clock;
  /** Apply pending migrations while opening (the server does; `agent-gate migrate` does it explicitly). */
  migrate?: boolean;
}

export async function createDeps(config: Readonly<Config>, logger: Logger, opts: DepsOptions): Promise<Deps> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, role: opts.role });
  if (opts.role === 'server') {
    if (db.mode === 'postgres') logger.info({ database: db.describe }, 'database: PostgreSQL');
    else
      logger.warn(
        { database: db.describe },
        'database: embedded PGlite (no DATABASE_URL) — fine for a lab or one small site; set DATABASE_URL for production',
      );
  }
  try {
    if (opts.migrate) {
      const applied = await migrate(db.sql);
      if (applied.length > 0) logger.info({ applied }, 'database migrations applied');
    }
  } catch (err) {
    await db.close();
    throw err;
  }
  let redis: Redis | null = null;
  if (config.redisUrl) {
    // A Redis that stops answering must not hold agents: commands give up after a second (limits then fall
    // back to this process), and nothing queues while it is away.
    redis = new Redis(config.redisUrl, {
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: 1000,
    });
    redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection problem'));
    if (opts.role === 'server') logger.info('redis: shared limits and caches through REDIS_URL');
  } else if (opts.role === 'server') {
    logger.warn(
      'redis: none (no REDIS_URL) — limits and caches are per process, in memory; set REDIS_URL when running several gateways',
    );
  }
  const metrics = createMetrics();
  const closers: (() => void)[] = [];
  const clock = opts.clock ?? systemClock;
  const credentials = createCredentialService({
    sql: db.sql,
    clock,
    logger,
    cacheSeconds: config.secretCacheSeconds,
    tokenTtlSeconds: config.tokenTtlSeconds,
  });
  const admin = createAdmin({ sql: db.sql, clock, onCredentialsChanged: () => credentials.clearCache() });
  const batcher = createRecordBatcher(db.sql, { maxBatch: 64, concurrency: db.mode === 'postgres' ? 4 : 1 });
  // UPSTREAM_URL set: accepted and released inventories are also written to the GLPI outbox.
  const forward = Boolean(config.upstreamUrl);
  const forwarder = createForwarder({ sql: db.sql, clock, logger, config, metrics });
  metrics.outboxSource(forwarder.stats);
  const notifier = createNotifier({ sql: db.sql, clock, logger, config, metrics });
  const policies = createPolicies({ sql: db.sql, clock, forward, notifier });
  // Device events happen after the agent's transaction committed: recorded on their own, a failure only logged.
  const limits = createAgentLimits({
    redis,
    logger,
    metrics,
    prologFreqHours: config.prologFreqHours,
    ipPerMinute: config.rateLimitIpPerMinute,
    authFailuresPer15Min: config.rateLimitAuthFailuresPer15Min,
    redisFailure: config.rateLimitRedisFailure,
  });
  closers.push(() => limits.shutdown());
  const admission = createAdmission({
    perDevice: limits.counter('device', 3600_000),
    perCredential: limits.counter('key', 60_000),
    budget: limits.counter('budget', 1000),
    devicePerHour: config.rateLimitDevicePerHour,
    credentialPerMinute: config.rateLimitKeyPerMinute,
    budgetPerSecond: config.inventoryBudgetPerSecond,
    metrics,
  });
  const newDevices = limits.counter('spike', config.spikeWindowSeconds * 1000);
  const spike = createSpikeDetector({
    countNewDevice: (scope) => newDevices.hit(scope),
    policies,
    logger,
    metrics,
    perKey: config.spikeNewDevicesPerKey,
    perSubnet: config.spikeNewDevicesPerSubnet,
    windowSeconds: config.spikeWindowSeconds,
    emit: (_q, event, data) => notifier.emit(db.sql, event, data),
  });
  const onDeviceEvent: Parameters<typeof createAgentService>[0]['onDeviceEvent'] = (e) => {
    if (e.type === 'device.new') {
      const d = e.details as { keyName?: string | null; remoteAddr?: string | null };
      spike
        .newDevice({ keyName: d.keyName ?? null, remoteAddr: d.remoteAddr ?? null })
        .catch((err: unknown) => logger.error({ err }, 'spike detector failed'));
    }
    const event =
      e.type === 'device.conflict' ? 'device.conflict' : e.state === 'quarantined' ? 'device.quarantined' : null;
    if (!event) return;
    notifier
      .emit(db.sql, event, { id: e.deviceId, deviceid: e.deviceid, state: e.state, details: e.details })
      .catch((err: unknown) =>
        logger.error({ err, event, deviceid: e.deviceid }, 'webhook event could not be recorded'),
      );
  };
  const parser = createParsePool({
    threads: config.parseWorkers,
    heapMb: Math.floor(config.parseWorkerHeap / (1024 * 1024)),
    inflateLimit: config.inflateLimit,
  });
  const agentService = createAgentService({
    views: parser,
    sql: db.sql,
    batcher,
    prologFreqHours: config.prologFreqHours,
    securityEvent: (type, e) => credentials.securityEvent(type, e),
    policies,
    onDeviceEvent,
    forward,
  });
  return {
    config,
    logger,
    db,
    redis,
    clock,
    metrics,
    agentService,
    credentials,
    admin,
    records: createRecords(db.sql),
    review: createReview({ sql: db.sql, clock, notifier, forward, views: parser }),
    parser,
    forwarder,
    notifier,
    policies,
    limits,
    admission,
    readiness: createReadiness({ sql: db.sql, redis }),
    onClose: (fn) => closers.push(fn),
    async close() {
      for (const fn of closers) fn();
      await batcher.drain();
      await notifier.stop();
      await forwarder.stop();
      await parser.close();
      redis?.disconnect();
      await db.close();
    },
  };
}
