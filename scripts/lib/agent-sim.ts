/**
 * Simulated inventory agents for `npm run load`: each one a device of its own (scripts/lib/traffic.ts), run
 * the way the real agents run (../shared/PROTOCOL.md §3, §5): one new connection per message, reused only
 * inside its 401 → 401 → credentials exchange; answers decoded and obeyed (no SEND → no inventory, CONTACT
 * without tasks.inventory → no inventory); OAuth as GA ≥ 1.10 does it (401, token call, Bearer replay).
 * Loopback only; every request has a time limit.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import type { LoadRequest } from './load-client.js';
import { ROOT } from './processes.js';
import { deviceidOf, variants } from './traffic.js';

export type AgentType = 'fi' | 'ga-new' | 'ga-known';
/** basic-challenged: the agents' real 401, 401, then Basic; basic-upfront: Basic on the first attempt. */
export type AuthMode = 'basic-challenged' | 'basic-upfront' | 'basic-client' | 'oauth';
export type Kind =
  'fi-prolog' | 'fi-inventory' | 'ga-prolog' | 'ga-inventory' | 'ga-contact' | 'ga-partial' | 'getconfig' | 'token';

export const KIND_LABELS: Record<Kind, string> = {
  'fi-prolog': 'PROLOG (FusionInventory)',
  'fi-inventory': 'XML inventory (FI, full)',
  'ga-prolog': 'PROLOG + GLPI-Agent-ID (GA 1st run)',
  'ga-inventory': 'JSON inventory (GA 1st run, full)',
  'ga-contact': 'CONTACT (GA later run)',
  'ga-partial': 'JSON inventory (GA later, partial)',
  getconfig: 'getConfig GET (GA 1st run)',
  token: 'POST /api.php/token (OAuth)',
};

export interface Credentials {
  /** Registration key (Basic password, any user). */
  keySecret: string;
  /** Client credentials made with the CLI; agents share them round-robin. */
  clients: { clientId: string; clientSecret: string }[];
}

export interface SimAgent {
  index: number;
  type: AgentType;
  auth: AuthMode;
  deviceid: string;
  basic: string | null;
  client: { clientId: string; clientSecret: string } | null;
  /** A GA that got its first PROLOG answered in JSON talks CONTACT from then on. */
  jsonProtocol: boolean;
  token: string | null;
  prolog: LoadRequest;
  inventory: LoadRequest | null;
  contact: LoadRequest | null;
  partial: LoadRequest | null;
  getConfigs: LoadRequest[];
}

function readFixture(scenario: string, file: string): { path: string; query: string; headers: [string, string][] } {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', scenario, file), 'utf8')) as never;
}

/** The three getConfig GETs of the captured GA first run, for another machineid. */
function getConfigs(deviceid: string): LoadRequest[] {
  return ['0002-get-empty.json', '0004-get-empty.json', '0005-get-empty.json'].map((f) => {
    const c = readFixture('glpi-second-run', f);
    const query = c.query.replace(/machineid=[^&]*/, `machineid=${encodeURIComponent(deviceid)}`);
    const headers = Object.fromEntries(
      c.headers.filter(([k]) => !['host', 'content-length', 'authorization'].includes(k.toLowerCase())),
    );
    return { method: 'GET' as const, path: `${c.path}?${query}`, headers };
  });
}

/**
 * `count` agents: type by index (FI, GA first run, GA already on the JSON protocol), auth by index: even
 * indexes Basic with the registration key (a `challengedShare` of them with the real 401,401,200 pattern,
 * the rest with credentials up front), odd ones a client credential (OAuth for GA, Basic for FI, which has no OAuth).
 * `tag` (one per load run) keeps deviceids apart from earlier runs.
 */
