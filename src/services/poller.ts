/**
 * The polling loop of the outbox workers (webhooks, forwarding): run a batch, poll again at once after a
 * full batch, after `pollMs` otherwise, or sooner when kicked (new work was committed). One batch at a time;
 * stop() waits for the batch in flight.
 */
import type { Logger } from 'pino';

export interface PollerOptions {
  name: string;
  logger: Logger;
  pollMs: number;
  /** Size of a full batch: when a run handled that many, more may be due. */
  batchSize: () => number;
  runOnce: () => Promise<number>;
}

export function createPoller(o: PollerOptions) {
  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let kicked = false;

  function schedule(ms: number): void {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(tick, ms);
    timer.unref();
  }

  function tick(): void {
    timer = null;
    kicked = false;
    running = o
      .runOnce()
      .catch((err: unknown) => {
        o.logger.warn({ err }, `${o.name}: poll failed`);
        return 0;
      })
      .then((n) => {
        running = null;
        schedule(n >= o.batchSize() ? 0 : kicked ? 100 : o.pollMs);
      });
  }

  return {
    get stopped(): boolean {
      return stopped;
    },
    start(): void {
      stopped = false;
      schedule(0);
    },
    /** New work was committed: look soon rather than at the next poll. */
    kick(): void {
      if (stopped) return;
      if (running) kicked = true;
      else schedule(250);
    },
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await Promise.allSettled([running]);
    },
  };
}
