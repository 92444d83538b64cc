/**
 * The configuration contract: one table of environment keys, each with a one-line doc, a default and a
 * parser. loadConfig() reads them all and either returns a frozen object or throws one ConfigError that
 * lists every problem at once, so an operator fixes a bad deployment in one go.
 */

export type AgentAuthMode = 'required' | 'off';

export interface Config {
  port: number;
  host: string;
  adminHost: string | undefined;
  adminPort: number | undefined;
  metricsToken: string | undefined;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  dataDir: string;
  logLevel: string;
  logPretty: boolean;
  bodyLimit: number;
  inflateLimit: number;
  prologFreqHours: number;
  agentAuth: AgentAuthMode;
  authRealm: string;
  tokenTtlSeconds: number;
  secretCacheSeconds: number;
  outageCredentialSeconds: number;
  spoolDir: string | undefined;
  spoolMaxBytes: number;
  bootstrapSecret: string | undefined;
  bootstrapAdminToken: string | undefined;
  trustProxy: string | undefined;
  requestTimeoutSeconds: number;
  shutdownDrainSeconds: number;
  rateLimitIpPerMinute: number;
  rateLimitAuthFailuresPer15Min: number;
  rateLimitRedisFailure: 'memory' | 'closed';
  rateLimitKeyPerMinute: number;
  rateLimitDevicePerHour: number;
  inventoryBudgetPerSecond: number;
  spikeWindowSeconds: number;
  spikeNewDevicesPerKey: number;
  spikeNewDevicesPerSubnet: number;
  securitySpikeFailures: number;
  inventoryViewLimit: number;
  rejectedRetentionSeconds: number;
  registrationRetentionSeconds: number;
  submissionRetentionSeconds: number;
  auditRetentionSeconds: number | undefined;
  heavyConcurrency: number;
  decodeBudget: number;
  parseWorkers: number;
  parseWorkerHeap: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsClientCa: string | undefined;
  tlsClientCert: 'optional' | 'required';
  webhookUrls: string[] | undefined;
  webhookSecret: string | undefined;
  webhookEvents: WebhookEventName[];
  webhookMaxAttempts: number;
  upstreamUrl: string | undefined;
  upstreamUser: string | undefined;
  upstreamPassword: string | undefined;
  upstreamClientId: string | undefined;
  upstreamClientSecret: string | undefined;
  upstreamMaxAttempts: number;
  upstreamWorkers: number;
  upstreamRate: number;
  upstreamTag: 'key' | 'agent';
}

/** Events a webhook can be sent for (src/services/notifier.ts). */
export const WEBHOOK_EVENT_NAMES = [
  'device.quarantined',
  'device.conflict',
  'device.approved',
  'device.rejected',
  'device.undone',
  'spike.detected',
  'security.spike',
] as const;
export type WebhookEventName = (typeof WEBHOOK_EVENT_NAMES)[number];

type Parser<T> = (raw: string) => T;

interface Key<K extends keyof Config> {
  env: string;
  field: K;
  doc: string;
  default: string | undefined;
  parse: Parser<Config[K]>;
  secret?: boolean;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1024,
  k: 1024,
  mb: 1024 ** 2,
  m: 1024 ** 2,
  gb: 1024 ** 3,
  g: 1024 ** 3,
};

export function parseSize(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?b?)\s*$/i.exec(raw);
  const unit = m ? SIZE_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`"${raw}" is not a size (e.g. 16mb, 65536)`);
  return Math.floor(Number(m[1]) * unit);
}

/** Durations: a bare number is seconds; s, m, h, d suffixes are accepted ("7d", "90s", "0"). */
export function parseDuration(raw: string): number {
  const m = /^\s*(\d+)\s*([smhd]?)\s*$/i.exec(raw);
  if (!m) throw new Error(`"${raw}" is not a duration (e.g. 90s, 15m, 7d)`);
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? '').toLowerCase() as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * mult;
}

function int(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^\s*\d+\s*$/.test(raw)) throw new Error(`"${raw}" is not a whole number`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`${n} is outside ${min}..${max}`);
    return n;
  };
}

function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (raw) => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new Error(`"${raw}" is not one of ${values.join(', ')}`);
    return v;
  };
}

