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

  app.use(requestContext(deps.logger, (req) => !AGENT_PATH.test(req.path)));
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const route = req.path.startsWith('/api/') ? 'admin' : req.path.startsWith('/console') ? 'console' : 'agent';
      deps.metrics.httpDone(route, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  });
  app.use(
    healthRoutes({
      readiness: deps.readiness,
      metrics: deps.metrics,
      records: deps.records,
      metricsEndpoint: operators,
      metricsToken: deps.config.metricsToken,
      limits: deps.limits,
      securityEvent: (kind, e) => deps.credentials.securityEvent(kind, e),
    }),
  );
  if (operators) mountOperators(app, deps);
  if (agents) mountAgents(app, deps);
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
function mountOperators(app: express.Express, deps: Deps): void {
  app.use(
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
  );
  app.use(consoleRoutes());
}

/** The agents' side: the token endpoint and the agent endpoint. */
function mountAgents(app: express.Express, deps: Deps): void {
  const limits = deps.limits;
  app.use(
    tokenEndpoint({
      credentials: deps.credentials,
      limits,
      onFailure: (clientId, remoteAddr) => {
        deps.metrics.authFailure('token');
        void deps.credentials
          .securityEvent('invalid_client', { remoteAddr, deviceid: null, details: { clientId: clientId.slice(0, 64) } })
          .catch(() => {});
      },
    }),
  );
  const agentAuth =
    deps.config.agentAuth === 'off'
      ? openAgentAuth()
      : requiredAgentAuth({
          credentials: deps.credentials,
          realm: deps.config.authRealm,
          prologFreqHours: deps.config.prologFreqHours,
          metrics: deps.metrics,
        });
  app.use(
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
  );
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
