/**
 * `agent-gate secrets|clients|certs|operators|audit`: the credential lifecycle from the command line. Plaintext
 * secrets are printed once, by the command that creates them.
 */
import os from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import { parseDuration } from '../config.js';
import type { Deps } from '../deps.js';
import { type Actor, OPERATOR_ROLES, type OperatorRole } from '../services/admin.js';
import { printJson, printTable, write } from './output.js';

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

export function cliActor(): Actor {
  return { name: `cli:${os.userInfo().username}`, remoteAddr: null };
}

function duration(v: string): number {
  try {
    return parseDuration(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function wholeNumber(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number ≥ 0');
  return Number(v);
}

function isoDate(v: string): Date {
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new InvalidArgumentError('must be a date such as 2027-01-31 or 2027-01-31T12:00:00Z');
  return d;
}

const when = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : 'never');

export function credentialCommands(program: Command, withDeps: WithDeps): void {
  const secrets = program
    .command('secrets')
    .description('registration keys: the shared secrets agents present as their Basic password');

  secrets
    .command('create')
    .description('create a registration key and print its secret once')
    .requiredOption('--name <name>', 'key name, e.g. a site')
    .option('--tag <tag>', 'tag/entity assigned to the devices it registers')
    .option('--max-devices <n>', 'how many devices it may register (0 = unlimited)', wholeNumber, 0)
    .option('--expires <date>', 'date after which the key stops working', isoDate)
    .option('--comment <text>', 'free text')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        name: string;
        tag?: string;
        maxDevices: number;
        expires?: Date;
        comment?: string;
        json?: boolean;
      }) => {
        await withDeps(async (deps) => {
          const { key, secret } = await deps.admin.createKey(
            {
              name: o.name,
              tag: o.tag ?? null,
              maxDevices: o.maxDevices,
              expiresAt: o.expires ?? null,
              comment: o.comment ?? null,
            },
            cliActor(),
          );
          if (o.json) return printJson({ name: key.name, version: 1, secret, key });
          write(
            `registration key "${key.name}" created.\nsecret (shown once, store it now): ${secret}\nagents: --user <anything> --password ${secret}\n`,
          );
        });
      },
    );

  secrets
    .command('list')
    .description('list registration keys with their versions (secrets masked)')
    .option('--json', 'print a JSON array')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const keys = await deps.admin.listKeys();
        if (o.json) return printJson(keys);
        printTable(
          keys.map((k) => ({
            ...k,
            versions: k.versions
              .map(
                (v) =>
                  `v${v.version} ${v.secret}${v.expiresAt ? ` until ${when(v.expiresAt)}` : ''}${v.valid ? '' : ' (closed)'}`,
              )
              .join('; '),
            devices: `${k.devicesUsed}/${k.maxDevices || '∞'}`,
          })),
          ['name', 'active', 'tag', 'devices', 'expiresAt', 'versions'],
        );
      });
    });

  secrets
    .command('rotate')
    .description(
      'make a new version of a key (printed once); older versions keep working until the grace window closes',
    )
    .requiredOption('--name <name>', 'key name')
    .option(
      '--grace <duration>',
      'how long older versions stay valid: 7d, 12h, 0 (cut off now, for a leaked key)',
      duration,
      7 * 86400,
    )
    .option('--json', 'print JSON')
    .action(async (o: { name: string; grace: number; json?: boolean }) => {
      await withDeps(async (deps) => {
        const r = await deps.admin.rotateKey(o.name, o.grace, cliActor());
        if (o.json)
          return printJson({
            name: r.key.name,
            version: r.version,
            secret: r.secret,
            previousVersionsExpireAt: r.previousExpiresAt,
            key: r.key,
          });
        write(
          `registration key "${o.name}" rotated to version ${r.version}.\nnew secret (shown once, store it now): ${r.secret}\nolder versions stop working at ${when(r.previousExpiresAt)}\nwho still uses them: agent-gate secrets usage --name ${o.name}\n`,
        );
      });
    });

  secrets
    .command('usage')
    .description('which devices and addresses used each version of a key, and when last')
    .requiredOption('--name <name>', 'key name')
    .option('--limit <n>', 'rows per page (at most 1000)', '100')
    .option('--cursor <cursor>', 'the next page: the nextCursor a previous page printed')
    .option('--json', 'print JSON')
    .action(async (o: { name: string; limit: string; cursor?: string; json?: boolean }) => {
      await withDeps(async (deps) => {
        const { key, usage, nextCursor } = await deps.admin.keyUsage(o.name, {
          limit: Number(o.limit),
          cursor: o.cursor,
        });
        if (o.json) return printJson({ key, usage, nextCursor });
        printTable(usage as never, [
          'version',
          'prefix',
          'expiresAt',
          'deviceid',
          'remoteAddr',
          'requests',
          'lastUsed',
        ]);
        if (nextCursor)
          process.stdout.write(`more: agent-gate secrets usage --name ${o.name} --cursor ${nextCursor}\n`);
      });
    });

  for (const [name, active, what] of [
    ['revoke', false, 'stop a key at once (every version)'],
    ['activate', true, 'make a revoked key work again'],
  ] as const) {
    secrets
      .command(name)
      .description(what)
      .requiredOption('--name <name>', 'key name')
      .option('--json', 'print JSON')
      .action(async (o: { name: string; json?: boolean }) => {
        await withDeps(async (deps) => {
          const key = await deps.admin.setKeyActive(o.name, active, cliActor());
          if (o.json) return printJson(key);
          write(`registration key "${key.name}" is now ${key.active ? 'active' : 'revoked'}\n`);
        });
      });
  }

  const clients = program
    .command('clients')
    .description('per-agent credentials (OAuth2 client credentials, or Basic with the client id as user)');
  clients
    .command('create')
    .description('create a client credential and print its secret once')
    .requiredOption('--name <name>', 'a name for people')
    .option('--device <device>', 'bind it to one device (a deviceid, or id:N for row N): it may submit for no other')
    .option(
      '--tag <tag>',
      "tag/entity of the devices it registers, sent to GLPI instead of the agent's (wins over a key's)",
    )
    .option('--comment <text>', 'free text')
    .option('--json', 'print JSON')
    .action(async (o: { name: string; device?: string; tag?: string; comment?: string; json?: boolean }) => {
      await withDeps(async (deps) => {
        const deviceid = o.device ? await deps.records.resolveDeviceid(o.device) : null;
        const c = await deps.admin.createClient(
          { name: o.name, deviceid, tag: o.tag ?? null, comment: o.comment ?? null },
          cliActor(),
        );
        if (o.json) return printJson(c);
        write(
          `client "${c.name}" created.\nclientId: ${c.clientId}\nclientSecret (shown once, store it now): ${c.clientSecret}\nGLPI Agent ≥ 1.10: --oauth-client-id ${c.clientId} --oauth-client-secret <secret>\nothers: --user ${c.clientId} --password <secret>\n`,
        );
      });
    });
  clients
    .command('list')
    .option('--json', 'print a JSON array')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const rows = await deps.admin.listClients();
        if (o.json) return printJson(rows);
        printTable(rows, ['clientId', 'name', 'secret', 'deviceid', 'tag', 'createdAt', 'revokedAt', 'lastUsedAt']);
      });
    });
  clients
    .command('revoke')
    .description('revoke a client: its secret and every token it holds stop working')
    .requiredOption('--client-id <id>', 'client id (agc_…)')
    .option('--json', 'print JSON')
    .action(async (o: { clientId: string; json?: boolean }) => {
      await withDeps(async (deps) => {
        const c = await deps.admin.revokeClient(o.clientId, cliActor());
        if (o.json) return printJson(c);
        write(`client ${c.clientId} revoked\n`);
      });
    });

  const certs = program
    .command('certs')
    .description('client certificates (TLS_CLIENT_CA): each verified certificate is a credential, pinning its devices');
  certs
    .command('list')
    .description('certificates seen, most recently seen first: validity, first/last seen, devices pinned, revoked')
    .option('--json', 'print a JSON array')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const rows = await deps.admin.listCertificates();
        if (o.json) return printJson(rows);
        printTable(
          rows.map((c) => ({ ...c, validity: `${when(c.notBefore)} .. ${when(c.notAfter)}` })),
          ['fingerprint', 'subject', 'issuer', 'validity', 'firstSeen', 'lastSeen', 'devicesPinned', 'revokedAt'],
        );
      });
    });
  certs
    .command('revoke')
    .description('revoke a certificate: it gets the same 401 as any bad credential (within SECRET_CACHE_TTL)')
    .requiredOption('--fingerprint <sha256>', 'SHA-256 fingerprint, with or without colons, any case')
    .option('--json', 'print JSON')
    .action(async (o: { fingerprint: string; json?: boolean }) => {
      await withDeps(async (deps) => {
        const c = await deps.admin.revokeCertificate(o.fingerprint, cliActor());
        if (o.json) return printJson(c);
        write(`certificate ${c.fingerprint} (${c.subject}) revoked\n`);
      });
    });

  const operators = program.command('operators').description('people who use the admin API and console');
  operators
    .command('create')
    .description('create an operator and print its token once')
    .requiredOption('--name <name>', 'operator name')
    .requiredOption('--role <role>', 'reviewer (review devices) or admin (also keys, clients, operators)', (v) => {
      if (!(OPERATOR_ROLES as readonly string[]).includes(v))
        throw new InvalidArgumentError(`must be ${OPERATOR_ROLES.join(' or ')}`);
      return v;
    })
    .option('--json', 'print JSON')
    .action(async (o: { name: string; role: OperatorRole; json?: boolean }) => {
      await withDeps(async (deps) => {
        const op = await deps.admin.createOperator({ name: o.name, role: o.role }, cliActor());
        if (o.json) return printJson(op);
        write(`operator "${op.name}" (${op.role}) created.\ntoken (shown once, store it now): ${op.token}\n`);
      });
    });
  operators
    .command('list')
    .option('--json', 'print a JSON array')
    .action(async (o: { json?: boolean }) => {
      await withDeps(async (deps) => {
        const rows = await deps.admin.listOperators();
        if (o.json) return printJson(rows);
        printTable(rows, ['name', 'role', 'token', 'createdBy', 'createdAt', 'revokedAt', 'lastUsedAt']);
      });
    });
  operators
    .command('revoke')
    .requiredOption('--name <name>', 'operator name')
    .option('--json', 'print JSON')
    .action(async (o: { name: string; json?: boolean }) => {
      await withDeps(async (deps) => {
        const op = await deps.admin.revokeOperator(o.name, cliActor());
        if (o.json) return printJson(op);
        write(`operator "${op.name}" revoked\n`);
      });
    });

  const audit = program.command('audit').description('what people did');
  audit
    .command('list')
    .option('--action <action>', 'only this action, e.g. key.rotate')
    .option('--limit <n>', 'at most this many', wholeNumber, 100)
    .option('--json', 'print a JSON array')
    .action(async (o: { action?: string; limit: number; json?: boolean }) => {
      await withDeps(async (deps) => {
        const rows = await deps.admin.listAudit({ limit: Math.max(1, o.limit), action: o.action });
        if (o.json) return printJson(rows);
        printTable(rows as never, ['id', 'at', 'actor', 'action', 'targetType', 'targetId', 'reason']);
      });
    });
}
