/**
 * The import graph of the sources and its circles. Every relative import counts — `import type` too,
 * because a type-only circle still ties two modules together for a reader — and a circle is any strongly
 * connected group of two or more modules, or a module importing itself.
 */
import fs from 'node:fs';
import path from 'node:path';

const IMPORT = /(?:^|[\s;])(?:import|export)\s(?:[^'";]*?\sfrom\s)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The relative specifiers a module's source imports or re-exports. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (spec?.startsWith('.')) out.push(spec);
  }
  return out;
}

/** Every .ts/.js file under `root`, mapped to the files it imports (resolved, `.js` → `.ts` as tsx does). */
export function importGraph(root: string): Map<string, string[]> {
  const files = fs
    .readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|js)$/.test(f))
    .map((f) => path.join(root, f));
  const known = new Set(files);
  const resolve = (from: string, spec: string) => {
    const target = path.join(path.dirname(from), spec);
    return [target, target.replace(/\.js$/, '.ts')].find((t) => known.has(t));
  };
  return new Map(
    files.map((f) => [
      f,
      importsOf(fs.readFileSync(f, 'utf8'))
        .map((s) => resolve(f, s))
        .filter((t): t is string => t !== undefined),
    ]),
  );
}

/** The circles of a graph (Tarjan's strongly connected components), each as its modules, sorted. */
export function findCycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}
