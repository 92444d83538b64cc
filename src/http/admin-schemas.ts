/**
 * The admin API's request bodies, one zod schema per route that takes one. The same schemas validate what
 * arrives (a 400 naming every unknown or invalid field, never a silent default) and describe the bodies in
 * /api/openapi.json, so the document cannot drift from what is checked. Every object is strict: a field the
 * route does not know (a typo such as "grase") is refused rather than ignored.
 */
import { z } from 'zod';
import { AppError } from '../errors.js';
import { AUDIT_ACTIONS } from '../services/admin.js';
import { OUTBOX_STATES } from '../services/forwarder.js';
import { DEVICE_SORTS, DEVICE_STATES } from '../services/records.js';
import { SECURITY_EVENT_TYPES } from '../services/security-events.js';

const text = (max = 256) => z.string().min(1).max(max);
const reason = z.string().max(1000).nullable().optional();

/** A device reference: the row id as `#15`/`id:15`, anything else a deviceid (see services/records.ts). */
const deviceRef = z.union([z.string().min(1).max(256), z.number().int().nonnegative()]);

export const DecideBody = z
  .strictObject({
    ids: z.array(deviceRef).min(1).max(1000).optional(),
    filter: z.string().min(1).max(2000).optional(),
    reason,
    confirmCount: z.number().int().nonnegative().optional(),
  })
  .refine((b) => (b.ids === undefined) !== (b.filter === undefined), {
    message: 'give either ids (device references) or a filter',
    path: ['ids'],
  });

export const RebindBody = z
  .strictObject({ key: text().optional(), client: text().optional(), reason })
  .refine((b) => (b.key === undefined) !== (b.client === undefined), {
    message: 'give either key or client',
    path: ['key'],
  });

export const CreateKeyBody = z.strictObject({
  name: text(),
  tag: text().nullable().optional(),
  maxDevices: z.number().int().nonnegative().optional(),
  expiresAt: z.iso.datetime({ offset: true }).or(z.iso.date()).nullable().optional(),
  comment: z.string().max(1000).nullable().optional(),
});

/** `grace`: a duration such as "7d", "90s" or "0" (the default is 7d). */
export const RotateBody = z.strictObject({
  grace: z
    .string()
    .regex(/^\s*\d+\s*[smhd]?\s*$/i, 'must be a duration such as 7d, 90s or 0')
    .optional(),
});

export const FreezeBody = z.strictObject({ reason: z.string().max(500).nullable().optional() });

const Rule = z.strictObject({
  action: z.enum(['approve', 'quarantine', 'reject']),
  match: z.record(z.string(), z.string().max(10_000)).optional(),
  comment: z.string().max(500).nullable().optional(),
});

export const AddPolicyBody = Rule.extend({ position: z.number().int().positive().nullable().optional() });

export const TestPoliciesBody = z.strictObject({
  rules: z.array(Rule).max(1000).optional(),
  days: z.number().int().min(0).max(3650).optional(),
});

export const AllowlistBody = z.strictObject({ csv: z.string().min(1).max(10_000_000) });

export const CreateClientBody = z.strictObject({
  name: text(),
  device: text().optional(),
  tag: text().nullable().optional(),
  comment: z.string().max(1000).nullable().optional(),
});

export const CreateOperatorBody = z.strictObject({ name: text(), role: z.enum(['reviewer', 'admin']) });

/** For POST routes that take no body: `{}` or nothing at all, and any field is unknown. */
export const NoBody = z.strictObject({});

export type BodySchema = z.ZodType;

// ---- query strings and path parameters ------------------------------------------------------------------
// Each GET route's query string is a strict object too: an unknown parameter (a typo such as "limt") is a 400
// rather than a filter silently not applied. Values arrive as text; numbers are read as numbers.

/** `limit`: how many rows, 1 to 1000. */
export const limitParam = (dflt: number) =>
  z.coerce
    .number('must be a whole number from 1 to 1000')
    .int('must be a whole number from 1 to 1000')
    .min(1, 'must be a whole number from 1 to 1000')
    .max(1000, 'must be a whole number from 1 to 1000')
    .default(dflt)
    .describe('how many rows at most');

