/**
 * The admin API (/api/v1/…) for people: every route is declared once in ROUTES with the role it needs, and
 * the one middleware in front of them all demands an operator bearer token — 401 without a valid one, 403
 * with a reviewer token on an admin route. Tests loop over ROUTES so no route can skip the check.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { parseDuration } from '../config.js';
import { AppError, toAppError } from '../errors.js';
import { type Actor, type Admin, AUDIT_ACTIONS, OPERATOR_ROLES, type OperatorRole } from '../services/admin.js';
import { DEVICE_SORTS, DEVICE_STATES, type DeviceSort, type Records, type SortDir } from '../services/records.js';
import { type Decision, type Review, parseFilter } from '../services/review.js';
import { type Policies, checkRule } from '../services/policies.js';
import type { Forwarder } from '../services/forwarder.js';
import type { SpoolStats } from '../services/spool.js';
import type { InventoryRead } from '../services/inventory-read.js';
import { SECURITY_EVENT_TYPES, type SecurityEvents } from '../services/security-events.js';
import type { AuditRead } from '../services/audit-read.js';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { AgentLimits } from './limits.js';
import type { z } from 'zod';
import { requestLog, sendJsonError } from './request-context.js';
import * as S from './admin-schemas.js';
import type { BodySchema } from './admin-schemas.js';

export type Role = OperatorRole;

export interface AdminApiDeps {
  admin: Admin;
  records: Records;
  review: Review;
  policies: Policies;
  logger: Logger;
  version?: string;
  /** The GLPI outbox (forwarding). */
  forwarder?: Pick<Forwarder, 'list' | 'retry' | 'drop'>;
  /** This process's local spool (inventories read while the database was away), if it has one. */
  spool?: (() => SpoolStats) | null;
  /** The inventory and its changes (GET /devices/:id/inventory, /changes). */
  inventoryRead?: InventoryRead;
  /** Security events with filters; without it, the plain list. */
  securityEvents?: SecurityEvents;
  /** The audit log with filters; without it, the plain list. */
  auditRead?: AuditRead;
  /**
   * Brute force: a wrong operator token counts towards the address's invalid-credential budget
   * (RATE_LIMIT_AUTH_FAILURES_PER_15MIN, shared with the agents'), and past it every token gets 429.
   */
  limits?: Pick<AgentLimits, 'recordAuthFailure' | 'authFailuresExceeded'>;
  /** Records a wrong operator token as a security event (like agents' invalid credentials). */
  securityEvent?: (
    kind: string,
    e: { remoteAddr: string | null; deviceid: string | null; details: Record<string, unknown> },
  ) => Promise<void>;
  /** Counts refusals (agentgate_agent_auth_failures_total{reason="operator"}, limiter hits). */
  metrics?: Pick<Metrics, 'authFailure' | 'limited'>;
}

const BRUTE_FORCE_WINDOW_SECONDS = 15 * 60;

type Handler = (
  req: Request,
  actor: Actor,
  deps: AdminApiDeps,
  role: Role,
) => Promise<{ status?: number; body: unknown; headers?: Record<string, string> }>;

interface Route {
  method: 'get' | 'post';
  path: string;
  role: Role;
  /** POST: the body's schema (validated before the handler runs, and the OpenAPI request body). */
  body?: BodySchema;
  handler: Handler;
}

function str(v: unknown, what: string, opts: { optional?: boolean; max?: number } = {}): string | undefined {
  if (v === undefined || v === null || v === '') {
    if (opts.optional) return undefined;
    throw new AppError('bad_request', `${what} is required`);
  }
  if (typeof v !== 'string' || v.length > (opts.max ?? 256))
    throw new AppError('bad_request', `${what} must be a string of at most ${opts.max ?? 256} characters`);
  return v;
}

function limit(v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new AppError('bad_request', 'limit must be a whole number from 1 to 1000');
  return n;
}

function date(v: unknown, what: string): Date | null {
  if (v === undefined || v === null || v === '') return null;
  const d = typeof v === 'string' || typeof v === 'number' ? new Date(v) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new AppError('bad_request', `${what} must be an ISO 8601 date`);
  return d;
}

