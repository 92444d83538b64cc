/**
 * One error class with a closed set of codes and one code → HTTP status table. The public message is what
 * a caller (agent or operator) sees; `cause` and `details` are for the log only. Nothing else may decide a
 * status code, so an internal failure can never leak detail or a stack trace to a client.
 */

export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  not_implemented: 501,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface AppErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
  retryAfterSeconds?: number;
}

export class AppError extends Error {
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    readonly publicMessage: string,
    opts: AppErrorOptions = {},
  ) {
    super(publicMessage, { cause: opts.cause });
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
    this.details = opts.details;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

const INTERNAL_MESSAGE = 'Internal error';

/** Turns anything thrown into an AppError; unknown errors become a 500 with a fixed message. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (isDatabaseUnavailable(err)) return new AppError('unavailable', 'Service temporarily unavailable', { cause: err });
  return new AppError('internal', INTERNAL_MESSAGE, { cause: err });
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '57P01',
  '57P02',
  '57P03',
]);

/** True for errors that mean "the database (or Redis) is away", as opposed to a bug. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE_CODES.has(code);
}
