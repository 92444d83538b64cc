/**
 * The queues a request body waits in before and while it is decoded: the large-body gate (HEAVY_CONCURRENCY
 * slots) and the gateway-wide budget of decoded bytes in flight (DECODE_BUDGET). A waiter whose client left
 * (disconnect, REQUEST_TIMEOUT) is dropped at once and its place given back: the `signal` of each wait is
 * aborted when the request's socket closes.
 */
import { AppError } from '../errors.js';

/** Thrown to a waiter whose client went away while it waited: nothing is left to answer. */
export class ClientGone extends AppError {
  constructor() {
    super('bad_request', 'The client closed the connection');
  }
}

/** A counting semaphore: `await gate(signal)` resolves to a release function once a slot is free. */
export interface Gate {
  (signal?: AbortSignal): Promise<() => void>;
  /** Requests waiting for a slot. */
  readonly waiting: number;
  /** Slots in use. */
  readonly busy: number;
}

export function createGate(slots: number): Gate {
  let free = slots;
  const waiting: { grant: () => void }[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next.grant();
    else free++;
  };
  const once = () => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      release();
    };
  };
  const gate = (signal?: AbortSignal) =>
    new Promise<() => void>((resolve, reject) => {
      if (signal?.aborted) return reject(new ClientGone());
      if (free > 0) {
        free--;
        return resolve(once());
      }
      const entry = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(once());
        },
      };
      const onAbort = () => {
        const at = waiting.indexOf(entry);
        if (at !== -1) waiting.splice(at, 1);
        reject(new ClientGone());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiting.push(entry);
    });
  Object.defineProperties(gate, {
    waiting: { get: () => waiting.length },
    busy: { get: () => slots - free },
  });
  return gate as Gate;
}

/** One body's account with the decode budget. */
export interface DecodeTicket {
  /**
   * Charges `n` more decoded bytes. Returns nothing when they fit at once (the hot path allocates no
   * promise), else a promise that resolves once they do, or rejects with ClientGone.
   */
  charge(n: number): Promise<void> | undefined;
  /** Gives back everything this body holds and leaves the budget. Idempotent. */
  close(): void;
}

export interface DecodeBudget {
  /** Waits, unread, until the budget has room for one more body (FIFO), then opens its account. */
  open(signal?: AbortSignal): Promise<DecodeTicket>;
  readonly inFlight: number;
  readonly waiting: number;
  readonly limit: number;
}

interface Account {
  seq: number;
  held: number;
}

interface Waiter {
  account: Account | null; // null: waiting to open
  bytes: number;
  grant: () => void;
}

/**
 * A gateway-wide budget of decoded bytes in flight. A body opens an account only while the budget is not
 * full, and charges its decoded bytes as the inflater produces them; past the budget it waits, its inflater
 * paused (so its socket stays unread). Waits are first come, first served. So that bodies which all wait
 * for each other cannot deadlock, the oldest open account is always granted: the bytes held never exceed
 * the budget by more than one body (at most INFLATE_LIMIT).
 */
export function createDecodeBudget(limit: number): DecodeBudget {
  let inFlight = 0;
  let seq = 0;
  const accounts = new Map<number, Account>(); // insertion order = age: the first is the oldest
  const waiters: Waiter[] = [];

  const oldest = () => accounts.values().next().value;
  const fits = (w: Waiter) =>
    w.account === null ? inFlight < limit || accounts.size === 0 : inFlight + w.bytes <= limit;

  function pump(): void {
    // The oldest account first, wherever it waits; then in order, as long as the head fits.
    const eldest = oldest();
    const at = eldest ? waiters.findIndex((w) => w.account === eldest) : -1;
    if (at !== -1) waiters.splice(at, 1)[0]!.grant();
    while (waiters.length > 0 && fits(waiters[0]!)) waiters.shift()!.grant();
  }

  function wait(w: Omit<Waiter, 'grant'>, signal: AbortSignal | undefined, granted: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new ClientGone());
      const entry: Waiter = {
        ...w,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          granted();
          resolve();
        },
      };
      const onAbort = () => {
        const at = waiters.indexOf(entry);
        if (at !== -1) waiters.splice(at, 1);
        reject(new ClientGone());
        pump(); // a waiter at the head may have held others back
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.push(entry);
    });
  }

  async function open(signal?: AbortSignal): Promise<DecodeTicket> {
    const account: Account = { seq: seq++, held: 0 };
    const admit = () => void accounts.set(account.seq, account);
    const probe: Waiter = { account: null, bytes: 0, grant: admit };
    if (waiters.length === 0 && fits(probe)) admit();
    else await wait({ account: null, bytes: 0 }, signal, admit);
    let closed = false;
    return {
      charge(n: number) {
        if (closed) return undefined;
        const take = () => {
          account.held += n;
          inFlight += n;
        };
        if (oldest() === account || (waiters.length === 0 && inFlight + n <= limit)) {
          take();
          return undefined;
        }
        return wait({ account, bytes: n }, signal, take);
      },
      close() {
        if (closed) return;
        closed = true;
        inFlight -= account.held;
        account.held = 0;
        accounts.delete(account.seq);
        pump();
      },
    };
  }

  return {
    open,
    get inFlight() {
      return inFlight;
    },
    get waiting() {
      return waiters.length;
    },
    limit,
  };
}
