/** Small helpers for asserting on the AppError a protocol function throws (code, status, message). */
import { expect } from 'vitest';
import { AppError } from '../../src/errors.js';

/** Runs fn, expects it to throw an AppError, and returns it for further assertions. */
export function appErrorOf(fn: () => unknown): AppError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected an AppError to be thrown').toBeInstanceOf(AppError);
  return thrown as AppError;
}

/** Awaits p, expects it to reject with an AppError, and returns it. */
export async function appErrorOfAsync(p: Promise<unknown>): Promise<AppError> {
  const thrown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(thrown, 'expected an AppError rejection').toBeInstanceOf(AppError);
  return thrown as AppError;
}
