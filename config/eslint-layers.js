// The layer rules of the design notes, as ESLint import restrictions (type-only imports included): used by
// eslint.config.js and by the unit test that shows a wrong import fails the lint.

/** `no-restricted-imports` for one layer: what it may not import, and why. */
/** `no-restricted-imports` for one layer: what it may not import, and why. */
const layer = (files, patterns) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});
const composition = {
  group: ['**/deps.js', '**/deps.ts', '**/app.js', '**/server.js', '**/cli/**'],
  message: 'Only the entry points (server.ts, app.ts, cli/) wire the application together.',
};
const http = { group: ['**/http/**'], message: 'Only the composition root knows the HTTP layer.' };
const io = {
  group: [
    'node:fs',
    'node:net',
    'node:http',
    'node:https',
    'node:child_process',
    'node:dgram',
    'postgres',
    'ioredis',
    'express',
    'pino',
    '@electric-sql/*',
  ],
  message: 'protocol/ is wire formats only: no I/O.',
};

export const layerRules = [
  layer(
    ['src/protocol/**'],
    [io, composition, http, { group: ['**/store/**', '**/services/**'], message: 'protocol/ does no I/O.' }],
  ),
  layer(
    ['src/store/**'],
    [
      composition,
      http,
      {
        group: ['**/services/**', '**/protocol/**', 'express', 'ioredis', 'pino'],
        message: 'store/ holds queries: it imports only the database driver and types.',
      },
    ],
  ),
  layer(
    ['src/services/**'],
    [composition, http, { group: ['express'], message: 'services/ decide; the HTTP layer speaks express.' }],
  ),
  layer(
    ['src/http/**'],
    [composition, { group: ['**/store/**'], message: 'http/ goes through services/, never to store/ directly.' }],
  ),
  layer(
    ['src/config.ts', 'src/errors.ts', 'src/clock.ts', 'src/metrics.ts', 'src/logger.ts', 'src/version.ts'],
    [composition, http, { group: ['**/store/**', '**/services/**'], message: 'a shared root module stays a leaf.' }],
  ),
];
