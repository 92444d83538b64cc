/**
 * `agent-gate devices show|approve|reject|undo`: the review workflow from the command line. A device is
 * named as everywhere (services/records.ts parseDeviceRef): `id:15` (or `#15`) is row 15, anything else a
 * deviceid, so `15` is the device whose deviceid is "15". A --filter decision first reports how many devices match; --yes confirms it.
 */
import type { Command } from 'commander';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { type Decision, parseFilter } from '../services/review.js';
import { cliActor } from './credential-commands.js';
import { cell, printJson, printTable, write } from './output.js';

const DEVICE_REF_HELP = 'a deviceid, or id:N (or #N) for the row id N shown by devices list';

type InventoryOut = Awaited<ReturnType<Deps['inventoryRead']['inventory']>>;

/** The inventory as text: one block per section, a table for lists (software: name, version, publisher). */
function printInventory(inv: InventoryOut): void {
  const out = process.stdout;
  out.write(`device ${inv.id} ${inv.deviceid} (${inv.state})\n`);
  if (inv.sections.length === 0) {
    out.write('no inventory received yet\n');
    return;
  }
  if (inv.source)
    out.write(
      `inventory of ${cell(inv.source.receivedAt)} (${inv.source.state ?? 'gone'}, ${inv.source.format}), ${inv.source.partialsMerged} partial(s) merged since\n`,
    );
  for (const s of inv.sections) {
    out.write(`\n== ${s.title} (${s.count}${s.truncated ? `, first ${s.items.length} shown` : ''})\n`);
    const columns =
      s.key === 'softwares' ? ['name', 'version', 'publisher'] : [...new Set(s.items.flatMap(Object.keys))];
    if (s.items.length === 1 && s.key !== 'softwares') {
      for (const [k, v] of Object.entries(s.items[0]!)) out.write(`${k.padEnd(24)}${cell(v)}\n`);
    } else printTable(s.items, columns.slice(0, 8));
  }
}

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

