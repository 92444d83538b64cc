/** Canonical JSON (object keys sorted) so two readings compare equal whatever order they were built in. */
export function canon(v: unknown): string {
  return JSON.stringify(v, (_key, value: unknown) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)));
  });
}

export interface Disagreement {
  case: number;
  sample: string;
  ops: string[];
  detail: string;
}

/** Counts per operator, for the failure message (which constructs slipped through). */
export function byOperator(found: Disagreement[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const d of found)
    for (const op of new Set(d.ops.map((o) => o.split('@')[0]!))) counts[op] = (counts[op] ?? 0) + 1;
  return counts;
}

/** "accepted what the reference cannot read as one document" vs "read it differently" (the worse kind). */
export function summary(found: Disagreement[], total: number, seed: number): string {
  const unread = found.filter((d) => d.detail.startsWith('accepted, but')).length;
  const lines = found
    .filter((d) => !d.detail.startsWith('accepted, but'))
    .concat(found.filter((d) => d.detail.startsWith('accepted, but')))
    .slice(0, 6)
    .map((d) => `#${d.case} ${d.sample} [${d.ops.join(', ')}]\n   ${d.detail}`);
  return (
    `${found.length}/${total} disagreements (seed ${seed}): ${found.length - unread} read differently, ` +
    `${unread} accepted without a single reading; by operator ${JSON.stringify(byOperator(found))}\n${lines.join('\n')}`
  );
}
