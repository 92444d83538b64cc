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
import type { Metrics } from '../metrics.js';
import type { AgentLimits } from './limits.js';
import { z } from 'zod';
import { requestLog, sendJsonError } from './request-context.js';
import * as S from './admin-schemas.js';
import type { BodySchema, QuerySchema } from './admin-schemas.js';
import * as R from './admin-responses.js';

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
  /** One line for the OpenAPI document. */
  summary: string;
  /** GET: the query string's schema (validated before the handler runs: a 400 names each bad parameter). */
  query?: QuerySchema;
  /** POST: the body's schema (validated before the handler runs, and the OpenAPI request body). */
  body?: BodySchema;
  /** Path parameters whose schema is not the usual one for their name (S.PATH_PARAMS). */
  params?: Record<string, z.ZodType>;
  /** The answer's schema, and its status when it is not 200. */
  response: z.ZodType;
  status?: 201;
  /** The next page's cursor travels in an X-Next-Cursor header. */
  nextCursorHeader?: true;
  handler: Handler;
}

/** The path parameters of a route: every `:name`, with its schema. */
export function pathParams(route: Pick<Route, 'path' | 'params'>): Record<string, z.ZodType> {
  const names = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  return Object.fromEntries(names.map((n) => [n, route.params?.[n] ?? S.PATH_PARAMS[n] ?? z.string()]));
}

/** The query string as its route's schema parsed it (the dispatcher below checked it first). */
const parsedQueries = new WeakMap<Request, unknown>();
function query<S extends QuerySchema>(req: Request, _schema: S): z.infer<S> {
  return parsedQueries.get(req) as z.infer<S>;
}

