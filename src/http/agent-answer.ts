/**
 * How every answer reaches an agent: in its own wire format and compression, with its correlation headers
 * echoed and nothing else. The one encoder of agent refusals lives here too (`sendAgentError`), so a 401, a
 * 429 and a 400 are built the same way wherever they are decided, and no stack trace or internal detail can
 * reach an agent.
 */
import type { Request, Response } from 'express';
import type { AppError } from '../errors.js';
import { encodeAnswer, errorBody } from '../protocol/answers.js';
import { type Compression, mediaType } from '../protocol/decode.js';
import type { WireFormat } from '../protocol/message.js';

/** The correlation headers echoed in every answer: [name as sent, name as Node keys it]. */
const ECHOED_HEADERS = ['GLPI-Agent-ID', 'GLPI-Request-ID', 'GLPI-Proxy-ID'].map((n) => [n, n.toLowerCase()] as const);
/** A header value that may be echoed verbatim (visible ASCII, no space). */
const ECHOABLE = /^[\x21-\x7e]+$/;

/** A request header as one string of at most 256 characters, or null when absent or empty. */
export function header(req: Request, name: string): string | null {
  const v = req.headers[name.toLowerCase()];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? null : s.slice(0, 256);
}

/** The format an answer must take before the body could be read: JSON for the GLPI Agent's JSON messages. */
export function formatFromHeaders(req: Request): WireFormat {
  const type = mediaType(req.headers['content-type']);
  if (type === 'application/json') return 'json';
  if (type === 'application/xml' || type === 'text/xml') return 'xml';
  return header(req, 'GLPI-Agent-ID') ? 'json' : 'xml';
}

/** The compression the agent announced in Content-Type (the body itself is not looked at). */
export function compressionFromLabel(req: Request): Compression {
  const type = mediaType(req.headers['content-type']);
  if (type === 'application/x-compress-zlib') return 'zlib';
  if (type === 'application/x-compress-gzip') return 'gzip';
  return 'none';
}

export function sendAgentAnswer(
  req: Request,
  res: Response,
  answer: { status: number; format: WireFormat; text: string },
  compression: Compression,
): void {
  const encoded = encodeAnswer(answer.text, answer.format, compression);
  for (const [name, key] of ECHOED_HEADERS) {
    if (req.headers[key] === undefined) continue;
    const v = header(req, key);
    if (v !== null && ECHOABLE.test(v)) res.setHeader(name, v);
  }
  res.setHeader('Cache-Control', 'no-cache, no-store');
  res.setHeader('Content-Type', encoded.contentType); // exactly this: no charset parameter
  // What express's res.send would do with a buffer here (no ETag, never a 304 for an agent's answer),
  // without its per-call header lookups: every agent answer passes here.
  res.setHeader('Content-Length', encoded.body.length);
  res.statusCode = answer.status;
  if (req.method === 'HEAD') res.end();
  else res.end(encoded.body);
}

export interface AgentErrorOptions {
  /** The format of the message when it was parsed; else it is guessed from the headers. */
  format?: WireFormat;
  /** The compression of the message when known; else the one its Content-Type announced. */
  compression?: Compression;
  prologFreqHours: number;
}

/** Encodes a refusal for an agent: the AppError's status and public message, in the agent's format. */
export function sendAgentError(req: Request, res: Response, err: AppError, opts: AgentErrorOptions): void {
  const format = opts.format ?? formatFromHeaders(req);
  if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
  sendAgentAnswer(
    req,
    res,
    { status: err.status, format, text: errorBody(format, err.publicMessage, opts.prologFreqHours) },
    opts.compression ?? compressionFromLabel(req),
  );
}
