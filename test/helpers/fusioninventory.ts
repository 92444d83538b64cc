/**
 * Runs the real FusionInventory agent (Debian package, 2.6) once, in the foreground, against a server URL,
 * with a throw-away storage directory and log file, and hands back what a user could look at afterwards:
 * the log, the deviceid it stored, and whether it accepted the server's answers.
 *
 * FusionInventory 2.6 has no --vardir option: its storage directory comes from the `setup` Perl module
 * (/usr/share/fusioninventory/lib/setup.pm, printed by `--setup`). We run the agent's own script under its
 * own perl with `-I <tmp>/lib -Msetup`, where <tmp>/lib/setup.pm is a copy that points vardir at <tmp>/var:
 * the script's later `use setup` finds the module already loaded. Nothing under /var/lib or /etc is read or
 * written (`--config=none`), and the log proves it ("Storage directory: …").
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const AGENT_COMMAND = 'fusioninventory-agent';
export const MISSING_AGENT_MESSAGE =
  `${AGENT_COMMAND} is not installed (not found on PATH). The conformance tests run the real agent: ` +
  'install it with `sudo apt-get install fusioninventory-agent` (CI does this in .ci/run) and run the tests again.';

export interface AgentInstall {
  script: string;
  perl: string;
  datadir: string;
  libdir: string;
  version: string;
}

function onPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

/** Finds the installed agent, or throws an error telling how to install it (never skips silently). */
export async function requireAgent(): Promise<AgentInstall> {
  const script = onPath(AGENT_COMMAND);
  if (!script) throw new Error(MISSING_AGENT_MESSAGE);
  const real = fs.realpathSync(script);
  const shebang = /^#!\s*(\S+)/.exec(fs.readFileSync(real, 'utf8').split('\n', 1)[0] ?? '');
  const perl = shebang?.[1];
  if (!perl || !/perl/.test(perl))
    throw new Error(`${real} is not the Perl script of the Debian package (shebang: ${shebang?.[0] ?? 'none'})`);
  const setup = Object.fromEntries(
    (await execFileAsync(real, ['--setup'], { timeout: 20_000 })).stdout
      .split('\n')
      .map((l) => /^(\w+):\s*(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  ) as Record<string, string>;
  if (!setup.datadir || !setup.libdir) throw new Error(`${real} --setup did not print datadir and libdir`);
  const version = (await execFileAsync(real, ['--version'], { timeout: 20_000 })).stdout.split('\n', 1)[0] ?? '';
  return { script: real, perl, datadir: setup.datadir, libdir: setup.libdir, version };
}

export interface LogEntry {
  level: string;
  message: string;
}

export interface AgentRun {
  /** argv as spawned (perl, its options, the script, the agent's options). */
  argv: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  stdout: string;
  stderr: string;
  dir: string;
  vardir: string;
  log: string;
  /** Log entries; a multi-line message (debug2 "sending message:") stays one entry. */
  entries: LogEntry[];
  /** deviceid kept in the agent's state file (FusionInventory-Agent.dump). */
  deviceid: string | null;
  /** The server target's storage directory (`http:__127.0.0.1:PORT_`). */
  targetDir: string | null;
  /** The agent writes last_state only after it could parse the server's answer to the inventory. */
  lastStateSaved: boolean;
  /** target.dump: maxDelay is PROLOG_FREQ × 3600 once a PROLOG answer was understood. */
  target: { maxDelay?: number; nextRunDate?: number } | null;
}

const ENTRY_START = /^\[[^\]]+\]\[(debug2|debug|info|warning|error)\] ?(.*)$/;

export function parseLog(text: string): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const line of text.split('\n')) {
    const m = ENTRY_START.exec(line);
    if (m) entries.push({ level: m[1]!, message: m[2]! });
    else if (entries.length > 0 && line !== '') entries[entries.length - 1]!.message += `\n${line}`;
  }
  return entries;
}

/** Reads one Storable file written by the agent, as JSON, with the agent's own perl. */
async function readStorable(perl: string, file: string): Promise<Record<string, unknown> | null> {
  if (!fs.existsSync(file)) return null;
  const code =
    'use Storable; use JSON::PP; print JSON::PP->new->canonical->allow_blessed->encode(Storable::retrieve($ARGV[0]))';
  const { stdout } = await execFileAsync(perl, ['-e', code, file], { timeout: 20_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const PROXY_VARS = /^(https?|ftp|all|no)_proxy$/i;

export interface RunAgentOptions {
  /** Base URL of the gateway; the agent is pointed at `<url>/`. */
  serverUrl: string;
  /** Extra agent options (e.g. ['--tag', 'x'], ['--no-compression']). */
  args?: string[];
  /** The agent is killed after this long (it exits 0 even on failures: judge by the log). */
  timeoutMs?: number;
}

export async function runAgent(agent: AgentInstall, opts: RunAgentOptions): Promise<AgentRun> {
  return runAgentIn(agent, createAgentDir(agent), { ...opts, force: true });
}

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

export interface RunAgentInOptions {
  /** Base URL of the gateway; the agent is pointed at `<url>/`. */
  serverUrl: string;
  /** Pass `--force` (runAgent always does). Default false: the agent obeys the PROLOG answer. */
  force?: boolean;
  args?: string[];
  /** The agent is killed after this long (it exits 0 even on failures: judge by the log). */
  timeoutMs?: number;
}

/**
 * One foreground run in `where` — a fresh directory, or one an earlier run left behind (its deviceid and saved
 * server state survive, as on a real machine) — optionally WITHOUT `--force`: with it the agent sends its
 * inventory even when the PROLOG answer has no RESPONSE=SEND, so a "not now" can only be observed without.
 */
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
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: where.dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
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
  const targetName = fs
    .readdirSync(where.vardir)
    .find((f) => /^https?:/.test(f) && fs.statSync(path.join(where.vardir, f)).isDirectory());
  const targetDir = targetName ? path.join(where.vardir, targetName) : null;
  const target = targetDir
    ? ((await readStorable(install.perl, path.join(targetDir, 'target.dump'))) as AgentRun['target'])
    : null;
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

/** The last lines of the log (long debug2 messages cut), for assertion messages. */
export function logExcerpt(run: AgentRun, lines = 40): string {
  const shown = run.entries
    .slice(-lines)
    .map((e) => `[${e.level}] ${e.message.length > 300 ? `${e.message.slice(0, 300)}…` : e.message}`);
  return [
    `agent log ${path.join(run.dir, 'agent.log')} (last ${shown.length} entries):`,
    ...shown,
    run.stderr && `stderr: ${run.stderr}`,
  ]
    .filter(Boolean)
    .join('\n');
}

export function removeRunDir(run: AgentRun): void {
  fs.rmSync(run.dir, { recursive: true, force: true });
}