const text: Parser<string> = (raw) => raw;
const optional: Parser<string | undefined> = (raw) => (raw === '' ? undefined : raw);
const bool: Parser<boolean> = (raw) => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off|)$/i.test(raw)) return false;
  throw new Error(`"${raw}" is not a boolean (true/false)`);
};
const atLeast =
  (min: number, p: Parser<number>): Parser<number> =>
  (raw) => {
    const n = p(raw);
    if (n < min) throw new Error(`${raw} is below the minimum ${min}`);
    return n;
  };
const realm: Parser<string> = (raw) => {
  // The agents match ^Basic realm="(.*)": quotes, commas or backslashes in the realm break them.
  if (!/^[A-Za-z0-9 ._:/-]{1,64}$/.test(raw))
    throw new Error('realm may hold only letters, digits, space and ._:/- (max 64)');
  return raw;
};

/** Comma-separated http(s) URLs, each checked; empty = none. */
const urlList: Parser<string[] | undefined> = (raw) => {
  const urls = [
    ...new Set(
      raw
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    ),
  ];
  for (const u of urls) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new Error(`"${u.slice(0, 80)}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new Error(`${url.protocol} URLs are not supported (http or https only)`);
    // fetch refuses URLs with credentials; receivers authenticate the sender by the signature instead.
    if (url.username || url.password)
      throw new Error(
        `${url.protocol}//${url.host}: user:password in the URL is not supported (the signature authenticates)`,
      );
  }
  return urls.length > 0 ? urls : undefined;
};
const webhookEvents: Parser<WebhookEventName[]> = (raw) => {
  const names = [
    ...new Set(
      raw
        .split(',')
        .map((e) => e.trim().toLowerCase())
        .filter(Boolean),
    ),
  ];
  const unknown = names.filter((n) => !(WEBHOOK_EVENT_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(
      `unknown event(s) ${unknown.map((n) => `"${n.slice(0, 40)}"`).join(', ')}: use ${WEBHOOK_EVENT_NAMES.join(', ')}`,
    );
  if (names.length === 0) throw new Error('name at least one event (or leave WEBHOOK_URLS unset for no webhooks)');
  return names as WebhookEventName[];
};

/** One http(s) URL without user:password (GLPI credentials have keys of their own); empty = unset. */
const upstreamUrl: Parser<string | undefined> = (raw) => {
  if (raw.trim() === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(`"${raw.slice(0, 80)}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`${url.protocol} URLs are not supported (http or https only)`);
  if (url.username || url.password)
    throw new Error('user:password in the URL is not supported: use UPSTREAM_USER and UPSTREAM_PASSWORD');
  return url.toString();
};

/** A rate per second: a number ≥ 0 with up to 3 decimals (0.5 = one every 2 s). */
const rate: Parser<number> = (raw) => {
  if (!/^\s*\d{1,6}(\.\d{1,3})?\s*$/.test(raw)) throw new Error(`"${raw}" is not a rate per second (e.g. 4, 0.5)`);
  return Number(raw);
};

/**
 * An estimate of a chosen secret's strength in bits, for refusing weak BOOTSTRAP_* values at start. After
 * an optional type prefix (`agk_`, `ago_`…) the value counts length × log2(alphabet), the alphabet being
 * the character classes it uses (26 lower, 26 upper, 10 digits, 33 others); a run of 5 identical characters
 * or of 5 consecutive ones (`00000`, `12345`, `edcba`) makes it 0. 22 random base64url characters score ~131.
 * It catches short, repetitive and counting values, not dictionary phrases: generate secrets
 * (`openssl rand -base64 32`), never make them up.
 */
export function secretStrengthBits(value: string): number {
  const s = value.replace(/^ag[a-z]_/, '');
  for (let i = 0; i + 4 < s.length; i++) {
    const d = [1, 2, 3, 4].map((k) => s.charCodeAt(i + k) - s.charCodeAt(i + k - 1));
    if (d.every((x) => x === d[0]) && Math.abs(d[0]!) <= 1) return 0;
  }
  const alphabet =
    (/[a-z]/.test(s) ? 26 : 0) +
    (/[A-Z]/.test(s) ? 26 : 0) +
    (/[0-9]/.test(s) ? 10 : 0) +
    (/[^a-zA-Z0-9]/.test(s) ? 33 : 0);
  return alphabet === 0 ? 0 : Math.floor(s.length * Math.log2(alphabet));
}

export const MIN_SECRET_BITS = 128;

const strongSecret: Parser<string | undefined> = (raw) => {
  if (raw === '') return undefined;
  const bits = secretStrengthBits(raw);
  if (bits < MIN_SECRET_BITS)
    throw new Error(
      `too weak (about ${bits} bits, at least ${MIN_SECRET_BITS} needed: e.g. 22 or more random base64url characters after the prefix, no runs such as 00000 or 12345); generate one with: echo "ag?_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')", or leave it unset to have one generated`,
    );
  return raw;
};

export const CONFIG_KEYS: Key<keyof Config>[] = [
  {
    env: 'PORT',
    field: 'port',
    doc: 'TCP port of the agent endpoint (and of the admin API, console and /metrics unless ADMIN_PORT is set)',
    default: '8080',
    parse: int(0, 65535),
  },
  { env: 'HOST', field: 'host', doc: 'address to listen on', default: '0.0.0.0', parse: text },
  {
    env: 'ADMIN_PORT',
    field: 'adminPort',
    doc: 'TCP port of a separate admin listener: /api, /console and /metrics are then served only there (404 on PORT); unset = everything on PORT',
    default: undefined,
    parse: (raw) => (raw === '' ? undefined : int(0, 65535)(raw)),
  },
  {
    env: 'ADMIN_HOST',
    field: 'adminHost',
    doc: 'address of the admin listener (with ADMIN_PORT): loopback or an internal interface; unset = 127.0.0.1',
    default: undefined,
    parse: optional,
  },
  {
    env: 'METRICS_TOKEN',
    field: 'metricsToken',
    doc: 'bearer token that /metrics then requires (Authorization: Bearer <token>); unset = /metrics is open to whoever reaches its port',
    default: undefined,
    parse: optional,
    secret: true,
  },
  {
    env: 'DATABASE_URL',
    field: 'databaseUrl',
    doc: 'PostgreSQL URL; unset = embedded PGlite under DATA_DIR',
    default: undefined,
    parse: optional,
    secret: true,
  },
  {
    env: 'REDIS_URL',
    field: 'redisUrl',
    doc: 'Redis URL for shared limits; unset = per-process in-memory fallback',
    default: undefined,
    parse: optional,
    secret: true,
  },
  {
    env: 'DATA_DIR',
    field: 'dataDir',
    doc: 'directory of the embedded database (used only without DATABASE_URL); created 0700, private to the gateway user',
    default: './data',
    parse: text,
  },
  {
    env: 'LOG_LEVEL',
    field: 'logLevel',
    doc: 'pino level: fatal, error, warn, info, debug, trace, silent',
    default: 'info',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  },
  {
    env: 'LOG_PRETTY',
    field: 'logPretty',
    doc: 'human-readable coloured logs instead of JSON lines',
    default: 'false',
    parse: bool,
  },
  {
    env: 'BODY_LIMIT',
    field: 'bodyLimit',
    doc: 'largest request body accepted as sent (compressed); larger gets 413 before it is read',
    default: '16mb',
    parse: atLeast(1024, parseSize),
  },
  {
    env: 'INFLATE_LIMIT',
    field: 'inflateLimit',
    doc: 'largest decompressed body; network-device inventories reach 20 MB',
    default: '64mb',
    parse: atLeast(1024, parseSize),
  },
  {
    env: 'PROLOG_FREQ_HOURS',
    field: 'prologFreqHours',
    doc: 'hours until an agent contacts again (PROLOG_FREQ / expiration)',
    default: '24',
    parse: int(1, 240),
  },
  {
    env: 'AGENT_AUTH',
    field: 'agentAuth',
    doc: 'required = agents need a registration key or client credential; off = open lab mode',
    default: 'required',
    parse: oneOf('required', 'off'),
  },
  {
    env: 'AUTH_REALM',
    field: 'authRealm',
    doc: 'realm of the Basic challenge sent to agents',
    default: 'agent-gate',
    parse: realm,
  },
  {
    env: 'TOKEN_TTL',
    field: 'tokenTtlSeconds',
    doc: 'lifetime of OAuth2 bearer tokens issued to agents',
    default: '1h',
    parse: atLeast(10, parseDuration),
  },
  {
    env: 'SECRET_CACHE_TTL',
    field: 'secretCacheSeconds',
    doc: 'how long a verified credential is cached in memory (revocation takes effect within this)',
    default: '5s',
    parse: parseDuration,
  },
  {
    env: 'OUTAGE_CREDENTIAL_TTL',
    field: 'outageCredentialSeconds',
    doc: 'while PostgreSQL is unreachable, a credential this process verified at most this long ago is still accepted (as of that check: a revocation it saw is honoured); 0 = none',
    default: '1h',
    parse: parseDuration,
  },
  {
    env: 'SPOOL_DIR',
    field: 'spoolDir',
    doc: 'local spool for inventories read while PostgreSQL is unreachable or too slow (replayed once it answers); unset = DATA_DIR/spool',
    default: undefined,
    parse: optional,
  },
  {
    env: 'SPOOL_MAX',
    field: 'spoolMaxBytes',
    doc: 'most bytes the spool holds; from 90 % of it new PROLOG/CONTACT are told to come back later; one credential holds at most SPOOL_MAX / n of it (n credentials spooling, at most half while alone)',
    default: '1gb',
    parse: atLeast(1024 * 1024, parseSize),
  },
  {
    env: 'BOOTSTRAP_SECRET',
    field: 'bootstrapSecret',
    doc: 'plaintext of the first registration key "default" (else one is generated and logged once); at least 128 bits (e.g. agk_ + 22 random base64url characters), weaker values are refused at start',
    default: undefined,
    parse: strongSecret,
    secret: true,
  },
  {
    env: 'BOOTSTRAP_ADMIN_TOKEN',
    field: 'bootstrapAdminToken',
    doc: 'token of the first admin operator (else one is generated and logged once); at least 128 bits (e.g. ago_ + 22 random base64url characters), weaker values are refused at start',
    default: undefined,
    parse: strongSecret,
    secret: true,
  },
  {
    env: 'TRUST_PROXY',
    field: 'trustProxy',
    doc: 'proxies whose X-Forwarded-For is trusted (express "trust proxy": loopback, a CIDR list or a hop count); unset = none',
    default: undefined,
    parse: optional,
  },
  {
    env: 'REQUEST_TIMEOUT',
    field: 'requestTimeoutSeconds',
    doc: 'time a client has to send a whole request (headers and body)',
    default: '120s',
    parse: atLeast(1, parseDuration),
  },
  {
    env: 'SHUTDOWN_DRAIN',
    field: 'shutdownDrainSeconds',
    doc: 'on SIGTERM: /readyz fails at once and the gateway keeps serving this long (balancers move traffic), then stops accepting and lets requests in flight finish',
    default: '5s',
    parse: parseDuration,
  },
  {
    env: 'RATE_LIMIT_IP_PER_MINUTE',
    field: 'rateLimitIpPerMinute',
    doc: 'agent requests per source address per minute before 429 (NAT and proxies share one address: keep it generous)',
    default: '6000',
    parse: int(1, 10_000_000),
  },
  {
    env: 'RATE_LIMIT_AUTH_FAILURES_PER_15MIN',
    field: 'rateLimitAuthFailuresPer15Min',
    doc: 'invalid credentials per source address per 15 minutes before 429 (missing credentials never count)',
    default: '30',
    parse: int(1, 1_000_000),
  },
  {
    env: 'RATE_LIMIT_REDIS_FAILURE',
    field: 'rateLimitRedisFailure',
    doc: 'when Redis is unreachable: memory = per-process limits until it returns; closed = refuse limited requests (503)',
    default: 'memory',
    parse: oneOf('memory', 'closed'),
  },
  {
    env: 'RATE_LIMIT_KEY_PER_MINUTE',
    field: 'rateLimitKeyPerMinute',
    doc: 'PROLOG/CONTACT per registration key or client per minute; past it agents are told to come back later (no error)',
    default: '6000',
    parse: int(1, 10_000_000),
  },
  {
    env: 'RATE_LIMIT_DEVICE_PER_HOUR',
    field: 'rateLimitDevicePerHour',
    doc: 'PROLOG/CONTACT per device per hour; past it the device is told to come back later (no error)',
    default: '30',
    parse: int(1, 1_000_000),
  },
  {
    env: 'INVENTORY_BUDGET_PER_SECOND',
    field: 'inventoryBudgetPerSecond',
    doc: 'inventories admitted per second (gateway-wide), shared fairly between the credentials that want them; past it (or past its share) PROLOG/CONTACT get "not now, come back in 1-4 h" with jitter',
    default: '100',
    parse: int(1, 1_000_000),
  },
  {
    env: 'SPIKE_WINDOW',
    field: 'spikeWindowSeconds',
    doc: 'window of the new-device spike detector',
    default: '10m',
    parse: atLeast(10, parseDuration),
  },
  {
    env: 'SPIKE_NEW_DEVICES_PER_KEY',
    field: 'spikeNewDevicesPerKey',
    doc: 'new deviceids per registration key per SPIKE_WINDOW before the key is frozen for auto-approval (and its new deviceids are deferred for the rest of the window)',
    default: '500',
    parse: int(1, 10_000_000),
  },
  {
    env: 'SPIKE_NEW_DEVICES_PER_SUBNET',
    field: 'spikeNewDevicesPerSubnet',
    doc: 'new devices per /24 (IPv4) or /64 (IPv6) per SPIKE_WINDOW before an alert (and a freeze of the keys they used)',
    default: '200',
    parse: int(1, 10_000_000),
  },
  {
    env: 'SECURITY_SPIKE_FAILURES',
    field: 'securitySpikeFailures',
    doc: 'failed credentials from one address, or naming one credential, per SPIKE_WINDOW before a security.spike webhook and an error log line (keep it below RATE_LIMIT_AUTH_FAILURES_PER_15MIN: past that an address gets 429 before its credential is checked)',
    default: '20',
    parse: int(1, 10_000_000),
  },
  {
    env: 'INVENTORY_VIEW_LIMIT',
    field: 'inventoryViewLimit',
    doc: 'largest decoded inventory parsed to show it (devices show --inventory, /devices/:id/inventory and /changes); larger ones get 413',
    default: '32mb',
    parse: atLeast(1024, parseSize),
  },
  {
    env: 'HEAVY_CONCURRENCY',
    field: 'heavyConcurrency',
    doc: 'large bodies (> 256 KB compressed) decoded at once; the rest wait unread, so memory stays bounded (one 20 MB inventory needs ~60 MB)',
    default: '1',
    parse: int(1, 1000),
  },
  {
    env: 'DECODE_BUDGET',
    field: 'decodeBudget',
    doc: 'decompressed bytes in flight, gateway-wide, charged as bodies inflate; past it bodies wait unread (one body at a time may exceed it, by at most INFLATE_LIMIT)',
    default: '64mb',
    parse: atLeast(1024 * 1024, parseSize),
  },
  {
    env: 'PARSE_WORKERS',
    field: 'parseWorkers',
    doc: 'worker threads that parse bodies over 1 MB decompressed (and share those over 32 KB with the event loop) and build inventory views, off the event loop',
    default: '1',
    parse: int(1, 64),
  },
  {
    env: 'PARSE_WORKER_HEAP',
    field: 'parseWorkerHeap',
    doc: 'heap cap of each parse worker; a body whose parse needs more gets 413 (a 64 MB JSON inventory, INFLATE_LIMIT, parses in 176 MB; a larger cap only lets V8 collect later)',
    default: '192mb',
    parse: atLeast(32 * 1024 * 1024, parseSize),
  },
  {
    env: 'REJECTED_RETENTION',
    field: 'rejectedRetentionSeconds',
    doc: 'how long the held submissions of a rejected device are kept before they are purged (audited)',
    default: '30d',
    parse: atLeast(3600, parseDuration),
  },
  {
    env: 'REGISTRATION_RETENTION',
    field: 'registrationRetentionSeconds',
    doc: 'how long recorded agent requests (registrations) are kept; one still referenced by a kept submission stays with it',
    default: '90d',
    parse: atLeast(3600, parseDuration),
  },
  {
    env: 'SUBMISSION_RETENTION',
    field: 'submissionRetentionSeconds',
    doc: "how long stored inventory bodies are kept; each device's latest full inventory and the partials after it, held ones and ones not yet delivered to GLPI are always kept",
    default: '30d',
    parse: atLeast(3600, parseDuration),
  },
  {
    env: 'AUDIT_RETENTION',
    field: 'auditRetentionSeconds',
    doc: 'how long audit log entries and security events are kept; unset = forever',
    default: undefined,
    parse: (raw: string) => (raw.trim() === '' ? undefined : atLeast(86400, parseDuration)(raw)),
  },
  {
    env: 'TLS_CERT',
    field: 'tlsCert',
    doc: 'PEM certificate file: serve HTTPS instead of HTTP',
    default: undefined,
    parse: optional,
  },
  { env: 'TLS_KEY', field: 'tlsKey', doc: 'PEM private key file for TLS_CERT', default: undefined, parse: optional },
  {
    env: 'TLS_CLIENT_CA',
    field: 'tlsClientCa',
    doc: 'PEM CA file: client certificates signed by it are credentials of their own (see TLS_CLIENT_CERT)',
    default: undefined,
    parse: optional,
  },
  {
    env: 'TLS_CLIENT_CERT',
    field: 'tlsClientCert',
    doc: 'with TLS_CLIENT_CA: optional = agents may present a certificate (one that fails verification gets 401); required = the TLS handshake refuses connections without one',
    default: 'optional',
    parse: oneOf('optional', 'required'),
  },
  {
    env: 'WEBHOOK_URLS',
    field: 'webhookUrls',
    doc: 'comma-separated http(s) URLs that receive a signed JSON POST per event; unset = no webhooks',
    default: undefined,
    parse: urlList,
  },
  {
    env: 'WEBHOOK_SECRET',
    field: 'webhookSecret',
    doc: 'HMAC-SHA256 key of the X-AgentGate-Signature header (required with WEBHOOK_URLS)',
    default: undefined,
    parse: optional,
    secret: true,
  },
  {
    env: 'WEBHOOK_EVENTS',
    field: 'webhookEvents',
    doc: 'comma-separated events sent to WEBHOOK_URLS',
    default: WEBHOOK_EVENT_NAMES.join(','),
    parse: webhookEvents,
  },
  {
    env: 'WEBHOOK_MAX_ATTEMPTS',
    field: 'webhookMaxAttempts',
    doc: 'attempts per webhook delivery (exponential back-off from 5 s, at most 1 h apart) before it is left undelivered',
    default: '12',
    parse: int(1, 100),
  },
  {
    env: 'UPSTREAM_URL',
    field: 'upstreamUrl',
    doc: 'GLPI inventory URL (e.g. https://glpi.example/front/inventory.php) that accepted inventories are forwarded to; unset = no forwarding',
    default: undefined,
    parse: upstreamUrl,
  },
  {
    env: 'UPSTREAM_USER',
    field: 'upstreamUser',
    doc: 'Basic auth user for UPSTREAM_URL',
    default: undefined,
    parse: optional,
  },
  {
    env: 'UPSTREAM_PASSWORD',
    field: 'upstreamPassword',
    doc: 'Basic auth password for UPSTREAM_URL',
    default: undefined,
    parse: optional,
    secret: true,
  },
  {
    env: 'UPSTREAM_CLIENT_ID',
    field: 'upstreamClientId',
    doc: 'OAuth2 client id (GLPI 11 client credentials, token from <base>/api.php/token, cached until it expires)',
    default: undefined,
    parse: optional,
  },
  {
    env: 'UPSTREAM_CLIENT_SECRET',
    field: 'upstreamClientSecret',
    doc: 'OAuth2 client secret for UPSTREAM_CLIENT_ID',
    default: undefined,
    parse: optional,
    secret: true,
  },
  {
    env: 'UPSTREAM_MAX_ATTEMPTS',
    field: 'upstreamMaxAttempts',
    doc: 'attempts after which an inventory GLPI refuses (4xx other than 429) becomes a dead letter; 5xx, 429 and network errors retry without limit',
    default: '5',
    parse: int(1, 100),
  },
  {
    env: 'UPSTREAM_WORKERS',
    field: 'upstreamWorkers',
    doc: 'inventories forwarded at once by this process; 0 = none here (run `agent-gate forward` elsewhere)',
    default: '2',
    parse: int(0, 64),
  },
  {
    env: 'UPSTREAM_RATE',
    field: 'upstreamRate',
    doc: "inventories per second sent to GLPI (GLPI's own import is the slow part: one with 15k computers peaks near 4/s); shared by every process through REDIS_URL, else per process; 0 = unlimited",
    default: '4',
    parse: rate,
  },
  {
    env: 'UPSTREAM_TAG',
    field: 'upstreamTag',
    doc: "key = inventories go to GLPI with the tag of the registration key or client their device is pinned to, replacing the agent's (a credential without a tag leaves the agent's); agent = always the agent's own tag",
    default: 'key',
    parse: oneOf('key', 'agent'),
  },
] as Key<keyof Config>[];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const raw = env[key.env] ?? key.default;
    if (raw === undefined) {
      out[key.field] = undefined;
      continue;
    }
    try {
      out[key.field] = key.parse(raw);
    } catch (err) {
      problems.push(`${key.env}: ${(err as Error).message}`);
    }
  }
  const cfg = out as unknown as Config;
  if (problems.length === 0) {
    if (cfg.adminHost && cfg.adminPort === undefined) problems.push('ADMIN_HOST: needs ADMIN_PORT');
    if (cfg.adminPort !== undefined && cfg.adminPort !== 0 && cfg.adminPort === cfg.port)
      problems.push('ADMIN_PORT: must differ from PORT');
    if (cfg.inflateLimit < cfg.bodyLimit) problems.push('INFLATE_LIMIT: must not be smaller than BODY_LIMIT');
    if (Boolean(cfg.tlsCert) !== Boolean(cfg.tlsKey)) problems.push('TLS_CERT and TLS_KEY: set both or neither');
    if (cfg.tlsClientCa && !cfg.tlsCert) problems.push('TLS_CLIENT_CA: needs TLS_CERT and TLS_KEY');
    if (cfg.tlsClientCert === 'required' && !cfg.tlsClientCa)
      problems.push('TLS_CLIENT_CERT=required: needs TLS_CLIENT_CA');
    if (cfg.webhookUrls && !cfg.webhookSecret) problems.push('WEBHOOK_SECRET: required when WEBHOOK_URLS is set');
    if (Boolean(cfg.upstreamUser) !== Boolean(cfg.upstreamPassword))
      problems.push('UPSTREAM_USER and UPSTREAM_PASSWORD: set both or neither');
    if (Boolean(cfg.upstreamClientId) !== Boolean(cfg.upstreamClientSecret))
      problems.push('UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET: set both or neither');
    if (cfg.upstreamUser && cfg.upstreamClientId)
      problems.push('UPSTREAM_USER and UPSTREAM_CLIENT_ID: choose Basic or OAuth2, not both');
    // A claimed row waits for its UPSTREAM_RATE slot under its lease (180 s): keep the wait of the last of
    // this process's workers far below it, or another worker could take the row again and send it twice.
    if (cfg.upstreamRate > 0 && cfg.upstreamWorkers / cfg.upstreamRate > 60)
      problems.push('UPSTREAM_RATE: too low for UPSTREAM_WORKERS (workers / rate must be at most 60 s)');
    if (!cfg.upstreamUrl && (cfg.upstreamUser || cfg.upstreamClientId))
      problems.push('UPSTREAM_USER / UPSTREAM_CLIENT_ID: need UPSTREAM_URL');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(cfg);
}

/** Every key as an env file with its default and doc (config/example.env is this output). */
export function configEnvFile(): string {
  const head = [
    '# agent-gate configuration: every key read by src/config.ts, with its default.',
    '# Generated by `node bin/agent-gate.js config --env`; `node bin/agent-gate.js config` prints the same as a table.',
    '# Secrets are left empty on purpose: never commit real values. An invalid value makes every command exit',
    '# non-zero, listing every problem.',
  ];
  const keys = CONFIG_KEYS.map(
    (k) => `# ${k.doc}${k.secret ? ' [secret]' : ''}\n${k.env}=${k.secret ? '' : (k.default ?? '')}`,
  );
  return `${[...head, '', keys.join('\n\n')].join('\n')}\n`;
}

/** Markdown table of every key, for the README and `agent-gate config`. */
export function configTable(): string {
  const rows = CONFIG_KEYS.map(
    (k) => `| \`${k.env}\` | ${k.default === undefined ? '(unset)' : `\`${k.default}\``} | ${k.doc} |`,
  );
  return ['| key | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
