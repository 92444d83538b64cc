/**
 * Starts the gateway: config → deps (database, migrations under an advisory lock, Redis) → bootstrap →
 * app → HTTP(S) listener with request timeouts. SIGTERM/SIGINT stop accepting, let in-flight requests
 * finish (bounded), then close pools, so nothing an agent was told "ok" about is lost.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import type { Clock } from './clock.js';
import { type Deps, createDeps } from './deps.js';
import { bootstrapCredentials } from './services/bootstrap.js';
import { purgeDelivered } from './store/housekeeping-store.js';

const GRACE_WARNING_HORIZON_SECONDS = 24 * 3600;
/** Delivered webhook and outbox rows are kept this long, then deleted. */
export const DELIVERED_RETENTION_MS = 30 * 86400_000;

/** Warns (log + metric) while a rotated key version closes within a day and devices still use only it. */
function watchGraceWindows(deps: Deps): NodeJS.Timeout {
  const check = async () => {
    const closing = await deps.admin.expiringVersionsInUse(GRACE_WARNING_HORIZON_SECONDS);
    deps.metrics.setGraceWarnings(closing.reduce((n, v) => n + v.devices, 0));
    for (const v of closing) {
      deps.logger.warn(
        { key: v.keyName, version: v.version, expiresAt: v.expiresAt, devices: v.devices },
        `registration key "${v.keyName}" version ${v.version} closes soon and ${v.devices} device(s) still use it: see agent-gate secrets usage --name ${v.keyName}`,
      );
    }
  };
  const run = () => void check().catch((err: unknown) => deps.logger.warn({ err }, 'grace window check failed'));
  run();
  const timer = setInterval(run, 10 * 60 * 1000);
  timer.unref();
  return timer;
}

export interface RunningServer {
  deps: Deps;
  port: number;
  url: string;
  /** With ADMIN_PORT: the admin listener's port and URL. */
  adminPort?: number;
  adminUrl?: string;
  close(): Promise<void>;
}

export async function startServer(
  config: Readonly<Config>,
  logger: Logger,
  opts: { clock?: Clock } = {},
): Promise<RunningServer> {
  const deps = await createDeps(config, logger, { role: 'server', migrate: true, clock: opts.clock });
  try {
    await bootstrapCredentials(deps.admin, config, logger);
  } catch (err) {
    await deps.close();
    throw err;
  }
  let listeners: Listener[];
  try {
    listeners = await startListeners(deps);
  } catch (err) {
    await deps.close();
    throw err;
  }
  const { port, url } = listeners[0]!;
  const graceWatch = watchGraceWindows(deps);
  const retention = setInterval(() => {
    deps.review.purgeRejected(config.rejectedRetentionSeconds).then(
      (r) =>
        r.submissions > 0 &&
        logger.info({ purged: r.submissions }, 'purged the submissions of devices rejected past REJECTED_RETENTION'),
      (err: unknown) => logger.warn({ err }, 'retention purge failed'),
    );
    purgeDelivered(deps.db.sql, new Date(deps.clock.now().getTime() - DELIVERED_RETENTION_MS)).then(
      (r) =>
        (r.webhooks > 0 || r.outbox > 0) &&
        logger.info(r, 'purged webhook and outbox rows delivered more than 30 days ago'),
      (err: unknown) => logger.warn({ err }, 'delivered-rows purge failed'),
    );
  }, 3600_000);
  retention.unref();
  if (config.agentAuth === 'off') logger.warn('AGENT_AUTH=off: any agent is accepted without a credential (lab mode)');
  deps.notifier.start();
  deps.forwarder.start();

  let closing: Promise<void> | null = null;
  // While draining, answers say Connection: close, so keep-alive clients let the process exit at once.
  for (const { server: s } of listeners)
    s.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      if (closing) res.setHeader('Connection', 'close');
    });
  async function close(): Promise<void> {
    closing ??= (async () => {
      await Promise.all(
        listeners.map(
          ({ server: s }) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeIdleConnections();
              // In-flight requests get a bounded time to finish; then the rest are cut.
              setTimeout(() => s.closeAllConnections(), 10_000).unref();
            }),
        ),
      );
      clearInterval(graceWatch);
      clearInterval(retention);
      await deps.notifier.stop();
      await deps.forwarder.stop();
      await deps.close();
    })();
    return closing;
  }
  const admin = listeners[1];
  return { deps, port, url, adminPort: admin?.port, adminUrl: admin?.url, close };
}

interface Listener {
  server: http.Server;
  port: number;
  url: string;
}

/**
 * The HTTP(S) listeners: the agent port (HOST:PORT), and with ADMIN_PORT a second one (ADMIN_HOST, default
 * 127.0.0.1) that alone serves the admin API, the console and /metrics. Both close on shutdown.
 */
async function startListeners(deps: Deps): Promise<Listener[]> {
  const { config, logger } = deps;
  const split = config.adminPort !== undefined;
  const agents = await listen(deps, buildApp(deps, { surface: split ? 'agents' : 'all' }), config.host, config.port, {
    clientCerts: true,
  });
  logger.info(
    { url: agents.url, host: config.host, port: agents.port, agentAuth: config.agentAuth },
    `agent-gate listening: point agents at ${agents.url}/`,
  );
  if (!split) return [agents];
  const adminHost = config.adminHost ?? '127.0.0.1';
  try {
    const admin = await listen(deps, buildApp(deps, { surface: 'admin' }), adminHost, config.adminPort, {
      clientCerts: false,
    });
    logger.info(
      { url: admin.url, host: adminHost, port: admin.port },
      `admin listener: admin API, console and /metrics at ${admin.url} (not on the agent port)`,
    );
    return [agents, admin];
  } catch (err) {
    agents.server.close();
    throw err;
  }
}

/**
 * One listener with the request timeouts. TLS_CERT/TLS_KEY apply to both; TLS_CLIENT_CA (agent
 * certificates as credentials) only to the agent port.
 */
async function listen(
  deps: Deps,
  app: http.RequestListener,
  host: string,
  port: number,
  opts: { clientCerts: boolean },
): Promise<Listener> {
  const { config } = deps;
  const tls = config.tlsCert && config.tlsKey;
  const server = tls
    ? https.createServer(
        {
          connectionsCheckingInterval: 1000,
          cert: fs.readFileSync(config.tlsCert),
          key: fs.readFileSync(config.tlsKey),
          // TLS_CLIENT_CA: ask every client for a certificate. `required` refuses the handshake without a
          // verified one; `optional` lets it finish and leaves the verdict (socket.authorized) to agent
          // authentication, which refuses a presented certificate that failed verification (http/agent-auth.ts).
          ...(config.tlsClientCa && opts.clientCerts
            ? {
                ca: fs.readFileSync(config.tlsClientCa),
                requestCert: true,
                rejectUnauthorized: config.tlsClientCert === 'required',
              }
            : {}),
        },
        app,
      )
    : http.createServer({ connectionsCheckingInterval: 1000 }, app);
  // Slow senders: the whole request (headers and body) must arrive within REQUEST_TIMEOUT (checked every
  // second: connectionsCheckingInterval above, Node's default being 30 s).
  server.requestTimeout = config.requestTimeoutSeconds * 1000;
  server.headersTimeout = Math.min(60_000, server.requestTimeout);
  // Longer than the idle timeout of common load balancers (60 s), so they never reuse a connection we closed.
  server.keepAliveTimeout = 75_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return { server, port: bound, url: `${tls ? 'https' : 'http'}://${shown}:${bound}` };
}
