/**
 * Probes: /healthz says the process is alive; /readyz says it can do its job (see services/readiness.ts);
 * /metrics is for Prometheus.
 */
import crypto from 'node:crypto';
import express from 'express';
import { AppError } from '../errors.js';
import type { Metrics } from '../metrics.js';
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
}

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
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!m || !sameToken(m[1]!, deps.metricsToken))
        return next(new AppError('unauthorized', 'Metrics token required (METRICS_TOKEN)'));
    }
    // The queue size comes from the database at each scrape; without one the gauge keeps its last value.
    await deps.records.devicesByState().then(deps.metrics.setDeviceCounts, () => {});
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}
