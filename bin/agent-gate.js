#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: no build step between `npm ci` and a working CLI.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
