/**
 * Issue 12, items 1 and 2: hostile bodies cannot exhaust the gateway. A key holder sends decompression
 * bombs (~100 KB that inflate to ~60 MB, JSON and XML) from 8 clients at once: the gateway keeps answering
 * /healthz, accepts a normal inventory sent meanwhile, and answers every bomb in the agent's own format (a
 * 413 past INFLATE_LIMIT, a normal answer under it); the large ones are parsed in worker threads. And
 * clients that disconnect while queued for the large-body gate give their place back: a large upload sent
 * afterwards goes through (with HEAVY_CONCURRENCY=1 it used to hang forever).
 *
 * Behaviour only, never time: the speed targets (healthz p99, peak RSS) are in `npm run bench`.
 */
import net from 'node:net';
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jsonBomb, xmlBomb } from '../../scripts/lib/bombs.js';
import { bigInventory } from '../../scripts/lib/memory.js';
import { eventually } from '../helpers/eventually.js';
import { bodyOf } from '../helpers/fixtures.js';
import {
  FI_HEADERS,
  GA_HEADERS,
  GA_INVENTORY,
  KEY_A_SECRET,
  type Gate,
  basic,
  expectVictimUntouched,
  header,
  startGate,
  textOfAnswer,
  victim,
} from './support.js';

let gate: Gate;
afterEach(async () => {
  await gate.close();
});

const keyA = () => basic('inventory', KEY_A_SECRET);

async function metric(name: string, labels = ''): Promise<number> {
  const text = await gate.ctx.deps.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || l.startsWith(`${name}${labels}{`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('decompression bombs', () => {
  beforeEach(async () => {
    gate = await startGate();
  });

  it('8 parallel ~60 MB bombs (JSON and XML): healthz answers, a normal inventory is accepted, each bomb answered in its format', async () => {
    const { deviceid, before } = await victim(gate);
    const json = jsonBomb(60, 'bomb-json');
    const xml = xmlBomb(60, 'bomb-xml');
    const over = jsonBomb(70, 'bomb-over'); // past INFLATE_LIMIT (64 MB)
    for (const b of [json, xml, over]) expect(b.length).toBeLessThan(160 * 1024);
    expect(zlib.inflateSync(json).length).toBeGreaterThan(60 * 1024 * 1024 - 1024);

    const send = (kind: 'json' | 'xml', body: Buffer) =>
      gate.raw({ headers: { ...(kind === 'json' ? GA_HEADERS : FI_HEADERS), Authorization: keyA() }, body });
    const bombs = [
      ...[json, json, json, over].map((b) => ({ kind: 'json' as const, over: b === over, answer: send('json', b) })),
      ...[xml, xml, xml, xml].map((b) => ({ kind: 'xml' as const, over: false, answer: send('xml', b) })),
    ];
    // Wait until the bombs are being decoded, then ask the two questions an operator and an agent ask.
    await eventually(async () => expect(await metric('agentgate_decode_budget_bytes_in_flight')).toBeGreaterThan(0), {
      timeout: 60_000,
    });
    const health = await gate.raw({ method: 'GET', path: '/healthz' });
    expect(health.status).toBe(200);
    const normal = await gate.raw({
      headers: { ...GA_HEADERS, Authorization: keyA() },
      body: bodyOf(GA_INVENTORY),
    });
    expect(normal.status).toBe(200);
    expect(JSON.parse(textOfAnswer(normal))).toMatchObject({ status: 'ok' });

    for (const b of bombs) {
      const res = await b.answer;
      expect(res.status, `${b.kind} bomb${b.over ? ' over INFLATE_LIMIT' : ''}`).toBe(b.over ? 413 : 200);
      // In the agent's own format and compression (zlib in, zlib out).
      expect(header(res, 'content-type')[0]).toBe('application/x-compress-zlib');
      const text = textOfAnswer(res);
      if (b.kind === 'xml') expect(text).toMatch(/^<\?xml[\s\S]*<REPLY>/);
      else expect(JSON.parse(text)).toMatchObject({ status: b.over ? 'error' : 'ok' });
    }
    // The seven under the cap were parsed in a worker thread, not on the event loop.
    expect(await metric('agentgate_parse_tasks', '{task="parse",outcome="ok"}')).toBeGreaterThanOrEqual(7);
    // The bombs were held as new, quarantined devices; the budget is empty again.
    const rows = await gate.ctx.sql<{ deviceid: string; state: string }[]>`
      select deviceid, state from devices where deviceid like 'bomb-%' order by deviceid`;
    expect(rows).toEqual([
      { deviceid: 'bomb-json', state: 'quarantined' },
      { deviceid: 'bomb-xml', state: 'quarantined' },
    ]);
    expect(await metric('agentgate_decode_budget_bytes_in_flight')).toBe(0);
    await expectVictimUntouched(gate, deviceid, before);
  }, 240_000);
});

/** A request whose head (and `bodyBytes` of its body) is sent, then nothing: it waits in the gateway. */
function stalledUpload(port: number, contentLength: number, bodyBytes = 0): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${keyA()}\r\n` +
          `Content-Type: application/x-compress-zlib\r\nContent-Length: ${contentLength}\r\n\r\n`,
      );
      if (bodyBytes > 0) socket.write(Buffer.alloc(bodyBytes, 0x78));
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

describe('waiters that leave give their place back', () => {
  beforeEach(async () => {
    gate = await startGate({ HEAVY_CONCURRENCY: '1' });
  });

  it('clients that disconnect while queued for the large-body gate: a large upload afterwards goes through', async () => {
    const { deviceid, before } = await victim(gate);
    const large = 2 * 1024 * 1024;
    // One upload takes the only slot and stalls half-way through its body; three more queue behind it.
    const holder = await stalledUpload(gate.port, large, 64 * 1024);
    const queued = await Promise.all([1, 2, 3].map(() => stalledUpload(gate.port, large)));
    await eventually(async () => expect(await metric('agentgate_heavy_body_waiters')).toBe(3), { timeout: 20_000 });
    for (const s of queued) s.destroy();
    // The queue drops a waiter when its socket closes; the leaver is counted once its rejection has reached
    // the request (a few microtasks later): wait for both.
    await eventually(
      async () => {
        expect(await metric('agentgate_heavy_body_waiters')).toBe(0);
        expect(await metric('agentgate_body_waiters_left_total', '{queue="heavy"}')).toBe(3);
      },
      { timeout: 20_000 },
    );
    holder.destroy(); // the slot holder leaves mid-body too: its read ends, its slot is released

    const body = bigInventory(8, 'large-after-leavers');
    expect(body.length).toBeGreaterThan(256 * 1024); // large by its compressed size: it needs the slot
    const res = await gate.raw({ headers: { ...FI_HEADERS, Authorization: keyA() }, body });
    expect(res.status).toBe(200);
    expect(textOfAnswer(res)).toMatch(/<REPLY>/);
    const [row] = await gate.ctx.sql<{ state: string }[]>`
      select state from devices where deviceid = 'large-after-leavers'`;
    expect(row).toEqual({ state: 'quarantined' });
    await expectVictimUntouched(gate, deviceid, before);
  }, 120_000);
});
