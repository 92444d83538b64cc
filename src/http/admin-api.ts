/**
 * The admin API (/api/v1/…) for people: every route is declared once in ROUTES with the role it needs, and
 * the one middleware in front of them all demands an operator bearer token — 401 without a valid one, 403
 * with a reviewer token on an admin route. Tests loop over ROUTES so no route can skip the check.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { parseDuration } from '../config.js';
import { AppError, toAppError } from '../errors.js';
import { type Actor, type Admin, AUDIT_ACTIONS, OPERATOR_ROLES, type OperatorRole } from '../services/admin.js';
import { DEVICE_STATES, type Records } from '../services/records.js';
import { type Decision, type Review, parseFilter } from '../services/review.js';
import { type Policies, checkRule } from '../services/policies.js';
import type { Forwarder } from '../services/forwarder.js';
import type { SpoolStats } from '../services/spool.js';
import type { InventoryRead } from '../services/inventory-read.js';
import { SECURITY_EVENT_TYPES, type SecurityEvents } from '../services/security-events.js';
import type { AuditRead } from '../services/audit-read.js';
import type { Logger } from 'pino';
import { requestLog, sendJsonError } from './request-context.js';

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
}

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

/** `before`: the id of the last entry of the page seen (paging, newest first). */
function beforeId(v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw new AppError('bad_request', 'before must be an entry id');
  return Number(v);
}

function body(req: Request): Record<string, unknown> {
  return typeof req.body === 'object' && req.body !== null && !Array.isArray(req.body)
    ? (req.body as Record<string, unknown>)
    : {};
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
      const cursor = str(req.query.cursor, 'cursor', { optional: true, max: 200 });
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
    handler: async (req, actor, d) => {
      const b = body(req);
      const reason = str(b.reason, 'reason', { optional: true, max: 1000 }) ?? null;
      if (typeof b.filter === 'string') {
        const confirm = b.confirmCount === undefined ? undefined : Number(b.confirmCount);
        if (confirm !== undefined && (!Number.isInteger(confirm) || confirm < 0))
          throw new AppError('bad_request', 'confirmCount must be a whole number');
        return { body: await d.review.decideByFilter(parseFilter(b.filter), decision, reason, actor, confirm) };
      }
      if (!Array.isArray(b.ids) || !b.ids.every((x) => typeof x === 'string' || typeof x === 'number'))
        throw new AppError('bad_request', 'Give ids (device ids or deviceids) or a filter');
      return { body: { results: await d.review.decide(b.ids.map(String), decision, reason, actor) } };
    },
  })),
  {
    method: 'post',
    path: '/api/v1/devices/:id/undo',
    role: 'reviewer',
    handler: async (req, actor, d) => ({ body: await d.review.undo(param(req, 'id'), actor) }),
  },
  {
    method: 'post',
    path: '/api/v1/devices/:id/rebind',
    role: 'reviewer',
    handler: async (req, actor, d) => {
      const b = body(req);
      return {
        body: await d.review.rebind(
          param(req, 'id'),
          { key: str(b.key, 'key', { optional: true }), client: str(b.client, 'client', { optional: true }) },
          str(b.reason, 'reason', { optional: true, max: 1000 }) ?? null,
          actor,
        ),
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
    handler: async (req, actor, d) => {
      const b = body(req);
      const maxDevices = b.maxDevices === undefined ? 0 : Number(b.maxDevices);
      const created = await d.admin.createKey(
        {
          name: str(b.name, 'name')!,
          tag: str(b.tag, 'tag', { optional: true }) ?? null,
          maxDevices,
          expiresAt: date(b.expiresAt, 'expiresAt'),
          comment: str(b.comment, 'comment', { optional: true, max: 1000 }) ?? null,
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
    handler: async (req, actor, d) => {
      const graceText = str(body(req).grace, 'grace', { optional: true }) ?? '7d';
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
    handler: async (req, actor, d) => ({ body: await d.admin.setKeyActive(param(req, 'name'), false, actor) }),
  },
  {
    method: 'post',
    path: '/api/v1/keys/:name/activate',
    role: 'admin',
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
    handler: async (req, actor, d) => ({
      body: await d.policies.setFrozen(
        param(req, 'name'),
        what === 'freeze',
        str(body(req).reason, 'reason', { optional: true, max: 500 }) ?? null,
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
    handler: async (req, actor, d) => {
      const b = body(req);
      const position = b.position === undefined || b.position === null ? null : Number(b.position);
      if (position !== null && (!Number.isInteger(position) || position < 1))
        throw new AppError('bad_request', 'position must be a whole number ≥ 1');
      return { status: 201, body: await d.policies.add({ ...checkRule(b), position }, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/policies/test',
    role: 'admin',
    handler: async (req, _a, d) => {
      const b = body(req);
      if (b.rules !== undefined && !Array.isArray(b.rules))
        throw new AppError('bad_request', 'rules must be an array of {action, match, comment}');
      const days = b.days === undefined ? 7 : Number(b.days);
      if (!Number.isInteger(days) || days < 0 || days > 3650)
        throw new AppError('bad_request', 'days must be a whole number from 0 to 3650');
      return { body: await d.policies.test(Array.isArray(b.rules) ? b.rules.map(checkRule) : null, days) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/policies/:id/remove',
    role: 'admin',
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
    handler: async (req, actor, d) => {
      const kind = param(req, 'kind');
      if (kind !== 'serial' && kind !== 'uuid' && kind !== 'mac')
        throw new AppError('bad_request', 'kind must be serial, uuid or mac');
      const csv = str(body(req).csv, 'csv', { max: 10_000_000 })!;
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
    handler: async (req, actor, d) => {
      const b = body(req);
      const device = str(b.device, 'device', { optional: true });
      const deviceid = device ? await d.records.resolveDeviceid(device) : null;
      return {
        status: 201,
        body: await d.admin.createClient(
          {
            name: str(b.name, 'name')!,
            deviceid,
            tag: str(b.tag, 'tag', { optional: true }) ?? null,
            comment: str(b.comment, 'comment', { optional: true, max: 1000 }) ?? null,
          },
          actor,
        ),
      };
    },
  },
  {
    method: 'post',
    path: '/api/v1/clients/:clientId/revoke',
    role: 'admin',
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
    handler: async (req, actor, d) => {
      const b = body(req);
      return {
        status: 201,
        body: await d.admin.createOperator({ name: str(b.name, 'name')!, role: str(b.role, 'role') as Role }, actor),
      };
    },
  },
  {
    method: 'post',
    path: '/api/v1/operators/:name/revoke',
    role: 'admin',
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
      ...(r.method === 'post'
        ? { requestBody: { required: false, content: { 'application/json': { schema: { type: 'object' } } } } }
        : {}),
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
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) return next(new AppError('unauthorized', 'Operator token required'));
    deps.admin.operatorForToken(m[1]!).then((operator) => {
      if (!operator) return next(new AppError('unauthorized', 'Operator token required'));
      res.locals.operator = operator;
      next();
    }, next);
  });
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
