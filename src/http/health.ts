/**
 * Probes: /healthz says the process is alive; /readyz says it can do its job (see services/readiness.ts);
 * /metrics is for Prometheus.
 */
import crypto from 'node:crypto';
import express from 'express';
import { AppError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { AgentLimits } from './limits.js';
import type { Readiness } from '../services/readiness.js';
import type { Records } from '../services/records.js';

export interface HealthDeps {
  readiness: Readiness;
  metrics: Metrics;
  records: Pick<Records, 'devicesByState'>;
  /** Serve /metrics here (false on the agent port when ADMIN_PORT moves it to the admin port). */
  metricsEndpoint?: boolean;
  /** METRICS_TOKEN: /metrics then needs `Authorization: Bearer <token>`. */
  metricsToken?: string;
  /** Wrong metrics tokens count towards RATE_LIMIT_AUTH_FAILURES_PER_15MIN, as operator tokens do. */
  limits?: Pick<AgentLimits, 'recordAuthFailure' | 'authFailuresExceeded'>;
  /** Records a wrong metrics token as a security event (`invalid_metrics_token`, never its value). */
  securityEvent?: (
    kind: string,
    e: { remoteAddr: string | null; deviceid: null; details: Record<string, unknown> },
  ) => Promise<void>;
}

/** The brute-force window (RATE_LIMIT_AUTH_FAILURES_PER_15MIN), for Retry-After. */
const BRUTE_FORCE_WINDOW_SECONDS = 15 * 60;

function sameToken(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export function healthRoutes(deps: HealthDeps): express.Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const { ready, checks } = await deps.readiness.check();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  if (deps.metricsEndpoint === false) return router;
  router.get('/metrics', async (req, res, next) => {
    if (deps.metricsToken) {
      const authz = req.headers.authorization;
      // Past the address's budget of wrong credentials (operator, metrics or agent), no token is looked at,
      // a right one included: the answer must not tell a brute-forcer that a guess was right.
      if (authz && (await deps.limits?.authFailuresExceeded(req))) {
        deps.metrics.limited('auth_failures');
        return next(
          new AppError('rate_limited', 'Too many invalid credentials from this address', {
            retryAfterSeconds: BRUTE_FORCE_WINDOW_SECONDS,
          }),
        );
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authz ?? '');
      if (!m || !sameToken(m[1]!, deps.metricsToken)) {
        // A missing header is not a guess (a scraper not yet configured); anything presented is.
        if (authz) {
          deps.metrics.authFailure('metrics');
          await deps.limits?.recordAuthFailure(req).catch(() => {});
          await deps
            .securityEvent?.('invalid_metrics_token', {
              remoteAddr: req.ip ?? null,
              deviceid: null,
              details: { reason: m ? 'wrong token' : 'not a bearer token', method: req.method, path: '/metrics' },
            })
            .catch(() => {});
        }
        return next(new AppError('unauthorized', 'Metrics token required (METRICS_TOKEN)'));
      }
    }
    // The queue size comes from the database at each scrape; without one the gauge keeps its last value.
    await deps.records.devicesByState().then(deps.metrics.setDeviceCounts, () => {});
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}
