/**
 * A fake GLPI on 127.0.0.1 for the forwarding tests: it records every inventory POST (exact bytes and
 * headers) and answers like GLPI's inventory endpoint (the agent's format and compression: zlib JSON
 * `{"status":"ok","expiration":24}` or an XML `<REPLY>`), unless told otherwise: a status (500, 400, 429…),
 * a slow answer, or no listener at all (connections refused) until it is brought up again on the same port.
 * It can demand Basic credentials or OAuth2 client credentials with its own token endpoint
 * (`…/api.php/token`, PROTOCOL §3.9), and it notes when two requests for one item or device overlap.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { closeNow, listenLoopback } from './raw-http.js';

export interface GlpiRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as GLPI would read it (zlib/gzip inflated by Content-Type). */
  text: string;
  /** DEVICEID / deviceid found in the text. */
  deviceid: string | null;
  status: number;
  /** Date.now() when the whole request had arrived. */
  receivedAt: number;
}

/** A status to answer, or { delayMs } to answer 200 that late (or `status` that late). */
export type GlpiAnswer = number | { delayMs: number; status?: number };

export function decodeGlpiBody(contentType: string | undefined, body: Buffer): string {
  const t = (contentType ?? '').toLowerCase();
  try {
    if (t.startsWith('application/x-compress-zlib')) return zlib.inflateSync(body).toString('utf8');
    if (t.startsWith('application/x-compress-gzip')) return zlib.gunzipSync(body).toString('utf8');
  } catch {
    return '';
  }
  return body.toString('utf8');
}

function deviceidOf(text: string): string | null {
  return /<DEVICEID>([^<]*)<\/DEVICEID>/.exec(text)?.[1] ?? /"deviceid"\s*:\s*"([^"]*)"/.exec(text)?.[1] ?? null;
}

export class FakeGlpi {
  /** Inventory POSTs in arrival order; `status` is 0 until answered (and stays 0 when cut by down()). */
  readonly requests: GlpiRequest[] = [];
  readonly tokenRequests: { body: unknown; headers: http.IncomingHttpHeaders }[] = [];
  /** Answers for the next inventory POSTs, in order; then `otherwise`. */
  script: GlpiAnswer[] = [];
  otherwise: GlpiAnswer = 200;
  /** When set, inventory POSTs need exactly this Authorization header (else 401). */
  basic: { user: string; password: string } | null = null;
  oauth: { clientId: string; clientSecret: string; expiresIn: number } | null = null;
  /** Overlapping requests seen: for the same body (one item sent twice at once) or the same device. */
  overlaps = { sameItem: 0, sameDevice: 0 };
  maxConcurrent = 0;
  private active: GlpiRequest[] = [];
  private tokens = new Set<string>();
  private tokenSeq = 0;
  private timers = new Set<NodeJS.Timeout>();
  private server = http.createServer((req, res) => this.handle(req, res));
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/front/inventory.php`;
  }

  async up(): Promise<void> {
    this.port = await listenLoopback(this.server, this.port);
  }

  /** Stops listening: connections are refused until up() (same port); answers in progress are cut. */
  async down(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await closeNow(this.server);
    this.active = [];
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  reset(): void {
    this.requests.length = 0;
    this.tokenRequests.length = 0;
    this.script = [];
    this.otherwise = 200;
    this.overlaps = { sameItem: 0, sameDevice: 0 };
    this.maxConcurrent = 0;
  }

  /** Forgets issued tokens (as a restarted GLPI would). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  /** The inventories answered 2xx, in arrival order. */
  delivered(): GlpiRequest[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && (req.url ?? '').split('?')[0]!.endsWith('/api.php/token'))
        return this.token(req, body, res);
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const text = decodeGlpiBody(req.headers['content-type'], body);
      const r: GlpiRequest = {
        path: req.url ?? '',
        headers: req.headers,
        body,
        text,
        deviceid: deviceidOf(text),
        status: 0,
        receivedAt: Date.now(),
      };
      this.requests.push(r);
      if (!this.authorized(req.headers.authorization)) {
        r.status = 401;
        return void res
          .writeHead(401, { 'Content-Type': 'application/json' })
          .end('{"status":"error","message":"Authorization required"}');
      }
      for (const a of this.active) {
        if (a.body.equals(body)) this.overlaps.sameItem++;
        else if (a.deviceid !== null && a.deviceid === r.deviceid) this.overlaps.sameDevice++;
      }
      this.active.push(r);
      this.maxConcurrent = Math.max(this.maxConcurrent, this.active.length);
      const answer = this.script.shift() ?? this.otherwise;
      const status = typeof answer === 'number' ? answer : (answer.status ?? 200);
      const finish = () => {
        this.active = this.active.filter((x) => x !== r);
        r.status = status;
        this.reply(req, res, status, text);
      };
      if (typeof answer === 'number') return finish();
      const t = setTimeout(() => {
        this.timers.delete(t);
        finish();
      }, answer.delayMs);
      this.timers.add(t);
      // The client gave up (timeout) before the slow answer: not answered, no longer in progress.
      res.once('close', () => {
        if (res.writableEnded) return;
        clearTimeout(t);
        this.timers.delete(t);
        this.active = this.active.filter((x) => x !== r);
      });
    });
  }

  private authorized(header: string | undefined): boolean {
    if (this.basic)
      return header === `Basic ${Buffer.from(`${this.basic.user}:${this.basic.password}`).toString('base64')}`;
    if (this.oauth) return Boolean(header?.startsWith('Bearer ') && this.tokens.has(header.slice(7)));
    return true;
  }

  /** GLPI's answer in the agent's own format and compression. */
  private reply(req: http.IncomingMessage, res: http.ServerResponse, status: number, received: string): void {
    const type = req.headers['content-type'] ?? 'application/xml';
    const json = received.trimStart().startsWith('{');
    const text =
      status < 300
        ? json
          ? '{"expiration":24,"status":"ok"}'
          : '<?xml version="1.0" encoding="UTF-8"?>\n<REPLY/>\n'
        : json
          ? `{"status":"error","message":"scripted ${status}","expiration":24}`
          : `<?xml version="1.0" encoding="UTF-8"?>\n<REPLY><ERROR>scripted ${status}</ERROR></REPLY>\n`;
    const zlibbed = /x-compress-zlib/i.test(type);
    res.writeHead(status, {
      'Content-Type': zlibbed ? 'application/x-compress-zlib' : json ? 'application/json' : 'application/xml',
    });
    res.end(zlibbed ? zlib.deflateSync(text) : text);
  }

  private token(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      /* refused below */
    }
    this.tokenRequests.push({ body: parsed, headers: req.headers });
    const o = this.oauth;
    if (
      !o ||
      parsed.grant_type !== 'client_credentials' ||
      parsed.client_id !== o.clientId ||
      parsed.client_secret !== o.clientSecret
    ) {
      return void res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":"invalid_client"}');
    }
    const token = `tok-${++this.tokenSeq}`;
    this.tokens.add(token);
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ token_type: 'Bearer', access_token: token, expires_in: o.expiresIn }));
  }
}
