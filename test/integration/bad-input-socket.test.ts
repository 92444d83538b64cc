/**
 * The bad-input corpus, socket level: what only a real listener shows — request timeouts for slow senders,
 * bodies refused before they are read, chunked uploads, HTTP framing conflicts and duplicated headers. Each
 * case writes raw bytes to 127.0.0.1 and reads what comes back until the server closes or a deadline passes.
 * (The message-level corpus is in bad-input.test.ts.)
 */
import net from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from '../helpers/context.js';
import type { RunningServer } from '../../src/server.js';
import { TEST_BOOTSTRAP_SECRET } from '../helpers/secrets.js';
import { eventually } from '../helpers/eventually.js';

const ZLIB = 'application/x-compress-zlib';
const FI_UA = 'FusionInventory-Agent_v2.6-3';
const REQUEST_TIMEOUT_S = 2;
const BODY_LIMIT = 64 * 1024;
const SECRET = TEST_BOOTSTRAP_SECRET;

let open: { server: RunningServer; close(): Promise<void> };
let authed: { server: RunningServer; close(): Promise<void> };
beforeAll(async () => {
  open = await startTestServer({
    AGENT_AUTH: 'off',
    REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_S}s`,
    BODY_LIMIT: '64kb',
    INFLATE_LIMIT: '1mb',
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
  });
  authed = await startTestServer({
    AGENT_AUTH: 'required',
    BOOTSTRAP_SECRET: SECRET,
    SECRET_CACHE_TTL: '0',
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
    RATE_LIMIT_AUTH_FAILURES_PER_15MIN: '1000000',
  });
});
afterAll(async () => {
  await Promise.all([open?.close(), authed?.close()]);
});

function prolog(deviceid: string): Buffer {
  return zlib.deflateSync(
    `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST>\n  <DEVICEID>${deviceid}</DEVICEID>\n  <QUERY>PROLOG</QUERY>\n  <TOKEN>12345678</TOKEN>\n</REQUEST>\n`,
  );
}

const basic = (password: string) => `Basic ${Buffer.from(`inventory:${password}`).toString('base64')}`;

function head(lines: string[]): string {
  return `${lines.join('\r\n')}\r\n\r\n`;
}

interface Exchange {
  /** Everything the server sent. */
  raw: Buffer;
  /** ms from connect to the first byte received (null: nothing came). */
  firstByteMs: number | null;
  /** ms from connect to the server closing the connection (null: still open at the deadline). */
  closedMs: number | null;
}

/**
 * Opens a connection, writes `parts` (a function is called until it returns null, every `everyMs`, while the
 * server has not answered yet), and waits for the server to close, at most `deadlineMs`.
 */
function exchange(
  port: number,
  parts: (Buffer | string)[] | (() => Buffer | string | null),
  opts: { everyMs?: number; deadlineMs?: number } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let firstByteMs: number | null = null;
    let closedMs: number | null = null;
    let writer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const finish = () => {
      clearTimeout(deadline);
      clearInterval(writer);
      resolve({ raw: Buffer.concat(chunks), firstByteMs, closedMs });
    };
    const deadline = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, opts.deadlineMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      firstByteMs ??= Date.now() - started;
      chunks.push(d);
    });
    socket.on('error', () => {}); // a reset after the answer is fine: what was received is judged
    socket.on('end', () => {
      closedMs ??= Date.now() - started;
    });
    socket.on('close', () => {
      if (!timedOut) closedMs ??= Date.now() - started;
      finish();
    });
    socket.on('connect', () => {
      if (Array.isArray(parts)) {
        for (const p of parts) socket.write(p);
        return;
      }
      writer = setInterval(() => {
        if (firstByteMs !== null || socket.destroyed) return clearInterval(writer);
        const p = parts();
        if (p === null) return clearInterval(writer);
        socket.write(p);
      }, opts.everyMs ?? 10);
    });
  });
}

interface ParsedResponse {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

/** The first HTTP response in what the server sent (bodies are sent with Content-Length by this server). */
function parse(raw: Buffer): ParsedResponse {
  const end = raw.indexOf('\r\n\r\n');
  expect(end, `no complete response in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`).toBeGreaterThan(0);
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1]);
  const headers = lines.map(
    (l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string],
  );
  const length = Number(headers.find(([k]) => k.toLowerCase() === 'content-length')?.[1] ?? 0);
  return { status, headers, body: raw.subarray(end + 4, end + 4 + length) };
}

function values(res: ParsedResponse, name: string): string[] {
  return res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

function agentText(res: ParsedResponse): string {
  const type = values(res, 'content-type')[0];
  return type === ZLIB ? zlib.inflateSync(res.body).toString('utf8') : res.body.toString('utf8');
}

interface Rows {
  devices: number;
  submissions: number;
  inventories: number;
  registrations: number;
  hash: string;
}

async function rows(server: RunningServer): Promise<Rows> {
  const [r] = await server.deps.db.sql<Rows[]>`
    select (select count(*)::int from devices) as devices, (select count(*)::int from submissions) as submissions,
           (select count(*)::int from inventories) as inventories, (select count(*)::int from registrations) as registrations,
           md5(concat((select string_agg(d::text, '|' order by d.id) from devices d),
                      (select string_agg(concat_ws(',', s.id, s.device_id, md5(s.body)), '|' order by s.id) from submissions s),
                      (select string_agg(i::text, '|' order by i.device_id) from inventories i))) as hash`;
  return r!;
}

/**
 * Devices, submissions and inventories untouched; exactly `refused` new registrations, each a refusal. A refusal
 * is written after the answer (and after the close the client sees), so it is waited for: otherwise it could
 * land in the next test's count.
 */
async function expectNothingStored(
  server: RunningServer,
  before: Rows,
  refusals: { refused: number; status?: number },
): Promise<void> {
  const after = await eventually(async () => {
    const r = await rows(server);
    expect(r.registrations - before.registrations).toBe(refusals.refused);
    return r;
  });
  expect({
    devices: after.devices,
    submissions: after.submissions,
    inventories: after.inventories,
    hash: after.hash,
  }).toEqual({
    devices: before.devices,
    submissions: before.submissions,
    inventories: before.inventories,
    hash: before.hash,
  });
  if (refusals.refused > 0) {
    const added = await server.deps.db.sql<{ status: number; outcome: string }[]>`
      select status, outcome from registrations order by id desc limit ${refusals.refused}`;
    for (const r of added) {
      expect(r.outcome).toBe('refused');
      if (refusals.status) expect(r.status).toBe(refusals.status);
    }
  }
}

const XML_ERROR = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<REPLY><ERROR>([^<]*)<\/ERROR><\/REPLY>\n$/;

describe('bodies too large: refused before they are read', () => {
  it('Content-Length of 10 GiB and no body sent: 413 at once, agent format, connection closed', async () => {
    const before = await rows(open.server);
    const ex = await exchange(
      open.server.port,
      [
        head([
          'POST / HTTP/1.1',
          'Host: 127.0.0.1',
          `Content-Type: ${ZLIB}`,
          `User-Agent: ${FI_UA}`,
          'Content-Length: 10737418240',
        ]),
      ],
      { deadlineMs: 5_000 },
    );
    expect(ex.firstByteMs).not.toBeNull();
    expect(ex.firstByteMs!).toBeLessThan(2_000);
    expect(ex.closedMs).not.toBeNull();
    const res = parse(ex.raw);
    expect(res.status).toBe(413);
    expect(values(res, 'connection')).toEqual(['close']);
    expect(values(res, 'content-type')).toEqual([ZLIB]);
    expect(agentText(res)).toMatch(XML_ERROR);
    expect(XML_ERROR.exec(agentText(res))![1]).toBe(`Body larger than ${BODY_LIMIT} bytes`);
    await expectNothingStored(open.server, before, { refused: 0 });
  });

  it('a chunked upload (no Content-Length) that ends: 413 in agent format', async () => {
    const before = await rows(open.server);
    const chunk = `1000\r\n${'<'.repeat(4096)}\r\n`;
    const ex = await exchange(
      open.server.port,
      [
        head([
          'POST / HTTP/1.1',
          'Host: 127.0.0.1',
          'Content-Type: application/xml',
          'Transfer-Encoding: chunked',
          'Connection: close',
        ]),
        chunk.repeat(32),
        '0\r\n\r\n',
      ],
      { deadlineMs: 8_000 },
    );
    const res = parse(ex.raw);
    expect(res.status).toBe(413);
    expect(values(res, 'content-type')).toEqual(['application/xml']);
    expect(XML_ERROR.exec(agentText(res))?.[1]).toBe(`Body larger than ${BODY_LIMIT} bytes`);
    await expectNothingStored(open.server, before, { refused: 1, status: 413 });
  });

  it('a chunked upload that keeps going past BODY_LIMIT: 413 while it is still being sent (not read to its end)', async () => {
    const before = await rows(open.server);
    const chunk = `1000\r\n${'<'.repeat(4096)}\r\n`;
    let sent = 0;
    // 4 KB every 10 ms for up to 8 s (~3 MB, 50× the limit), stopping as soon as anything comes back.
    const ex = await exchange(
      open.server.port,
      () =>
        sent++ === 0
          ? head([
              'POST / HTTP/1.1',
              'Host: 127.0.0.1',
              'Content-Type: application/xml',
              'Transfer-Encoding: chunked',
            ]) + chunk
          : sent < 800
            ? chunk
            : null,
      { everyMs: 10, deadlineMs: 10_000 },
    );
    expect(ex.firstByteMs, 'no answer while the oversized upload went on').not.toBeNull();
    expect(ex.firstByteMs!).toBeLessThan(1_500); // 64 KB arrive in ~0.2 s; REQUEST_TIMEOUT (2 s) must not be what ends it
    expect(parse(ex.raw).status).toBe(413);
    await expectNothingStored(open.server, before, { refused: 1, status: 413 });
  }, 20_000);
});

describe(`slow senders (REQUEST_TIMEOUT=${REQUEST_TIMEOUT_S}s)`, () => {
  it('a body that never completes: the connection is closed within a few seconds', async () => {
    const before = await rows(open.server);
    const body = prolog('slow-body-1');
    const ex = await exchange(
      open.server.port,
      [
        head(['POST / HTTP/1.1', 'Host: 127.0.0.1', `Content-Type: ${ZLIB}`, `Content-Length: ${body.length + 1000}`]),
        body,
      ],
      { deadlineMs: 9_000 },
    );
    expect(ex.closedMs, 'still open 9 s after a 2 s REQUEST_TIMEOUT').not.toBeNull();
    expect(ex.closedMs!).toBeLessThan((REQUEST_TIMEOUT_S + 4) * 1000);
    if (ex.raw.length > 0) expect([400, 408]).toContain(parse(ex.raw).status);
    await expectNothingStored(open.server, before, { refused: 1 });
  }, 20_000);

  it('headers that never complete: the connection is closed within a few seconds', async () => {
    const before = await rows(open.server);
    const ex = await exchange(open.server.port, ['POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applic'], {
      deadlineMs: 9_000,
    });
    expect(ex.closedMs, 'still open 9 s after a 2 s REQUEST_TIMEOUT').not.toBeNull();
    expect(ex.closedMs!).toBeLessThan((REQUEST_TIMEOUT_S + 4) * 1000);
    if (ex.raw.length > 0) expect(parse(ex.raw).status).toBe(408);
    await expectNothingStored(open.server, before, { refused: 0 });
  }, 20_000);
});

describe('HTTP framing and duplicated headers', () => {
  it('Transfer-Encoding together with Content-Length: 400 from Node, connection closed, the server keeps serving', async () => {
    const before = await rows(open.server);
    const body = prolog('te-cl-1');
    const ex = await exchange(
      open.server.port,
      [
        head([
          'POST / HTTP/1.1',
          'Host: 127.0.0.1',
          `Content-Type: ${ZLIB}`,
          `Content-Length: ${body.length}`,
          'Transfer-Encoding: chunked',
        ]),
        `${body.length.toString(16)}\r\n`,
        body,
        '\r\n0\r\n\r\n',
      ],
      { deadlineMs: 5_000 },
    );
    expect(parse(ex.raw).status).toBe(400);
    expect(ex.closedMs).not.toBeNull();
    await expectNothingStored(open.server, before, { refused: 0 });
    const next = parse(
      (
        await exchange(open.server.port, [
          head([
            'POST / HTTP/1.1',
            'Host: 127.0.0.1',
            `Content-Type: ${ZLIB}`,
            `Content-Length: ${prolog('te-cl-2').length}`,
            'Connection: close',
          ]),
          prolog('te-cl-2'),
        ])
      ).raw,
    );
    expect(next.status).toBe(200);
  });

  it.each([
    ['zlib first, application/xml second', [`Content-Type: ${ZLIB}`, 'Content-Type: application/xml']],
    ['application/xml first, zlib second', ['Content-Type: application/xml', `Content-Type: ${ZLIB}`]],
  ])('two Content-Type headers (%s) on a zlib body: sniffed, 200 in zlib', async (_name, types) => {
    const body = prolog(`dup-ct-${types[0]!.length}`);
    const res = parse(
      (
        await exchange(open.server.port, [
          head(['POST / HTTP/1.1', 'Host: 127.0.0.1', ...types, `Content-Length: ${body.length}`, 'Connection: close']),
          body,
        ])
      ).raw,
    );
    expect(res.status).toBe(200);
    expect(values(res, 'content-type')).toEqual([ZLIB]);
    expect(agentText(res)).toContain('<RESPONSE>SEND</RESPONSE>');
  });

  it.each([
    // Node keeps the first of two Authorization headers and drops the other silently; a proxy in front may
    // keep the last. Two different credentials are ambiguous and must be refused, whichever comes first.
    ['a valid one, then an invalid one', [basic(SECRET), basic('wrong-password')]],
    ['an invalid one, then a valid one', [basic('wrong-password'), basic(SECRET)]],
  ])('two Authorization headers (%s): the standard 401, nothing stored', async (_name, credentials) => {
    const before = await rows(authed.server);
    const body = prolog('dup-auth-1');
    const ex = await exchange(authed.server.port, [
      head([
        'POST / HTTP/1.1',
        'Host: 127.0.0.1',
        `Content-Type: ${ZLIB}`,
        ...credentials.map((c) => `Authorization: ${c}`),
        `Content-Length: ${body.length}`,
        'Connection: close',
      ]),
      body,
    ]);
    const res = parse(ex.raw);
    expect(res.status).toBe(401);
    expect(values(res, 'www-authenticate')).toEqual(['Basic realm="agent-gate"']);
    expect(XML_ERROR.exec(agentText(res))?.[1]).toBe('Authorization required');
    await expectNothingStored(authed.server, before, { refused: 0 });
  });
});

describe('after the whole corpus', () => {
  it('both servers still answer a valid PROLOG with 200', async () => {
    const body = prolog('still-alive-2');
    const plain = parse(
      (
        await exchange(open.server.port, [
          head([
            'POST / HTTP/1.1',
            'Host: 127.0.0.1',
            `Content-Type: ${ZLIB}`,
            `Content-Length: ${body.length}`,
            'Connection: close',
          ]),
          body,
        ])
      ).raw,
    );
    expect(plain.status).toBe(200);
    expect(agentText(plain)).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><PROLOG_FREQ>24</PROLOG_FREQ><RESPONSE>SEND</RESPONSE></REPLY>\n',
    );
    const withKey = parse(
      (
        await exchange(authed.server.port, [
          head([
            'POST / HTTP/1.1',
            'Host: 127.0.0.1',
            `Content-Type: ${ZLIB}`,
            `Authorization: ${basic(SECRET)}`,
            `Content-Length: ${body.length}`,
            'Connection: close',
          ]),
          body,
        ])
      ).raw,
    );
    expect(withKey.status).toBe(200);
  });
});
