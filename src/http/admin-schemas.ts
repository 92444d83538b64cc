/**
 * The admin API's request bodies, one zod schema per route that takes one. The same schemas validate what
 * arrives (a 400 naming every unknown or invalid field, never a silent default) and describe the bodies in
 * /api/openapi.json, so the document cannot drift from what is checked. Every object is strict: a field the
 * route does not know (a typo such as "grase") is refused rather than ignored.
 */
import { z } from 'zod';
import { AppError } from '../errors.js';

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

function where(path: readonly PropertyKey[]): string {
  return path.length ? path.map(String).join('.') : 'body';
}

/** Each problem as one short phrase that names its field. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `unknown field "${k.slice(0, 64)}"`);
    if (i.code === 'invalid_type' && /received undefined/.test(i.message)) return [`${where(i.path)}: required`];
    if (i.code === 'invalid_type')
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

/** The schema as an OpenAPI 3.0 schema object. */
export function openApiSchema(schema: BodySchema): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' });
}
