/**
 * The one way the tests wait for background work (a row written after the answer, a worker's delivery, a
 * process that becomes ready, a gauge that flips): call a check again and again until it passes, and fail
 * with the check's own last error when it has not passed in time. Never a fixed sleep: a sleep is either
 * too short on a busy machine (flaky) or longer than needed everywhere else (slow).
 *
 * Time the gateway reads through its Clock is moved with TestClock (test/helpers/context.ts) instead.
 */

export interface EventuallyOptions {
  /** Give up after this long (ms); the check always runs at least once. Default 5000. */
  timeout?: number;
  /** Pause between two checks (ms). Default 50. */
  interval?: number;
  /** What is being waited for, for the error on timeout. */
  message?: string;
}

/**
 * Runs `check` until it neither throws nor returns `false`, and returns its last value. A check is usually
 * a few `expect()` calls, or a function that returns what the test goes on with:
 *
 *   await eventually(async () => expect(await rows()).toHaveLength(1));
 *   const row = await eventually(async () => (await rows()).find((r) => r.deviceid === 'd1') ?? false);
 *
 * On timeout it throws: the check's last error (an assertion error keeps its expected/received diff), or
 * an error saying the check still returned false.
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  { timeout = 5000, interval = 50, message }: EventuallyOptions = {},
): Promise<Exclude<T, false>> {
  const started = Date.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    let failure: unknown;
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
      failure = new Error('the check returned false');
    } catch (err) {
      failure = err;
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeout) {
      const what = `${message ? `${message}: ` : ''}not so after ${elapsed} ms (${attempts} attempts)`;
      if (failure instanceof Error) {
        failure.message = `${what}: ${failure.message}`;
        throw failure;
      }
      throw new Error(`${what}: ${String(failure)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval, timeout - elapsed)));
  }
}
