/**
 * ADMIN_PORT: the admin API, the console and /metrics are served only on the admin listener (loopback
 * here); on the agent port they are unknown paths (404), so an admin token that leaked to the agents' side
 * of the network buys nothing there. METRICS_TOKEN guards /metrics. Shutdown closes both listeners.
 */
import net from 'node:net';
import zlib from 'node:zlib';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { createTestContext, startTestServer } from '../helpers/context.js';
import { textOf } from '../helpers/fixtures.js';
import { type RawResponse, rawSend } from '../helpers/raw-http.js';
import { TEST_ADMIN_TOKEN, TEST_BOOTSTRAP_SECRET } from '../helpers/secrets.js';
import { basic, header } from './support.js';

const METRICS_TOKEN = 'mtk_tEst-MetricsToken_4hG8wQ2kZ7nR5xV1cL9bT3';
let server: RunningServer;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ server, close } = await startTestServer({
    AGENT_AUTH: 'required',
    BOOTSTRAP_SECRET: TEST_BOOTSTRAP_SECRET,
    BOOTSTRAP_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    ADMIN_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    METRICS_TOKEN,
  }));
  expect(server.adminPort).toBeGreaterThan(0);
  expect(server.adminPort).not.toBe(server.port);
});
afterAll(async () => {
  await close();
});

const admin = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
const get = (port: number, path: string, headers: Record<string, string> = {}) =>
  rawSend(port, { method: 'GET', path, headers });
const json = (r: RawResponse) => JSON.parse(r.body.toString()) as Record<string, unknown>;

async function keyVersions(): Promise<number> {
  const [row] = await server.deps.db.sql<{ n: number }[]>`select count(*)::int as n from key_versions`;
  return row!.n;
}

describe('on the agent port', () => {
  it('/api, /console and /metrics are unknown paths: the same 404 as any other, even with the admin token', async () => {
    const unknown = await get(server.port, '/no-such-page', admin);
    expect(unknown.status).toBe(404);
    for (const path of [
      '/api/v1/me',
      '/api/openapi.json',
      '/api/v1/keys',
      '/console',
      '/console/index.html',
      '/metrics',
    ]) {
      const res = await get(server.port, path, { ...admin, Authorization: `Bearer ${METRICS_TOKEN}` });
      expect(res.status, path).toBe(404);
      expect({ ...json(res), requestId: null }, path).toEqual({ ...json(unknown), requestId: null });
    }
  });

  it('an admin action sent there is a 404 and changes nothing', async () => {
    const before = await keyVersions();
    const res = await rawSend(server.port, {
      path: '/api/v1/keys/default/rotate',
      headers: { ...admin, 'Content-Type': 'application/json' },
      body: Buffer.from('{"grace":"0"}'),
    });
    expect(res.status).toBe(404);
    expect(await keyVersions()).toBe(before);
  });

  it('agents are served as before, and the probes answer', async () => {
    const prolog = textOf('fusioninventory-plain', '0001-post-prolog.json');
    const res = await rawSend(server.port, {
      headers: {
        'Content-Type': 'application/x-compress-zlib',
        Authorization: basic('inventory', TEST_BOOTSTRAP_SECRET),
      },
      body: zlib.deflateSync(prolog),
    });
    expect(res.status).toBe(200);
    expect(zlib.inflateSync(res.body).toString()).toContain('<RESPONSE>SEND</RESPONSE>');
    expect((await get(server.port, '/healthz')).status).toBe(200);
  });
});

describe('on the admin port', () => {
  it('serves the admin API, its description and the console', async () => {
    const me = await get(server.adminPort!, '/api/v1/me', admin);
    expect(me.status).toBe(200);
    expect(json(me)).toEqual({ name: 'operator:admin', role: 'admin' });
    expect((await get(server.adminPort!, '/api/openapi.json')).status).toBe(200);
    const page = await get(server.adminPort!, '/console');
    expect(page.status).toBe(200);
    expect(header(page, 'content-type')[0]).toMatch(/^text\/html/);
    expect((await get(server.adminPort!, '/healthz')).status).toBe(200);
  });

  it('/metrics needs METRICS_TOKEN (an operator token is not it)', async () => {
    const none = await get(server.adminPort!, '/metrics');
    expect(none.status).toBe(401);
    expect(json(none)).toMatchObject({ code: 'unauthorized' });
    expect((await get(server.adminPort!, '/metrics', admin)).status).toBe(401);
    const ok = await get(server.adminPort!, '/metrics', { Authorization: `Bearer ${METRICS_TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toContain('agentgate_agent_requests_total');
  });

  it('does not take agent traffic: the agent endpoint and the token endpoint are unknown there', async () => {
    const prolog = await rawSend(server.adminPort!, {
      headers: { 'Content-Type': 'application/x-compress-zlib' },
      body: zlib.deflateSync(textOf('fusioninventory-plain', '0001-post-prolog.json')),
    });
    expect(prolog.status).toBe(404);
    const token = await rawSend(server.adminPort!, {
      path: '/api.php/token',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: Buffer.from('grant_type=client_credentials&client_id=x&client_secret=y'),
    });
    expect(token.status).toBe(404);
  });
});

describe('one port (no ADMIN_PORT) with METRICS_TOKEN', () => {
  it('guards /metrics with the token; the rest is served on the one port', async () => {
    const ctx = await createTestContext({ METRICS_TOKEN });
    try {
      expect((await request(ctx.app).get('/metrics')).status).toBe(401);
      expect((await request(ctx.app).get('/metrics').set('Authorization', 'Bearer wrong')).status).toBe(401);
      expect((await request(ctx.app).get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`)).status).toBe(200);
      expect((await request(ctx.app).get('/console')).status).toBe(200);
    } finally {
      await ctx.close();
    }
  });
});

describe('shutdown', () => {
  const refused = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });

  it('closes both listeners', async () => {
    const { port, adminPort } = server;
    expect(await refused(adminPort!)).toBe(false);
    await close();
    expect(await refused(port)).toBe(true);
    expect(await refused(adminPort!)).toBe(true);
  });
});
