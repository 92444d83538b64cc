/**
 * Fails fast, with a clear message, when the real Postgres or Redis the tests need is not there, and drops
 * schemas left behind by interrupted earlier runs. Global setup of the integration and slow projects only
 * (vitest.config.ts): the unit project needs neither service.
 */
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './env.js';

export default async function setup(): Promise<void> {
  const sql = postgres(TEST_DATABASE_URL, { onnotice: () => {}, max: 1, connect_timeout: 5 });
  try {
    // Only schemas older than two hours: another test run on this machine may be using the recent ones.
    const cutoff = Math.floor(Date.now() / 1000) - 7200;
    const schemas = await sql<{ nspname: string }[]>`select nspname from pg_namespace where nspname like 'agtest_%'`;
    const stale = schemas.filter(({ nspname }) => Number(/^agtest_(\d+)_/.exec(nspname)?.[1] ?? 0) < cutoff);
    for (const { nspname } of stale) await sql.unsafe(`drop schema if exists "${nspname}" cascade`);
  } catch (err) {
    throw new Error(`tests need PostgreSQL at ${TEST_DATABASE_URL}: ${(err as Error).message}`, { cause: err });
  } finally {
    await sql.end();
  }
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`tests need Redis at ${TEST_REDIS_URL}: ${(err as Error).message}`, { cause: err });
  } finally {
    redis.disconnect();
  }
}
