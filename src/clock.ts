/**
 * Time as the services see it. Every decision that depends on time takes `now` from an injected clock, so
 * tests can move it instead of waiting.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
