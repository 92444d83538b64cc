/**
 * Agent authentication at the HTTP edge, before any body is read. The agents send credentials only after
 * a 401 carrying exactly one `WWW-Authenticate: Basic realm="…"` (quoted, same realm every time), so every
 * 401 is built here and nowhere else, and every credential failure gets byte-identical answers (no oracle).
 */
import type { TLSSocket } from 'node:tls';
import type { Request, Response } from 'express';
import type { Compression } from '../protocol/decode.js';
import type { AgentRequest } from '../services/agent-service.js';
import { type AgentPrincipal, type CredentialService, parseBasic } from '../services/credentials.js';
import { AppError } from '../errors.js';
import { sendAgentError } from './agent-answer.js';
import type { Metrics } from '../metrics.js';

export type AuthResult = { ok: true; principal: AgentPrincipal | null } | { ok: false; reason: 'missing' | 'invalid' };

export interface AgentAuth {
  authenticate(req: Request, ar: AgentRequest): Promise<AuthResult>;
  challenge(req: Request, res: Response, result: AuthResult, compression: Compression): void;
}

function verifiedCertificateCn(req: Request): string | null {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted || !socket.authorized) return null;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : null;
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
  return {
    async authenticate(req, ar) {
      // Two Authorization headers are ambiguous (a proxy may honour the other one): never a credential.
      if (req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization').length > 1) {
        deps.metrics.authFailure('invalid');
        return { ok: false, reason: 'invalid' };
      }
      const authz = req.headers.authorization;
      if (!authz) {
        // A client certificate verified by the TLS listener (TLS_CLIENT_CA) stands for the client named by its CN.
        const cn = verifiedCertificateCn(req);
        const principal = cn ? await deps.credentials.verifyCertificate(cn) : null;
        return principal ? { ok: true, principal } : { ok: false, reason: 'missing' };
      }
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
              path: ar.path,
            },
          })
          .catch(() => {});
        return { ok: false, reason: 'invalid' };
      }
      if (principal.keyVersion !== null) deps.metrics.keyVersionUsed(principal.name, principal.keyVersion);
      return { ok: true, principal };
    },
    challenge(req, res, _result, compression) {
      // Same status, header and body for a missing, unknown, expired or revoked credential.
      res.setHeader('WWW-Authenticate', challengeHeader);
      sendAgentError(req, res, new AppError('unauthorized', AUTH_REQUIRED_MESSAGE), {
        compression,
        prologFreqHours: deps.prologFreqHours,
      });
    },
  };
}