/** `sort` (a DEVICE_SORTS key) and `dir` (asc or desc); both optional, each refused naming what was sent. */
function deviceSort(sortValue: unknown, dirValue: unknown): { sort?: DeviceSort; dir?: SortDir } {
  const sort = str(sortValue, 'sort', { optional: true, max: 64 });
  if (sort !== undefined && !(DEVICE_SORTS as readonly string[]).includes(sort))
    throw new AppError('bad_request', `sort must be one of ${DEVICE_SORTS.join(', ')} (not "${sort}")`);
  const dir = str(dirValue, 'dir', { optional: true, max: 64 });
  if (dir !== undefined && dir !== 'asc' && dir !== 'desc')
    throw new AppError('bad_request', `dir must be asc or desc (not "${dir}")`);
  return { sort: sort as DeviceSort | undefined, dir };
}

/** `before`: the id of the last entry of the page seen (paging, newest first). */
function beforeId(v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw new AppError('bad_request', 'before must be an entry id');
  return Number(v);
}

/** The body as its route's schema parsed it (the dispatcher below replaced req.body with that). */
function body<S extends BodySchema>(req: Request, _schema: S): z.infer<S> {
  return req.body as z.infer<S>;
}

function param(req: Request, name: string): string {
  return String(req.params[name]);
}

