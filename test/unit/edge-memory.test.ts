/**
 * What a gateway process answers an address from memory between its round trips to the shared edge
 * counters (src/http/edge-memory.ts), on an injected clock: the requests reserved for it, their end, the
 * unused ones given back, and remembered refusals. The reservation itself is the edge script's
 * (test/integration/limits.test.ts, against Redis).
 */
import { describe, expect, it } from 'vitest';
import { ALLOWANCE_MS, EDGE_MEMORY_MAX, EdgeMemory, REFUSAL_MEMORY_MS } from '../../src/http/edge-memory.js';

function memory() {
  let now = 1_000_000;
  const m = new EdgeMemory(() => now);
  return { m, advance: (ms: number) => (now += ms) };
}

/** Takes requests of `key` until one must be asked of Redis: how many were answered from memory, and that ask. */
function drain(m: EdgeMemory, key: string) {
  let allowed = 0;
  for (;;) {
    const k = m.take(key);
    if ('allowed' in k) allowed++;
    else return { allowed, next: k };
  }
}

describe('EdgeMemory', () => {
  it('asks the shared counters about an address it knows nothing of', () => {
    const { m } = memory();
    expect(m.take('a')).toEqual({ unused: 0 });
  });

  it('answers exactly the requests reserved for it, then asks again with nothing to give back', () => {
    const { m } = memory();
    m.reserved('a', 5, 50_000);
    expect(drain(m, 'a')).toEqual({ allowed: 5, next: { unused: 0 } });
    m.reserved('none', 0, 50_000);
    expect(m.take('none')).toEqual({ unused: 0 });
  });

  it('adds up the reservations of requests that asked at once, losing none', () => {
    const { m } = memory();
    expect(m.take('a')).toEqual({ unused: 0 });
    expect(m.take('a')).toEqual({ unused: 0 }); // a second request of the address asks before the first is answered
    m.reserved('a', 5, 50_000);
    m.reserved('a', 4, 50_000);
    expect(drain(m, 'a')).toEqual({ allowed: 9, next: { unused: 0 } });
    m.refuse('b', 'ip', 50_000);
    m.reserved('b', 5, 50_000); // an ask answered after a refusal: the refusal stands
    expect(m.take('b')).toEqual({ refused: 'ip' });
  });

  it('ends an allowance after ALLOWANCE_MS and gives back what it did not use', () => {
    const { m, advance } = memory();
    m.reserved('a', 5, 50_000);
    expect(m.take('a')).toEqual({ allowed: true });
    expect(m.take('a')).toEqual({ allowed: true });
    advance(ALLOWANCE_MS);
    expect(m.take('a')).toEqual({ unused: 3 });
    expect(m.take('a')).toEqual({ unused: 0 }); // given back once
  });

  it('never lasts past the window, and gives nothing back into the next one', () => {
    const { m, advance } = memory();
    m.reserved('a', 5, 300); // the window ends in 300 ms
    expect(m.take('a')).toEqual({ allowed: true });
    advance(300);
    expect(m.take('a')).toEqual({ unused: 0 });
    m.reserved('b', 5, 150);
    advance(60); // 90 ms left by this clock, which reads the window's end a round trip late
    m.revoke('b');
    expect(m.take('b')).toEqual({ unused: 0 });
  });

  it('ends the allowance at an invalid credential from the address', () => {
    const { m } = memory();
    m.reserved('a', 5, 50_000);
    expect(m.take('a')).toEqual({ allowed: true });
    m.revoke('a');
    expect(m.take('a')).toEqual({ unused: 4 });
  });

  it('remembers a refusal for REFUSAL_MEMORY_MS at most, never past its window', () => {
    const { m, advance } = memory();
    m.refuse('a', 'ip', 50_000);
    m.refuse('b', 'auth_failures', 200);
    m.revoke('a'); // an invalid credential does not end a refusal
    expect(m.take('a')).toEqual({ refused: 'ip' });
    expect(m.take('b')).toEqual({ refused: 'auth_failures' });
    advance(200);
    expect(m.take('b')).toEqual({ unused: 0 });
    expect(m.take('a')).toEqual({ refused: 'ip' });
    advance(REFUSAL_MEMORY_MS - 200);
    expect(m.take('a')).toEqual({ unused: 0 });
  });

  it('keeps at most EDGE_MEMORY_MAX addresses, making room from the ended ones', () => {
    const { m, advance } = memory();
    for (let i = 0; i < EDGE_MEMORY_MAX; i++) m.refuse(`x${i}`, 'ip', 50_000);
    m.reserved('late', 5, 50_000);
    expect(m.size).toBe(EDGE_MEMORY_MAX);
    expect(m.take('late')).toEqual({ unused: 0 }); // no room: asked of Redis, as without memory
    advance(REFUSAL_MEMORY_MS);
    m.reserved('late', 5, 50_000);
    expect(m.size).toBe(1);
    expect(m.take('late')).toEqual({ allowed: true });
  });
});
