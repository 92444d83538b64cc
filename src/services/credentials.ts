/**
 * Agent credentials. A registration key (shared secret, several versions during a rotation) or a client
 * credential (per agent, optionally bound to one device) arrives as Basic; a client may also trade its
 * secret for a short-lived bearer token (OAuth2 client credentials). Verification accepts any unexpired
 * version and says which one matched, so usage per version can be shown. A client certificate verified by
 * the TLS listener against TLS_CLIENT_CA is a credential of its own (registered on first use, revocable by
 * fingerprint), unless its CN is a client id, when it stands for that client (the older scheme). Verified
 * credentials are cached for SECRET_CACHE_TTL: a revocation takes effect everywhere within that bound.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Sql } from '../store/db.js';
import * as store from '../store/auth-store.js';
import { type DbHealth, isUnavailable, withDeadline } from './db-health.js';
import { generateSecret, hashSecret, sameDigest } from './secrets.js';

/** A credential an operator changed: a key (rotated, revoked, activated), a client or a certificate (revoked). */
export interface ChangedCredential {
  type: 'key' | 'client' | 'cert';
  id: number;
  /** a certificate's SHA-256 (hex): it may stand for a client (its CN), so its principal is not always 'cert' */
  fingerprint?: string;
}

export interface AgentPrincipal {
  type: 'key' | 'client' | 'cert';
  /** registration key id, client primary key or client certificate id */
  id: number;
  name: string;
  keyVersionId: number | null;
  keyVersion: number | null;
  clientId: string | null;
  username: string | null;
  boundDeviceid: string | null;
  tag: string | null;
  /** For keys: how many devices it may register (0 = unlimited). */
  maxDevices: number;
  via: 'basic' | 'bearer' | 'certificate';
  /** The verified client certificate the request came with, if any (whatever the principal). */
  cert?: { fingerprint: string; subject: string } | null;
}

/** What the TLS listener established about the client certificate of a connection (http/ extracts it). */
export type PresentedCertificate =
  | { verified: false; fingerprint: string; subject: string; issuer: string; error: string }
  | ({ verified: true; commonName: string | null } & store.CertificateFacts);