export function buildAgents(count: number, creds: Credentials, challengedShare: number, tag: string): SimAgent[] {
  const fiProlog = variants('fi-prolog', count, {}, tag);
  const fiInv = variants('fi-inventory', count, {}, tag);
  const gaProlog = variants('ga-prolog', count, {}, tag);
  const gaInv = variants('ga-inventory', count, {}, tag);
  const gaContact = variants('ga-contact', count, {}, tag);
  const gaPartial = variants('ga-partial', count, {}, tag);
  let odd = 0;
  return Array.from({ length: count }, (_, i) => {
    const type: AgentType = (['fi', 'ga-new', 'ga-known'] as const)[i % 3]!;
    let auth: AuthMode;
    let client: SimAgent['client'] = null;
    if (i % 2 === 0) {
      const j = i / 2;
      auth =
        Math.floor((j + 1) * challengedShare) > Math.floor(j * challengedShare) ? 'basic-challenged' : 'basic-upfront';
    } else {
      client = creds.clients[odd++ % creds.clients.length]!;
      auth = type === 'fi' ? 'basic-client' : 'oauth';
    }
    const basic =
      auth === 'basic-client'
        ? `${client!.clientId}:${client!.clientSecret}`
        : auth.startsWith('basic')
          ? `load-agent-${i}:${creds.keySecret}`
          : null;
    const prolog = type === 'fi' ? fiProlog[i]! : gaProlog[i]!;
    const deviceid = deviceidOf(prolog);
    return {
      index: i,
      type,
      auth,
      deviceid,
      client,
      token: null,
      basic: basic && `Basic ${Buffer.from(basic).toString('base64')}`,
      jsonProtocol: type === 'ga-known',
      prolog,
      inventory: type === 'fi' ? fiInv[i]! : gaInv[i]!,
      contact: type === 'fi' ? null : gaContact[i]!,
      partial: type === 'fi' ? null : gaPartial[i]!,
      getConfigs: type === 'fi' ? [] : getConfigs(deviceid),
    };
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Everything the simulated agents saw. */
export class Stats {
  requests = 0;
  statuses: Record<number, number> = {};
  final = new Map<Kind, number[]>();
  finalStatuses = new Map<Kind, Record<number, number>>();
  challenges = new Map<Kind, number[]>();
  networkErrors = 0;
  unexpectedStatus = 0;
  badAnswers = 0;
  samples: string[] = [];
  runs: Record<string, number> = {};
  runsFailed = 0;
  /** deviceid → inventories answered 2xx with an answer the agent accepts. */
  acked = new Map<string, number>();
  /** What the agents were told at PROLOG/CONTACT by form (`PROLOG_FREQ=N SEND`): how often, next contact range in s. */
  told = new Map<Kind, Map<string, { n: number; min: number; max: number }>>();
  /** Next contact given at PROLOG/CONTACT, in seconds (the agents' reading of PROLOG_FREQ / expiration). */
  nextContactSeconds: number[] = [];
  inventoriesDeferred = 0;
  /** ms from a request's start to its new connection's TCP connect. */
  connects: number[] = [];
  /** Every answer as [performance.now() when it arrived, ms it took]: latency over time. */
  timeline: [number, number][] = [];

  problem(kind: 'network' | 'status' | 'answer', text: string): void {
    if (kind === 'network') this.networkErrors++;
    else if (kind === 'status') this.unexpectedStatus++;
    else this.badAnswers++;
    if (this.samples.length < 6) this.samples.push(text.replace(/\s+/g, ' ').trim());
  }

  answered(kind: Kind, status: number, ms: number, challenge: boolean): void {
    this.requests++;
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    this.timeline.push([performance.now(), ms]);
    const map = challenge ? this.challenges : this.final;
    if (!map.has(kind)) map.set(kind, []);
    map.get(kind)!.push(ms);
    if (!challenge) {
      const s = this.finalStatuses.get(kind) ?? {};
      s[status] = (s[status] ?? 0) + 1;
      this.finalStatuses.set(kind, s);
    }
  }

  tell(kind: Kind, what: string, seconds: number | null): void {
    const m = this.told.get(kind) ?? new Map<string, { n: number; min: number; max: number }>();
    const form = what.replace(/\d+/g, 'N');
    const t = m.get(form) ?? { n: 0, min: Infinity, max: -Infinity };
    t.n++;
    if (seconds !== null) {
      t.min = Math.min(t.min, seconds);
      t.max = Math.max(t.max, seconds);
      this.nextContactSeconds.push(seconds);
    }
    m.set(form, t);
    this.told.set(kind, m);
  }

  latency(kind: Kind, challenge = false): { n: number; p50: number; p99: number } {
    const l = [...((challenge ? this.challenges : this.final).get(kind) ?? [])].sort((a, b) => a - b);
    return { n: l.length, p50: pct(l, 0.5), p99: pct(l, 0.99) };
  }
}

export interface SimContext {
  port: number;
  stats: Stats;
  timeoutMs: number;
  /** Connections in use, destroyed if the run has to be cut short. */
  open: Set<http.Agent>;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  ms: number;
}

function decodeAnswer(headers: http.IncomingHttpHeaders, body: Buffer): string {
  const type = headers['content-type'] ?? '';
  if (type === 'application/x-compress-zlib') return zlib.inflateSync(body).toString('utf8');
  if (type === 'application/x-compress-gzip') return zlib.gunzipSync(body).toString('utf8');
  return body.toString('utf8');
}

function send(ctx: SimContext, conn: http.Agent, r: LoadRequest, extra: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const headers = { ...r.headers, ...extra, ...(r.body ? { 'Content-Length': String(r.body.length) } : {}) };
    const req = http.request(
      { host: '127.0.0.1', port: ctx.port, method: r.method, path: r.path, agent: conn, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          let text: string;
          try {
            text = decodeAnswer(res.headers, Buffer.concat(chunks));
          } catch {
            text = '\u0000undecodable';
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, ms });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(ctx.timeoutMs, () => req.destroy(new Error(`no answer within ${ctx.timeoutMs} ms`)));
    req.on('error', reject);
    req.once('socket', (socket) => {
      // A new connection (each message opens one, as the agents do): how long its TCP connect took.
      if (!socket.connecting) return;
      socket.once('connect', () => ctx.stats.connects.push(Number(process.hrtime.bigint() - t0) / 1e6));
    });
    req.end(r.body);
  });
}

const CHALLENGE = /^Basic realm="[^",]*"$/;

/**
 * One message as the agent sends it, 401s included. Resolves with the final answer, or null when the
 * exchange ended in a network error or a failed token call (counted).
 */
async function exchange(ctx: SimContext, agent: SimAgent, kind: Kind, r: LoadRequest): Promise<Answer | null> {
  const { stats } = ctx;
  const conn = new http.Agent({ keepAlive: true, maxSockets: 1 });
  ctx.open.add(conn);
  const attempt = (extra: Record<string, string>, req: LoadRequest = r): Promise<Answer> => send(ctx, conn, req, extra);
  const finish = (a: Answer): Answer => {
    stats.answered(kind, a.status, a.ms, false);
    if (a.status < 200 || a.status >= 300)
      stats.problem('status', `${kind} ${agent.deviceid}: ${a.status} ${a.text.slice(0, 120)}`);
    return a;
  };
  const challenged = (a: Answer): void => {
    stats.answered(kind, a.status, a.ms, true);
    const h = a.headers['www-authenticate'];
    if (agent.auth !== 'oauth' && (typeof h !== 'string' || !CHALLENGE.test(h)))
      stats.problem('answer', `${kind}: 401 with WWW-Authenticate ${JSON.stringify(h)}`);
  };
  try {
    if (agent.auth === 'basic-upfront') return finish(await attempt({ Authorization: agent.basic! }));
    if (agent.auth === 'oauth' && agent.token) return finish(await attempt({ Authorization: `Bearer ${agent.token}` }));
    let a = await attempt({});
    if (a.status !== 401) return finish(a);
    challenged(a);
    if (agent.auth === 'oauth') {
      const tokenReq: LoadRequest = {
        method: 'POST',
        path: '/api.php/token', // the agent URL is `/`: PROTOCOL §3.9
        headers: { 'User-Agent': r.headers['User-Agent'] ?? 'GLPI-Agent_v1.12', 'Content-Type': 'application/json' },
        body: Buffer.from(
          JSON.stringify({
            grant_type: 'client_credentials',
            client_id: agent.client!.clientId,
            client_secret: agent.client!.clientSecret,
            scope: 'inventory',
          }),
        ),
      };
      const t = await attempt({}, tokenReq);
      stats.answered('token', t.status, t.ms, false);
      let token: unknown;
      try {
        const j = JSON.parse(t.text) as { token_type?: unknown; access_token?: unknown };
        token = t.status >= 200 && t.status < 300 && j.token_type === 'Bearer' ? j.access_token : undefined;
      } catch {
        /* below */
      }
      if (typeof token !== 'string' || token === '') {
        stats.problem(
          t.status >= 200 && t.status < 300 ? 'answer' : 'status',
          `token for ${agent.deviceid}: ${t.status} ${t.text.slice(0, 120)}`,
        );
        return null;
      }
      agent.token = token;
      return finish(await attempt({ Authorization: `Bearer ${token}` }));
    }
    a = await attempt({}); // LWP's replay, still without credentials
    if (a.status !== 401) return finish(a);
    challenged(a);
    return finish(await attempt({ Authorization: agent.basic! }));
  } catch (err) {
    stats.problem('network', `${kind} ${agent.deviceid}: ${(err as Error).message}`);
    return null;
  } finally {
    ctx.open.delete(conn);
    conn.destroy();
  }
}

const ok2xx = (a: Answer | null): a is Answer => a !== null && a.status >= 200 && a.status < 300;

/** The agents' reading of `expiration`: a number is hours, a string N/Ns/Nm/Nh/Nd; anything else 0. */
function expirationSeconds(v: unknown): number | null {
  if (typeof v === 'number') return v * 3600;
  if (typeof v === 'string') {
    const m = /^(\d+)([smhd]?)$/.exec(v);
    if (m) return Number(m[1]) * { '': 3600, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  }
  return null;
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The inventory message and whether its answer is one the agent accepts; acknowledged ones are counted. */
async function sendInventory(ctx: SimContext, agent: SimAgent, kind: Kind, r: LoadRequest): Promise<void> {
  const a = await exchange(ctx, agent, kind, r);
  if (!ok2xx(a)) return;
  const accepted = kind === 'fi-inventory' ? /<REPLY[\s>/]/.test(a.text) : parseJson(a.text)?.status === 'ok';
  if (!accepted)
    return ctx.stats.problem(
      'answer',
      `${kind} ${agent.deviceid}: 2xx the agent would not accept: ${a.text.slice(0, 120)}`,
    );
  ctx.stats.acked.set(agent.deviceid, (ctx.stats.acked.get(agent.deviceid) ?? 0) + 1);
}

/** One run of one agent (a new process each time: no token kept between runs). Returns its label. */
export async function runAgent(ctx: SimContext, agent: SimAgent): Promise<string> {
  const { stats } = ctx;
  agent.token = null;
  if (agent.type === 'fi') {
    const a = await exchange(ctx, agent, 'fi-prolog', agent.prolog);
    if (!ok2xx(a)) return 'fi (failed at PROLOG)';
    const freq = /<PROLOG_FREQ>\s*(\d+)\s*<\/PROLOG_FREQ>/.exec(a.text)?.[1];
    const sendIt = /<RESPONSE>SEND<\/RESPONSE>/.test(a.text);
    if (!/<REPLY[\s>/]/.test(a.text)) stats.problem('answer', `fi-prolog ${agent.deviceid}: ${a.text.slice(0, 120)}`);
    stats.tell(
      'fi-prolog',
      `PROLOG_FREQ=${freq ?? 'none'}${sendIt ? ' SEND' : ' (no SEND)'}`,
      freq ? Number(freq) * 3600 : null,
    );
    if (!sendIt) {
      stats.inventoriesDeferred++;
      return 'fi (inventory deferred)';
    }
    await sendInventory(ctx, agent, 'fi-inventory', agent.inventory!);
    return 'fi';
  }
  if (!agent.jsonProtocol) {
    const a = await exchange(ctx, agent, 'ga-prolog', agent.prolog);
    if (!ok2xx(a)) return 'ga first run (failed at PROLOG)';
    if (/^\s*</.test(a.text)) {
      // An XML answer keeps the GA on the XML protocol (PROTOCOL §3.2); without SEND it skips this inventory.
      const freq = /<PROLOG_FREQ>\s*(\d+)\s*<\/PROLOG_FREQ>/.exec(a.text)?.[1];
      const sendIt = /<RESPONSE>SEND<\/RESPONSE>/.test(a.text);
      stats.tell(
        'ga-prolog',
        `XML PROLOG_FREQ=${freq ?? 'none'}${sendIt ? ' SEND' : ' (no SEND)'}`,
        freq ? Number(freq) * 3600 : null,
      );
      if (sendIt) {
        stats.problem(
          'answer',
          `ga-prolog ${agent.deviceid}: XML SEND keeps the GA on XML (not simulated): ${a.text.slice(0, 120)}`,
        );
        return 'ga first run (XML SEND)';
      }
      stats.inventoriesDeferred++;
      return 'ga first run (inventory deferred)';
    }
    const j = parseJson(a.text);
    const exp = expirationSeconds(j?.expiration);
    if (
      !j ||
      typeof j.status !== 'string' ||
      j.status === '' ||
      (j.status !== 'pending' && !(exp !== null && exp > 0))
    ) {
      // Answered in XML (or not a GLPI CONTACT message): the agent would stay on / fall back to XML.
      stats.problem(
        'answer',
        `ga-prolog ${agent.deviceid}: not the JSON first-contact answer: ${a.text.slice(0, 120)}`,
      );
      return 'ga first run (unusable PROLOG answer)';
    }
    stats.tell('ga-prolog', `status=${j.status} expiration=${JSON.stringify(j.expiration)}`, exp);
    agent.jsonProtocol = true;
    // The first-run JSON answer sets no inventory decision (PROTOCOL §3.2): the full inventory follows, then the GETs.
    await sendInventory(ctx, agent, 'ga-inventory', agent.inventory!);
    for (const g of agent.getConfigs) await exchange(ctx, agent, 'getconfig', g);
    return 'ga first run';
  }
  const a = await exchange(ctx, agent, 'ga-contact', agent.contact!);
  if (!ok2xx(a)) return 'ga later run (failed at CONTACT)';
  const j = parseJson(a.text);
  if (!j || j.status !== 'ok') {
    stats.problem('answer', `ga-contact ${agent.deviceid}: ${a.text.slice(0, 120)}`);
    if (agent.type === 'ga-new') agent.jsonProtocol = false; // the GA forgets "GLPI server": PROLOG next time
    return 'ga later run (CONTACT not ok)';
  }
  const inv = (j.tasks as Record<string, { server?: unknown; version?: unknown }> | undefined)?.inventory;
  const disabled = Array.isArray(j.disabled)
    ? (j.disabled as unknown[])
    : typeof j.disabled === 'string'
      ? [j.disabled]
      : [];
  const runInventory = Boolean(inv?.server && inv.version) && !disabled.includes('inventory');
  stats.tell(
    'ga-contact',
    `expiration=${JSON.stringify(j.expiration)}${runInventory ? ' inventory' : ' inventory disabled'}`,
    expirationSeconds(j.expiration),
  );
  if (!runInventory) {
    stats.inventoriesDeferred++;
    return 'ga later run (inventory deferred)';
  }
  await sendInventory(ctx, agent, 'ga-partial', agent.partial!);
  return 'ga later run';
}
