import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';

describe('eventually()', () => {
  it('returns the value of the first check that neither throws nor returns false', async () => {
    let calls = 0;
    const value = await eventually(
      () => {
        calls++;
        if (calls === 1) throw new Error('not yet');
        return calls === 2 ? false : `done after ${calls}`;
      },
      { interval: 1 },
    );
    expect(value).toBe('done after 3');
    expect(calls).toBe(3);
  });

  it('passes at once when the first check passes, whatever the timeout', async () => {
    expect(await eventually(() => 0, { timeout: 0 })).toBe(0);
    expect(await eventually(() => undefined, { timeout: 0 })).toBeUndefined();
  });

  it('awaits an async check', async () => {
    let n = 0;
    const check = async () => {
      await Promise.resolve();
      return ++n < 2 ? false : n;
    };
    expect(await eventually(check, { interval: 1 })).toBe(2);
  });

  it("fails on timeout with the check's last error, its own message kept", async () => {
    const failure = await eventually(() => expect(1).toBe(2), { timeout: 30, interval: 5, message: 'one is two' }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/^one is two: not so after \d+ ms \(\d+ attempts\): expected 1 to be 2/);
  });

  it('fails on timeout when the check still returns false', async () => {
    await expect(eventually(() => false, { timeout: 20, interval: 5 })).rejects.toThrow(
      /not so after \d+ ms .*: the check returned false/,
    );
  });

  it('runs a slow check at least once even when it outlasts the timeout', async () => {
    let calls = 0;
    await expect(
      eventually(
        async () => {
          calls++;
          await new Promise((r) => setTimeout(r, 20));
          return false;
        },
        { timeout: 5 },
      ),
    ).rejects.toThrow(/1 attempts/);
    expect(calls).toBe(1);
  });
});
