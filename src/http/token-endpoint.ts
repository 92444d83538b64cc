/**
 * OAuth2 client-credentials token endpoint at `<agent URL base>/api.php/token`, where the GLPI Agent derives
 * it (path cut before `plugins`/`marketplace`, `/api.php/token` appended; `/front/inventory.php/api.php/token`
 * included). Takes the agent's compact JSON body or a form-encoded one; answers uncompressed JSON with
 * token_type Bearer. Failures follow RFC 6749 §5.2 and never say which part was wrong.
 */
import express, { type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import type { CredentialService } from '../services/credentials.js';
import type { AgentLimits } from './limits.js';
import { parseBasic } from '../services/credentials.js';

export const TOKEN_PATH = /^(?:\/.*)?\/api\.php\/token$/;

function oauthError(res: Response, status: number, error: string, description: string): void {
  res.setHeader('Cache-Control', 'no-store');
  res.status(status).json({ error, error_description: description });
}

export function tokenEndpoint(deps: {
  credentials: CredentialService;
  limits?: AgentLimits;
  onFailure?: (clientId: string, remoteAddr: string | null) => void;
}): express.Router {
  const router = express.Router();
  const parsers = [
    express.json({ limit: '8kb', type: () => true }),
    express.urlencoded({ limit: '8kb', extended: false, type: 'application/x-www-form-urlencoded' }),
  ];

  router.post(TOKEN_PATH, ...(deps.limits ? [deps.limits.perIp, deps.limits.authFailures] : []), (req, res, next) => {
    const isForm = (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');
    const parse = isForm ? parsers[1]! : parsers[0]!;
    parse(req, res, (err?: unknown) => {
      if (err) return oauthError(res, 400, 'invalid_request', 'Body must be JSON or form-encoded');
      issue(req, res).catch(next);
    });
  });
  router.all(TOKEN_PATH, (_req, res) => {
    res.setHeader('Allow', 'POST');
    oauthError(res, 405, 'invalid_request', 'Use POST');
  });

  async function issue(req: Request, res: Response): Promise<void> {
    const body = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<string, unknown>;
    if (body.grant_type !== 'client_credentials')
      return oauthError(res, 400, 'unsupported_grant_type', 'Only client_credentials is supported');
    const scope = typeof body.scope === 'string' ? body.scope : 'inventory';
    if (!scope.split(/\s+/).includes('inventory'))
      return oauthError(res, 400, 'invalid_scope', 'Scope must include inventory');
    // Client authentication: in the body (what the GLPI Agent does) or as HTTP Basic (RFC 6749 §2.3.1).
    const basic = req.headers.authorization ? parseBasic(req.headers.authorization) : null;
    const clientId = typeof body.client_id === 'string' ? body.client_id : basic?.user;
    const clientSecret = typeof body.client_secret === 'string' ? body.client_secret : basic?.password;
    if (!clientId || !clientSecret) return oauthError(res, 401, 'invalid_client', 'Client authentication failed');
    try {
      const { accessToken, expiresIn } = await deps.credentials.issueToken(clientId, clientSecret);
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Pragma', 'no-cache');
      res.setHeader('Content-Type', 'application/json');
      res.status(200).send(
        JSON.stringify({
          token_type: 'Bearer',
          access_token: accessToken,
          expires_in: expiresIn,
          scope: 'inventory',
        }),
      );
    } catch (err) {
      if (err instanceof AppError && err.code === 'unauthorized') {
        await deps.limits?.recordAuthFailure(req).catch(() => {});
        deps.onFailure?.(clientId, req.ip ?? null);
        return oauthError(res, 401, 'invalid_client', 'Client authentication failed');
      }
      throw err;
    }
  }
  return router;
}
