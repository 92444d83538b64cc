/**
 * The web console for reviewers and admins: static files (src/console/: the page, its style sheet and its
 * native ES modules) served at /console. It has no server side of its own — the page signs in with an
 * operator token kept in the browser tab and calls the admin API (/api/v1) like any other client, so the
 * API's roles apply unchanged. Every answer carries a strict Content-Security-Policy: no inline script or
 * style, no request to another origin, no framing.
 *
 * Only GET/HEAD are answered here: other methods fall through, so an agent that posts to /console/ (the
 * agent endpoint accepts any one folder) is treated exactly as before.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response } from 'express';

export const CONSOLE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'console');

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * What is served, as paths under src/console/ with '/' separators: the page, its style sheet and every
 * JavaScript module (in subfolders too). Nothing else there (its tsconfig.json, for one) is served.
 */
export function consoleFiles(dir: string = CONSOLE_DIR): string[] {
  const modules = fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((p) => p.split(path.sep).join('/'))
    .filter((p) => p.endsWith('.js'));
  return [...new Set(['index.html', 'style.css', ...modules])].sort();
}

export function consoleRoutes(): express.Router {
  const router = express.Router();
  // Read once: the files are part of the release, and a missing one should stop the start, not a request.
  const files = new Map(
    consoleFiles().map((name) => [
      name,
      { type: TYPES[path.extname(name)]!, body: fs.readFileSync(path.join(CONSOLE_DIR, name)) },
    ]),
  );

  const serve = (name: string) => (_req: Request, res: Response) => {
    const file = files.get(name)!;
    res.set(CONSOLE_HEADERS).set('Content-Type', file.type).status(200).send(file.body);
  };
  router.get(['/console', '/console/'], serve('index.html'));
  for (const name of files.keys()) router.get(`/console/${name}`, serve(name));
  router.get('/console/*rest', (_req: Request, res: Response) => {
    res.set(CONSOLE_HEADERS).set('Content-Type', 'text/plain; charset=utf-8').status(404).send('Not found\n');
  });
  return router;
}
