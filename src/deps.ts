/**
 * Everything the app needs, built once from the config: database (PostgreSQL or embedded), Redis (or the
 * in-memory fallback), logger, clock, metrics and the services. Tests build the same thing with their own
 * config and clock, so what they exercise is what production runs.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { type Database, openDatabase } from './store/db.js';
import { migrate, pendingMigrations } from './store/migrate.js';
import { createAgentService } from './services/agent-service.js';
import { createRecordBatcher } from './store/batcher.js';
import { createMetrics } from './metrics.js';
import { type Clock, systemClock } from './clock.js';
import { type CredentialService, createCredentialService } from './services/credentials.js';
import { type Admin, createAdmin } from './services/admin.js';
import { type Records, createRecords } from './services/records.js';
import { type Review, createReview } from './services/review.js';
import { type Notifier, createNotifier, createSecuritySpike } from './services/notifier.js';
import { type InventoryRead, createInventoryRead } from './services/inventory-read.js';
import { type SecurityEvents, createSecurityEvents } from './services/security-events.js';
import { type AuditRead, createAuditRead } from './services/audit-read.js';
import { type Forwarder, createForwarder } from './services/forwarder.js';
import { type AgentLimits, createAgentLimits } from './http/limits.js';
import { createSpikeDetector } from './services/spike.js';
import { type Admission, createAdmission } from './services/admission.js';
import { type Readiness, createReadiness } from './services/readiness.js';
import { type Policies, createPolicies } from './services/policies.js';
import path from 'node:path';
import { type Spool, createSpool } from './services/spool.js';
import { type DbHealth, createDbHealth, isUnavailable } from './services/db-health.js';
import { AppError } from './errors.js';
import type { SpooledRequest } from './services/agent-service.js';
import { type Retention, createRetention } from './services/retention.js';
import { createKeyUsageTracker } from './services/key-usage.js';
import { type InventorySummaries, createInventorySummaries } from './services/inventory-summary.js';
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
  /** Whether PostgreSQL answers, as this process last saw it (outage handling on the agent path). */
  dbHealth: DbHealth;
  /** The local spool of a server on PostgreSQL (null for the CLI and the embedded database). */
  spool: Spool | null;
  /** The inventory and its changes as a reviewer reads them (bounded by INVENTORY_VIEW_LIMIT). */
  inventoryRead: InventoryRead;
  securityEvents: SecurityEvents;
  auditRead: AuditRead;
  /** Retention passes (REGISTRATION_RETENTION, SUBMISSION_RETENTION, AUDIT_RETENTION), started by the server. */
  retention: Retention;
  /** Prepares the device page's inventory summaries after full inventories are stored (started by the server). */
  inventorySummaries: InventorySummaries;
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
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    role: opts.role,
    progress: opts.role === 'server' ? (message, fields) => logger.info(fields, message) : undefined,
  });
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
      const pending = await pendingMigrations(db.sql);
      if (pending > 0) logger.info({ pending }, `applying ${pending} database migration${pending === 1 ? '' : 's'}…`);
      const applied = await migrate(db.sql);
      if (applied.length > 0)
        logger.info(
          { applied, count: applied.length, version: applied[applied.length - 1] },
          `database migrations applied: ${applied.length} (schema at version ${applied[applied.length - 1]})`,
        );
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
  const dbHealth = createDbHealth({ probe: () => db.sql`select 1`, logger });
  closers.push(() => dbHealth.stop());
  const credentials = createCredentialService({
    sql: db.sql,
    clock,
    logger,
    cacheSeconds: config.secretCacheSeconds,
    tokenTtlSeconds: config.tokenTtlSeconds,
    outageSeconds: opts.role === 'server' ? config.outageCredentialSeconds : 0,
    health: opts.role === 'server' ? dbHealth : undefined,
    onSecurityEvent: (kind, e) => securitySpike.observe(kind, e),
  });
  const keyUsage = createKeyUsageTracker({ sql: db.sql, logger });
  keyUsage.start();
  const admin = createAdmin({
    sql: db.sql,
    clock,
    onCredentialsChanged: (what) => credentials.clearCache(what),
    flushKeyUsage: () => keyUsage.flush(),
  });
  // Two flushes in flight, as the bench's store floor: one commits while the next batch fills. Four made
  // smaller batches, so more statements, transactions and backend wake-ups per record (measured: 10-30 %
  // more gateway CPU per message).
  const batcher = createRecordBatcher(db.sql, {
    maxBatch: 64,
    concurrency: db.mode === 'postgres' ? 2 : 1,
    observe: (phase, seconds) => metrics.agentPhase(phase, seconds),
  });
  // Whether accepted and released inventories of approved devices go to the GLPI outbox is the database's
  // forwarding switch (read in the writing statement), not this process's UPSTREAM_URL: an approval from a
  // shell without it still enqueues for the gateways that forward. A gateway with UPSTREAM_URL turns the
  // switch on as it starts (agent-gate forward too).
  const forward = true;
  const forwarder = createForwarder({ sql: db.sql, clock, logger, config, metrics, redis });
  metrics.outboxSource(forwarder.stats);
  if (forwarder.enabled && opts.role === 'server') {
    try {
      const s = await forwarder.enable();
      logger.info({ enabledAt: s.enabledAt, enabledBy: s.enabledBy }, 'forwarding to GLPI is on in this database');
    } catch (err) {
      redis?.disconnect();
      await db.close();
      throw err;
    }
  }
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
    backend: limits.admission,
    devicePerHour: config.rateLimitDevicePerHour,
    credentialPerMinute: config.rateLimitKeyPerMinute,
    budgetPerSecond: config.inventoryBudgetPerSecond,
    metrics,
  });
  const failedCredentials = limits.counter('security-spike', config.spikeWindowSeconds * 1000);
  const securitySpike = createSecuritySpike({
    count: (scope) => failedCredentials.hit(scope),
    threshold: config.securitySpikeFailures,
    windowSeconds: config.spikeWindowSeconds,
    logger,
    emit: (event, data) => notifier.emit(db.sql, event, data),
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
  // Every message naming a new deviceid is counted before it is recorded (a deferred flood creates no device).
  const newDeviceid: Parameters<typeof createAgentService>[0]['newDeviceid'] = ({ req }) =>
    spike
      .newDevice({ keyName: req.principal?.type === 'key' ? req.principal.name : null, remoteAddr: req.remoteAddr })
      .catch((err: unknown) => {
        logger.error({ err }, 'spike detector failed');
        return false;
      });
  const onDeviceEvent: Parameters<typeof createAgentService>[0]['onDeviceEvent'] = (e) => {
    // One line per device that arrives and waits for a person (never again for its later messages).
    if (e.type === 'device.new' && e.state === 'quarantined') logQuarantined(logger, e);
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
    newDeviceid,
    admitFirstContact: (req, deviceid) =>
      admission.admit({
        deviceid,
        credential: req.principal ? `${req.principal.type}:${req.principal.id}` : null,
        remoteAddr: req.remoteAddr,
      }),
    metrics,
    forward,
    inflateLimit: config.inflateLimit,
    logger,
    keyUsage,
    onClaimedTagMismatch: (kind) => metrics.claimedTagMismatch(kind),
    phase: (name, seconds) => metrics.agentPhase(name, seconds),
  });
  // The spool exists where a database can be away: a server on PostgreSQL (the embedded one is in-process).
  let spool: Spool | null = null;
  if (opts.role === 'server' && db.mode === 'postgres') {
    spool = createSpool({
      dir: config.spoolDir ?? path.join(config.dataDir, 'spool'),
      maxBytes: config.spoolMaxBytes,
      logger,
      replay: (h, body) =>
        dbHealth.down
          ? Promise.reject(new AppError('unavailable', 'database away'))
          : agentService.replaySpooled(h as SpooledRequest, body),
      isTransient: (err) => {
        if (!isUnavailable(err)) return false;
        dbHealth.markDown(err);
        return true;
      },
    });
    await spool.recover();
    spool.start();
    metrics.spoolSource(() => spool!.stats());
  }
  const spoolStats = spool && (() => spool.stats());
  const readiness = createReadiness({
    sql: db.sql,
    redis,
    redisFailure: config.rateLimitRedisFailure,
    spool: spoolStats,
    agentPathDown: () => dbHealth.down,
  });
  closers.push(() => readiness.close());
  const retention = createRetention({
    sql: db.sql,
    lock: db.mode === 'postgres',
    clock,
    logger,
    metrics,
    registrationSeconds: config.registrationRetentionSeconds,
    submissionSeconds: config.submissionRetentionSeconds,
    auditSeconds: config.auditRetentionSeconds,
  });
  const inventorySummaries = createInventorySummaries({ sql: db.sql, logger, views: parser });
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
    review: createReview({ sql: db.sql, clock, notifier, forward, summaries: inventorySummaries, views: parser }),
    parser,
    forwarder,
    notifier,
    policies,
    inventoryRead: createInventoryRead({ sql: db.sql, viewLimit: config.inventoryViewLimit, views: parser }),
    securityEvents: createSecurityEvents(db.sql),
    auditRead: createAuditRead(db.sql),
    retention,
    inventorySummaries,
    limits,
    admission,
    readiness,
    dbHealth,
    spool,
    onClose: (fn) => closers.push(fn),
    async close() {
      for (const fn of closers) fn();
      await batcher.drain();
      await spool?.close();
      await retention.stop();
      await inventorySummaries.stop();
      await keyUsage.stop();
      await notifier.stop();
      await forwarder.stop();
      await parser.close();
      redis?.disconnect();
      await db.close();
    },
  };
}

/** The line an operator watching the log acts on: which device, from where, through which credential. */
function logQuarantined(
  logger: Logger,
  e: { deviceId: number; deviceid: string; details: Record<string, unknown> },
): void {
  const d = e.details;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  const name = text(d.name);
  const address = text(d.remoteAddr);
  const key = text(d.keyName);
  const client = text(d.clientId);
  const via = key ? ` with registration key "${key}"` : client ? ` with client ${client}` : '';
  logger.info(
    { id: e.deviceId, deviceid: e.deviceid, name, address, key, client },
    `new device quarantined: ${name ? `${JSON.stringify(name.slice(0, 200))} ` : ''}(deviceid ${e.deviceid}) from ${address ?? 'an unknown address'}${via}; ` +
      `approve it with: agent-gate devices approve id:${e.deviceId}`,
  );
}
