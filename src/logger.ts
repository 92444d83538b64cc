/**
 * pino, JSON lines by default and pretty for humans (LOG_PRETTY=true). Authorization headers, cookies,
 * secrets and tokens are redacted at the logger, so no call site can leak one by accident.
 */
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'clientSecret',
  '*.clientSecret',
  'client_secret',
  '*.client_secret',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
];

export function createLogger(opts: { level: string; pretty: boolean }): Logger {
  const base = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    base: { service: 'agent-gate' },
  };
  if (opts.pretty)
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' },
      },
    });
  return pino(base);
}
