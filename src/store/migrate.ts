/**
 * Forward-only plain-SQL migrations (src/store/migrations/NNNN-name.sql), applied in one transaction under
 * a transaction-scoped advisory lock, so several replicas starting at once apply each file exactly once.
 * Numbering gaps and unknown applied versions are refused rather than guessed around.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './db.js';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
const LOCK_KEY = 0x4147_4154; // "AGAT"

export interface Migration {
  version: number;
  name: string;
  file: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  return files.map((file, index) => {
    const m = /^(\d{4})-([a-z0-9-]+)\.sql$/.exec(file);
    if (!m) throw new Error(`migration file name must look like 0001-name.sql: ${file}`);
    const version = Number(m[1]);
    if (version !== index + 1)
      throw new Error(`migration ${file} is out of sequence (expected ${String(index + 1).padStart(4, '0')})`);
    return { version, name: m[2]!, file: path.join(dir, file) };
  });
}

/** Applies pending migrations; returns the versions applied by this call. */
export async function migrate(sql: Sql, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = listMigrations(dir);
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_KEY})`;
    await tx`create table if not exists schema_migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())`;
    const applied = new Set(
      (await tx<{ version: number }[]>`select version from schema_migrations`).map((r) => r.version),
    );
    const unknown = [...applied].filter((v) => v > migrations.length);
    if (unknown.length > 0)
      throw new Error(
        `database has migrations this build does not know (${unknown.join(', ')}): is an older build running against a newer database?`,
      );
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await tx.unsafe(fs.readFileSync(m.file, 'utf8'));
      await tx`insert into schema_migrations (version, name) values (${m.version}, ${m.name})`;
      done.push(m.version);
    }
    return done;
  });
}

/** Pending count, for /readyz: 0 means the schema is what this build expects. */
export async function pendingMigrations(sql: Sql): Promise<number> {
  const total = listMigrations().length;
  // An unreachable database throws (reported as such); only a missing table means "nothing applied".
  const rows = await sql<{ n: number }[]>`select count(*)::int as n from schema_migrations`.catch(
    (err: { code?: string }) => {
      if (err.code === '42P01') return [{ n: 0 }];
      throw err;
    },
  );
  return total - (rows[0]?.n ?? 0);
}
