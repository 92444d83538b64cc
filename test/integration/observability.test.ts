/**
 * What operators watch: /healthz, /readyz, /metrics (request, queue and limiter figures) and the OpenAPI
 * description of the admin API, which must list every route the API serves.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/admin-api.js';
import { type TestContext, createTestContext, send } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ AGENT_AUTH: 'off' });
});
afterAll(async () => {
  await ctx.close();
});

it('healthz and readyz answer, readyz with its checks', async () => {
  expect(JSON.parse((await send(ctx.app, { method: 'GET', path: '/healthz' })).text)).toEqual({ status: 'ok' });
  const ready = await send(ctx.app, { method: 'GET', path: '/readyz' });
  expect(ready.status).toBe(200);
  expect(JSON.parse(ready.text)).toEqual({
    status: 'ready',
    checks: { database: 'ok', redis: 'not configured (in-memory)', spool: 'empty' },
  });
});

it('metrics count agent requests by kind and outcome, and the review queue by state', async () => {
  const prolog = zlib.deflateSync(
    textOf('fusioninventory-plain', '0001-post-prolog.json').replace(/<DEVICEID>[^<]+/, '<DEVICEID>metrics-1'),
  );
  await send(ctx.app, {
    method: 'POST',
    path: '/',
    headers: { 'Content-Type': 'application/x-compress-zlib' },
    body: prolog,
  });
  const metrics = (await send(ctx.app, { method: 'GET', path: '/metrics' })).text;
  expect(metrics).toMatch(/^agentgate_agent_requests_total\{kind="prolog",format="xml",outcome="quarantined"\} 1$/m);
  expect(metrics).toMatch(/^agentgate_devices\{state="quarantined"\} 1$/m);
  expect(metrics).toMatch(
    /^agentgate_http_request_duration_seconds_bucket\{le="0.1",route="agent",status="2xx"\} \d+$/m,
  );
  expect(metrics).toContain('process_resident_memory_bytes');
});

it('serves an OpenAPI document listing every admin route, without a token', async () => {
  const res = await send(ctx.app, { method: 'GET', path: '/api/openapi.json' });
  expect(res.status).toBe(200);
  const doc = JSON.parse(res.text) as { openapi: string; paths: Record<string, Record<string, { 'x-role': string }>> };
  expect(doc.openapi).toBe('3.1.0');
  for (const r of ROUTES) {
    const op = doc.paths[r.path.replace(/:(\w+)/g, '{$1}')]?.[r.method];
    expect(op, `${r.method} ${r.path}`).toBeDefined();
    expect(op!['x-role']).toBe(r.role);
  }
});
