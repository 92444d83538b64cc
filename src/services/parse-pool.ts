/**
 * Worker threads for the work that grows with an inventory's size (parse-worker.ts): a body's parse, and
 * building an inventory view.
 *
 * Where a body is parsed:
 * - up to SHARED_PARSE_MIN (PROLOG, CONTACT, small partials): on the event loop, always; a thread hop costs
 *   more than their parse;
 * - over INLINE_PARSE_MAX: in a worker, always (its heap is capped, the event loop never holds its tree);
 * - in between (a desktop's 230 KB inventory takes 2.5-3 ms to check and parse, issue 13): in a worker when
 *   one is loaded and has no more than one task waiting, else on the event loop. Under load the two share
 *   the work, so the gateway uses a second core; a worker that is still loading (about 2 s) or busy never
 *   makes an agent wait for it.
 *
 * Each worker's heap is capped (`heapMb`): a body whose parse needs more — a document built to explode in
 * memory — fails that one task with 413 and the worker is replaced, instead of growing the process.
 *
 * The workers load the TypeScript sources through tsx's tsImport, from a bootstrap of plain JavaScript, so
 * this works under `agent-gate serve` (tsx registered by bin/agent-gate.js, which workers do not inherit),
 * under `node --import tsx` and under vitest alike. A worker that dies (its heap cap) fails only its task
 * and is replaced for the next one; idle workers stop after a minute.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { AppError } from '../errors.js';
import { type Compression, joinParts, partsLength } from '../protocol/decode.js';
import { type AgentMessage, parseDecoded } from '../protocol/message.js';
import { viewFromBody } from './inventory-view.js';
import type { InventorySummary } from '../store/read-store.js';
import type { ParseTask, ViewTask, WorkerAnswer } from './parse-worker.js';

/** Decoded bodies up to this size are always parsed on the event loop. */
export const SHARED_PARSE_MIN = 32 * 1024;

/**
 * Each worker's young generation (V8's default lets it grow to 48 MB). A worker's garbage is a parse's
 * short-lived objects, and the large strings and buffers of a big body are allocated outside it anyway:
 * capped at 4 MB, the bench's memory case (50 concurrent 20 MB inventories) peaked at 307–344 MB instead of
 * 354–390 MB (six and five runs), with no measurable change in the time to parse a desktop inventory.
 */
const WORKER_YOUNG_MB = 4;
/** Decoded bodies over this size are always parsed in a worker (about 10 ms for 1 MB of JSON). */
export const INLINE_PARSE_MAX = 1024 * 1024;
/** Stored bodies (compressed) up to this size get their view built inline. */
export const INLINE_VIEW_MAX = 64 * 1024;

export interface ParsePoolOptions {
  /** Worker threads (PARSE_WORKERS). */
  threads: number;
  /** Heap cap of each worker, MB. */
  heapMb: number;
  /** INFLATE_LIMIT: the cap on a stored body decoded again for its view. */
  inflateLimit: number;
}

export interface ParsePoolStats {
  threads: number;
  queued: number;
  running: number;
  completed: number;
}

export interface ParsePool {
  /**
   * A decoded request body (one buffer, or the inflater's parts in order) as a message; a large one is
   * parsed by a worker, which joins the parts (never the event loop). With `transfer` the bytes are moved
   * to it, not copied (the caller must not use `decoded` afterwards: pass it for the inflater's output,
   * never for the request body itself).
   */
  parse(
    decoded: Buffer | Buffer[],
    secrets: string[],
    compression: Compression,
    transfer?: boolean,
  ): Promise<AgentMessage>;
  /** The inventory view of a stored submission, as JSON text. */
  viewJson(body: Buffer, compression: string, format: string): Promise<string>;
  /** The summary of that view, made in a worker whatever its size (only the summary comes back). */
  summary(body: Buffer, compression: string, format: string): Promise<InventorySummary>;
  /**
   * Starts a worker and waits until it has loaded its modules (about 2 s, paid otherwise by the first large
   * body): for a process that wants that cost up front.
   */
  warm(): Promise<void>;
  stats(): ParsePoolStats;
  /** Counts of tasks by where they ran and how they ended, for the metrics. */
  readonly tasks: Map<string, number>;
  close(): Promise<void>;
}

