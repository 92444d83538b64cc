/**
 * The layer rules hold, and they can fail: a wrong import is an ESLint error (the rules of
 * config/eslint-layers.js, run here on sample sources), and an import circle — type-only included — is found
 * by the check that `npm run check` runs (scripts/check-cycles.ts).
 */
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { layerRules } from '../../config/eslint-layers.js';
import { findCycles, importGraph, importsOf } from '../../scripts/lib/import-graph.js';

const eslint = new ESLint({
  overrideConfigFile: true,
  overrideConfig: [{ files: ['**/*.ts'] }, tseslint.configs.base, ...(layerRules as never[])],
});

async function restricted(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('layer rules', () => {
  it.each([
    ['src/http/x.ts', "import { listDevices } from '../store/read-store.js';", /never to store/],
    ['src/http/x.ts', "import type { Sql } from '../store/db.js';", /never to store/],
    ['src/services/x.ts', "import express from 'express';", /HTTP layer speaks express/],
    ['src/services/x.ts', "import type { Metrics } from '../http/metrics.js';", /HTTP layer/],
    ['src/services/x.ts', "import type { Deps } from '../deps.js';", /entry points/],
    ['src/store/x.ts', "import { viewFromBody } from '../services/inventory-view.js';", /only the database driver/],
    ['src/protocol/x.ts', "import fs from 'node:fs';", /no I\/O/],
    ['src/protocol/x.ts', "import type { Sql } from '../store/db.js';", /no I\/O/],
    ['src/errors.ts', "import type { Review } from './services/review.js';", /leaf/],
  ])('%s: `%s` is refused', async (file, code, why) => {
    const messages = await restricted(file, `${code}\nexport {};\n`);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(why);
  });

  it.each([
    ['src/http/x.ts', "import type { Review } from '../services/review.js';"],
    ['src/services/x.ts', "import { listDevices } from '../store/read-store.js';"],
    ['src/store/x.ts', "import postgres from 'postgres';"],
    ['src/protocol/x.ts', "import zlib from 'node:zlib';"],
    ['src/app.ts', "import type { Deps } from './deps.js';"],
  ])('%s: `%s` is allowed', async (file, code) => {
    expect(await restricted(file, `${code}\nexport {};\n`)).toEqual([]);
  });
});

describe('import circles', () => {
  it('reads every form of import, type-only and re-exports included', () => {
    const src = [
      "import type { A } from './a.js';",
      "import { b } from './b.js';",
      "export { c } from './c.js';",
      "export type { D } from './d.js';",
      "import './e.js';",
      "const f = await import('./f.js');",
      "import pino from 'pino';",
    ].join('\n');
    expect(importsOf(src)).toEqual(['./a.js', './b.js', './c.js', './d.js', './e.js', './f.js']);
  });

  it('finds a circle of three, a self-import, and nothing in a tree', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a', 'd']],
      ['d', []],
      ['e', ['e']],
      ['f', ['d']],
    ]);
    expect(findCycles(g)).toEqual([['a', 'b', 'c'], ['e']]);
    expect(
      findCycles(
        new Map([
          ['a', ['b']],
          ['b', []],
        ]),
      ),
    ).toEqual([]);
  });

  it('the sources hold none', () => {
    expect(findCycles(importGraph('src'))).toEqual([]);
  });
});
