/**
 * One attempt to hand an inventory to GLPI, for the forwarder's outbox worker: the request as the agent made
 * it (the stored bytes — or with the credential's tag, upstream-body.ts —, its Content-Type, User-Agent, GLPI-Agent-ID, X-Forwarded-For), the authentication
 * (none, Basic, or GLPI 11 OAuth2 client credentials: a token from <base>/api.php/token, cached until it
 * expires and renewed once when GLPI refuses it), and what GLPI's answer means: 2xx delivered; 5xx, 429 and
 * no answer transient; anything else refused (3xx too: redirects are never followed), with the start of
 * the answer kept.
 *
 * Invariant: concurrent attempts share one token request, and a token is renewed before GLPI says it expires.
 */
import zlib from 'node:zlib';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Clock } from '../clock.js';
import type { ClaimedRow } from '../store/outbox-store.js';
import { type AttemptResult, type Outcome, classifyStatus, hostOf, httpErrorText } from './outbox-worker.js';
import { type UpstreamBody, upstreamBody } from './upstream-body.js';

export { forwardContentType } from './upstream-body.js';

/** Kept of GLPI's answer. */
const RESPONSE_KEEP = 2000;
/** A token is renewed this long before GLPI says it expires. */
const TOKEN_MARGIN_MS = 30_000;

/** Worth another attempt: GLPI is busy or broken, not refusing. */
const retryable = (status: number) => status >= 500 || status === 429;

/**
 * GLPI 11's token endpoint for an inventory URL, as the GLPI Agent derives it (PROTOCOL §3.9): the path cut
 * at the last "marketplace" or "plugins", trailing slashes stripped, "/api.php/token" appended, query kept.
 * One deviation: a path through /front/ (…/front/inventory.php) is cut there too, since <base>/api.php/token
 * is where GLPI 11 serves tokens.
 */
export function upstreamTokenUrl(upstreamUrl: string): string {
  const u = new URL(upstreamUrl);
  let p = u.pathname;
  const cut = Math.max(p.lastIndexOf('marketplace'), p.lastIndexOf('plugins'));
  if (cut >= 0) p = p.slice(0, cut);
  else if (p.includes('/front/')) p = p.slice(0, p.indexOf('/front/'));
  u.pathname = `${p.replace(/\/+$/, '')}/api.php/token`;
  return u.toString();
}

/** An attempt that ends before GLPI's answer to the inventory (token trouble, no answer): its recorded result. */
class UpstreamError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly outcome: Outcome,
    readonly response: string | null = null,
  ) {
    super(message);
  }
}

