/**
 * `agent-gate policies list|add|remove|test` and `policies allowlist import`: auto-approval rules from the
 * command line; `agent-gate secrets freeze|unfreeze`: a key's devices stay quarantined whatever the rules.
 */
import fs from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { MATCH_KEYS } from '../services/policy-engine.js';
import { type ProposedRule, checkRule } from '../services/policies.js';
import { cliActor } from './credential-commands.js';
import { printJson, printTable, write, writeError } from './output.js';

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

function readRules(file: string): ProposedRule[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new AppError('bad_request', `Cannot read rules from ${file}: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed))
    throw new AppError('bad_request', `${file} must hold a JSON array of {"action", "match", "comment"}`);
  return parsed.map(checkRule);
}

const whole = (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number');
  return Number(v);
};

export function policyCommands(program: Command, withDeps: WithDeps): void {
  const policies = program
    .command('policies')
    .description('auto-approval rules: tried in order, the first match decides');

  policies
    .command('list')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const { rules, allowlists } = await deps.policies.list();
        if (o.json) return printJson({ rules, allowlists });
        printTable(
          rules.map((r) => ({
            ...r,
            match:
              Object.entries(r.match)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ') || '(any device)',
          })),
          ['id', 'position', 'action', 'match', 'comment'],
        );
        if (allowlists.length) {
          write('\nallowlists:\n');
          printTable(allowlists, ['name', 'kind', 'entries']);
        }
      });
    });

  const add = policies
    .command('add')
    .description('add a rule and apply the rules to the quarantine queue now (see `policies test` first)')
    .requiredOption('--action <action>', 'approve, quarantine or reject')
    .option('--position <n>', 'where in the order (default: last)', whole)
    .option('--comment <text>', 'why (recorded as the reason of its decisions)')
    .option('--json', 'print JSON');
  for (const key of MATCH_KEYS)
    add.option(
      `--${key} <value>`,
      `condition: ${key === 'cidr' ? 'source network, e.g. 10.1.0.0/16' : key === 'allowlist' ? 'on this allowlist (serial, UUID or MAC)' : key === 'agent' ? 'fusioninventory or glpi-agent' : key === 'key' ? 'registered with this registration key' : key === 'tag' ? "the tag of the device's registration key (never the tag the agent sends)" : `device ${key}`}`,
    );
  add.action(async (o: Record<string, string | number | boolean | undefined>) => {
    await withDeps(async (deps) => {
      const match = Object.fromEntries(
        MATCH_KEYS.filter((k) => typeof o[k] === 'string').map((k) => [k, o[k] as string]),
      );
      const r = await deps.policies.add(
        {
          action: o.action as ProposedRule['action'],
          match,
          comment: (o.comment as string | undefined) ?? null,
          position: (o.position as number | undefined) ?? null,
        },
        cliActor(),
      );
      if (o.json) return printJson(r);
      write(
        `rule #${r.rule.id} added at position ${r.rule.position}; ${r.applied.length} quarantined device(s) decided by the rules now\n`,
      );
      if (r.applied.length) printTable(r.applied, ['id', 'deviceid', 'to', 'ruleId']);
    });
  });

  policies
    .command('remove')
    .argument('<id>', 'rule id', whole)
    .option('--json', 'print JSON')
    .action(async (id: number, o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const r = await deps.policies.remove(id, cliActor());
        if (o.json) return printJson(r);
        write(`rule #${r.id} removed\n`);
      });
    });

  policies
    .command('test')
    .description('dry run: what a rule set (default: the saved one) decides for the queue and for recent devices')
    .option('--file <rules.json>', 'a proposed rule set: JSON array of {"action","match","comment"}')
    .option('--days <n>', 'also judge devices first seen in the last N days', whole, 7)
    .option('--json', 'print JSON')
    .action(async (o: { file?: string; days: number; json?: boolean }) => {
      await withDeps(async (deps) => {
        const r = await deps.policies.test(o.file ? readRules(o.file) : null, o.days);
        if (o.json) return printJson(r);
        write(
          `${r.rules} rule(s). Quarantine queue: ${r.queue.devices} device(s): ${r.queue.wouldApprove.length} would be approved, ${r.queue.wouldReject.length} rejected, ${r.queue.wouldStay} stay.\n`,
        );
        printTable([...r.queue.wouldApprove, ...r.queue.wouldReject] as never, [
          'id',
          'deviceid',
          'name',
          'decision',
          'ruleId',
          'frozen',
        ]);
        write(
          `\nDevices first seen in the last ${r.recent.days} day(s) whose state the rules would not have given: ${r.recent.decisions.length} of ${r.recent.devices}\n`,
        );
        printTable(r.recent.decisions, ['id', 'deviceid', 'name', 'state', 'decision', 'ruleId']);
        for (const w of r.warnings) writeError(`warning: ${w}\n`);
      });
    });

  policies
    .command('allowlist')
    .description('replace an allowlist from a CSV file (first column; a header line is skipped)')
    .argument('<action>', 'import')
    .requiredOption('--name <name>', 'allowlist name, used in rules as --allowlist NAME')
    .requiredOption('--kind <kind>', 'serial, uuid or mac')
    .requiredOption('--file <file.csv>', 'CSV file')
    .option('--json', 'print JSON')
    .action(async (action: string, o: { name: string; kind: string; file: string; json?: boolean }) => {
      if (action !== 'import') throw new AppError('bad_request', 'The only allowlist action is import');
      if (o.kind !== 'serial' && o.kind !== 'uuid' && o.kind !== 'mac')
        throw new AppError('bad_request', '--kind must be serial, uuid or mac');
      await withDeps(async (deps) => {
        const r = await deps.policies.importAllowlist(
          o.name,
          o.kind as 'serial',
          fs.readFileSync(o.file, 'utf8'),
          cliActor(),
        );
        if (o.json) return printJson(r);
        write(`allowlist ${r.name} (${r.kind}): ${r.entries} entries\n`);
        for (const w of r.warnings ?? []) writeError(`warning: ${w}\n`);
      });
    });

  const secrets = program.commands.find((c) => c.name() === 'secrets');
  if (!secrets) throw new Error('the secrets command must be registered first');
  for (const [name, frozen] of [
    ['freeze', true],
    ['unfreeze', false],
  ] as const) {
    secrets
      .command(name)
      .description(
        frozen
          ? 'freeze a key for auto-approval: its new devices stay quarantined whatever the rules say'
          : 'let policies approve the devices of a frozen key again',
      )
      .requiredOption('--name <name>', 'key name')
      .option('--reason <text>', 'why')
      .option('--json', 'print JSON')
      .action(async (o: { name: string; reason?: string; json?: boolean }) => {
        await withDeps(async (deps) => {
          const r = await deps.policies.setFrozen(o.name, frozen, o.reason ?? null, cliActor());
          if (o.json) return printJson(r);
          write(`registration key "${r.name}" is ${r.frozen ? 'frozen for auto-approval' : 'no longer frozen'}\n`);
        });
      });
  }
}
