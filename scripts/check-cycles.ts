/** `npm run check`: fails, naming the modules, when the sources hold an import circle (type-only included). */
import { findCycles, importGraph } from './lib/import-graph.js';

const cycles = findCycles(importGraph('src'));
for (const c of cycles) console.error(`import circle: ${c.join(' ⇄ ')}`);
if (cycles.length > 0) process.exit(1);
