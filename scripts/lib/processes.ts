/**
 * Child processes for benchmarks and load tests: the gateway itself (`agent-gate serve`, as deployed) and the
 * floor servers, each on a free loopback port, stopped with SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Proc {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(); // already gone (a SIGKILL included)
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    });
}

async function waitHttp(port: number, pathName: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}${pathName}`);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answered on port ${port} within ${timeoutMs} ms`);
}

/** `npm start`'s command (package.json `scripts.start`), split into its words. */
export function startCommand(root = ROOT): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
  return pkg.scripts.start.split(' ');
}

/**
 * The node flags `npm start` gives the gateway (the Dockerfile's CMD has the same,
 * test/unit/deployment.test.ts), so benchmarks and load runs measure it as deployed.
 */
export function startNodeArgs(root = ROOT): string[] {
  const argv = startCommand(root);
  return argv.slice(1, argv.indexOf('bin/agent-gate.js'));
}

/**
 * Runs `agent-gate serve` with the given environment on a free port, with `npm start`'s node flags and
 * then `nodeArgs`; resolves once /readyz says ready.
 */
export async function startGateway(
  env: Record<string, string>,
  /** root: another checkout of agent-gate to run (a before/after comparison in one bench run). */
  opts: { logFile?: string; nodeArgs?: string[]; root?: string } = {},
): Promise<Proc> {
  const port = await freePort();
  const root = opts.root ?? ROOT;
  const child = spawn(
    process.execPath,
    [...startNodeArgs(root), ...(opts.nodeArgs ?? []), path.join(root, 'bin', 'agent-gate.js'), 'serve'],
    {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', opts.logFile ? 'pipe' : 'ignore', 'inherit'],
    },
  );
  if (opts.logFile && child.stdout) {
    const { createWriteStream } = await import('node:fs');
    child.stdout.pipe(createWriteStream(opts.logFile));
  }
  const stop = stopper(child);
  try {
    await waitHttp(port, '/readyz', child);
  } catch (err) {
    await stop(); // never leave a gateway that did not come up running
    throw err;
  }
  return { port, child, stop };
}

export type FloorMode = 'noop' | 'inflate' | 'store' | 'read' | 'trips';

/** A floor server (scripts/lib/floor-server.ts); `store`, `read` and `trips` need FLOOR_DATABASE_URL in `env`. */
export async function startFloor(mode: FloorMode, env: Record<string, string> = {}): Promise<Proc> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'scripts', 'lib', 'floor-server.ts'), mode],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`floor server exited with ${code}`)));
  });
  return { port, child, stop: stopper(child) };
}

/** `node bin/agent-gate.js …` as an operator runs it: its stdout, or an error carrying its stderr. */
export function runCli(args: string[], env: Record<string, string>, root = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'agent-gate.js'), ...args], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`agent-gate ${args.slice(0, 2).join(' ')} exited ${code}: ${stderr.trim().slice(0, 300)}`));
    });
  });
}

/**
 * What a process has used so far (Linux /proc/<pid>/stat; clock ticks at 100 Hz): CPU seconds (user +
 * system, all threads), the system part of them, and its minor page faults (each a trip into the kernel
 * to map a page the process touched for the first time: fresh memory, e.g. a large V8 object).
 */
export function processUsage(pid: number): { cpu: number; sys: number; faults: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const sys = Number(fields[12]) / 100;
  return { cpu: Number(fields[11]) / 100 + sys, sys, faults: Number(fields[7]) };
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  return processUsage(pid).cpu;
}
