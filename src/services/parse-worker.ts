/**
 * The parse worker (a worker thread of parse-pool.ts): the work that grows with the size of an inventory —
 * text decoding, the full JSON or XML parse, redaction, building the inventory view — done away from the
 * event loop. What it answers is small: a message without its text and content, or the view as JSON text.
 * Errors come back as `{error}` values, so their code and public message survive the thread boundary.
 */
import { AppError, type ErrorCode } from '../errors.js';
import { encodeAnswer } from '../protocol/answers.js';
import type { Compression } from '../protocol/decode.js';
import { type AgentMessage, decodedText, parseText } from '../protocol/message.js';
import { summaryFromBody, viewFromBody } from './inventory-view.js';
import type { InventorySummary } from '../store/read-store.js';

export type WorkerAnswer<T> = { ok: T } | { error: { code: ErrorCode; message: string } };

function guard<T>(fn: () => T): WorkerAnswer<T> {
  try {
    return { ok: fn() };
  } catch (err) {
    if (err instanceof AppError) return { error: { code: err.code, message: err.publicMessage } };
    throw err;
  }
}

export interface ParseTask {
  /** The decoded body, in parts (joined here, off the event loop). */
  decoded: Uint8Array[];
  secrets: string[];
  /** The request's compression, so a redacted text is re-encoded the way it came. */
  compression: Compression;
}

/** Parses one decoded body (transferred, not copied) into a message slimmed for the trip back. */
export function parse(task: ParseTask): WorkerAnswer<AgentMessage> {
  return guard(() => {
    // The bytes are referenced only until they are text: the parse below may then collect them.
    const text = decodedText(Buffer.concat(task.decoded.splice(0)));
    return slimMessage(parseText(text, task.secrets), task.compression);
  });
}

export interface ViewTask {
  body: Uint8Array;
  compression: string;
  format: string;
  limit: number;
}

/** The inventory view of a stored submission, as JSON text (serialised here, not on the event loop). */
export function view(task: ViewTask): WorkerAnswer<string> {
  return guard(() => {
    const body = Buffer.from(task.body.buffer, task.body.byteOffset, task.body.byteLength);
    return JSON.stringify(viewFromBody(body, task.compression, task.format, task.limit));
  });
}

/** The summary of a stored submission's view (only the summary crosses back). */
export function summary(task: ViewTask): WorkerAnswer<InventorySummary> {
  return guard(() => {
    const body = Buffer.from(task.body.buffer, task.body.byteOffset, task.body.byteLength);
    return summaryFromBody(body, task.compression, task.format, task.limit);
  });
}

/** Top-level values of a JSON message larger than this (serialised) are left behind in the worker. */
const MAX_RETURNED_VALUE = 64 * 1024;

/**
 * What the event loop needs of a message parsed here: everything but its text and content (left behind),
 * plus the redacted text re-encoded for storage and a partial's content as JSON text, both made here.
 */
export function slimMessage(msg: AgentMessage, compression: Compression): AgentMessage {
  let json: Record<string, unknown> | null = null;
  if (msg.json) {
    json = {};
    for (const [key, value] of Object.entries(msg.json))
      if (key !== 'content' && (JSON.stringify(value)?.length ?? 0) <= MAX_RETURNED_VALUE) json[key] = value;
  }
  const stored = compression === 'deflate' ? 'zlib' : compression;
  return {
    ...msg,
    text: '',
    json,
    offThread: {
      reencoded: msg.redacted ? { body: encodeAnswer(msg.text, msg.format, stored).body, compression: stored } : null,
      contentJson:
        msg.kind === 'inventory' && msg.partial && msg.json ? (JSON.stringify(msg.json.content) ?? null) : null,
    },
  };
}
