/**
 * Probes: /healthz says the process is alive; /readyz says it can do its job (see services/readiness.ts);
 * /metrics is for Prometheus.
 */
import express from 'express';
import type { Metrics } from '../metrics.js';
import type { Readiness } from '../services/readiness.js';
import type { Records } from '../services/records.js';

export interface HealthDeps {
  readiness: Readiness;
  metrics: Metrics;
  records: Pick<Records, 'devicesByState'>;
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
  router.get('/metrics', async (_req, res) => {
    // The queue size comes from the database at each scrape; without one the gauge keeps its last value.
    await deps.records.devicesByState().then(deps.metrics.setDeviceCounts, () => {});
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}
