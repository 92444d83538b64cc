/** The gateway's version, from package.json (shown in the OpenAPI document and the startup log). */
import fs from 'node:fs';

export const VERSION: string = (
  JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
