/**
 * GLPI forwarding from the command line: `agent-gate forward` runs only the forwarding worker (beside
 * gateways started with UPSTREAM_WORKERS=0, or as extra workers), until SIGTERM/SIGINT; `forward status`
 * shows the database's forwarding switch, the outbox and every forwarding process with its circuit
 * breaker; `forward backfill --since DATE` enqueues what was accepted before forwarding was on; `forward
 * disable` turns the switch off. `agent-gate outbox list|retry|drop` shows the outbox and acts on dead
 * letters. backfill, disable, retry and drop are audited. None of them needs UPSTREAM_URL but `forward`.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config.js';
import { createDeps, type Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { createLogger } from '../logger.js';
import { OUTBOX_STATES } from '../store/outbox-store.js';
import { cliActor } from './credential-commands.js';
import { printJson, printTable, write } from './output.js';

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

function whole(min: number) {
  return (v: string): number => {
    if (!/^\d{1,15}$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`must be a whole number ≥ ${min}`);
    return Number(v);
  };
}

function isoDate(v: string): Date {
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new InvalidArgumentError('must be a date such as 2027-01-31 or 2027-01-31T12:00:00Z');
  return d;
}

const when = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

function outboxState(v: string): string {
  if (!(OUTBOX_STATES as readonly string[]).includes(v))
    throw new InvalidArgumentError(`must be one of ${OUTBOX_STATES.join(', ')}`);
  return v;
}

export function outboxCommands(program: Command, withDeps: WithDeps): void {
  const forward = program
    .command('forward')
    .description('run only the worker that forwards accepted inventories to GLPI (UPSTREAM_URL), until SIGTERM')
    .option('--workers <n>', 'inventories sent at once (default: UPSTREAM_WORKERS, or 2 when that is 0)', whole(1))
    .action(async (o: { workers?: number }) => {
      const config = loadConfig();
      if (!config.upstreamUrl)
        throw new AppError('bad_request', 'UPSTREAM_URL is not set: there is nothing to forward to');
      const logger = createLogger({ level: config.logLevel, pretty: config.logPretty });
      const deps = await createDeps(config, logger, { role: 'cli' });
      try {
        if ((await deps.readiness.pendingMigrations()) > 0)
          throw new AppError(
            'conflict',
            'The database schema is not up to date: run `agent-gate migrate` (or start the gateway) first',
          );
        await deps.forwarder.enable();
        deps.forwarder.start(o.workers ?? (config.upstreamWorkers || 2));
        await new Promise<void>((resolve) => {
          process.once('SIGTERM', () => resolve());
          process.once('SIGINT', () => resolve());
        });
        logger.info('forwarder: stopping');
      } finally {
        await deps.close();
      }
    });

  forward
    .command('status')
    .description('the forwarding switch, the outbox, and every forwarding process with its circuit breaker')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const s = await deps.forwarder.status();
        if (o.json) return printJson(s);
        const f = s.forwarding;
        process.stdout.write(
          `forwarding: ${f.enabled ? `on since ${when(f.enabledAt)} (by ${f.enabledBy ?? '?'})` : 'off'}\n` +
            `outbox: ${s.outbox.byState.pending} pending, ${s.outbox.byState.in_flight} in flight, ${s.outbox.byState.dead} dead; ` +
            `oldest waiting ${Math.round(s.outbox.oldestPendingSeconds)} s\n`,
        );
        printTable(
          s.forwarders.map((r) => ({
            ...r,
            breakerSince: when(r.breakerSince),
            seenAt: when(r.seenAt),
          })),
          ['name', 'upstreamHost', 'workers', 'breaker', 'breakerSince', 'lastError', 'seenAt', 'alive'],
        );
      });
    });

  forward
    .command('backfill')
    .description('enqueue for GLPI the inventories of approved devices accepted since DATE and never enqueued')
    .requiredOption('--since <date>', 'received at or after this date (e.g. 2027-01-31)', isoDate)
    .option('--json', 'print JSON')
    .action(async (o: { since: Date; json?: boolean }) => {
      await withDeps(async (deps) => {
        const r = await deps.forwarder.backfill(o.since, cliActor());
        if (o.json) return printJson(r);
        process.stdout.write(
          `enqueued ${r.enqueued} inventories of ${r.devices} devices received since ${when(r.since)}` +
            ` (${r.superseded} older ones superseded by a newer full inventory)\n`,
        );
      });
    });

  forward
    .command('disable')
    .description('turn forwarding off in this database (until a process with UPSTREAM_URL starts again)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const r = await deps.forwarder.disable(cliActor());
        if (o.json) return printJson(r);
        process.stdout.write(
          'forwarding is off: nothing new is enqueued (what waits is still sent). Remove UPSTREAM_URL from every gateway, or the next one to start turns it on again\n',
        );
      });
    });

  const outbox = program.command('outbox').description('inventories waiting for, delivered to or refused by GLPI');
  outbox
    .command('list')
    .description('list outbox items, newest first')
    .option(
      '--state <state>',
      `only items in this state (${OUTBOX_STATES.join(', ')}; dead = dead letters)`,
      outboxState,
    )
    .option('--deviceid <deviceid>', 'only this device')
    .option('--limit <n>', 'at most this many', whole(1), 100)
    .option('--json', 'print a JSON array')
    .action(async (o: { state?: string; deviceid?: string; limit: number; json?: boolean }) => {
      await withDeps(async (deps) => {
        const rows = await deps.forwarder.list({
          state: o.state,
          deviceid: o.deviceid,
          limit: Math.min(o.limit, 1000),
        });
        if (o.json) return printJson(rows);
        printTable(rows as never, [
          'id',
          'deviceid',
          'kind',
          'partial',
          'state',
          'attempts',
          'lastStatus',
          'lastError',
          'createdAt',
          'nextAttemptAt',
        ]);
      });
    });

  for (const what of ['retry', 'drop'] as const) {
    outbox
      .command(what)
      .description(
        what === 'retry'
          ? 'send a dead (or waiting) item again now, with fresh attempts'
          : 'remove a dead (or waiting) item: it is never sent',
      )
      .argument('<id>', 'outbox item id', whole(1))
      .option('--json', 'print JSON')
      .action(async (id: number, o: { json?: boolean }) => {
        await withDeps(async (deps) => {
          const r = await deps.forwarder[what](id, cliActor());
          if (o.json) return printJson(r);
          write(what === 'retry' ? `outbox item ${id} is due again\n` : `outbox item ${id} dropped\n`);
        });
      });
  }
}