export function deviceCommands(devices: Command, withDeps: WithDeps): void {
  devices
    .command('show')
    .description('everything known about one device: identity, inventory summary, history, sources, conflicts')
    .argument('<device>', DEVICE_REF_HELP)
    .option('--inventory', 'print the inventory itself, section by section (software, disks, interfaces, users…)')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: { json?: boolean; inventory?: boolean }) => {
      await withDeps(async (deps) => {
        if (o.inventory) {
          const device = await deps.records.device(ref);
          if (!device) throw new AppError('not_found', `No device "${ref}"`);
          const inv = await deps.inventoryRead.inventory(device);
          if (o.json) return printJson(inv);
          return printInventory(inv);
        }
        const d = await deps.review.show(ref);
        if (!d) throw new AppError('not_found', `No device "${ref}"`);
        if (o.json) return printJson(d);
        const line = (k: string, v: unknown) =>
          write(
            `${k.padEnd(16)}${v === null || v === undefined || v === '' ? '-' : Array.isArray(v) ? v.map(cell).join(', ') || '-' : v instanceof Date ? v.toISOString() : cell(v)}\n`,
          );
        line('id', d.id);
        line('deviceid', d.deviceid);
        line('state', d.state);
        line('name', d.name);
        line('serial', d.serial);
        line('uuid', d.uuid);
        line('manufacturer', d.manufacturer);
        line('model', d.model);
        line('os', d.os);
        line('macs', d.macs);
        line('ips', d.ips);
        line('tag', d.tag);
        line('claimed tag', d.claimedTag === null ? null : `${d.claimedTag} (sent by the agent, not verified)`);
        if (d.claimedTagMismatch) line('tag mismatch', 'the agent claims another tag than its own (GLPI gets its tag)');
        line('key', d.keyName);
        line('client', d.clientId);
        line('agent', d.agentVersion);
        line('first seen', d.firstSeen);
        line('last seen', d.lastSeen);
        line('last address', d.lastRemoteAddr);
        line(
          'via proxies',
          d.proxies.length === 0 ? 'none (direct)' : d.proxies.map((p) => p.proxyChain.join(' > ')).join('; '),
        );
        if (d.inventory)
          line(
            'inventory',
            `${d.inventory.softwareCount} software, ${d.inventory.networkCount} network interfaces, ${d.inventory.sections.length} sections`,
          );
        line(
          'look-alikes',
          d.duplicates.length === 0
            ? 'none'
            : d.duplicates.map((x) => `${x.id} ${x.deviceid} (same ${x.shared.join(', ')})`).join('; '),
        );
        if (d.state === 'conflict') write(`\nconflict: ${cell(d.conflictDetails)}\n`);
        write('\nhistory:\n');
        printTable(d.history as never, ['at', 'from', 'to', 'actor', 'reason']);
        write('\nsubmissions:\n');
        printTable(d.submissions as never, ['state', 'kind', 'n', 'bytes']);
      });
    });

  for (const decision of ['approve', 'reject'] as Decision[]) {
    devices
      .command(decision)
      .description(
        `${decision} devices: ${decision === 'approve' ? 'their held inventories are released in order' : 'their agents are told to stop sending inventories'}`,
      )
      .argument('[devices...]', DEVICE_REF_HELP)
      .option('--reason <text>', 'why (kept in the device history and the audit log)')
      .option(
        '--filter <filter>',
        'every device matching e.g. tag=paris,state=quarantined (claimedTag=, key=, subnet=, q= too)',
      )
      .option('--yes', 'with --filter: go ahead (without it, only the matching count is shown)')
      .option('--json', 'print JSON')
      .action(async (ids: string[], o: { reason?: string; filter?: string; yes?: boolean; json?: boolean }) => {
        await withDeps(async (deps) => {
          const actor = cliActor();
          if (o.filter) {
            if (ids.length > 0) throw new AppError('bad_request', 'Give either ids or --filter, not both');
            const filter = parseFilter(o.filter);
            const preview = await deps.review.decideByFilter(filter, decision, o.reason ?? null, actor);
            if (!o.yes) {
              if (o.json) return printJson(preview);
              printTable(preview.devices as never, ['id', 'deviceid', 'name', 'state']);
              write(`${preview.count} device(s) match. Re-run with --yes to ${decision} them.\n`);
              return;
            }
            const done = await deps.review.decideByFilter(filter, decision, o.reason ?? null, actor, preview.count);
            if (o.json) return printJson(done);
            write(`${decision === 'approve' ? 'approved' : 'rejected'} ${done.count} device(s)\n`);
            return;
          }
          const results = await deps.review.decide(ids, decision, o.reason ?? null, actor);
          if (o.json) return printJson(results);
          printTable(results as never, ['id', 'deviceid', 'from', 'to', 'changed', 'releasedSubmissions']);
        });
      });
  }

  devices
    .command('rebind')
    .description('pin a device to another credential (audited): a registration key or a per-agent client')
    .argument('<device>', DEVICE_REF_HELP)
    .option('--key <name>', 'registration key the device may speak through from now on')
    .option('--client <clientId>', 'per-agent client (agc_…) the device may speak through from now on')
    .option('--reason <text>', 'why (recorded in the audit log)')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: { key?: string; client?: string; reason?: string; json?: boolean }) => {
      if (Boolean(o.key) === Boolean(o.client))
        throw new AppError('bad_request', 'Give either --key NAME or --client CLIENT_ID');
      await withDeps(async (deps) => {
        const r = await deps.review.rebind(ref, { key: o.key, client: o.client }, o.reason ?? null, cliActor());
        if (o.json) return printJson(r);
        write(`device ${r.deviceid} is pinned to ${r.key ? `key ${r.key}` : `client ${r.clientId}`}\n`);
      });
    });

  devices
    .command('undo')
    .description('revert the last decision on a device (within 15 minutes)')
    .argument('<device>', DEVICE_REF_HELP)
    .option('--json', 'print JSON')
    .action(async (ref: string, o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const r = await deps.review.undo(ref, cliActor());
        if (o.json) return printJson(r);
        write(`device ${r?.deviceid} is ${r?.to} again\n`);
      });
    });
}
