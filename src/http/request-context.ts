/**
 * Per-request context: a request id on every request (the caller's `X-Request-Id` when it is well-formed,
 * else a new one), echoed in the answer, carried by a child logger so every log line of that request names
 * it, and put in every admin error body, so an operator's error can be matched to its log lines. Also the
 * admin API's one error encoder: `{status, code, message, requestId}`.
 */
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { AppError } from '../errors.js';

/** A caller's id is taken only when it is short and plain (it goes into logs and headers verbatim). */
const WELL_FORMED = /^[A-Za-z0-9._:-]{8,128}$/;

interface RequestContext {
  readonly requestId: string;
  readonly log: Logger;
}

/**
 * Made when first asked for: most agent requests never log a line nor show their id (agents are not sent
 * it), so the id is generated and the child logger made only for the requests that do.
 */
class LazyContext implements RequestContext {
  private id: string | undefined;
  private child: Logger | undefined;
  constructor(
    private readonly logger: Logger,
    private readonly given: string | string[] | undefined,
  ) {}

  get requestId(): string {
    const given = this.given;
    return (this.id ??= typeof given === 'string' && WELL_FORMED.test(given) ? given : randomUUID());
  }

  get log(): Logger {
    return (this.child ??= this.logger.child({ requestId: this.requestId }));
  }
}

/**
 * `echo(req)` says whether the answer carries `X-Request-Id`: agents get exactly their protocol's headers
 * (and identical refusals must stay byte-identical), so only operator-facing answers do.
 */
export function requestContext(logger: Logger, echo: (req: Request) => boolean): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const ctx = new LazyContext(logger, req.headers['x-request-id']);
    res.locals.ctx = ctx;
    if (echo(req)) res.setHeader('X-Request-Id', ctx.requestId);
    next();
  };
}

function ctxOf(res: Response): RequestContext | undefined {
  return res.locals.ctx as RequestContext | undefined;
}

/** The request's logger (its lines carry `requestId`), or `fallback` outside a request context. */
export function requestLog(res: Response, fallback: Logger): Logger {
  return ctxOf(res)?.log ?? fallback;
}

export function requestIdOf(res: Response): string | null {
  return ctxOf(res)?.requestId ?? null;
}

/** The admin API's (and the probes') error body. The status and message come from the AppError alone. */
export function sendJsonError(res: Response, err: AppError): void {
  if (res.headersSent) return void res.end();
  if (err.code === 'unauthorized') res.setHeader('WWW-Authenticate', 'Bearer realm="agent-gate admin"');
  if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
  res.setHeader('Cache-Control', 'no-store');
  res
    .status(err.status)
    .json({ status: 'error', code: err.code, message: err.publicMessage, requestId: requestIdOf(res) });
}
