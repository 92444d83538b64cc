/**
 * Probes: /healthz says the process is alive; /readyz says it can do its job (database reachable with
 * every migration applied, Redis reachable when configured); /metrics is for Prometheus.
 */
import express from 'express';
import type { Deps } from '../deps.js';
import { pendingMigrations } from '../store/migrate.js';

export function healthRoutes(deps: Deps): express.Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const checks: Record<string, string> = {};
    try {
      const pending = await pendingMigrations(deps.db.sql);
      checks.database = pending === 0 ? 'ok' : `${pending} migrations pending`;
    } catch {
      checks.database = 'unreachable';
    }
    if (deps.redis) {
      try {
        await deps.redis.ping();
        checks.redis = 'ok';
      } catch {
        checks.redis = 'unreachable';
      }
    } else {
      checks.redis = 'not configured (in-memory)';
    }
    const ready = checks.database === 'ok' && checks.redis !== 'unreachable';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  router.get('/metrics', async (_req, res) => {
    // The queue size comes from the database at each scrape; without one the gauge keeps its last value.
    await deps.records.devicesByState().then(deps.metrics.setDeviceCounts, () => {});
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}
