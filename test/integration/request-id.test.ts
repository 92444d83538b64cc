/**
 * One error path for operators: every admin error body names the request id, the answer echoes it in
 * X-Request-Id (the caller's own when well-formed), and the log lines of that request carry it. A database
 * that fails during the operator-token check is one 503, not a 503 and a 401.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createDeps } from '../../src/deps.js';
import { createSchema } from '../helpers/context.js';
import { TEST_ADMIN_TOKEN, TEST_UNKNOWN_TOKEN } from '../helpers/secrets.js';

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('request ids', () => {
  let schema: Awaited<ReturnType<typeof createSchema>>;
  let deps: Awaited<ReturnType<typeof createDeps>>;
  let captured: ReturnType<typeof capturingLogger>;

  beforeAll(async () => {
    schema = await createSchema();
    captured = capturingLogger();
    const config = loadConfig({
      DATABASE_URL: schema.url,
      LOG_LEVEL: 'info',
      BOOTSTRAP_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    });
    deps = await createDeps(config, captured.logger, { role: 'server', migrate: true });
  });
  afterAll(async () => {
    await deps.close().catch(() => {});
    await schema.drop();
  });

  it('a well-formed X-Request-Id is echoed and named in the error body', async () => {
    const res = await request(buildApp(deps)).get('/api/v1/nothing').set('X-Request-Id', 'lb-7f3a9c2e-0001');
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toBe('lb-7f3a9c2e-0001');
    expect(res.body).toEqual({
      status: 'error',
      code: 'unauthorized',
      message: 'Operator token required',
      requestId: 'lb-7f3a9c2e-0001',
    });
  });

  it.each([
    ['with a space', 'has a space in it'],
    ['too short', 'abc'],
    ['too long', 'a'.repeat(200)],
  ])('an X-Request-Id %s is replaced by a generated one', async (_what, given) => {
    const res = await request(buildApp(deps)).get('/api/v1/me').set('X-Request-Id', given);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect((res.body as { requestId: string }).requestId).toBe(res.headers['x-request-id']);
  });

  it('agents get no X-Request-Id: their answers carry only their protocol headers', async () => {
    const res = await request(buildApp(deps)).post('/').set('Content-Type', 'application/xml').send('<REQUEST/>');
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toBeUndefined();
  });

  it('the database failing during the token check: one 503 whose request id is in the error log line', async () => {
    const app = buildApp(deps);
    await deps.db.sql.end({ timeout: 1 }); // last test of the file: the pool is closed for good
    const res = await request(app)
      .get('/api/v1/me')
      .set('Authorization', `Bearer ${TEST_UNKNOWN_TOKEN}`)
      .set('X-Request-Id', 'req-db-down-0001');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({
      status: 'error',
      code: 'unavailable',
      message: 'Service temporarily unavailable',
      requestId: 'req-db-down-0001',
    });
    const line = captured.lines.find((l) => l.requestId === 'req-db-down-0001');
    expect(line?.msg).toBe('admin request failed');
    expect(captured.lines.some((l) => /headers already sent|ERR_HTTP_HEADERS_SENT/i.test(JSON.stringify(l)))).toBe(
      false,
    );
  });
});
