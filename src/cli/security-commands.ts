/**
 * `agent-gate security-events list`: failed credentials and misused credentials, newest first.
 */
import type { Command } from 'commander';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { SECURITY_EVENT_TYPES } from '../services/security-events.js';
import { cell, printJson, printTable } from './output.js';

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

function when(v: string): Date {
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new AppError('bad_request', `--since must be a date such as 2026-01-31 or an ISO 8601 time (not "${v}")`);
  return d;
}

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 10000)
    throw new AppError('bad_request', '--limit must be a whole number from 1 to 10000');
  return n;
}

export function securityCommands(program: Command, withDeps: WithDeps): void {
  const events = program
    .command('security-events')
    .description('failed agent credentials and token requests, credentials used for another device');
  events
    .command('list')
    .description('security events, newest first')
    .option('--since <date>', 'only events at or after this date or ISO 8601 time', when)
    .option('--type <type>', `only this type (${SECURITY_EVENT_TYPES.join(', ')})`)
    .option('--address <ip>', 'only from this address (or CIDR)')
    .option(
      '--key <text>',
      'only events naming a credential that contains this text (client id, key:NAME, fingerprint)',
    )
    .option('--limit <n>', 'at most this many', positive, 100)
    .option('--json', 'print a JSON array')
    .action(
      async (o: { since?: Date; type?: string; address?: string; key?: string; limit: number; json?: boolean }) => {
        await withDeps(async (deps) => {
          const rows = await deps.securityEvents.list({
            since: o.since,
            kind: o.type,
            address: o.address,
            credential: o.key,
            limit: o.limit,
          });
          if (o.json) return printJson(rows);
          printTable(
            rows.map((r) => ({ ...r, details: detailsText(r.details) })),
            ['id', 'at', 'kind', 'remoteAddr', 'credential', 'deviceid', 'details'],
          );
        });
      },
    );
}

function detailsText(d: Record<string, unknown> | null): string {
  if (!d) return '-';
  return Object.entries(d)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${cell(v)}`)
    .join(' ');
}
