/**
 * What one gateway process knows about a source address between two of its round trips to the shared
 * edge counters in Redis (http/limits.ts EDGE_LUA): a refusal those counters gave, or an allowance.
 *
 * Allowance: when the edge script finds an address far below its per-minute budget and without a single
 * invalid credential in its window, it reserves a few more requests for this process in the shared counter
 * (at most an eighth of what the address has left, at most ALLOWANCE_MAX), and this process answers that
 * many of the address's next requests without asking Redis, for at most ALLOWANCE_MS and never past the
 * window. Reserved up front, they are in the count every replica reads, so the replicas together never
 * admit an address past its budget; what a process did not use goes back with its next round trip. An
 * invalid credential from the address ends its allowance at once (its next request asks Redis and sees the
 * failure), and an address with one is given none in that window, so brute force is counted as before, up
 * to one attempt per replica that had an allowance when the first failure came.
 *
 * An address near its limit (an eighth of what it has left below one request) gets no allowance: each of
 * its requests is asked of Redis, exactly as before; so is every request under a limit of 8 or less.
 */

/** How long a refusal from the shared counters is remembered (never past the window that refused). */
export const REFUSAL_MEMORY_MS = 1000;
/** How long an allowance lasts (never past the address's window). */
export const ALLOWANCE_MS = 1000;
/** Requests one allowance covers at most. */
export const ALLOWANCE_MAX = 32;
/** An allowance is at most this share of what the address has left in its window. */
export const ALLOWANCE_SHARE = 8;
/** Addresses remembered at once; past it, those that ended are dropped, else nothing new is kept. */
export const EDGE_MEMORY_MAX = 10_000;
/**
 * Unused reservations go back only while their window has at least this long left by this process's
 * clock (it reads the window's end a round trip late): given back later, they could land in the next one.
 */
const GIVE_BACK_MARGIN_MS = 100;

/** The limiter that refuses a request at the agent edge: per address, or its invalid credentials. */
export type EdgeLimiter = 'ip' | 'auth_failures';

interface Entry {
  /** A refusal, until `until`. */
  refused: EdgeLimiter | null;
  until: number;
  /** Reserved requests not used yet (an allowance, with `until`). */
  left: number;
  windowEnd: number;
}

/** What to do with a request of an address, as far as this process knows (`take`). */
export type EdgeKnown =
  /** A refusal remembered from the shared counters. */
  | { refused: EdgeLimiter }
  /** Within the allowance: already counted in Redis. */
  | { allowed: true }
  /** Ask the shared counters, giving back `unused` reserved requests. */
  | { unused: number };

export class EdgeMemory {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * The next request of `key`: a remembered refusal, one within the allowance, or one to ask the shared
   * counters about — with the reserved requests this process will not use (the caller gives them back).
   */
  take(key: string): EdgeKnown {
    const e = this.entries.get(key);
    if (!e) return { unused: 0 };
    const now = this.now();
    if (e.until > now) {
      if (e.refused) return { refused: e.refused };
      if (e.left > 0) {
        e.left--;
        return { allowed: true };
      }
    }
    this.entries.delete(key);
    return { unused: e.windowEnd - now > GIVE_BACK_MARGIN_MS ? e.left : 0 };
  }

  /** The shared counters refused the address: remembered for REFUSAL_MEMORY_MS at most, within its window. */
  refuse(key: string, limiter: EdgeLimiter, windowLeftMs: number): void {
    const now = this.now();
    this.put(key, {
      refused: limiter,
      until: now + Math.min(REFUSAL_MEMORY_MS, windowLeftMs),
      left: 0,
      windowEnd: now,
    });
  }

  /**
   * The edge script reserved `reserved` requests of the address for this process (`windowLeftMs` left).
   * Added to what the address still holds here: requests of one address asking at once each bring a
   * reservation, and none of them may be lost (a reservation lost stays counted until its window ends).
   */
  reserved(key: string, reserved: number, windowLeftMs: number): void {
    if (!(reserved >= 1) || !(windowLeftMs > 0)) return;
    const now = this.now();
    const held = this.entries.get(key);
    if (held?.refused && held.until > now) return; // refused meanwhile: nothing to use it for
    const carried = held && !held.refused && held.windowEnd - now > GIVE_BACK_MARGIN_MS ? held.left : 0;
    this.put(key, {
      refused: null,
      until: now + Math.min(ALLOWANCE_MS, windowLeftMs),
      left: carried + reserved,
      windowEnd: now + windowLeftMs,
    });
  }

  /** An invalid credential from the address: its allowance ends (the unused part goes back at its next ask). */
  revoke(key: string): void {
    const e = this.entries.get(key);
    if (e && !e.refused) e.until = this.now();
  }

  private put(key: string, entry: Entry): void {
    if (this.entries.size >= EDGE_MEMORY_MAX && !this.entries.has(key)) {
      // Dropping an ended allowance leaves its unused reservation counted until its window ends: the safe side.
      const now = this.now();
      for (const [k, e] of this.entries) if (e.until <= now) this.entries.delete(k);
      if (this.entries.size >= EDGE_MEMORY_MAX) return;
    }
    this.entries.set(key, entry);
  }
}