const textParam = (max = 256) => z.string().max(max).describe(`text, at most ${max} characters`);
const dateParam = (what: string) =>
  z
    .union([z.iso.datetime({ offset: true, local: true }), z.iso.date()], {
      error: 'must be an ISO 8601 date or time',
    })
    .describe(what);
const flagParam = (what: string) => z.enum(['true', 'false']).describe(what);
/** `before`: the id of the last entry of the page seen (paging, newest first). */
const beforeParam = z
  .string()
  .regex(/^\d{1,15}$/, 'must be an entry id')
  .describe('the id of the last entry of the page seen: the entries older than it (the next page)');

export type QuerySchema = z.ZodObject;

export const DevicesQuery = z.strictObject({
  state: z.enum(DEVICE_STATES).describe('only devices in this state').optional(),
  tag: textParam().describe("the device's tag (its registration key's or client's)").optional(),
  claimedTag: textParam().describe('the tag the agent sent').optional(),
  claimedTagMismatch: flagParam('true: only devices whose agent claims another tag than their own').optional(),
  key: textParam().describe('name of the registration key that registered the device').optional(),
  subnet: z
    .string()
    .regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'must be a CIDR such as 10.1.0.0/16')
    .describe('CIDR the last source address falls in')
    .optional(),
  q: textParam().describe('text in name, serial, UUID, MAC or deviceid').optional(),
  firstSeenFrom: dateParam('first seen at or after').optional(),
  firstSeenTo: dateParam('first seen before').optional(),
  limit: limitParam(100),
  offset: z.coerce
    .number('must be a whole number ≥ 0')
    .int('must be a whole number ≥ 0')
    .min(0, 'must be a whole number ≥ 0')
    .max(10_000_000, 'must be a whole number ≥ 0')
    .default(0)
    .describe('rows to skip (prefer cursor)'),
  cursor: textParam(2048)
    .describe('the next page: the X-Next-Cursor header of the page before (not with offset, same sort and dir)')
    .optional(),
  sort: z
    .enum(DEVICE_SORTS, {
      error: (iss) => `must be one of ${DEVICE_SORTS.join(', ')} (not ${JSON.stringify(iss.input)})`,
    })
    .describe('the order: lastSeen (default), firstSeen, name, state, deviceid, serial, os, agent or address')
    .optional(),
  dir: z
    .enum(['asc', 'desc'], { error: (iss) => `must be asc or desc (not ${JSON.stringify(iss.input)})` })
    .describe('the direction: times default to newest first (desc), text to A-Z (asc)')
    .optional(),
});

export const RegistrationsQuery = z.strictObject({
  deviceid: textParam().describe('only requests for this deviceid').optional(),
  limit: limitParam(50),
});

export const KeyUsageQuery = z.strictObject({
  limit: limitParam(100),
  cursor: textParam().describe('the next page: nextCursor of the page before').optional(),
});

export const AuditQuery = z.strictObject({
  action: z.enum(AUDIT_ACTIONS).describe('only this action').optional(),
  actor: textParam().describe('text in the actor').optional(),
  since: dateParam('at or after').optional(),
  until: dateParam('before').optional(),
  before: beforeParam.optional(),
  limit: limitParam(100),
});

export const SecurityEventsQuery = z.strictObject({
  type: z.enum(SECURITY_EVENT_TYPES).describe('only events of this type').optional(),
  address: z
    .string()
    .regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'must be an IP address or a CIDR such as 10.1.0.0/16')
    .describe('source address, or a CIDR it falls in')
    .optional(),
  key: textParam().describe('text in the credential the event names (key:NAME, a client id, …)').optional(),
  since: dateParam('at or after').optional(),
  until: dateParam('before').optional(),
  before: beforeParam.optional(),
  limit: limitParam(100),
});

export const OutboxQuery = z.strictObject({
  state: z.enum(OUTBOX_STATES).describe('only items in this state').optional(),
  deviceid: textParam().describe('only items of this deviceid').optional(),
  limit: limitParam(100),
});