/** A copy in an ArrayBuffer of its own (never Node's shared pool), so it can be moved to a worker. */
function copyOf(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length);
  b.copy(copy);
  return copy;
}

/**
 * What each worker runs: plain JavaScript (a worker does not inherit the main thread's tsx hooks, and
 * `--import tsx` in a worker's execArgv does not take on Node 20), which loads parse-worker.ts through
 * tsx's tsImport and answers `{id, name, task}` messages.
 */
function bootstrap(): string {
  const target = new URL('./parse-worker.ts', import.meta.url).href;
  const tsxRoot = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(path.join(tsxRoot, 'dist', 'esm', 'api', 'index.mjs')).href;
  return `
const { parentPort } = require('node:worker_threads');
const ready = import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(target)}, ${JSON.stringify(target)}));
ready.then(() => parentPort.postMessage({ loaded: true }), () => {});
parentPort.on('message', async ({ id, name, task }) => {
  try {
    const mod = await ready;
    parentPort.postMessage({ id, out: mod[name](task) });
  } catch (err) {
    parentPort.postMessage({ id, crash: String((err && err.stack) || err) });
  }
});`;
}

interface Job {
  id: number;
  name: 'parse' | 'view' | 'summary';
  task: ParseTask | ViewTask;
  transfer: ArrayBuffer[];
  resolve(v: unknown): void;
  reject(err: unknown): void;
}

interface Thread {
  worker: Worker;
  job: Job | null;
  idle: NodeJS.Timeout | null;
  /** Its modules are loaded: a task sent now starts at once. */
  loaded: boolean;
}

const IDLE_MS = 60_000;

