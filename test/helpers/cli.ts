/**
 * The CLI as an operator runs it from their own shell: none of the gateway's settings in the environment
 * (every CONFIG_KEYS entry removed), only what the test passes (DATABASE_URL, LOG_LEVEL…).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { CONFIG_KEYS } from '../../src/config.js';
import { ROOT } from '../../scripts/lib/processes.js';

export const BIN = path.join(ROOT, 'bin', 'agent-gate.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `agent-gate ARGS…` in an operator's shell with only `env` configured, run in the checkout (or in `cwd`);
 * resolves once it exits.
 */
export function runCli(args: string[], env: Record<string, string>, opts: { cwd?: string } = {}): Promise<CliResult> {
  const shell: NodeJS.ProcessEnv = { ...process.env };
  for (const key of CONFIG_KEYS) delete shell[key.env];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...shell, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
