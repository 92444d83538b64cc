/**
 * The real agent traffic captured in test/fixtures (copied from shared/agent-traffic): one JSON file per
 * request, with the exact bytes sent and the answer that kept the agent happy.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export interface CapturedRequest {
  file: string;
  method: string;
  path: string;
  query: string;
  headers: [string, string][];
  content_type: string | null;
  compression: 'zlib' | 'gzip' | 'none';
  body_b64: string;
  body_size: number;
  decoded_size: number;
  decoded_text: string;
  classified: { format?: string; kind?: string; deviceid?: string; tag?: string; partial?: boolean; query?: string };
  response: { status: number; headers: [string, string][]; decoded_text: string; fault?: string };
}

export const SCENARIOS = fs
  .readdirSync(FIXTURES_DIR)
  .filter((d) => fs.statSync(path.join(FIXTURES_DIR, d)).isDirectory())
  .sort();

export function loadScenario(name: string): CapturedRequest[] {
  const dir = path.join(FIXTURES_DIR, name);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({
      file: f,
      ...(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Omit<CapturedRequest, 'file'>),
    }));
}

export function bodyOf(r: CapturedRequest): Buffer {
  return Buffer.from(r.body_b64, 'base64');
}

/** A request's headers as the agent sent them, minus Host/Content-Length (supertest sets those). */
export function headersOf(r: CapturedRequest, opts: { keepAuthorization?: boolean } = {}): Record<string, string> {
  const skip = new Set(['host', 'content-length', ...(opts.keepAuthorization ? [] : ['authorization'])]);
  return Object.fromEntries(r.headers.filter(([k]) => !skip.has(k.toLowerCase())));
}

/** A decoded XML or JSON fixture body, for tests that build their own variants. */
export function textOf(scenario: string, file: string): string {
  return loadScenario(scenario).find((r) => r.file === file)!.decoded_text;
}
