/**
 * Where the parse pool parses a body (services/parse-pool.ts): a desktop-size inventory on the event loop
 * while no worker is loaded, in a loaded worker afterwards (the same message, without its text), and a
 * PROLOG always on the event loop.
 */
import { afterEach, expect, test } from 'vitest';
import { type ParsePool, SHARED_PARSE_MIN, createParsePool } from '../../src/services/parse-pool.js';
import { textOf } from '../helpers/fixtures.js';

const inventory = Buffer.from(textOf('fusioninventory-plain', '0002-post-inventory.json'));
const prolog = Buffer.from(textOf('fusioninventory-plain', '0001-post-prolog.json'));
let pool: ParsePool | null = null;

afterEach(async () => {
  await pool?.close();
  pool = null;
});

const newPool = () => createParsePool({ threads: 1, heapMb: 192, inflateLimit: 64 * 1024 * 1024 });

test('a desktop inventory is parsed on the event loop until a worker is loaded, then in the worker, to the same message', async () => {
  expect(inventory.length).toBeGreaterThan(SHARED_PARSE_MIN);
  pool = newPool();
  const inline = await pool.parse(inventory, [], 'zlib');
  expect(pool.tasks.get('parse:inline')).toBe(1);
  expect(pool.stats().threads).toBe(1); // started for the next ones, while this one was parsed inline
  await pool.warm();
  const shared = await pool.parse(inventory, [], 'zlib');
  expect(pool.tasks.get('parse:ok')).toBe(1);
  expect(pool.tasks.get('parse:inline')).toBe(1);
  expect(inline.text.length).toBe(inventory.length);
  const { text: _a, offThread, ...fromWorker } = shared;
  const { text: _b, ...fromLoop } = inline;
  expect(fromWorker).toEqual(fromLoop);
  expect(shared.text).toBe(''); // left in the worker: nothing the size of the inventory crosses back
  expect(offThread).toEqual({ reencoded: null, contentJson: null });
  expect(shared.identity?.physicalMacs).toEqual(['02:fc:00:00:00:01']);
  expect(shared.summary).not.toBeNull();
});

test('a PROLOG is parsed on the event loop even with a worker loaded', async () => {
  pool = newPool();
  await pool.warm();
  const msg = await pool.parse(prolog, [], 'zlib');
  expect(msg.kind).toBe('prolog');
  expect(pool.tasks.get('parse:inline')).toBe(1);
  expect(pool.tasks.get('parse:ok')).toBeUndefined();
});