const flag = (v: 'true' | 'false' | undefined): true | undefined => (v === 'true' ? true : undefined);
const date = (v: string | undefined): Date | undefined => (v === undefined ? undefined : new Date(v));
const entryId = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));

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
    summary: 'The operator the token belongs to, and its role',
    query: S.NoQuery,
    response: R.Me,
    handler: async (_req, actor, _d, role) => ({ body: { name: actor.name, role } }),
  },
  {
    // The lists the server knows, for clients that offer them (the console's filters), never kept as copies.
    method: 'get',
    path: '/api/v1/meta',
    role: 'reviewer',
    summary: 'The device states, audit actions, roles and security event types the server knows',
    query: S.NoQuery,
    response: R.Meta,
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
    summary: "This process's local spool (inventories read while the database was away)",
    query: S.NoQuery,
    response: R.Status,
    handler: (_req, _a, d) => Promise.resolve({ body: { spool: d.spool ? d.spool() : null } }),
  },
  {
    method: 'get',
    path: '/api/v1/devices',
    role: 'reviewer',
    summary: 'Devices, most recently seen first, one page (the next page: X-Next-Cursor)',
    query: S.DevicesQuery,
    response: R.Devices,
    nextCursorHeader: true,
    handler: async (req, _a, d) => {
      const q = query(req, S.DevicesQuery);
      if (q.cursor && q.offset > 0) throw new AppError('bad_request', 'Invalid query: give offset or cursor, not both');
      const filter = {
        ...q,
        claimedTagMismatch: flag(q.claimedTagMismatch),
        firstSeenFrom: date(q.firstSeenFrom),
        firstSeenTo: date(q.firstSeenTo),
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
    summary: 'One device: identity, inventory summary, look-alikes, history, submissions, sources, requests',
    query: S.NoQuery,
    response: R.DeviceDetail,
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
    summary:
      what === 'inventory'
        ? "The device's current inventory, section by section (latest full plus merged partials, or the held one)"
        : "What changed between the device's latest inventory and the one before (a conflict: the approved identity)",
    query: S.NoQuery,
    response: what === 'inventory' ? R.DeviceInventory : R.DeviceChanges,
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
    summary: `${decision === 'approve' ? 'Approve' : 'Reject'} devices by reference, or by filter (a dry run without confirmCount)`,
    body: S.DecideBody,
    response: R.DecideResult,
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
    summary: 'Revert the last decision on a device, within 15 minutes',
    body: S.NoBody,
    response: R.DecisionResult,
    handler: async (req, actor, d) => ({ body: await d.review.undo(param(req, 'id'), actor) }),
  },
  {
    method: 'post',
    path: '/api/v1/devices/:id/rebind',
    role: 'reviewer',
    summary: 'Pin a device to another registration key or client (its state is left as it is)',
    body: S.RebindBody,
    response: R.Rebound,
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
    summary: 'Recorded agent requests, newest first',
    query: S.RegistrationsQuery,
    response: R.Registrations,
    handler: async (req, _a, d) => ({ body: await d.records.registrations(query(req, S.RegistrationsQuery)) }),
  },
  {
    method: 'get',
    path: '/api/v1/keys',
    role: 'admin',
    summary: 'Registration keys, their device counts and versions (secrets masked)',
    query: S.NoQuery,
    response: R.Keys,
    handler: async (_r, _a, d) => ({ body: await d.admin.listKeys() }),
  },
  {
    method: 'post',
    path: '/api/v1/keys',
    role: 'admin',
    summary: 'Create a registration key (its secret is in this answer only)',
    body: S.CreateKeyBody,
    response: R.CreatedKey,
    status: 201,
    handler: async (req, actor, d) => {
      const b = body(req, S.CreateKeyBody);
      const created = await d.admin.createKey(
        {
          name: b.name,
          tag: b.tag ?? null,
          maxDevices: b.maxDevices ?? 0,
          expiresAt: b.expiresAt ? new Date(b.expiresAt) : null,
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
    summary: 'A new version of a key (its secret in this answer only); older ones work until now + grace',
    body: S.RotateBody,
    response: R.RotatedKey,
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
  ...(['revoke', 'activate'] as const).map((what): Route => ({
    method: 'post',
    path: `/api/v1/keys/:name/${what}`,
    role: 'admin',
    summary: what === 'revoke' ? 'Stop every version of a key at once' : 'Undo a revocation',
    body: S.NoBody,
    response: R.Key,
    handler: async (req, actor, d) => ({
      body: await d.admin.setKeyActive(param(req, 'name'), what === 'activate', actor),
    }),
  })),
  {
    method: 'get',
    path: '/api/v1/keys/:name/usage',
    role: 'admin',
    summary: "Which deviceids and addresses used each of a key's versions, how often and when last",
    query: S.KeyUsageQuery,
    response: R.KeyUsage,
    handler: async (req, _a, d) => ({ body: await d.admin.keyUsage(param(req, 'name'), query(req, S.KeyUsageQuery)) }),
  },
  ...(['freeze', 'unfreeze'] as const).map((what): Route => ({
    method: 'post',
    path: `/api/v1/keys/:name/${what}`,
    role: 'admin',
    summary: what === 'freeze' ? "Stop auto-approving a key's new devices" : 'Auto-approve its devices again',
    body: S.FreezeBody,
    response: R.Frozen,
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
    summary: 'Auto-approval rules, in order, and the allowlists',
    query: S.NoQuery,
    response: R.Policies,
    handler: async (_r, _a, d) => ({ body: await d.policies.list() }),
  },
  {
    method: 'post',
    path: '/api/v1/policies',
    role: 'admin',
    summary: 'Add an auto-approval rule',
    body: S.AddPolicyBody,
    response: R.AddedRule,
    status: 201,
    handler: async (req, actor, d) => {
      const { position, ...rule } = body(req, S.AddPolicyBody);
      return { status: 201, body: await d.policies.add({ ...checkRule(rule), position: position ?? null }, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/policies/test',
    role: 'admin',
    summary: 'Dry run: what the rules (or proposed ones) would have decided for the devices of the last days',
    body: S.TestPoliciesBody,
    response: R.PolicyTest,
    handler: async (req, _a, d) => {
      const b = body(req, S.TestPoliciesBody);
      return { body: await d.policies.test(b.rules ? b.rules.map(checkRule) : null, b.days ?? 7) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/policies/:id/remove',
    role: 'admin',
    summary: 'Remove an auto-approval rule',
    params: { id: S.RULE_ID },
    body: S.NoBody,
    response: R.Rule,
    handler: async (req, actor, d) => ({ body: await d.policies.remove(Number(param(req, 'id')), actor) }),
  },
  {
    method: 'post',
    path: '/api/v1/allowlists/:name/:kind',
    role: 'admin',
    summary: 'Replace an allowlist of serials, UUIDs or MACs with a CSV',
    body: S.AllowlistBody,
    response: R.Allowlist,
    handler: async (req, actor, d) => {
      const kind = param(req, 'kind') as 'serial' | 'uuid' | 'mac';
      const { csv } = body(req, S.AllowlistBody);
      return { body: await d.policies.importAllowlist(param(req, 'name'), kind, csv, actor) };
    },
  },
  {
    method: 'get',
    path: '/api/v1/clients',
    role: 'admin',
    summary: 'Per-agent client credentials (secrets masked)',
    query: S.NoQuery,
    response: R.Clients,
    handler: async (_r, _a, d) => ({ body: await d.admin.listClients() }),
  },
  {
    method: 'post',
    path: '/api/v1/clients',
    role: 'admin',
    summary: 'Create a client credential (its secret is in this answer only)',
    body: S.CreateClientBody,
    response: R.CreatedClient,
    status: 201,
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
    summary: 'Revoke a client credential and the bearer tokens it holds',
    body: S.NoBody,
    response: R.Client,
    handler: async (req, actor, d) => ({ body: await d.admin.revokeClient(param(req, 'clientId'), actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/certs',
    role: 'admin',
    summary: 'Client certificates seen (TLS_CLIENT_CA), most recently seen first',
    query: S.NoQuery,
    response: R.Certificates,
    handler: async (_r, _a, d) => ({ body: await d.admin.listCertificates() }),
  },
  {
    method: 'post',
    path: '/api/v1/certs/:fingerprint/revoke',
    role: 'admin',
    summary: 'Revoke a client certificate',
    body: S.NoBody,
    response: R.Certificate,
    handler: async (req, actor, d) => ({ body: await d.admin.revokeCertificate(param(req, 'fingerprint'), actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/operators',
    role: 'admin',
    summary: 'Operators (tokens masked)',
    query: S.NoQuery,
    response: R.Operators,
    handler: async (_r, _a, d) => ({ body: await d.admin.listOperators() }),
  },
  {
    method: 'post',
    path: '/api/v1/operators',
    role: 'admin',
    summary: 'Create an operator (its token is in this answer only)',
    body: S.CreateOperatorBody,
    response: R.CreatedOperator,
    status: 201,
    handler: async (req, actor, d) => {
      const b = body(req, S.CreateOperatorBody);
      return { status: 201, body: await d.admin.createOperator({ name: b.name, role: b.role }, actor) };
    },
  },
  {
    method: 'post',
    path: '/api/v1/operators/:name/revoke',
    role: 'admin',
    summary: 'Revoke an operator',
    body: S.NoBody,
    response: R.Operator,
    handler: async (req, actor, d) => ({ body: await d.admin.revokeOperator(param(req, 'name'), actor) }),
  },
  {
    method: 'get',
    path: '/api/v1/audit',
    role: 'admin',
    summary: 'Who did what, newest first (paged by before)',
    query: S.AuditQuery,
    response: R.AuditEntries,
    handler: async (req, _a, d) => {
      const q = query(req, S.AuditQuery);
      if (!d.auditRead) return { body: await d.admin.listAudit({ limit: q.limit, action: q.action }) };
      return {
        body: await d.auditRead.list({
          ...q,
          since: date(q.since),
          until: date(q.until),
          beforeId: entryId(q.before),
        }),
      };
    },
  },
  {
    method: 'get',
    path: '/api/v1/security-events',
    role: 'admin',
    summary: 'Failed credentials and credentials used for a device they do not speak for, newest first',
    query: S.SecurityEventsQuery,
    response: R.SecurityEvents,
    handler: async (req, _a, d) => {
      const q = query(req, S.SecurityEventsQuery);
      if (!d.securityEvents) return { body: await d.admin.listSecurityEvents(q.limit) };
      return {
        body: await d.securityEvents.list({
          limit: q.limit,
          kind: q.type,
          address: q.address,
          credential: q.key,
          since: date(q.since),
          until: date(q.until),
          beforeId: entryId(q.before),
        }),
      };
    },
  },
  // GLPI forwarding: the outbox, its dead letters, and what an admin may do about them (audited).
  {
    method: 'get',
    path: '/api/v1/outbox',
    role: 'admin',
    summary: 'The GLPI forwarding outbox, newest first',
    query: S.OutboxQuery,
    response: R.OutboxItems,
    handler: async (req, _a, d) => ({ body: await outbox(d).list(query(req, S.OutboxQuery)) }),
  },
  ...(['retry', 'drop'] as const).map((what): Route => ({
    method: 'post',
    path: `/api/v1/outbox/:id/${what}`,
    role: 'admin',
    summary: what === 'retry' ? 'Send an outbox item again, with a fresh count of attempts' : 'Drop an outbox item',
    params: { id: S.OUTBOX_ID },
    body: S.NoBody,
    response: what === 'retry' ? R.OutboxItem : R.Dropped,
    handler: async (req, actor, d) => ({ body: await outbox(d)[what](Number(param(req, 'id')), actor) }),
  })),
];

function outbox(d: AdminApiDeps): NonNullable<AdminApiDeps['forwarder']> {
  if (!d.forwarder) throw new AppError('not_found', 'Forwarding is not available');
  return d.forwarder;
}

const ROLE_RANK: Record<Role, number> = { reviewer: 1, admin: 2 };

/** A route's body in OpenAPI terms, from its schema: required when the schema has a required field. */
function requestBody(schema: BodySchema): Record<string, unknown> {
  const json = S.openApiSchema(schema);
  const required = Array.isArray(json.required) && json.required.length > 0;
  return { required, content: { 'application/json': { schema: json } } };
}

/** A route's path and query parameters in OpenAPI terms, from the schemas that check them. */
function parameters(route: Route): Record<string, unknown>[] {
  const path = Object.entries(pathParams(route)).map(([name, schema]) => {
    const { description, ...json } = S.openApiSchema(schema);
    return { name, in: 'path', required: true, ...(description ? { description } : {}), schema: json };
  });
  const shape = route.query ? (S.openApiSchema(route.query).properties as Record<string, Record<string, unknown>>) : {};
  const required = new Set(route.query ? ((S.openApiSchema(route.query).required as string[] | undefined) ?? []) : []);
  const query = Object.entries(shape).map(([name, { description, ...json }]) => ({
    name,
    in: 'query',
    // A parameter with a default may be left out (zod lists it as required in what it reads).
    required: required.has(name) && json.default === undefined,
    ...(description ? { description: description as string } : {}),
    schema: json,
  }));
  return [...path, ...query];
}

const ERROR_RESPONSES: Record<string, string> = {
  '400': 'Invalid parameter or body (the message names each one)',
  '401': 'No valid operator token',
  '403': 'The token’s role is not enough',
  '404': 'No such device, key, client… (or route)',
  '409': 'Conflicts with what is there (a name taken, a decision too old to undo…)',
  '429': 'Too many invalid credentials from this address',
  '503': 'The database is away',
};

/** The admin API as OpenAPI 3.1, built from ROUTES and the schemas that check requests, so it cannot drift. */
export function openApiDocument(version: string): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const ok: Record<string, unknown> = {
      description: r.status === 201 ? 'Created' : 'OK',
      content: { 'application/json': { schema: responseSchema(r.response, defs) } },
    };
    if (r.nextCursorHeader) ok.headers = { 'X-Next-Cursor': { $ref: '#/components/headers/X-Next-Cursor' } };
    paths[path] ??= {};
    paths[path][r.method] = {
      operationId: operationId(r),
      summary: r.summary,
      description: `Needs an operator token with the ${r.role} role${r.role === 'reviewer' ? ' (or admin)' : ''}.`,
      'x-role': r.role,
      tags: [r.path.split('/')[3]!],
      parameters: parameters(r),
      ...(r.body ? { requestBody: requestBody(r.body) } : {}),
      responses: {
        [String(r.status ?? 200)]: ok,
        ...Object.fromEntries(Object.keys(ERROR_RESPONSES).map((s) => [s, { $ref: `#/components/responses/${s}` }])),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'agent-gate admin API',
      version,
      description:
        'Operators review devices and manage credentials. Every route needs an operator token ' +
        '(Authorization: Bearer ago_…) with the role it names (x-role; admin can do all a reviewer can). ' +
        'Errors are {status: "error", code, message, requestId}.',
    },
    servers: [{ url: '/' }],
    security: [{ operatorToken: [] }],
    components: {
      securitySchemes: {
        operatorToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'An operator token (ago_…): agent-gate operators create --name N --role reviewer|admin',
        },
      },
      schemas: { ...(toComponents(defs) as object), Error: S.openApiSchema(R.ErrorBody, 'output') },
      headers: {
        'X-Next-Cursor': {
          description: 'The next page: pass it as ?cursor= (absent on the last page)',
          schema: { type: 'string' },
        },
      },
      responses: Object.fromEntries(
        Object.entries(ERROR_RESPONSES).map(([s, description]) => [
          s,
          {
            description,
            headers: { 'X-Request-Id': { schema: { type: 'string' } } },
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
        ]),
      ),
    },
    paths,
  };
}

/** A name for each operation: getDevices, postKeysRotate… */
function operationId(r: Route): string {
  const words = r.path
    .replace('/api/v1/', '')
    .split('/')
    .filter((p) => !p.startsWith(':'))
    .flatMap((p) => p.split('-'));
  const params = [...r.path.matchAll(/:(\w+)/g)].map((m) => `By${m[1]![0]!.toUpperCase()}${m[1]!.slice(1)}`);
  return r.method + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('') + params.join('');
}

/**
 * Response schemas as OpenAPI schema objects: each named part (a `.meta({ id })` in admin-responses.ts)
 * goes once to components.schemas (`defs`) and is referred to from every answer that holds it.
 */
function responseSchema(schema: z.ZodType, defs: Record<string, unknown>): unknown {
  const json = S.openApiSchema(schema, 'output');
  const { $defs, ...rest } = json as { $defs?: Record<string, unknown> };
  Object.assign(defs, $defs ?? {});
  return toComponents(rest);
}

function toComponents(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toComponents);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [
      k,
      k === '$ref' && typeof x === 'string' ? x.replace('#/$defs/', '#/components/schemas/') : toComponents(x),
    ]),
  );
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
        S.parsePath(pathParams(route), req.params);
        if (route.query) parsedQueries.set(req, S.parseQuery(route.query, req.query));
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
