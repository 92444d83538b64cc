/**
 * Child processes for benchmarks and load tests: the gateway itself (`agent-gate serve`, as deployed) and the
 * floor servers, each on a free loopback port, stopped with SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
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

/** Runs `agent-gate serve` with the given environment on a free port; resolves once /readyz says ready. */
export async function startGateway(env: Record<string, string>, opts: { logFile?: string } = {}): Promise<Proc> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agent-gate.js'), 'serve'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', opts.logFile ? 'pipe' : 'ignore', 'inherit'],
  });
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

export async function startFloor(mode: 'noop' | 'inflate'): Promise<Proc> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'scripts', 'lib', 'floor-server.ts'), mode],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`floor server exited with ${code}`)));
  });
  return { port, child, stop: stopper(child) };
}