export const ROUTES: Route[] = [
  {
    method: 'get',
    path: '/api/v1/me',
    role: 'reviewer',
    handler: async (_req, actor, _d, role) => ({ body: { name: actor.name, role } }),
  },
  {
    // The lists the server knows, for clients that offer them (the console's filters), never kept as copies.
    method: 'get',
    path: '/api/v1/meta',
    role: 'reviewer',
    handler: () =>
      Promise.resolve({
        body: {
          states: DEVICE_STATES,
          auditActions: AUDIT_ACTIONS,
          roles: OPERATOR_ROLES,
          securityEventTypes: SECURITY_EVENT_TYPES,
        },
      }),
  },
  {
    // What this process holds for the database (the console shows a line while it is not empty).
    method: 'get',
    path: '/api/v1/status',
    role: 'reviewer',
    handler: (_req, _a, d) => Promise.resolve({ body: { spool: d.spool ? d.spool() : null } }),
  },
  {
    method: 'get',
    path: '/api/v1/devices',
    role: 'reviewer',
    handler: async (req, _a, d) => {
      const state = str(req.query.state, 'state', { optional: true });
      if (state && !(DEVICE_STATES as readonly string[]).includes(state))
        throw new AppError('bad_request', `state must be one of ${DEVICE_STATES.join(', ')}`);
      const subnet = str(req.query.subnet, 'subnet', { optional: true });
      if (subnet && !/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(subnet))
        throw new AppError('bad_request', 'subnet must be a CIDR such as 10.1.0.0/16');
      const offset = req.query.offset === undefined ? 0 : Number(req.query.offset);
      const flag = (v: unknown, name: string): boolean | undefined => {
        if (v === undefined || v === 'false') return undefined;
        if (v === 'true') return true;
        throw new AppError('bad_request', `${name} must be true or false`);
      };
      if (!Number.isInteger(offset) || offset < 0)
        throw new AppError('bad_request', 'offset must be a whole number ≥ 0');
      const cursor = str(req.query.cursor, 'cursor', { optional: true, max: 2048 });
      const { sort, dir } = deviceSort(req.query.sort, req.query.dir);
      if (cursor && offset > 0) throw new AppError('bad_request', 'give offset or cursor, not both');
      const filter = {
        state,
        subnet,
        offset,
        cursor,
        limit: limit(req.query.limit, 100),
        tag: str(req.query.tag, 'tag', { optional: true }),
        claimedTag: str(req.query.claimedTag, 'claimedTag', { optional: true }),
        claimedTagMismatch: flag(req.query.claimedTagMismatch, 'claimedTagMismatch'),
        key: str(req.query.key, 'key', { optional: true }),
        q: str(req.query.q, 'q', { optional: true }),
        firstSeenFrom: date(req.query.firstSeenFrom, 'firstSeenFrom') ?? undefined,
        firstSeenTo: date(req.query.firstSeenTo, 'firstSeenTo') ?? undefined,
        sort,
        dir,
      };
      // The body stays the list it always was; the next page's cursor travels in a header.
      const page = await d.records.devicesPage(filter);
      return { body: page.devices, headers: page.nextCursor ? { 'X-Next-Cursor': page.nextCursor } : undefined };
    },
  },
  {
    method: 'get',
    path: '/api/v1/devices/:id',
    role: 'reviewer',
    handler: async (req, _a, d) => {
      const device = await d.review.show(param(req, 'id'));
      if (!device) throw new AppError('not_found', 'No such device');
      return { body: device };
    },
  },
  ...(['inventory', 'changes'] as const).map((what): Route => ({
    // The inventory itself, and what changed between the latest full inventory and the one before it.
    method: 'get',
    path: `/api/v1/devices/:id/${what}`,
    role: 'reviewer',
    handler: async (req, _a, d) => {
      if (!d.inventoryRead) throw new AppError('not_found', 'Inventories cannot be read here');
      const device = await d.records.device(param(req, 'id'));
      if (!device) throw new AppError('not_found', 'No such device');
      return { body: await d.inventoryRead[what](device) };
    },
  })),
  ...(['approve', 'reject'] as Decision[]).map((decision): Route => ({
    method: 'post',
    path: `/api/v1/devices/${decision}`,
    role: 'reviewer',
    body: S.DecideBody,
    handler: async (req, actor, d) => {
      const b = body(req, S.DecideBody);
      const reason = b.reason ?? null;
      if (b.filter !== undefined)
        return {
          body: await d.review.decideByFilter(parseFilter(b.filter), decision, reason, actor, b.confirmCount),
        };
      return { body: { results: await d.review.decide(b.ids ?? [], decision, reason, actor) } };
    },
  })),
  {
    method: 'post',
    path: '/api/v1/devices/:id/undo',
    role: 'reviewer',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await d.review.undo(param(req, 'id'), actor) }),
  },
  {
    method: 'post',
    path: '/api/v1/devices/:id/rebind',
    role: 'reviewer',
    body: S.RebindBody,
    handler: async (req, actor, d) => {
      const b = body(req, S.RebindBody);
      return {
        body: await d.review.rebind(param(req, 'id'), { key: b.key, client: b.client }, b.reason ?? null, actor),
      };
    },
  },
  {
    method: 'get',
    path: '/api/v1/registrations',
    role: 'reviewer',
    handler: async (req, _a, d) => ({
      body: await d.records.registrations({
        deviceid: str(req.query.deviceid, 'deviceid', { optional: true }),
        limit: limit(req.query.limit, 50),
      }),
    }),
  },
  {
    method: 'get',
    path: '/api/v1/keys',
    role: 'admin',
    handler: async (_r, _a, d) => ({ body: await d.admin.listKeys() }),
  },
  {
    method: 'post',
    path: '/api/v1/keys',
    role: 'admin',
    body: S.CreateKeyBody,
    handler: async (req, actor, d) => {
      const b = body(req, S.CreateKeyBody);
      const created = await d.admin.createKey(
        {
          name: b.name,
          tag: b.tag ?? null,
          maxDevices: b.maxDevices ?? 0,
          expiresAt: date(b.expiresAt, 'expiresAt'),
          comment: b.comment ?? null,
        },
        actor,
      );
      return { status: 201, body: created };
    },
  },
  {
    method: 'post',
    path: '/api/v1/keys/:name/rotate',
    role: 'admin',
    body: S.RotateBody,
    handler: async (req, actor, d) => {
      const graceText = body(req, S.RotateBody).grace ?? '7d';
      let grace: number;
      try {
        grace = parseDuration(graceText);
      } catch (err) {
        throw new AppError('bad_request', (err as Error).message);
      }
      return { body: await d.admin.rotateKey(param(req, 'name'), grace, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/keys/:name/revoke',
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await d.admin.setKeyActive(param(req, 'name'), false, actor) }),
  },
  {
    method: 'post',
    path: '/api/v1/keys/:name/activate',
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await d.admin.setKeyActive(param(req, 'name'), true, actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/keys/:name/usage',
    role: 'admin',
    handler: async (req, _a, d) => ({
      body: await d.admin.keyUsage(param(req, 'name'), {
        limit: limit(req.query.limit, 100),
        cursor: str(req.query.cursor, 'cursor', { optional: true }),
      }),
    }),
  },
  ...(['freeze', 'unfreeze'] as const).map((what): Route => ({
    method: 'post',
    path: `/api/v1/keys/:name/${what}`,
    role: 'admin',
    body: S.FreezeBody,
    handler: async (req, actor, d) => ({
      body: await d.policies.setFrozen(
        param(req, 'name'),
        what === 'freeze',
        body(req, S.FreezeBody).reason ?? null,
        actor,
      ),
    }),
  })),
  {
    method: 'get',
    path: '/api/v1/policies',
    role: 'admin',
    handler: async (_r, _a, d) => ({ body: await d.policies.list() }),
  },
  {
    method: 'post',
    path: '/api/v1/policies',
    role: 'admin',
    body: S.AddPolicyBody,
    handler: async (req, actor, d) => {
      const { position, ...rule } = body(req, S.AddPolicyBody);
      return { status: 201, body: await d.policies.add({ ...checkRule(rule), position: position ?? null }, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/policies/test',
    role: 'admin',
    body: S.TestPoliciesBody,
    handler: async (req, _a, d) => {
      const b = body(req, S.TestPoliciesBody);
      return { body: await d.policies.test(b.rules ? b.rules.map(checkRule) : null, b.days ?? 7) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/policies/:id/remove',
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => {
      const id = Number(param(req, 'id'));
      if (!Number.isInteger(id)) throw new AppError('bad_request', 'rule id must be a number');
      return { body: await d.policies.remove(id, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/allowlists/:name/:kind',
    role: 'admin',
    body: S.AllowlistBody,
    handler: async (req, actor, d) => {
      const kind = param(req, 'kind');
      if (kind !== 'serial' && kind !== 'uuid' && kind !== 'mac')
        throw new AppError('bad_request', 'kind must be serial, uuid or mac');
      const { csv } = body(req, S.AllowlistBody);
      return { body: await d.policies.importAllowlist(param(req, 'name'), kind, csv, actor) };
    },
  },
  {
    method: 'get',
    path: '/api/v1/clients',
    role: 'admin',
    handler: async (_r, _a, d) => ({ body: await d.admin.listClients() }),
  },
  {
    method: 'post',
    path: '/api/v1/clients',
    role: 'admin',
    body: S.CreateClientBody,
    handler: async (req, actor, d) => {
      const b = body(req, S.CreateClientBody);
      const deviceid = b.device ? await d.records.resolveDeviceid(b.device) : null;
      return {
        status: 201,
        body: await d.admin.createClient(
          { name: b.name, deviceid, tag: b.tag ?? null, comment: b.comment ?? null },
          actor,
        ),
      };
    },
  },
  {
    method: 'post',
    path: '/api/v1/clients/:clientId/revoke',
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await d.admin.revokeClient(param(req, 'clientId'), actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/certs',
    role: 'admin',
    handler: async (_r, _a, d) => ({ body: await d.admin.listCertificates() }),
  },
  {
    method: 'post',
    path: '/api/v1/certs/:fingerprint/revoke',
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await d.admin.revokeCertificate(param(req, 'fingerprint'), actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/operators',
    role: 'admin',
    handler: async (_r, _a, d) => ({ body: await d.admin.listOperators() }),
  },
  {
    method: 'post',
    path: '/api/v1/operators',
    role: 'admin',
    body: S.CreateOperatorBody,
    handler: async (req, actor, d) => {
      const b = body(req, S.CreateOperatorBody);
      return { status: 201, body: await d.admin.createOperator({ name: b.name, role: b.role }, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/operators/:name/revoke',
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await d.admin.revokeOperator(param(req, 'name'), actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/audit',
    role: 'admin',
    handler: async (req, _a, d) => {
      const f = {
        limit: limit(req.query.limit, 100),
        action: str(req.query.action, 'action', { optional: true }),
      };
      if (!d.auditRead) return { body: await d.admin.listAudit(f) };
      return {
        body: await d.auditRead.list({
          ...f,
          actor: str(req.query.actor, 'actor', { optional: true }),
          since: date(req.query.since, 'since') ?? undefined,
          until: date(req.query.until, 'until') ?? undefined,
          beforeId: beforeId(req.query.before),
        }),
      };
    },
  },
  {
    method: 'get',
    path: '/api/v1/security-events',
    role: 'admin',
    handler: async (req, _a, d) => {
      if (!d.securityEvents) return { body: await d.admin.listSecurityEvents(limit(req.query.limit, 100)) };
      return {
        body: await d.securityEvents.list({
          limit: limit(req.query.limit, 100),
          kind: str(req.query.type, 'type', { optional: true }),
          address: str(req.query.address, 'address', { optional: true, max: 64 }),
          credential: str(req.query.key, 'key', { optional: true }),
          since: date(req.query.since, 'since') ?? undefined,
          until: date(req.query.until, 'until') ?? undefined,
          beforeId: beforeId(req.query.before),
        }),
      };
    },
  },
  // GLPI forwarding: the outbox, its dead letters, and what an admin may do about them (audited).
  {
    method: 'get',
    path: '/api/v1/outbox',
    role: 'admin',
    handler: async (req, _a, d) => ({
      body: await outbox(d).list({
        state: str(req.query.state, 'state', { optional: true }),
        deviceid: str(req.query.deviceid, 'deviceid', { optional: true }),
        limit: limit(req.query.limit, 100),
      }),
    }),
  },
  ...(['retry', 'drop'] as const).map((what): Route => ({
    method: 'post',
    path: `/api/v1/outbox/:id/${what}`,
    role: 'admin',
    body: S.NoBody,
    handler: async (req, actor, d) => ({ body: await outbox(d)[what](outboxId(param(req, 'id')), actor) }),
  })),
];

function outbox(d: AdminApiDeps): NonNullable<AdminApiDeps['forwarder']> {
  if (!d.forwarder) throw new AppError('not_found', 'Forwarding is not available');
  return d.forwarder;
}

function outboxId(v: string): number {
  if (!/^\d{1,15}$/.test(v)) throw new AppError('bad_request', 'outbox id must be a number');
  return Number(v);
}

const ROLE_RANK: Record<Role, number> = { reviewer: 1, admin: 2 };

/** A route's body in OpenAPI terms, from its schema: required when the schema has a required field. */
function requestBody(schema: BodySchema): Record<string, unknown> {
  const json = S.openApiSchema(schema);
  const required = Array.isArray(json.required) && json.required.length > 0;
  return { required, content: { 'application/json': { schema: json } } };
}

/** The admin API as OpenAPI 3.0, built from ROUTES so it cannot drift from what is served. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const params = [...r.path.matchAll(/:(\w+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    paths[path] ??= {};
    paths[path][r.method] = {
      summary: `${r.method.toUpperCase()} ${path}`,
      description: `Needs an operator token with the ${r.role} role${r.role === 'reviewer' ? ' (or admin)' : ''}.`,
      'x-role': r.role,
      parameters: params,
      ...(r.body ? { requestBody: requestBody(r.body) } : {}),
      responses: {
        '200': { description: 'OK', content: { 'application/json': { schema: {} } } },
        '400': { $ref: '#/components/responses/Error' },
        '401': { $ref: '#/components/responses/Error' },
        '403': { $ref: '#/components/responses/Error' },
        '404': { $ref: '#/components/responses/Error' },
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'agent-gate admin API',
      version,
      description: 'Operators review devices and manage credentials. Authorization: Bearer <operator token>.',
    },
    servers: [{ url: '/' }],
    security: [{ operatorToken: [] }],
    components: {
      securitySchemes: { operatorToken: { type: 'http', scheme: 'bearer' } },
      responses: {
        Error: {
          description: 'Error',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { status: { type: 'string', enum: ['error'] }, message: { type: 'string' } },
              },
            },
          },
        },
      },
    },
    paths,
  };
}

export function adminApi(deps: AdminApiDeps): express.Router {
  const router = express.Router();
  const openapi = JSON.stringify(openApiDocument(deps.version ?? '0.0.0'));
  // The API's description is public (it names routes, no data); everything else under /api needs a token.
  router.get('/api/openapi.json', (_req, res) => {
    res.type('application/json').send(openapi);
  });

  // Every /api route: an operator bearer token first. Unknown routes also answer 401 to the anonymous. A
  // database that fails here is a 503 (through the error handler below), never also a 401.
  router.use('/api', (req: Request, res: Response, next: NextFunction) => {
    const authz = req.headers.authorization;
    if (!authz) return next(new AppError('unauthorized', 'Operator token required'));
    void (async () => {
      // Past the address's budget of wrong credentials, no token is even looked at (a good one included:
      // the answer must not tell a brute-forcer that a guess was right).
      if (await deps.limits?.authFailuresExceeded(req)) {
        deps.metrics?.limited('auth_failures');
        throw new AppError('rate_limited', 'Too many invalid credentials from this address', {
          retryAfterSeconds: BRUTE_FORCE_WINDOW_SECONDS,
        });
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authz);
      const operator = m ? await deps.admin.operatorForToken(m[1]!) : null;
      if (!operator) {
        await refused(req, m ? 'unknown or revoked token' : 'not a bearer token');
        throw new AppError('unauthorized', 'Operator token required');
      }
      res.locals.operator = operator;
    })().then(() => next(), next);
  });

  /** A wrong operator credential: counted for brute force, recorded as a security event (never its value). */
  async function refused(req: Request, reason: string): Promise<void> {
    deps.metrics?.authFailure('operator');
    await deps.limits?.recordAuthFailure(req).catch(() => {});
    // Awaited: the 401 goes out once the event is written (an operator's answer, not an agent's: no hurry).
    await deps
      .securityEvent?.('invalid_operator_token', {
        remoteAddr: req.ip ?? null,
        deviceid: null,
        details: { reason, method: req.method, path: (req.baseUrl + req.path).slice(0, 200) },
      })
      .catch(() => {});
  }
  // Bodies are read only for callers who proved who they are, and only as JSON: a body of any other type
  // would be ignored, and a route would run on its defaults (`rotate` with a 7-day grace instead of the
  // "0" an admin sent as a form during an emergency). A POST without a body is fine.
  router.use('/api', (req: Request, _res: Response, next: NextFunction) => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !req.is('application/json'))
      return next(new AppError('unsupported_media_type', 'Send the body as JSON, with Content-Type: application/json'));
    next();
  });
  router.use('/api', express.json({ limit: '1mb' }));

  for (const route of ROUTES) {
    router[route.method](route.path, (req: Request, res: Response, next: NextFunction) => {
      const operator = res.locals.operator as { name: string; role: Role };
      if (ROLE_RANK[operator.role] < ROLE_RANK[route.role])
        return next(new AppError('forbidden', `This needs the ${route.role} role`));
      try {
        if (route.body) req.body = S.parseBody(route.body, req.body);
      } catch (err) {
        return next(err);
      }
      route
        .handler(req, { name: `operator:${operator.name}`, remoteAddr: req.ip ?? null }, deps, operator.role)
        .then((out) => {
          res.setHeader('Cache-Control', 'no-store');
          for (const [k, v] of Object.entries(out.headers ?? {})) res.setHeader(k, v);
          res.status(out.status ?? 200).json(out.body);
        }, next);
    });
  }
  router.use('/api', (_req: Request, _res: Response, next: NextFunction) => {
    next(new AppError('not_found', 'No such API route'));
  });
  router.use('/api', (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // express.json's own errors carry `type` and a 4xx status: the body was not JSON.
    const parserStatus = (err as { type?: string; status?: number }).type
      ? (err as { status?: number }).status
      : undefined;
    const e =
      parserStatus && parserStatus < 500
        ? new AppError('bad_request', 'Request body must be valid JSON')
        : toAppError(err);
    if (e.status >= 500)
      requestLog(res, deps.logger).error({ err: e.cause ?? e, path: req.path }, 'admin request failed');
    sendJsonError(res, e);
  });
  return router;
}
