/**
 * A small closed-loop HTTP load generator for loopback benchmarks: `concurrency` workers each send the next
 * request as soon as the previous answer arrived, for a bounded time and count. Keep-alive connections.
 */
import http from 'node:http';

export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  statuses: Record<number, number>;
  errors: number;
  p50ms: number;
  p99ms: number;
  /** Every answered request's latency (ms), ascending. */
  latencies: number[];
}

export async function runLoad(
  port: number,
  next: (i: number) => LoadRequest,
  opts: { concurrency: number; seconds: number; maxRequests?: number },
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  let issued = 0;
  const started = process.hrtime.bigint();
  const deadline = Date.now() + opts.seconds * 1000;
  const max = opts.maxRequests ?? Number.MAX_SAFE_INTEGER;

  function one(r: LoadRequest): Promise<void> {
    return new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: r.method,
          path: r.path,
          agent,
          headers: { ...r.headers, ...(r.body ? { 'Content-Length': String(r.body.length) } : {}) },
        },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(r.body);
    });
  }

  async function worker(): Promise<void> {
    while (Date.now() < deadline && issued < max) {
      const i = issued++;
      await one(next(i));
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => quantile(latencies, p);
  return {
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    statuses,
    errors,
    p50ms: pct(0.5),
    p99ms: pct(0.99),
    latencies,
  };
}

/** The p-quantile of ascending latencies (0 when there are none), as runLoad reports them. */
export function quantile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}