/** Fingerprints are accepted with or without colons, in any case; stored as 64 lowercase hex digits. */
export function normalizeFingerprint(input: string): string | null {
  const hex = input.trim().replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

export interface CredentialServiceDeps {
  sql: Sql;
  clock: Clock;
  logger: Logger;
  cacheSeconds: number;
  tokenTtlSeconds: number;
  /** OUTAGE_CREDENTIAL_TTL: how long a verification still counts while the database is away (0 = not at all). */
  outageSeconds?: number;
  /** The database as this process last saw it: while it is down, verifications come from the outage cache. */
  health?: DbHealth;
  /** Longest a credential lookup waits for the database before the outage cache answers instead. */
  lookupDeadlineMs?: number;
  /** Told of every security event once it is recorded (the security.spike counter). */
  onSecurityEvent?: (kind: string, e: { remoteAddr: string | null; details: Record<string, unknown> }) => Promise<void>;
}

/** Verified credentials kept for outages, at most this many (the oldest verification goes first). */
const OUTAGE_CACHE_MAX = 50_000;
/**
 * A credential lookup is a primary-key read that takes about a millisecond: past 2 s the database is away
 * or overloaded, and a known agent is better served from memory than kept waiting (agents wait 180 s, but
 * the credential check comes before the body, and a held request holds its socket and its memory).
 */
export const LOOKUP_DEADLINE_MS = 2000;

interface CacheEntry {
  principal: AgentPrincipal;
  until: number;
}

export function parseBasic(header: string): { user: string; password: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function createCredentialService(deps: CredentialServiceDeps) {
  const cache = new Map<string, CacheEntry>();
  /**
   * The last verified state of each credential, for outages only: set by every successful verification,
   * removed by every failed one (so a revocation this process saw is honoured), bounded by
   * OUTAGE_CREDENTIAL_TTL from that verification and by the credential's own end of validity.
   */
  const outage = new Map<string, CacheEntry>();
  const outageSeconds = deps.outageSeconds ?? 0;
  const lookupDeadlineMs = deps.lookupDeadlineMs ?? LOOKUP_DEADLINE_MS;

  function rememberForOutage(key: string, principal: AgentPrincipal, now: number, notAfter?: Date): void {
    if (outageSeconds <= 0) return;
    outage.delete(key);
    if (outage.size >= OUTAGE_CACHE_MAX) outage.delete(outage.keys().next().value!);
    outage.set(key, { principal, until: Math.min(now + outageSeconds * 1000, notAfter?.getTime() ?? Infinity) });
  }

  /** The database is away: the last verified state, or `unavailable` when there is none (or it is too old). */
  function fromOutage(key: string, now: number, cause: unknown): AgentPrincipal {
    const hit = outage.get(key);
    if (hit && hit.until > now) return hit.principal;
    throw new AppError('unavailable', 'Service temporarily unavailable', { cause });
  }

  /**
   * Runs a lookup against the database, bounded by its deadline; when the database is away (or known to
   * be), the outage cache answers instead. A definite answer from the database updates the outage cache.
   */
  async function lookup<T extends { principal: AgentPrincipal } | null>(
    key: string,
    now: Date,
    run: () => Promise<T>,
    notAfter: (found: NonNullable<T>) => Date | undefined,
  ): Promise<T | { principal: AgentPrincipal; outage: true }> {
    if (deps.health?.down) return { principal: fromOutage(key, now.getTime(), null), outage: true };
    let found: T;
    try {
      found = await withDeadline(run(), lookupDeadlineMs);
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      deps.health?.markDown(err);
      return { principal: fromOutage(key, now.getTime(), err), outage: true };
    }
    deps.health?.markUp();
    if (found) rememberForOutage(key, found.principal, now.getTime(), notAfter(found));
    else outage.delete(key);
    return found;
  }

  function cached(key: string, now: number): AgentPrincipal | null {
    const hit = cache.get(key);
    if (!hit) return null;
    if (hit.until > now) return hit.principal;
    cache.delete(key);
    return null;
  }

  function remember(key: string, principal: AgentPrincipal, now: number, notAfter?: Date): void {
    if (deps.cacheSeconds <= 0) return;
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { principal, until: Math.min(now + deps.cacheSeconds * 1000, notAfter?.getTime() ?? Infinity) });
  }

  async function verifyClientSecret(clientId: string, secret: string, now: Date): Promise<store.ClientRow | null> {
    const client = await store.findClient(deps.sql, clientId);
    // Hash the presented secret even when the client does not exist, so both paths cost the same.
    const presented = hashSecret(secret);
    if (!client || client.revokedAt) return null;
    if (!sameDigest(presented, client.secretHash)) return null;
    await store.touchClient(deps.sql, client.id, now);
    return client;
  }

  function clientPrincipal(c: store.ClientRow, via: AgentPrincipal['via'], username: string | null): AgentPrincipal {
    return {
      type: 'client',
      id: c.id,
      name: c.name,
      keyVersionId: null,
      keyVersion: null,
      clientId: c.clientId,
      username,
      boundDeviceid: c.deviceid,
      tag: c.tag,
      maxDevices: 0,
      via,
    };
  }

  async function verifyBasic(
    user: string,
    password: string,
    now: Date,
  ): Promise<{ principal: AgentPrincipal; validUntil: Date | null } | null> {
    if (user.startsWith('agc_')) {
      const client = await verifyClientSecret(user, password, now);
      return client ? { principal: clientPrincipal(client, 'basic', user), validUntil: null } : null;
    }
    const match = await store.findValidKeyVersion(deps.sql, hashSecret(password), now);
    if (!match) return null;
    return {
      validUntil: match.validUntil,
      principal: {
        type: 'key',
        id: match.keyId,
        name: match.keyName,
        keyVersionId: match.versionId,
        keyVersion: match.version,
        clientId: null,
        username: user.slice(0, 128) || null,
        boundDeviceid: null,
        tag: match.tag,
        maxDevices: match.maxDevices,
        via: 'basic',
      },
    };
  }

  async function verifyBearer(
    token: string,
    now: Date,
  ): Promise<{ principal: AgentPrincipal; expiresAt: Date } | null> {
    const found = await store.findValidToken(deps.sql, hashSecret(token), now);
    if (!found) return null;
    const client = await store.findClientByPk(deps.sql, found.clientPk);
    if (!client || client.revokedAt) return null;
    return { principal: clientPrincipal(client, 'bearer', null), expiresAt: found.expiresAt };
  }

  return {
    /** The principal an Authorization header proves, or null for anything unknown, expired or revoked. */
    async verifyAuthorization(
      header: string,
      _ctx: { remoteAddr: string | null; at: Date },
    ): Promise<AgentPrincipal | null> {
      const now = deps.clock.now();
      const cacheKey = hashSecret(header).toString('base64');
      const hit = cached(cacheKey, now.getTime());
      if (hit) return hit;
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (bearer) {
        const found = await lookup(
          cacheKey,
          now,
          () => verifyBearer(bearer[1]!, now),
          (f) => f.expiresAt,
        );
        if (found && !('outage' in found)) remember(cacheKey, found.principal, now.getTime(), found.expiresAt);
        return found?.principal ?? null;
      }
      const basic = parseBasic(header);
      if (!basic) return null;
      const found = await lookup(
        cacheKey,
        now,
        () => verifyBasic(basic.user, basic.password, now),
        (f) => f.validUntil ?? undefined,
      );
      // Never cached past the end of the grace window or key expiry.
      if (found && !('outage' in found))
        remember(cacheKey, found.principal, now.getTime(), found.validUntil ?? undefined);
      return found?.principal ?? null;
    },

    /**
     * The principal a verified client certificate proves, or why not (the caller answers the identical 401):
     * a revoked certificate, or a CN naming a client id (`agc_…`) that is unknown or revoked. A CN that is a
     * client id stands for that client (kept from the older scheme); any other certificate from the CA is
     * itself the credential, registered on first use. Cached like every credential (SECRET_CACHE_TTL).
     */
    async verifyCertificate(
      c: Extract<PresentedCertificate, { verified: true }>,
    ): Promise<{ principal: AgentPrincipal } | { refused: 'revoked' | 'unknown or revoked client' }> {
      const now = deps.clock.now();
      const cacheKey = `cert:${c.fingerprint}`;
      const hit = cached(cacheKey, now.getTime());
      if (hit) return { principal: hit };
      let refused: 'revoked' | 'unknown or revoked client' = 'revoked';
      const found = await lookup(
        cacheKey,
        now,
        async (): Promise<{ principal: AgentPrincipal } | null> => {
          const row = await store.seeCertificate(deps.sql, c, now);
          if (row.revokedAt) {
            refused = 'revoked';
            return null;
          }
          const cert = { fingerprint: row.fingerprint, subject: row.subject };
          let principal: AgentPrincipal;
          if (c.commonName?.startsWith('agc_')) {
            const client = await store.findClient(deps.sql, c.commonName);
            if (!client || client.revokedAt) {
              refused = 'unknown or revoked client';
              return null;
            }
            await store.touchClient(deps.sql, client.id, now);
            principal = { ...clientPrincipal(client, 'certificate', null), cert };
          } else {
            principal = {
              type: 'cert',
              id: row.id,
              name: c.commonName ?? row.subject,
              keyVersionId: null,
              keyVersion: null,
              clientId: null,
              username: null,
              boundDeviceid: null,
              tag: null,
              maxDevices: 0,
              via: 'certificate',
              cert,
            };
          }
          return { principal };
        },
        () => c.notAfter ?? undefined,
      );
      if (!found) return { refused };
      // Never cached past the certificate's own end of validity.
      if (!('outage' in found)) remember(cacheKey, found.principal, now.getTime(), c.notAfter ?? undefined);
      return { principal: found.principal };
    },

    /** OAuth2 client credentials grant: a random bearer token, stored hashed, valid TOKEN_TTL. */
    async issueToken(clientId: string, clientSecret: string): Promise<{ accessToken: string; expiresIn: number }> {
      const now = deps.clock.now();
      const client = await verifyClientSecret(clientId, clientSecret, now);
      if (!client) throw new AppError('unauthorized', 'invalid_client');
      const accessToken = generateSecret('agt');
      const expiresAt = new Date(now.getTime() + deps.tokenTtlSeconds * 1000);
      await store.insertToken(deps.sql, { hash: hashSecret(accessToken), clientPk: client.id, at: now, expiresAt });
      return { accessToken, expiresIn: deps.tokenTtlSeconds };
    },

    async securityEvent(
      kind: string,
      e: { remoteAddr: string | null; deviceid: string | null; details: Record<string, unknown> },
    ): Promise<void> {
      deps.logger.warn({ kind, remote: e.remoteAddr, deviceid: e.deviceid, ...e.details }, `security event: ${kind}`);
      await store.insertSecurityEvent(deps.sql, { at: deps.clock.now(), kind, ...e });
      await deps.onSecurityEvent?.(kind, e);
    },

    /**
     * Forget cached verifications after a rotation or revocation in this process. The short cache goes
     * whole (the database is asked again). The outage cache forgets only the changed credential: clearing it
     * whole made every agent's credential unknown for the next outage, so their inventories waited for the
     * database and got a 503 — which the agents answer by dropping them.
     */
    clearCache(what?: ChangedCredential): void {
      cache.clear();
      if (!what) return;
      for (const [k, e] of outage) {
        const p = e.principal;
        if (
          (p.type === what.type && p.id === what.id) ||
          (what.fingerprint && p.cert?.fingerprint === what.fingerprint)
        )
          outage.delete(k);
      }
    },
  };
}

export type CredentialService = ReturnType<typeof createCredentialService>;
