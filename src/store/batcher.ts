/**
 * Group commit for the agent path. Records arriving while a flush is in flight wait for the next one, and
 * each flush writes its whole batch in ONE transaction, its statements pipelined: one commit (one WAL
 * flush) for many agents instead of one each. Nothing is acknowledged before its transaction committed —
 * a caller's promise resolves only then. With no load a record is flushed at once: no added latency.
 * If a batch fails (a conflict, a deadlock between batches touching the same devices) its records are
 * retried one by one, so one bad record never fails the others.
 */
import type { Sql } from './db.js';
import { type RecordInput, type Recorded, recordMessage } from './agent-store.js';

interface Pending {
  input: RecordInput;
  /** performance.now() when queued */
  queuedAt: number;
  resolve: (r: Recorded) => void;
  reject: (err: unknown) => void;
}

export interface BatcherOptions {
  /** Most records in one transaction. */
  maxBatch: number;
  /** Flushes in flight at once (each holds one pooled connection). */
  concurrency: number;
  /** Told, per record, how long it waited for its flush and how long its flush took to commit (seconds). */
  observe?: (phase: 'record_wait' | 'record_statement', seconds: number) => void;
}

export function createRecordBatcher(sql: Sql, opts: BatcherOptions) {
  const queue: Pending[] = [];
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  async function timed(batch: Pending[]): Promise<void> {
    const started = performance.now();
    if (opts.observe) for (const p of batch) opts.observe('record_wait', (started - p.queuedAt) / 1000);
    await writeBatch(batch);
    if (opts.observe) {
      const took = (performance.now() - started) / 1000;
      for (let i = 0; i < batch.length; i++) opts.observe('record_statement', took);
    }
  }

  async function writeBatch(batch: Pending[]): Promise<void> {
    if (batch.length === 1) {
      const p = batch[0]!;
      await recordMessage(sql, p.input).then(p.resolve, p.reject);
      return;
    }
    try {
      // Same device order in every batch makes lock waits between concurrent batches deadlock-free in practice.
      const ordered = [...batch].sort((a, b) =>
        (a.input.device?.deviceid ?? '').localeCompare(b.input.device?.deviceid ?? ''),
      );
      const results = await sql.begin((tx) => ordered.map((p) => recordMessage(tx, p.input)));
      ordered.forEach((p, i) => p.resolve(results[i]!));
    } catch {
      for (const p of batch) await recordMessage(sql, p.input).then(p.resolve, p.reject);
    }
  }

  function pump(): void {
    while (inFlight < opts.concurrency && queue.length > 0) {
      const batch = queue.splice(0, opts.maxBatch);
      inFlight++;
      void timed(batch).finally(() => {
        inFlight--;
        if (queue.length > 0) pump();
        else if (inFlight === 0) {
          const waiters = idleWaiters;
          idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  return {
    /** Resolves once the record is committed. */
    record(input: RecordInput): Promise<Recorded> {
      return new Promise((resolve, reject) => {
        queue.push({ input, queuedAt: performance.now(), resolve, reject });
        pump();
      });
    },
    /** Resolves when nothing is queued or being written (graceful shutdown). */
    drain(): Promise<void> {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

export type RecordBatcher = ReturnType<typeof createRecordBatcher>;
