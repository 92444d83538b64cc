/**
 * The express app, with routers grouped by who calls them: agents (agent endpoint, token endpoint),
 * operators (admin API, console) and probes (health, metrics). One error handler turns anything thrown
 * into a fixed, detail-free answer.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Deps } from './deps.js';
import { AppError, toAppError } from './errors.js';
import { VERSION } from './version.js';
import { AGENT_PATH, agentEndpoint } from './http/agent-endpoint.js';
import { sendAgentError } from './http/agent-answer.js';
import { requestContext, requestLog, sendJsonError } from './http/request-context.js';
import { openAgentAuth, requiredAgentAuth } from './http/agent-auth.js';
import { adminApi } from './http/admin-api.js';
import { consoleRoutes } from './http/console.js';
import { healthRoutes } from './http/health.js';
import { tokenEndpoint } from './http/token-endpoint.js';

/**
 * What one listener serves. `all` (one port, the default): everything. With ADMIN_PORT the agent port
 * serves `agents` (agent endpoint, token endpoint, /healthz, /readyz) and the admin port `admin` (admin
 * API, console, /metrics, /healthz, /readyz); each answers the other's paths as unknown ones (404).
 */
export type Surface = 'all' | 'agents' | 'admin';

export function buildApp(deps: Deps, opts: { surface?: Surface } = {}): express.Express {
  const surface = opts.surface ?? 'all';
  const agents = surface !== 'admin';
  const operators = surface !== 'agents';
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'extended'); // getConfig sends task[Deploy]=3.3
  app.set('trust proxy', trustProxy(deps.config.trustProxy));

  // One layer for what every request gets (request context, the latency metric), and one for the routers:
  // each router is entered only by the paths it could answer, in the order they were mounted, so an agent's
  // POST / goes straight to the agent endpoint instead of walking the admin API's and the console's routes.
  const context = requestContext(deps.logger, (req) => !AGENT_PATH.test(req.path));
  app.use((req, res, next) => {
    const started = performance.now();
    const path = req.path;
    const route = path.startsWith('/api/') ? 'admin' : path.startsWith('/console') ? 'console' : 'agent';
    res.once('finish', () => deps.metrics.httpDone(route, res.statusCode, (performance.now() - started) / 1000));
    context(req, res, next);
  });
  const routers: Routed[] = [
    [
      HEALTH_PATHS,
      healthRoutes({
        readiness: deps.readiness,
        metrics: deps.metrics,
        records: deps.records,
        metricsEndpoint: operators,
        metricsToken: deps.config.metricsToken,
        limits: deps.limits,
        securityEvent: (kind, e) => deps.credentials.securityEvent(kind, e),
      }),
    ],
  ];
  if (operators) routers.push(...operatorRouters(deps));
  if (agents) routers.push(...agentRouters(deps));
  app.use(firstOf(routers));
  app.use((_req: Request, _res: Response, next: NextFunction) => {
    next(new AppError('not_found', 'Not found'));
  });
  // The last resort: anything not answered yet. Agents get their own format, everyone else JSON.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const appErr = toAppError(err);
    if (appErr.status >= 500)
      requestLog(res, deps.logger).error({ err: appErr.cause ?? appErr, path: req.path }, 'request failed');
    if (res.headersSent) return void res.end();
    if (AGENT_PATH.test(req.path))
      return sendAgentError(req, res, appErr, { prologFreqHours: deps.config.prologFreqHours });
    sendJsonError(res, appErr);
  });
  return app;
}

/** The operators' side: admin API and console (and, through healthRoutes, /metrics). */
function operatorRouters(deps: Deps): Routed[] {
  return [
    [
      ADMIN_PATHS,
      adminApi({
        admin: deps.admin,
        records: deps.records,
        review: deps.review,
        policies: deps.policies,
        logger: deps.logger,
        version: VERSION,
        forwarder: deps.forwarder,
        spool: deps.spool && (() => deps.spool!.stats()),
        inventoryRead: deps.inventoryRead,
        securityEvents: deps.securityEvents,
        auditRead: deps.auditRead,
        limits: deps.limits,
        securityEvent: (kind, e) => deps.credentials.securityEvent(kind, e),
        metrics: deps.metrics,
      }),
    ],
    [CONSOLE_PATHS, consoleRoutes()],
  ];
}

/** The agents' side: the token endpoint and the agent endpoint (which checks its own paths, AGENT_PATH). */
function agentRouters(deps: Deps): Routed[] {
  const limits = deps.limits;
  const agentAuth =
    deps.config.agentAuth === 'off'
      ? openAgentAuth()
      : requiredAgentAuth({
          credentials: deps.credentials,
          realm: deps.config.authRealm,
          prologFreqHours: deps.config.prologFreqHours,
          metrics: deps.metrics,
        });
  return [
    [
      TOKEN_PATHS,
      tokenEndpoint({
        credentials: deps.credentials,
        limits,
        onFailure: (clientId, remoteAddr) => {
          deps.metrics.authFailure('token');
          void deps.credentials
            .securityEvent('invalid_client', {
              remoteAddr,
              deviceid: null,
              details: { clientId: clientId.slice(0, 64) },
            })
            .catch(() => {});
        },
      }),
    ],
    [
      null,
      agentEndpoint({
        service: deps.agentService,
        auth: agentAuth,
        clock: deps.clock,
        limits,
        admission: deps.admission,
        logger: deps.logger,
        metrics: deps.metrics,
        heavyConcurrency: deps.config.heavyConcurrency,
        decodeBudget: deps.config.decodeBudget,
        parser: deps.parser,
        bodyLimit: deps.config.bodyLimit,
        inflateLimit: deps.config.inflateLimit,
        prologFreqHours: deps.config.prologFreqHours,
        health: deps.dbHealth,
        spool: deps.spool,
      }),
    ],
  ];
}

/**
 * The paths each router could answer, as a superset of its routes: express matches routes
 * case-insensitively on the raw (undecoded) path, with an optional trailing slash, and the admin API takes
 * everything under /api. The agent endpoint comes last and checks its own paths (AGENT_PATH).
 */
const HEALTH_PATHS = /^\/(?:healthz|readyz|metrics)(?:\/|$)/i;
const ADMIN_PATHS = /^\/api(?:\/|$)/i;
const CONSOLE_PATHS = /^\/console(?:\/|$)/i;
const TOKEN_PATHS = /\/api\.php\/token(?:\/|$)/i;

/** A router and the paths it could answer (null: any path, the handler checks). */
type Routed = [RegExp | null, express.RequestHandler];

/**
 * The routers in order, as if each were mounted with app.use: a request goes to the first whose paths
 * match, on to the next when that one passes it on (`next()`), and to the error handlers on `next(err)`.
 */
function firstOf(routers: Routed[]): express.RequestHandler {
  return (req, res, next) => {
    const path = req.path;
    let i = 0;
    const step = (err?: unknown): void => {
      if (err !== undefined && err !== null && err !== 'route' && err !== 'router') return next(err);
      while (i < routers.length) {
        const [paths, handler] = routers[i++]!;
        if (paths === null || paths.test(path)) return void handler(req, res, step);
      }
      next();
    };
    step();
  };
}

/** TRUST_PROXY as express understands it: unset → trust nobody; a number → hops; else a list of addresses/CIDRs/names. */
export function trustProxy(value: string | undefined): boolean | number | string[] {
  if (!value) return false;
  if (/^\d+$/.test(value)) return Number(value);
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
