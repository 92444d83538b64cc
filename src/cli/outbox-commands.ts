/**
 * GLPI forwarding from the command line: `agent-gate forward` runs only the forwarding worker (beside
 * gateways started with UPSTREAM_WORKERS=0, or as extra workers), until SIGTERM/SIGINT; `agent-gate outbox
 * list|retry|drop` shows the outbox and acts on dead letters (retry and drop are audited).
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

function outboxState(v: string): string {
  if (!(OUTBOX_STATES as readonly string[]).includes(v))
    throw new InvalidArgumentError(`must be one of ${OUTBOX_STATES.join(', ')}`);
  return v;
}

export function outboxCommands(program: Command, withDeps: WithDeps): void {
  program
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
