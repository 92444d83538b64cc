/**
 * Starts the gateway: config → deps (database, migrations under an advisory lock, Redis) → bootstrap →
 * app → HTTP(S) listener with request timeouts. SIGTERM/SIGINT (shutdown()): /readyz fails at once, the
 * gateway serves on for SHUTDOWN_DRAIN so balancers move traffic, then stops accepting, lets in-flight
 * requests (and the retry that follows a 401 on its kept-alive connection) finish, bounded, then closes
 * the workers and pools, so nothing an agent already sent is cut and nothing it was told "ok" about is lost.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
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
  /** Stops at once (tests, embedding): no drain, requests in flight still finish within the bound. */
  close(): Promise<void>;
  /** SIGTERM: /readyz fails, serving goes on for SHUTDOWN_DRAIN, then close(). */
  shutdown(): Promise<void>;
}

/** After the drain, requests in flight get this long to finish; then what is left is cut. */
export const IN_FLIGHT_BOUND_MS = 10_000;
/**
 * A connection whose last answer was a 401 is kept this long for the agent's retry with credentials (and a
 * connection accepted but not used yet this long for its first request).
 */
export const RETRY_WAIT_MS = 5_000;
/** How often a closing listener looks for connections it may close. */
const SWEEP_MS = 50;

interface ConnState {
  acceptedAt: number;
  /** Requests answered on it. */
  served: number;
  /** Requests being answered on it. */
  active: number;
  /** Its last answer was a 401 (a challenge): the agent's retry with credentials follows on it. */
  challengedAt: number | null;
}

/**
 * The graceful stop of one listener (every listener the server holds gets one):
 *
 * 1. startDraining(): serving goes on, but every answer other than a 401 says `Connection: close`, so
 *    clients reconnect (through the balancer, to another replica) after their answer. A 401 keeps its
 *    connection: the agents send credentials only after the challenge, on the same kept-alive socket, and
 *    closing it between the two would cut an exchange the agent already started.
 * 2. close(bound): no new connections; a connection is closed only when it is idle and not waiting for the
 *    retry of a 401 (at most RETRY_WAIT_MS); requests in flight finish; after `bound` what is left is cut.
 *
 * (Node's own server.close() also closes every idle connection at once, those between a 401 and its retry
 * included: the listening socket is closed through net.Server's close instead.)
 */
function drainable(server: http.Server): { startDraining(): void; close(boundMs: number): Promise<void> } {
  const conns = new Map<net.Socket, ConnState>();
  let draining = false;
  const track = (socket: net.Socket) => {
    conns.set(socket, { acceptedAt: Date.now(), served: 0, active: 0, challengedAt: null });
    socket.once('close', () => conns.delete(socket));
  };
  // An https.Server's requests run on the TLS socket of 'secureConnection' (the TCP one under it is not
  // closed on its own: destroying the TLS socket closes both).
  server.on(server instanceof https.Server ? 'secureConnection' : 'connection', track);
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const state = conns.get(req.socket);
    if (state) {
      state.active++;
      state.challengedAt = null;
    }
    const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => http.ServerResponse;
    res.writeHead = (...args: unknown[]) => {
      const status = typeof args[0] === 'number' ? args[0] : res.statusCode;
      if (draining && status !== 401) res.setHeader('Connection', 'close');
      return writeHead(...args);
    };
    res.once('close', () => {
      if (!state) return;
      state.active--;
      state.served++;
      state.challengedAt = res.statusCode === 401 && !req.socket.destroyed ? Date.now() : null;
    });
  });

  /**
   * Closes what may be closed: an idle connection that was answered (and not last with a 401, or whose
   * retry did not come within RETRY_WAIT_MS); a connection accepted but not used yet is given as long for
   * its first request, which its client is sending. `final`: everything left.
   */
  function sweep(final: boolean): void {
    const now = Date.now();
    for (const [socket, state] of conns) {
      if (!final) {
        if (state.active > 0) continue;
        const since = state.challengedAt ?? (state.served === 0 ? state.acceptedAt : null);
        if (since !== null && now - since < RETRY_WAIT_MS) continue;
      }
      socket.destroy();
    }
  }

  return {
    startDraining(): void {
      draining = true;
    },
    close(boundMs: number): Promise<void> {
      draining = true;
      return new Promise<void>((resolve) => {
        net.Server.prototype.close.call(server, () => resolve());
        const started = Date.now();
        const timer = setInterval(() => {
          const final = Date.now() - started >= boundMs;
          sweep(final);
          if (final || conns.size === 0) clearInterval(timer);
        }, SWEEP_MS);
        sweep(false);
      });
    },
  };
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
  deps.retention.start();
  deps.inventorySummaries.start();

  const drains = listeners.map(({ server: s }) => drainable(s));
  let stopping: Promise<void> | null = null;
  /** Stops everything: each listener (see drainable), then the workers and the pools. */
  function stop(drainMs: number): Promise<void> {
    stopping ??= (async () => {
      // Not ready from now on: balancers move traffic away while this process still serves for drainMs.
      deps.readiness.markStopping();
      for (const d of drains) d.startDraining();
      if (drainMs > 0) {
        logger.info({ drainMs }, 'stopping: /readyz fails; still serving while balancers move traffic');
        await new Promise((r) => setTimeout(r, drainMs));
      }
      await Promise.all(drains.map((d) => d.close(IN_FLIGHT_BOUND_MS)));
      clearInterval(graceWatch);
      clearInterval(retention);
      await deps.notifier.stop();
      await deps.forwarder.stop();
      await deps.close();
    })();
    return stopping;
  }
  const admin = listeners[1];
  return {
    deps,
    port,
    url,
    adminPort: admin?.port,
    adminUrl: admin?.url,
    close: () => stop(0),
    shutdown: () => stop(config.shutdownDrainSeconds * 1000),
  };
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
  // The line a newcomer waits for: where agents go, where people go, and how long the start took.
  const readySeconds = Math.round(process.uptime() * 10) / 10;
  logger.info(
    { url: agents.url, host: config.host, port: agents.port, agentAuth: config.agentAuth, readySeconds },
    `agent-gate listening: point agents at ${agents.url}/` +
      (split ? '' : `; web console at ${agents.url}/console`) +
      ` (ready in ${readySeconds} s)`,
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
