/**
 * Mutations of real agent JSON for the differential test: duplicate keys, keys differing only in case, keys
 * written with \u escapes, keys equal once NUL is dropped, at the depths the gateway reads (root, content,
 * hardware, bios, networks[i], operatingsystem) and anywhere else. Objects are kept as lists of entries so
 * a key can appear twice, and written back in the agent's layout (3-space indent) or compact.
 */
import type { Rng } from './prng.js';

type Node = { t: 'o'; e: [string, Node][] } | { t: 'a'; v: Node[] } | { t: 'v'; raw: string };

function tree(v: unknown): Node {
  if (Array.isArray(v)) return { t: 'a', v: v.map(tree) };
  if (typeof v === 'object' && v !== null)
    return { t: 'o', e: Object.entries(v).map(([k, x]): [string, Node] => [JSON.stringify(k), tree(x)]) };
  return { t: 'v', raw: JSON.stringify(v) };
}

function write(n: Node, indent: string | null, depth = 0): string {
  const pad = indent === null ? '' : `\n${indent.repeat(depth + 1)}`;
  const end = indent === null ? '' : `\n${indent.repeat(depth)}`;
  const sep = indent === null ? ':' : ': ';
  if (n.t === 'v') return n.raw;
  if (n.t === 'a') return n.v.length ? `[${n.v.map((x) => pad + write(x, indent, depth + 1)).join(',')}${end}]` : '[]';
  if (!n.e.length) return '{}';
  return `{${n.e.map(([k, x]) => `${pad}${k}${sep}${write(x, indent, depth + 1)}`).join(',')}${end}}`;
}

/** Every object node with its path (root, content, content.hardware, content.networks.0 …). */
function objects(n: Node, path: string, out: { path: string; node: Extract<Node, { t: 'o' }> }[]): void {
  if (n.t === 'o') {
    out.push({ path, node: n });
    for (const [k, x] of n.e) objects(x, `${path}.${JSON.parse(k) as string}`, out);
  } else if (n.t === 'a') n.v.forEach((x, i) => objects(x, `${path}.${i}`, out));
}

const READ = /^\$(\.content(\.(hardware|bios|operatingsystem|networks\.\d+))?)?$/;

function evil(n: Node): Node {
  if (n.t === 'v') return { t: 'v', raw: /^"/.test(n.raw) ? '"evil-0badc0de"' : n.raw === 'true' ? 'false' : '"evil"' };
  if (n.t === 'a') return { t: 'a', v: n.v.map(evil) };
  return { t: 'o', e: n.e.map(([k, x]) => [k, evil(x)]) };
}

function recase(r: Rng, key: string): string {
  const chars = [...key];
  const at = 1 + r.int(Math.max(1, chars.length - 2));
  const c = chars[at]!;
  chars[at] = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase();
  const out = chars.join('');
  return out === key ? key.toUpperCase() : out;
}

function escape(r: Rng, key: string): string {
  const chars = [...key.slice(1, -1)];
  if (!chars.length) return key;
  const at = r.int(chars.length);
  chars[at] = `\\u${chars[at]!.charCodeAt(0).toString(16).padStart(4, '0')}`;
  return `"${chars.join('')}"`;
}

export interface MutatedJson {
  text: string;
  ops: string[];
}

export function mutateJson(r: Rng, base: string): MutatedJson {
  const root = tree(JSON.parse(base));
  const ops: string[] = [];
  const n = 1 + r.int(2);
  for (let k = 0; k < n; k++) {
    const all: { path: string; node: Extract<Node, { t: 'o' }> }[] = [];
    objects(root, '$', all);
    const read = all.filter((o) => READ.test(o.path));
    const target = r.chance(0.75) && read.length ? r.pick(read) : r.pick(all);
    if (!target.node.e.length) continue;
    const [key, val] = r.pick(target.node.e);
    const plain = JSON.parse(key) as string;
    const [op, newKey] = r.pick<[string, string]>([
      ['duplicate-key', key],
      ['case-variant-key', JSON.stringify(recase(r, plain))],
      ['upper-case-key', JSON.stringify(plain.toUpperCase())],
      ['escaped-key', escape(r, key)],
      ['nul-in-key', JSON.stringify(`${plain.slice(0, 2)}\u0000${plain.slice(2)}`)],
      ['reordered', ''],
    ]);
    if (op === 'reordered') {
      target.node.e.reverse();
    } else {
      const at = r.chance(0.5) ? 0 : target.node.e.length;
      target.node.e.splice(at, 0, [newKey, evil(val)]);
    }
    ops.push(`${op}@${target.path.replace(/\.\d+/g, '[]')}`);
  }
  return { text: write(root, r.chance(0.7) ? '   ' : null), ops };
}
