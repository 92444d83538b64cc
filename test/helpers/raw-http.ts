/**
 * One request over a real socket (no keep-alive, no client library in between), with the raw header lines
 * of the answer in order, duplicates kept: for tests that compare answers byte for byte.
 */
import http from 'node:http';
import type net from 'node:net';

export interface RawResponse {
  status: number;
  /** Every header line as sent, in order, duplicates kept. */
  headers: [string, string][];
  body: Buffer;
}

export function rawSend(
  port: number,
  r: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    if (r.body) headers['Content-Length'] = String(r.body.length);
    const req = http.request(
      { host: '127.0.0.1', port, method: r.method ?? 'POST', path: r.path ?? '/', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const lines: [string, string][] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
          resolve({ status: res.statusCode!, headers: lines, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(r.body);
  });
}

/** Status, headers (minus Date) and body: what must be identical between two answers that may not differ. */
export function comparable(res: RawResponse) {
  return {
    status: res.status,
    headers: res.headers.filter(([k]) => k.toLowerCase() !== 'date'),
    body: res.body.toString('base64'),
  };
}

/** Starts a test server on 127.0.0.1 (port 0 = any free one; a port again after closeNow()); resolves to its port. */
export function listenLoopback(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** Stops a test server at once: new connections refused, open ones (and answers in progress) cut. */
export function closeNow(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