export function createParsePool(opts: ParsePoolOptions): ParsePool {
  let running = 0;
  let completed = 0;
  let nextId = 0;
  let closed = false;
  const code = bootstrap();
  const threads: Thread[] = [];
  const queue: Job[] = [];
  const tasks = new Map<string, number>();
  const count = (key: string) => tasks.set(key, (tasks.get(key) ?? 0) + 1);

  function spawn(): Thread {
    const worker = new Worker(code, {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: opts.heapMb, maxYoungGenerationSizeMb: WORKER_YOUNG_MB },
    });
    const t: Thread = { worker, job: null, idle: null, loaded: false };
    worker.on('message', (m: { id: number; out?: unknown; crash?: string; loaded?: true }) => {
      if (m.loaded) {
        t.loaded = true;
        return;
      }
      const job = t.job;
      if (!job || job.id !== m.id) return;
      t.job = null;
      completed++;
      if (m.crash !== undefined) job.reject(new Error(`parse worker: ${m.crash}`));
      else job.resolve(m.out);
      pump();
    });
    const gone = (err: unknown) => {
      const at = threads.indexOf(t);
      if (at === -1) return;
      threads.splice(at, 1);
      if (t.idle) clearTimeout(t.idle);
      const job = t.job;
      t.job = null;
      job?.reject(err);
      pump(); // a replacement for what waits
    };
    worker.on('error', gone);
    worker.on('exit', (codeOut) => gone(new Error(`parse worker exited with ${codeOut}`)));
    threads.push(t);
    return t;
  }

  function pump(): void {
    while (queue.length > 0 && !closed) {
      const t = threads.find((x) => x.job === null) ?? (threads.length < opts.threads ? spawn() : null);
      if (!t) return;
      const job = queue.shift()!;
      t.job = job;
      if (t.idle) clearTimeout(t.idle);
      t.idle = null;
      t.worker.ref();
      t.worker.postMessage({ id: job.id, name: job.name, task: job.task }, job.transfer);
    }
    for (const t of threads)
      if (t.job === null && !t.idle) {
        t.worker.unref(); // an idle worker never keeps the process alive
        t.idle = setTimeout(() => void t.worker.terminate(), IDLE_MS).unref();
      }
  }

  /**
   * A loaded worker can take a shared-size parse now: fewer tasks waiting than loaded workers. With none at
   * all, one is started for the next ones (it loads while the event loop parses).
   */
  function workerFree(): boolean {
    if (closed) return false;
    if (threads.length === 0) {
      spawn();
      pump(); // idle until a task comes: its idle timer runs from now
      return false;
    }
    let loaded = 0;
    for (const t of threads) if (t.loaded) loaded++;
    return loaded > 0 && queue.length < loaded;
  }

  async function run<T>(name: Job['name'], task: ParseTask | ViewTask, transfer: ArrayBuffer[]): Promise<T> {
    if (closed) throw new AppError('unavailable', 'Service temporarily unavailable');
    running++;
    try {
      const answer = await new Promise<WorkerAnswer<T>>((resolve, reject) => {
        queue.push({ id: nextId++, name, task, transfer, resolve: (v) => resolve(v as WorkerAnswer<T>), reject });
        pump();
      });
      if ('error' in answer) {
        count(`${name}:refused`);
        throw new AppError(answer.error.code, answer.error.message);
      }
      count(`${name}:ok`);
      return answer.ok;
    } catch (err) {
      if (err instanceof AppError) throw err;
      if ((err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        count(`${name}:out_of_memory`);
        throw new AppError('payload_too_large', 'Body too large to parse', { cause: err });
      }
      count(`${name}:failed`);
      throw err;
    } finally {
      running--;
    }
  }

  return {
    async parse(decoded, secrets, compression, transfer = false) {
      const parts = Array.isArray(decoded) ? decoded : [decoded];
      const size = partsLength(parts);
      if (size <= SHARED_PARSE_MIN || (size <= INLINE_PARSE_MAX && !workerFree())) {
        count('parse:inline');
        return parseDecoded(joinParts(parts), secrets);
      }
      // Moved when allowed (the inflater's parts: each ArrayBuffer is theirs alone, several parts may share
      // one); else copied once into a buffer of their own, which is moved.
      const moved = transfer ? parts : [copyOf(joinParts(parts))];
      const buffers = [...new Set(moved.map((p) => p.buffer as ArrayBuffer))];
      return run<AgentMessage>('parse', { decoded: moved, secrets, compression }, buffers);
    },
    async viewJson(body, compression, format) {
      if (body.length <= INLINE_VIEW_MAX) {
        count('view:inline');
        return JSON.stringify(viewFromBody(body, compression, format, opts.inflateLimit));
      }
      const bytes = copyOf(body);
      const task: ViewTask = { body: bytes, compression, format, limit: opts.inflateLimit };
      return run<string>('view', task, [bytes.buffer as ArrayBuffer]);
    },
    async summary(body, compression, format) {
      // Always in a worker, whatever the size: the summaries are background work, which on the event loop
      // took ~27 % of it from the agents under ingest load (issue 13).
      const bytes = copyOf(body);
      const task: ViewTask = { body: bytes, compression, format, limit: opts.inflateLimit };
      return run<InventorySummary>('summary', task, [bytes.buffer as ArrayBuffer]);
    },
    async warm() {
      await run('parse', { decoded: [Buffer.from('{}')], secrets: [], compression: 'none' }, []).catch(() => {});
    },
    stats: () => ({ threads: threads.length, queued: queue.length, running, completed }),
    tasks,
    async close() {
      closed = true;
      for (const job of queue.splice(0)) job.reject(new AppError('unavailable', 'Service temporarily unavailable'));
      await Promise.all(threads.map((t) => t.worker.terminate()));
    },
  };
}
