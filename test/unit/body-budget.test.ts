/**
 * The two queues a body waits in (body-budget.ts): the decode budget holds bodies past its bytes, lets the
 * oldest through so waiters cannot deadlock, and drops a waiter whose client left, giving its place back;
 * the large-body gate drops a waiter that left the same way.
 */
import { describe, expect, it } from 'vitest';
import { ClientGone, createDecodeBudget, createGate } from '../../src/services/body-budget.js';

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return done;
};

describe('decode budget', () => {
  it('charges within the budget at once, holds a younger body past it, and lets it go when bytes return', async () => {
    const budget = createDecodeBudget(100);
    const a = await budget.open();
    const b = await budget.open();
    expect(a.charge(60)).toBeUndefined();
    const waiting = b.charge(60)!; // 120 > 100 and b is not the oldest: it waits
    expect(await settled(waiting)).toBe(false);
    expect(budget.waiting).toBe(1);
    a.close();
    await waiting;
    expect(budget.inFlight).toBe(60);
    b.close();
    expect(budget.inFlight).toBe(0);
  });

  it('the oldest body is always granted (two bodies waiting for each other would deadlock)', async () => {
    const budget = createDecodeBudget(100);
    const a = await budget.open();
    const b = await budget.open();
    expect(a.charge(50)).toBeUndefined();
    expect(b.charge(50)).toBeUndefined();
    expect(a.charge(50)).toBeUndefined(); // past the budget, but a is the oldest
    expect(budget.inFlight).toBe(150);
    const bMore = b.charge(10)!;
    expect(await settled(bMore)).toBe(false);
    a.close(); // b is now the oldest
    await bMore;
  });

  it('a body past the budget waits to open; a waiter whose client left is dropped and the next one admitted', async () => {
    const budget = createDecodeBudget(100);
    const a = await budget.open();
    expect(a.charge(100)).toBeUndefined();
    const left = new AbortController();
    const gone = budget.open(left.signal);
    const next = budget.open();
    expect(budget.waiting).toBe(2);
    left.abort();
    await expect(gone).rejects.toBeInstanceOf(ClientGone);
    expect(budget.waiting).toBe(1);
    a.close();
    const t = await next;
    expect(budget.waiting).toBe(0);
    t.close();
  });

  it('a charge waiting when its client leaves rejects and, closed, returns what it held', async () => {
    const budget = createDecodeBudget(100);
    const a = await budget.open();
    expect(a.charge(90)).toBeUndefined();
    const left = new AbortController();
    const b = await budget.open(left.signal);
    expect(b.charge(5)).toBeUndefined();
    const waiting = b.charge(50)!;
    left.abort();
    await expect(waiting).rejects.toBeInstanceOf(ClientGone);
    b.close();
    expect(budget.inFlight).toBe(90);
    expect(budget.waiting).toBe(0);
    a.close();
  });
});

describe('large-body gate', () => {
  it('a waiter that left gives its place back: the slot goes to the next one', async () => {
    const gate = createGate(1);
    const release = await gate();
    const left = new AbortController();
    const gone = gate(left.signal);
    const next = gate();
    expect(gate.waiting).toBe(2);
    left.abort();
    await expect(gone).rejects.toBeInstanceOf(ClientGone);
    expect(gate.waiting).toBe(1);
    release();
    release(); // idempotent: a double release frees no second slot
    const r2 = await next;
    expect(gate.busy).toBe(1);
    r2();
    expect(gate.busy).toBe(0);
  });
});
