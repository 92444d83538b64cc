/**
 * Runs the real FusionInventory agent again in a storage directory an earlier run left behind (its deviceid
 * and its saved server state survive, as on a real machine), or in a fresh one, and — unlike runAgent —
 * optionally WITHOUT `--force`: with `--force` the agent sends its inventory even when the PROLOG answer has
 * no `RESPONSE=SEND` (PROTOCOL.md §3.1), so a "not now" answer can only be observed without it.
 *
 * The directory layout is runAgent's (test/helpers/fusioninventory.ts): <dir>/lib/setup.pm points the agent's
 * vardir at <dir>/var, the log is <dir>/agent.log (an earlier run's log is kept as agent.<n>.log).
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type AgentInstall, type AgentRun, parseLog } from './fusioninventory.js';

const execFileAsync = promisify(execFile);
const PROXY_VARS = /^(https?|ftp|all|no)_proxy$/i;

/** A storage directory in runAgent's layout: a fresh one, or the one an earlier run used. */
export interface AgentDir {
  dir: string;
  vardir: string;
  libdir: string;
}

/** The directory an earlier runAgent / runAgentIn run used. */
export function agentDirOf(run: AgentRun): AgentDir {
  return { dir: run.dir, vardir: run.vardir, libdir: path.join(run.dir, 'lib') };
}

/** A fresh directory: empty vardir, and the setup module that points the agent at it. */
export function createAgentDir(install: AgentInstall): AgentDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fi-agent-'));
  const vardir = path.join(dir, 'var');
  const libdir = path.join(dir, 'lib');
  fs.mkdirSync(vardir);
  fs.mkdirSync(libdir);
  const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  fs.writeFileSync(
    path.join(libdir, 'setup.pm'),
    [
      'package setup;',
      'use strict;',
      'use warnings;',
      'use parent qw(Exporter);',
      "our @EXPORT = ('%setup');",
      `our %setup = (datadir => ${q(install.datadir)}, libdir => ${q(install.libdir)}, vardir => ${q(vardir)});`,
      '1;',
      '',
    ].join('\n'),
  );
  return { dir, vardir, libdir };
}

async function readStorable(perl: string, file: string): Promise<Record<string, unknown> | null> {
  if (!fs.existsSync(file)) return null;
  const code = 'use Storable; use JSON::PP; print JSON::PP->new->canonical->allow_blessed->encode(Storable::retrieve($ARGV[0]))';
  const { stdout } = await execFileAsync(perl, ['-e', code, file], { timeout: 20_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

export interface RunAgentInOptions {
  /** Base URL of the gateway; the agent is pointed at `<url>/`. */
  serverUrl: string;
  /** Pass `--force` (runAgent always does). Default false: the agent obeys the PROLOG answer. */
  force?: boolean;
  args?: string[];
  /** The agent is killed after this long (it exits 0 even on failures: judge by the log). */
  timeoutMs?: number;
}

/** One foreground run in `where`; the same options as runAgent apart from `--force`. */
export async function runAgentIn(install: AgentInstall, where: AgentDir, opts: RunAgentInOptions): Promise<AgentRun> {
  const logfile = path.join(where.dir, 'agent.log');
  if (fs.existsSync(logfile)) {
    let n = 1;
    while (fs.existsSync(path.join(where.dir, `agent.${n}.log`))) n++;
    fs.renameSync(logfile, path.join(where.dir, `agent.${n}.log`));
  }
  const agentArgs = [
    `--server=${opts.serverUrl.replace(/\/*$/, '/')}`,
    '--config=none',
    '--no-task=deploy,esx,collect,wakeonlan,netdiscovery,netinventory',
    ...(opts.force ? ['--force'] : []),
    '--logger=File',
    `--logfile=${logfile}`,
    '--debug',
    '--debug',
    '--timeout=30',
    ...(opts.args ?? []),
  ];
  const argv = [install.perl, '-I', where.libdir, '-Msetup', install.script, ...agentArgs];
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!PROXY_VARS.test(k) && k !== 'PERL5OPT') env[k] = v;

  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { cwd: where.dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, opts.timeoutMs ?? 45_000);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, sig) => resolve([code, sig]));
  }).finally(() => clearTimeout(timer));
  const durationMs = Date.now() - started;

  const log = fs.existsSync(logfile) ? fs.readFileSync(logfile, 'utf8') : '';
  const state = await readStorable(install.perl, path.join(where.vardir, 'FusionInventory-Agent.dump'));
  const targetName = fs.readdirSync(where.vardir).find((f) => /^https?:/.test(f) && fs.statSync(path.join(where.vardir, f)).isDirectory());
  const targetDir = targetName ? path.join(where.vardir, targetName) : null;
  const target = targetDir ? ((await readStorable(install.perl, path.join(targetDir, 'target.dump'))) as AgentRun['target']) : null;
  return {
    argv,
    exitCode,
    signal,
    timedOut,
    durationMs,
    stdout,
    stderr,
    dir: where.dir,
    vardir: where.vardir,
    log,
    entries: parseLog(log),
    deviceid: typeof state?.deviceid === 'string' ? state.deviceid : null,
    targetDir,
    lastStateSaved: targetDir !== null && fs.existsSync(path.join(targetDir, 'last_state')),
    target,
  };
}
