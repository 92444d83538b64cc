/**
 * Reads behind the inventory a reviewer looks at (services/inventory-read.ts): the device's current
 * inventory row, its stored view, and its latest full inventories (raw, to compare two of them).
 */
import type { Queryable, Sql } from './db.js';
import { insertInventorySections } from './agent-store.js';

export interface InventorySource {
  fullSubmissionId: number | null;
  hasView: boolean;
  format: string;
  partialsMerged: number;
  updatedAt: Date;
  /** the full submission's own facts (null when it is gone or there is none) */
  receivedAt: Date | null;
  submissionState: string | null;
  decodedSize: number | null;
}

export async function inventorySource(sql: Queryable, deviceId: number): Promise<InventorySource | null> {
  const [row] = await sql<InventorySource[]>`
    select i.full_submission_id as "fullSubmissionId", i.has_view as "hasView", i.format,
           i.partials_merged as "partialsMerged", i.updated_at as "updatedAt", s.received_at as "receivedAt",
           s.state as "submissionState", s.decoded_size as "decodedSize"
    from inventories i left join submissions s on s.id = i.full_submission_id
    where i.device_id = ${deviceId}`;
  return row ?? null;
}

export async function storedView(sql: Queryable, deviceId: number): Promise<Record<string, unknown> | null> {
  const [row] = await sql<{ view: Record<string, unknown> | null }[]>`
    select view from inventory_views where device_id = ${deviceId}`;
  return row?.view ?? null;
}

/**
 * Keeps a view built outside any lock, only if nothing built one meanwhile for the same full inventory
 * (a partial inventory merged since builds its own first: it is never overwritten). Sections left by a
 * statement that raced the full inventory's arrival are replaced, not merged into.
 */
export async function keepBuiltView(
  sql: Sql,
  deviceId: number,
  fullSubmissionId: number,
  view: Record<string, unknown>,
): Promise<void> {
  await sql.begin(async (tx) => {
    const [kept] = await tx`
      update inventories set has_view = true
      where device_id = ${deviceId} and full_submission_id = ${fullSubmissionId} and not has_view
      returning device_id`;
    if (!kept) return;
    await tx`delete from inventory_sections where device_id = ${deviceId}`;
    await insertInventorySections(tx, deviceId, view);
  });
}

export interface StoredInventory {
  id: number;
  receivedAt: Date;
  state: string;
  format: string;
  compression: string;
  decodedSize: number;
}

/** The device's full computer inventories, newest first (without their bodies). */
export async function latestFullInventories(sql: Queryable, deviceId: number, n: number): Promise<StoredInventory[]> {
  return sql<StoredInventory[]>`
    select id, received_at as "receivedAt", state, format, compression, decoded_size as "decodedSize"
    from submissions
    where device_id = ${deviceId} and kind = 'inventory' and not partial
    order by id desc limit ${n}`;
}

export async function submissionFacts(sql: Queryable, id: number): Promise<StoredInventory | null> {
  const [row] = await sql<StoredInventory[]>`
    select id, received_at as "receivedAt", state, format, compression, decoded_size as "decodedSize"
    from submissions where id = ${id}`;
  return row ?? null;
}

export async function submissionBody(sql: Queryable, id: number): Promise<Buffer | null> {
  const [row] = await sql<{ body: Buffer }[]>`select body from submissions where id = ${id}`;
  return row?.body ?? null;
}
