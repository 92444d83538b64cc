/**
 * A small seeded PRNG (mulberry32) for the differential tests: the same seed gives the same cases on every
 * machine, so a failure can be replayed with DIFF_SEED=<seed>.
 */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
    chance: (p: number): boolean => next() < p,
  };
}

/** Seed and case count, overridable from the environment (DIFF_SEED, DIFF_CASES) to dig into a failure. */
export function diffSettings(defaultCases: number): { seed: number; cases: number } {
  const seed = Number(process.env.DIFF_SEED ?? 20261122);
  const cases = Number(process.env.DIFF_CASES ?? defaultCases);
  return { seed, cases };
}
