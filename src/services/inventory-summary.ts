/**
 * The device page's inventory summary, never made on the request path. Ingest writes it with each full
 * inventory, from what the message parse read (protocol/summary.ts): the document is not parsed a second
 * time. This background pass (every gateway, polling, kicked when a page finds one missing) does what ingest
 * leaves to it: documents only a full parse can summarise (section names not in upper case), and rows stored
 * before ingest made summaries. Small bodies (at most SMALL_BODY decoded) are still summarised on the spot
 * when the pass has not got to them yet; a large one shows the device's own identity columns, marked
 * `pending`, for the second or so until the pass is done.
 */
import type { Logger } from 'pino';
import { loadSubmissionBody } from '../store/agent-store.js';
import type { Sql } from '../store/db.js';
import { type InventorySummary, saveSummary, summaryTodo } from '../store/read-store.js';
import { type InventoryViews, inlineViews } from './inventory-view.js';
import { createPoller } from './poller.js';

/** Decoded size up to which a page may parse an inventory itself (a real one is ~230 KB). */
export const SMALL_BODY = 64 * 1024;
const BATCH = 20;

export { summarize } from './inventory-view.js';

/** The summary of a stored submission, or a marked empty one when its body cannot be read. */
export async function summarizeSubmission(
  sql: Sql,
  submissionId: number,
  views: InventoryViews = inlineViews,
): Promise<InventorySummary> {
  const body = await loadSubmissionBody(sql, submissionId);
  try {
    // The view and its summary are made in a parse worker whatever the body's size (views.summary): a 60 MB
    // view is never parsed again on the event loop (issue 12).
    if (body) return await views.summary(body.body, body.compression, body.format);
  } catch {
    // an unreadable body is summarised as empty, once, rather than retried for ever
  }
  return {
    os: null,
    manufacturer: null,
    model: null,
    serial: null,
    uuid: null,
    memoryMb: null,
    softwareCount: null,
    networkCount: null,
    sections: [],
  };
}

export function createInventorySummaries(deps: { sql: Sql; logger: Logger; pollMs?: number; views?: InventoryViews }) {
  async function runOnce(): Promise<number> {
    const todo = await summaryTodo(deps.sql, BATCH);
    for (const t of todo) {
      await saveSummary(
        deps.sql,
        t.deviceId,
        t.submissionId,
        await summarizeSubmission(deps.sql, t.submissionId, deps.views),
      );
      // One parse at a time, and the event loop gets a turn between two.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return todo.length;
  }
  const poller = createPoller({
    name: 'inventory summaries',
    logger: deps.logger,
    pollMs: deps.pollMs ?? 5000,
    batchSize: () => BATCH,
    runOnce,
  });
  return {
    runOnce,
    start: () => poller.start(),
    stop: () => poller.stop(),
    kick: () => poller.kick(),
  };
}

export type InventorySummaries = ReturnType<typeof createInventorySummaries>;