/** For GET routes that take no query parameter. */
export const NoQuery = z.strictObject({});

const refParam = z
  .string()
  .min(1)
  .max(256)
  .describe('a device: id:N (or #N) for row N, deviceid:X or any other text for a deviceid');
const idParam = (what: string) =>
  z
    .string()
    .regex(/^\d{1,15}$/, `must be ${what}`)
    .describe(what);

/** Path parameters by name (every `:name` in a route's path); a name not listed here is plain text. */
export const PATH_PARAMS: Record<string, z.ZodType> = {
  id: refParam,
  name: z.string().min(1).max(256).describe('a name (registration key, operator, allowlist)'),
  clientId: z.string().min(1).max(256).describe('a client id (agc_…)'),
  fingerprint: z.string().min(1).max(256).describe('a SHA-256 fingerprint, hex, with or without colons'),
  kind: z.enum(['serial', 'uuid', 'mac']).describe('what the allowlist holds'),
};
/** Path parameters that mean something else on some routes (a number where `id` is usually a device). */
export const OUTBOX_ID = idParam('an outbox item id');
export const RULE_ID = idParam('a rule id');

/** The query string as its schema reads it, or a 400 that names every invalid or unknown parameter. */
export function parseQuery<S extends QuerySchema>(schema: S, query: unknown): z.infer<S> {
  // An empty value (`?state=&tag=paris`, as an HTML form sends it) is the parameter left out.
  const given = Object.fromEntries(Object.entries(query ?? {}).filter(([, v]) => v !== ''));
  const r = schema.safeParse(given);
  if (r.success) return r.data;
  throw new AppError('bad_request', `Invalid query: ${describeIssues(r.error.issues, 'parameter').join('; ')}`, {
    details: { issues: r.error.issues.length },
  });
}

/** The path parameters as their schemas read them, or a 400 that names each invalid one. */
export function parsePath(schemas: Record<string, z.ZodType>, params: Record<string, unknown>): void {
  const problems: string[] = [];
  for (const [name, schema] of Object.entries(schemas)) {
    const r = schema.safeParse(params[name]);
    if (!r.success) problems.push(...describeIssues(r.error.issues.map((i) => ({ ...i, path: [name, ...i.path] }))));
  }
  if (problems.length) throw new AppError('bad_request', `Invalid path: ${problems.join('; ')}`);
}

function where(path: readonly PropertyKey[]): string {
  return path.length ? path.map(String).join('.') : 'body';
}

/** Each problem as one short phrase that names its field (or query parameter). */
export function describeIssues(issues: readonly z.core.$ZodIssue[], noun = 'field'): string[] {
  return issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `unknown ${noun} "${k.slice(0, 64)}"`);
    if (i.code === 'invalid_type' && /received undefined/.test(i.message)) return [`${where(i.path)}: required`];
    // zod's own wording, shortened; a schema's own message (limit's "whole number…") is kept as written.
    if (i.code === 'invalid_type' && i.message.startsWith('Invalid input'))
      return [`${where(i.path)}: must be ${i.expected === 'object' ? 'an object' : `a ${i.expected}`}`];
    return [`${where(i.path)}: ${i.message}`];
  });
}

/** The body as the schema reads it, or a 400 that lists every problem. No body at all reads as `{}`. */
export function parseBody<S extends BodySchema>(schema: S, body: unknown): z.infer<S> {
  const given: unknown = body === undefined || body === null ? {} : body;
  if (typeof given !== 'object' || Array.isArray(given))
    throw new AppError('bad_request', 'Invalid body: must be a JSON object');
  const r = schema.safeParse(given);
  if (r.success) return r.data;
  throw new AppError('bad_request', `Invalid body: ${describeIssues(r.error.issues).join('; ')}`, {
    details: { issues: r.error.issues.length },
  });
}

/**
 * The schema as an OpenAPI 3.1 schema object (JSON Schema 2020-12): what a request may hold (`io: input`,
 * defaults shown), or what a response holds (`output`).
 */
export function openApiSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });
  return json;
}
