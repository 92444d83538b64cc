/**
 * Agent authentication at the HTTP edge, before any body is read. The agents send credentials only after
 * a 401 carrying exactly one `WWW-Authenticate: Basic realm="…"` (quoted, same realm every time), so every
 * 401 is built here and nowhere else, and every credential failure gets byte-identical answers (no oracle).
 */
import type { TLSSocket } from 'node:tls';
import type { Request, Response } from 'express';
import type { Compression } from '../protocol/decode.js';
import type { AgentRequest } from '../services/agent-service.js';
import {
  type AgentPrincipal,
  type CredentialService,
  type PresentedCertificate,
  normalizeFingerprint,
  parseBasic,
} from '../services/credentials.js';
import { AppError } from '../errors.js';
import { sendAgentError } from './agent-answer.js';
import type { Metrics } from '../metrics.js';

export type AuthResult = { ok: true; principal: AgentPrincipal | null } | { ok: false; reason: 'missing' | 'invalid' };

export interface AgentAuth {
  authenticate(req: Request, ar: AgentRequest): Promise<AuthResult>;
  challenge(req: Request, res: Response, result: AuthResult, compression: Compression): void;
}

/** A distinguished name as one line, in the certificate's order: `O=Example, CN=pc-042`. */
function oneLine(dn: string | undefined): string {
  return (dn ?? '').split('\n').filter(Boolean).join(', ');
}

function validDate(text: string | undefined): Date | null {
  const d = text ? new Date(text) : null;
  return d && !Number.isNaN(d.getTime()) ? d : null;
}

/**
 * The client certificate of this connection as the TLS listener judged it, or null when none was presented
 * (or none was asked for: without TLS_CLIENT_CA the listener does not request one). `verified` is OpenSSL's
 * chain verification against TLS_CLIENT_CA (socket.authorized), never anything the client says.
 */
export function presentedCertificate(req: Request): PresentedCertificate | null {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted) return null;
  const x509 = socket.getPeerX509Certificate();
  if (!x509) return null;
  const facts = {
    fingerprint: normalizeFingerprint(x509.fingerprint256)!,
    subject: oneLine(x509.subject).slice(0, 1000),
    issuer: oneLine(x509.issuer).slice(0, 1000),
  };
  if (!socket.authorized) {
    const error = socket.authorizationError;
    return { verified: false, ...facts, error: error instanceof Error ? error.message : String(error ?? 'unverified') };
  }
  const cn = socket.getPeerCertificate().subject?.CN;
  return {
    verified: true,
    ...facts,
    serial: x509.serialNumber ?? null,
    notBefore: validDate(x509.validFrom),
    notAfter: validDate(x509.validTo),
    commonName: typeof cn === 'string' && cn !== '' ? cn : null,
  };
}

/** AGENT_AUTH=off: every agent is let in (lab use; logged as a warning at every start). */
export function openAgentAuth(): AgentAuth {
  return {
    authenticate: async () => ({ ok: true, principal: null }),
    challenge: () => {
      throw new Error('open agent auth never challenges');
    },
  };
}

export const AUTH_REQUIRED_MESSAGE = 'Authorization required';

export interface RequiredAuthDeps {
  credentials: CredentialService;
  realm: string;
  prologFreqHours: number;
  metrics: Metrics;
}

/** AGENT_AUTH=required: a registration key or client credential over Basic, or a bearer token. */
export function requiredAgentAuth(deps: RequiredAuthDeps): AgentAuth {
  const challengeHeader = `Basic realm="${deps.realm}"`;
  // One refusal for every challenge (an Error per 401 costs its stack trace; the answer is the same anyway).
  const unauthorized = new AppError('unauthorized', AUTH_REQUIRED_MESSAGE);
  return {
    async authenticate(req, ar) {
      // Two Authorization headers are ambiguous (a proxy may honour the other one): never a credential.
      if (req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization').length > 1) {
        deps.metrics.authFailure('invalid');
        return { ok: false, reason: 'invalid' };
      }
      // A client certificate is judged first, whatever else the request carries: one presented must be good.
      // Unverifiable (TLS_CLIENT_CERT=optional lets the handshake finish) or revoked, it gets the identical 401
      // and a security event; it is never silently dropped in favour of the Authorization header.
      const presented = presentedCertificate(req);
      let certPrincipal: AgentPrincipal | null = null;
      if (presented) {
        const verdict = presented.verified
          ? await deps.credentials.verifyCertificate(presented)
          : { refused: `unverified: ${presented.error}` };
        if ('refused' in verdict) {
          deps.metrics.authFailure('invalid');
          void deps.credentials
            .securityEvent('invalid_credential', {
              remoteAddr: ar.remoteAddr,
              deviceid: null,
              details: {
                scheme: 'certificate',
                reason: verdict.refused.slice(0, 200),
                fingerprint: presented.fingerprint,
                subject: presented.subject,
                issuer: presented.issuer,
                path: ar.path.slice(0, 256),
              },
            })
            .catch(() => {});
          return { ok: false, reason: 'invalid' };
        }
        certPrincipal = verdict.principal;
      }
      const authz = req.headers.authorization;
      // A verified certificate alone is the credential: the agent never needs the Basic challenge.
      if (!authz) return certPrincipal ? { ok: true, principal: certPrincipal } : { ok: false, reason: 'missing' };
      // An Authorization header as well names the principal (certificate for the channel, Basic or bearer for
      // the agent), as before certificates were credentials; the certificate is still recorded with it.
      const principal = await deps.credentials.verifyAuthorization(authz, {
        remoteAddr: ar.remoteAddr,
        at: ar.receivedAt,
      });
      if (!principal) {
        deps.metrics.authFailure('invalid');
        // Recorded without slowing the answer; the 401 itself is the same as for a missing credential.
        const basic = parseBasic(authz);
        void deps.credentials
          .securityEvent('invalid_credential', {
            remoteAddr: ar.remoteAddr,
            deviceid: null,
            details: {
              scheme: basic ? 'basic' : authz.split(' ', 1)[0]!.slice(0, 16),
              user: basic?.user.slice(0, 64) ?? null,
              path: ar.path.slice(0, 256),
            },
          })
          .catch(() => {});
        return { ok: false, reason: 'invalid' };
      }
      if (principal.keyVersion !== null) deps.metrics.keyVersionUsed(principal.name, principal.keyVersion);
      return { ok: true, principal: certPrincipal ? { ...principal, cert: certPrincipal.cert ?? null } : principal };
    },
    challenge(req, res, _result, compression) {
      // Same status, header and body for a missing, unknown, expired or revoked credential.
      res.setHeader('WWW-Authenticate', challengeHeader);
      sendAgentError(req, res, unauthorized, {
        compression,
        prologFreqHours: deps.prologFreqHours,
      });
    },
  };
}
