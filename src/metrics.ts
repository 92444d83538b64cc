/**
 * Prometheus metrics (prom-client), one registry per app so tests and several apps in one process never
 * share counters. Served at /metrics.
 */
import client from 'prom-client';

/**
 * The phases of an agent request, in the order they happen (agentgate_agent_phase_seconds{phase}); those
 * between `handle` and `answer` (HANDLE_PHASES) are parts of `handle`. The bench and the load test print
 * their breakdowns in this order.
 */
export const AGENT_PHASES = [
  'limits',
  'auth',
  'queue',
  'read',
  'inflate',
  'parse',
  'admission',
  'handle',
  'identity',
  'spike',
  'record_wait',
  'record_statement',
  'record_tx',
  'after',
  'answer',
  'total',
] as const;
export const HANDLE_PHASES: ReadonlySet<string> = new Set(
  AGENT_PHASES.slice(AGENT_PHASES.indexOf('handle') + 1, AGENT_PHASES.indexOf('answer')),
);

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const requests = new client.Counter({
    name: 'agentgate_agent_requests_total',
    help: 'Agent requests by message kind, wire format and outcome',
    labelNames: ['kind', 'format', 'outcome'] as const,
    registers: [registry],
  });
  const inflatedBytes = new client.Histogram({
    name: 'agentgate_inflated_body_bytes',
    help: 'Decompressed size of agent messages',
    buckets: [1024, 16384, 262144, 1048576, 4194304, 16777216, 67108864],
    registers: [registry],
  });
  const httpDuration = new client.Histogram({
    name: 'agentgate_http_request_duration_seconds',
    help: 'HTTP request latency by route group and status class',
    labelNames: ['route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
    registers: [registry],
  });
  const authFailures = new client.Counter({
    name: 'agentgate_agent_auth_failures_total',
    help: 'Agent credential failures (missing credentials are the normal first step of Basic auth)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const graceWarnings = new client.Gauge({
    name: 'agentgate_key_versions_closing_devices',
    help: 'Devices still using only a registration key version whose grace window closes within 24 h',
    registers: [registry],
  });
  const keyVersionUse = new client.Counter({
    name: 'agentgate_key_version_requests_total',
    help: 'Authenticated agent requests by registration key and version',
    labelNames: ['key', 'version'] as const,
    registers: [registry],
  });
  const limited = new client.Counter({
    name: 'agentgate_limiter_hits_total',
    help: 'Requests refused with 429 by a limiter',
    labelNames: ['limiter'] as const,
    registers: [registry],
  });
  const limiterRedis = new client.Gauge({
    name: 'agentgate_limiter_redis_up',
    help: '1 while rate limits are shared through Redis, 0 while a limiter fell back to process memory',
    registers: [registry],
  });
  const webhookDeliveries = new client.Counter({
    name: 'agentgate_webhook_deliveries_total',
    help: 'Webhook delivery attempts by event and outcome (delivered; retry = failed, tried again later; failed = given up)',
    labelNames: ['event', 'outcome'] as const,
    registers: [registry],
  });
  const webhookPending = new client.Gauge({
    name: 'agentgate_webhook_pending_deliveries',
    help: 'Webhook deliveries not yet delivered and still to be tried',
    registers: [registry],
  });
  const deferred = new client.Counter({
    name: 'agentgate_deferred_total',
    help: 'PROLOG/CONTACT answered "not now, come back later" instead of an inventory order, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const spikes = new client.Counter({
    name: 'agentgate_spike_alerts_total',
    help: 'New-device spikes detected (per key or per subnet)',
    labelNames: ['scope'] as const,
    registers: [registry],
  });
  // Where an agent request's time goes (issue 13): one observation per phase a request passed through.
  const agentPhases = new client.Histogram({
    name: 'agentgate_agent_phase_seconds',
    help: `Time agent requests spent in each phase of the ingest path (${AGENT_PHASES.join(', ')}; ${[...HANDLE_PHASES].join(', ')} are parts of handle)`,
    labelNames: ['phase'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2],
    registers: [registry],
  });
  const phaseChildren = new Map<string, client.Histogram.Internal<'phase'>>();
  const newDeviceids = new client.Counter({
    name: 'agentgate_new_deviceids_total',
    help: 'Messages naming a deviceid never seen before, by registration key (or credential type: client, cert, none) and outcome (registered = a quarantined device was created; deferred = told to come back later, no device created)',
    labelNames: ['key', 'outcome'] as const,
    registers: [registry],
  });
  const devices = new client.Gauge({
    name: 'agentgate_devices',
    help: 'Devices by state (quarantined = the review queue), read at each scrape',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  // GLPI forwarding (src/services/forwarder.ts): the outbox is read from the database at each scrape, so any
  // gateway shows it, whichever process forwards; attempts are counted by the process that made them.
  let outboxSource: (() => Promise<{ byState: Record<string, number>; oldestPendingSeconds: number }>) | null = null;
  const outboxReading = () => (outboxSource ? outboxSource().catch(() => null) : Promise.resolve(null));
  new client.Gauge({
    name: 'agentgate_outbox_items',
    help: 'GLPI outbox rows by state (pending, in_flight, dead = dead letters), read at each scrape',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const s = await outboxReading();
      if (s) for (const state of ['pending', 'in_flight', 'dead']) this.set({ state }, s.byState[state] ?? 0);
    },
  });
  new client.Gauge({
    name: 'agentgate_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest inventory not yet delivered to GLPI (0 = none waiting)',
    registers: [registry],
    async collect() {
      const s = await outboxReading();
      if (s) this.set(s.oldestPendingSeconds);
    },
  });
  const outboxAttempts = new client.Counter({
    name: 'agentgate_outbox_attempts_total',
    help: 'Attempts to deliver an inventory to GLPI by outcome (delivered; retry = failed, tried again later; dead = dead letter)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  // The local spool (src/services/spool.ts): what this process holds for the database, read at each scrape.
  let spoolSource: (() => { messages: number; bytes: number }) | null = null;
  new client.Gauge({
    name: 'agentgate_spool_messages',
    help: "Messages in this process's local spool, read while the database was away and not yet recorded in it",
    registers: [registry],
    collect() {
      if (spoolSource) this.set(spoolSource().messages);
    },
  });
  new client.Gauge({
    name: 'agentgate_spool_bytes',
    help: "Bytes in this process's local spool (SPOOL_MAX bounds it)",
    registers: [registry],
    collect() {
      if (spoolSource) this.set(spoolSource().bytes);
    },
  });
  const breakerOpen = new client.Gauge({
    name: 'agentgate_forward_breaker_open',
    help: "1 while this process's forwarding circuit breaker is open (GLPI unreachable: one probe at a time), else 0",
    registers: [registry],
  });
  let breakerIsOpen = false;
  const breakerTrips = new client.Counter({
    name: 'agentgate_forward_breaker_trips_total',
    help: "Times this process's forwarding circuit breaker opened (GLPI unreachable)",
    registers: [registry],
  });
  // Retention (src/services/retention.ts): rows deleted per table, passes by outcome, how long a pass took.
  const retentionDeleted = new client.Counter({
    name: 'agentgate_retention_deleted_total',
    help: 'Rows deleted by retention passes, by table',
    labelNames: ['table'] as const,
    registers: [registry],
  });
  const retentionPasses = new client.Counter({
    name: 'agentgate_retention_passes_total',
    help: 'Retention passes by outcome (done; skipped = another replica holds the lock; failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const retentionSeconds = new client.Gauge({
    name: 'agentgate_retention_last_pass_seconds',
    help: 'Duration of the last retention pass this process ran',
    registers: [registry],
  });
  const upstreamTags = new client.Counter({
    name: 'agentgate_upstream_tag_total',
    help: "What became of the agent's tag in attempts to send an inventory to GLPI (as-sent: UPSTREAM_TAG=agent or a credential without a tag; kept: already the credential's; replaced; refused: could not be set, not sent)",
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const claimedTagMismatches = new client.Counter({
    name: 'agentgate_claimed_tag_mismatch_total',
    help: "Agent messages whose tag (inventory TAG or CONTACT tag) differs from the tag of the device's registration key or client",
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  // The body queues (decode budget, large-body gate) and the parse workers, read at each scrape.
  let decodeSource: (() => DecodeReading) | null = null;
  const reading = () => decodeSource?.() ?? null;
  const gauge = (name: string, help: string, read: (r: DecodeReading) => number) =>
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const r = reading();
        if (r) this.set(read(r));
      },
    });
  gauge(
    'agentgate_decode_budget_bytes_in_flight',
    'Decompressed bytes of agent bodies in flight (DECODE_BUDGET), charged as they inflate',
    (r) => r.budgetInFlight,
  );
  gauge('agentgate_decode_budget_bytes', 'The budget of decompressed bytes in flight (DECODE_BUDGET)', (r) => r.budget);
  gauge(
    'agentgate_decode_budget_waiters',
    'Agent bodies waiting, unread, for room in the decode budget',
    (r) => r.budgetWaiting,
  );
  gauge(
    'agentgate_heavy_body_waiters',
    'Large agent bodies waiting, unread, for a HEAVY_CONCURRENCY slot',
    (r) => r.heavyWaiting,
  );
  gauge('agentgate_parse_pool_threads', 'Parse worker threads running', (r) => r.pool.threads);
  gauge('agentgate_parse_pool_queued', 'Parse tasks waiting for a worker thread', (r) => r.pool.queued);
  gauge(
    'agentgate_parse_pool_running',
    'Parse tasks handed to the worker threads, queued or running',
    (r) => r.pool.running,
  );
  new client.Gauge({
    name: 'agentgate_parse_tasks',
    help: 'Parse tasks since start, by task (parse, view) and outcome (inline, ok, refused, out_of_memory, failed)',
    labelNames: ['task', 'outcome'] as const,
    registers: [registry],
    collect() {
      const r = reading();
      if (!r) return;
      for (const [key, n] of r.tasks) {
        const [task, outcome] = key.split(':');
        this.set({ task: task!, outcome: outcome! }, n);
      }
    },
  });
  const waitersLeft = new client.Counter({
    name: 'agentgate_body_waiters_left_total',
    help: 'Agent bodies whose client left while they waited (decode budget, large-body gate); their place was given back',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  // The per-request series are looked up by one string instead of prom-client hashing a labels object each
  // time (a few label combinations, each made once).
  const requestChildren = new Map<string, client.Counter.Internal>();
  const httpChildren = new Map<string, client.Histogram.Internal<'route' | 'status'>>();
  const authFailureChildren = new Map<string, client.Counter.Internal>();
  return {
    registry,
    spoolSource: (fn: typeof spoolSource) => void (spoolSource = fn),
    retentionDeleted: (table: string, n: number) => retentionDeleted.inc({ table }, n),
    retentionPass: (outcome: 'done' | 'skipped' | 'failed', seconds?: number) => {
      retentionPasses.inc({ outcome });
      if (seconds !== undefined) retentionSeconds.set(seconds);
    },
    upstreamTag: (result: 'as-sent' | 'kept' | 'replaced' | 'refused') => upstreamTags.inc({ result }),
    claimedTagMismatch: (kind: string) => claimedTagMismatches.inc({ kind }),
    outboxSource: (fn: typeof outboxSource) => void (outboxSource = fn),
    forwardBreaker: (state: 'closed' | 'open') => {
      if (state === 'open' && !breakerIsOpen) breakerTrips.inc();
      breakerIsOpen = state === 'open';
      breakerOpen.set(breakerIsOpen ? 1 : 0);
    },
    decodeSource: (fn: () => DecodeReading) => void (decodeSource = fn),
    waiterLeft: (queue: 'budget' | 'heavy') => waitersLeft.inc({ queue }),
    outboxAttempt: (outcome: 'delivered' | 'retry' | 'dead') => outboxAttempts.inc({ outcome }),
    setDeviceCounts: (counts: { state: string; n: number }[]) => {
      for (const state of ['quarantined', 'approved', 'rejected', 'conflict'])
        devices.set({ state }, counts.find((c) => c.state === state)?.n ?? 0);
    },
    deferred: (reason: string) => deferred.inc({ reason }),
    spike: (scope: string) => spikes.inc({ scope }),
    newDeviceid: (key: string, outcome: 'registered' | 'deferred') => newDeviceids.inc({ key, outcome }),
    webhookDelivery: (event: string, outcome: 'delivered' | 'retry' | 'failed') =>
      webhookDeliveries.inc({ event, outcome }),
    setWebhookPending: (n: number) => webhookPending.set(n),
    limited: (limiter: string) => limited.inc({ limiter }),
    limiterBackend: (usingRedis: boolean) => limiterRedis.set(usingRedis ? 1 : 0),
    setGraceWarnings: (n: number) => graceWarnings.set(n),
    keyVersionUsed: (key: string, version: number) => keyVersionUse.inc({ key, version: String(version) }),
    agentRequest: (kind: string, format: string, outcome: string) =>
      child(requestChildren, `${kind}|${format}|${outcome}`, () => requests.labels({ kind, format, outcome })).inc(),
    inflated: (bytes: number) => inflatedBytes.observe(bytes),
    httpDone: (route: string, status: number, seconds: number) =>
      child(httpChildren, `${route}|${status}`, () =>
        httpDuration.labels({ route, status: `${Math.floor(status / 100)}xx` }),
      ).observe(seconds),
    authFailure: (reason: string) => child(authFailureChildren, reason, () => authFailures.labels({ reason })).inc(),
    agentPhase: (phase: string, seconds: number) => {
      let child = phaseChildren.get(phase);
      if (!child) phaseChildren.set(phase, (child = agentPhases.labels({ phase })));
      child.observe(seconds);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The child series of `key`, made by `make` the first time. */
function child<T>(children: Map<string, T>, key: string, make: () => T): T {
  let c = children.get(key);
  if (c === undefined) children.set(key, (c = make()));
  return c;
}

/** What the body queues and the parse workers report to the metrics. */
export interface DecodeReading {
  budget: number;
  budgetInFlight: number;
  budgetWaiting: number;
  heavyWaiting: number;
  pool: { threads: number; queued: number; running: number };
  tasks: Map<string, number>;
}