/** GLPI's answer as text, decompressed when it says it is (its JSON answers to GLPI Agents are zlib). */
async function answerText(res: Response): Promise<string> {
  const raw = Buffer.from(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
  const type = (res.headers.get('content-type') ?? '').toLowerCase();
  let text: string;
  try {
    text = type.startsWith('application/x-compress-zlib')
      ? zlib.inflateSync(raw, { maxOutputLength: 1 << 20 }).toString('utf8')
      : type.startsWith('application/x-compress-gzip')
        ? zlib.gunzipSync(raw, { maxOutputLength: 1 << 20 }).toString('utf8')
        : raw.toString('utf8');
  } catch {
    text = raw.subarray(0, RESPONSE_KEEP).toString('utf8');
  }
  return text.slice(0, RESPONSE_KEEP);
}

/** `expires_in` in seconds when it is a whole number, else 60. */
function expiresInOf(v: unknown): number {
  const text = typeof v === 'number' || typeof v === 'string' ? String(v) : '';
  return /^\d+$/.test(text) ? Number(text) : 60;
}

export interface GlpiUpstreamDeps {
  url: string;
  config: Pick<
    Config,
    'upstreamUser' | 'upstreamPassword' | 'upstreamClientId' | 'upstreamClientSecret' | 'upstreamTag'
  >;
  clock: Clock;
  logger: Logger;
  /** Per request: the worker's timeout and stop. */
  signal: () => AbortSignal;
  /** The worker's text for a request that got no answer. */
  networkError: (err: unknown) => string;
  /** Told what became of the agent's tag in each attempt (metrics). */
  onTag?: (result: 'as-sent' | 'kept' | 'replaced' | 'refused') => void;
}

type Sendable = Exclude<UpstreamBody, { refused: string }>;

export function createGlpiUpstream(deps: GlpiUpstreamDeps) {
  const { url, config, clock, logger } = deps;
  const auth: 'none' | 'basic' | 'oauth2' = config.upstreamClientId ? 'oauth2' : config.upstreamUser ? 'basic' : 'none';
  const tokenUrl = auth === 'oauth2' ? upstreamTokenUrl(url) : '';
  const basic = `Basic ${Buffer.from(`${config.upstreamUser}:${config.upstreamPassword}`).toString('base64')}`;
  let token: { value: string; expiresAt: number } | null = null;
  let tokenRequest: Promise<string> | null = null;

  async function requestToken(): Promise<string> {
    let res: Response;
    try {
      res = await fetch(tokenUrl, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'agent-gate' },
        body: JSON.stringify({
          grant_type: 'client_credentials',
          client_id: config.upstreamClientId,
          client_secret: config.upstreamClientSecret,
          scope: 'inventory',
        }),
        signal: deps.signal(),
      });
    } catch (err) {
      throw new UpstreamError(`token request failed: ${deps.networkError(err)}`, null, 'transient');
    }
    const text = await answerText(res);
    if (!res.ok) {
      const outcome = retryable(res.status) ? 'transient' : 'refused';
      throw new UpstreamError(`token endpoint answered HTTP ${res.status}`, res.status, outcome, text);
    }
    let body: { token_type?: unknown; access_token?: unknown; expires_in?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      /* checked below */
    }
    if (body.token_type !== 'Bearer' || typeof body.access_token !== 'string' || body.access_token === '') {
      throw new UpstreamError('token endpoint answered without a Bearer access_token', res.status, 'refused', text);
    }
    const expiresIn = expiresInOf(body.expires_in);
    token = { value: body.access_token, expiresAt: clock.now().getTime() + expiresIn * 1000 - TOKEN_MARGIN_MS };
    logger.debug({ tokenUrl: hostOf(tokenUrl), expiresIn }, 'forwarder: GLPI access token obtained');
    return token.value;
  }

  /** The cached token while it is valid, else one new token (concurrent sends share the request). */
  async function bearer(): Promise<{ value: string; fresh: boolean }> {
    if (token && clock.now().getTime() < token.expiresAt) return { value: token.value, fresh: false };
    tokenRequest ??= requestToken().finally(() => (tokenRequest = null));
    return { value: await tokenRequest, fresh: true };
  }

  /** The inventory as prepared; a request that gets no answer throws (the worker records it as transient). */
  function post(row: ClaimedRow, out: Sendable, authorization: string | null): Promise<Response> {
    const headers: Record<string, string> = {
      'Content-Type': out.contentType,
      'User-Agent': row.userAgent ?? 'agent-gate',
    };
    if (row.agentId) headers['GLPI-Agent-ID'] = row.agentId;
    if (row.remoteAddr) headers['X-Forwarded-For'] = row.remoteAddr;
    if (authorization) headers.Authorization = authorization;
    const body = out.body as Uint8Array<ArrayBuffer>;
    return fetch(url, { method: 'POST', redirect: 'manual', headers, body, signal: deps.signal() });
  }

  async function postAuthorized(row: ClaimedRow, out: Sendable): Promise<Response> {
    if (auth !== 'oauth2') return post(row, out, auth === 'basic' ? basic : null);
    const t = await bearer();
    const res = await post(row, out, `Bearer ${t.value}`);
    if (res.status !== 401 || t.fresh) return res;
    // The cached token was refused (revoked, GLPI restarted): one new token, one more try.
    await res.body?.cancel();
    token = null;
    return post(row, out, `Bearer ${(await bearer()).value}`);
  }

  /** One attempt: what GLPI answered, classified for the outbox worker. */
  async function send(row: ClaimedRow): Promise<AttemptResult> {
    // The one place the body is prepared for sending: as stored, or with the credential's tag (UPSTREAM_TAG).
    const out = await upstreamBody(row, config.upstreamTag);
    deps.onTag?.('refused' in out ? 'refused' : out.tag);
    if ('refused' in out) return { outcome: 'refused', status: null, error: out.refused, response: null };
    let res: Response;
    try {
      res = await postAuthorized(row, out);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      return { outcome: err.outcome, status: err.status, error: err.message, response: err.response };
    }
    const response = await answerText(res);
    const outcome = classifyStatus(res.status, retryable);
    if (outcome === 'delivered') return { outcome, status: res.status, error: null, response };
    const location = res.headers.get('location');
    const detail = location ? `redirect to ${location.slice(0, 150)} (set UPSTREAM_URL to it)` : null;
    return { outcome, status: res.status, error: httpErrorText(res.status, detail), response };
  }

  return { auth, send };
}
