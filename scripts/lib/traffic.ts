/**
 * Agent traffic for benchmarks and load tests, built from the real captures in test/fixtures: the same
 * bytes, with the deviceid (and GLPI-Agent-ID) varied so many simulated agents look like many devices.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ROOT } from './processes.js';
import type { LoadRequest } from './load-client.js';

interface Captured {
  method: string;
  path: string;
  headers: [string, string][];
  compression: string;
  decoded_text: string;
  classified: { kind?: string; deviceid?: string; format?: string };
}

function load(scenario: string, file: string): Captured {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', scenario, file), 'utf8')) as Captured;
}

export type MessageName = 'fi-prolog' | 'fi-inventory' | 'ga-prolog' | 'ga-contact' | 'ga-inventory' | 'ga-partial';

const SOURCES: Record<MessageName, [string, string]> = {
  'fi-prolog': ['fusioninventory-plain', '0001-post-prolog.json'],
  'fi-inventory': ['fusioninventory-plain', '0002-post-inventory.json'],
  'ga-prolog': ['glpi-second-run', '0001-post-prolog.json'],
  'ga-contact': ['glpi-second-run', '0006-post-contact.json'],
  'ga-inventory': ['glpi-second-run', '0003-post-inventory.json'],
  'ga-partial': ['glpi-second-run', '0007-post-inventory.json'],
};

const SKIP = new Set(['host', 'content-length', 'authorization']);

/**
 * `count` variants of one captured message, each for its own simulated device (compressed like the original).
 * `tag` makes the deviceids differ from another run's (state kept outside the database, e.g. Redis counters).
 */
export function variants(
  name: MessageName,
  count: number,
  extraHeaders: Record<string, string> = {},
  tag = '',
): LoadRequest[] {
  const [scenario, file] = SOURCES[name];
  const c = load(scenario, file);
  const original = c.classified.deviceid!;
  return Array.from({ length: count }, (_, i) => {
    const deviceid = `${original}-sim${tag}${i}`;
    const text = c.decoded_text.split(original).join(deviceid);
    const raw = Buffer.from(text, 'utf8');
    const body = c.compression === 'zlib' ? zlib.deflateSync(raw) : raw;
    const headers: Record<string, string> = {};
    for (const [k, v] of c.headers)
      if (!SKIP.has(k.toLowerCase()))
        headers[k] = k === 'GLPI-Agent-ID' ? `${v.slice(0, 24)}${String(i).padStart(12, '0')}` : v;
    return { method: 'POST', path: c.path, headers: { ...headers, ...extraHeaders }, body };
  });
}

export function deviceidOf(r: LoadRequest): string {
  const text = (r.headers['Content-Type'] ?? '').includes('zlib')
    ? zlib.inflateSync(r.body!).toString('utf8')
    : r.body!.toString('utf8');
  return /<DEVICEID>([^<]+)<\/DEVICEID>|"deviceid"\s*:\s*"([^"]+)"/.exec(text)!.slice(1).find(Boolean)!;
}
