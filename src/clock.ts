/**
 * Time as the services see it. Every decision that depends on time takes `now` from an injected clock, so
 * tests can move it instead of waiting.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * A stopwatch for request phases: `lap(name, since)` reports the seconds since `since` (a performance.now()
 * reading) as phase `name` to `observe` (absent: nothing) and returns now, the start of the next phase.
 */
export function phaseLap(observe?: (name: string, seconds: number) => void): (name: string, since: number) => number {
  return (name, since) => {
    const now = performance.now();
    observe?.(name, (now - since) / 1000);
    return now;
  };
}
