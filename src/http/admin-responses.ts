/**
 * What the admin API answers, one zod schema per route (ROUTES in admin-api.ts names each), described in
 * /api/openapi.json. The fields a client can rely on are listed with their types; objects stay open (a
 * field added later is not a breaking change), so the schemas say what is there, not what may never be.
 * test/integration/openapi.test.ts calls every GET route on a seeded gateway and validates each answer
 * against the document, so a schema that no longer matches what is sent fails there.
 */
import { z } from 'zod';
import { ERROR_STATUS } from '../errors.js';
import { OPERATOR_ROLES } from '../services/admin.js';
import { OUTBOX_STATES } from '../services/forwarder.js';
import { DEVICE_STATES } from '../services/records.js';

/** A time, as JSON sends a Date: ISO 8601 in UTC. */
const time = z.iso.datetime({ offset: true });
const text = z.string();
const opt = <T extends z.ZodType>(t: T) => t.nullable();
const int = z.number().int();
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const open = <T extends z.ZodRawShape>(shape: T) => z.looseObject(shape);

export const ErrorBody = z.strictObject({
  status: z.literal('error'),
  code: z.enum(Object.keys(ERROR_STATUS) as [keyof typeof ERROR_STATUS, ...(keyof typeof ERROR_STATUS)[]]),
  message: text.describe('what went wrong, for people (a 400 names each invalid field)'),
  requestId: text.describe('the request id, also in the X-Request-Id header and in the log lines'),
});

export const Me = open({ name: text, role: z.enum(OPERATOR_ROLES) });

export const Meta = open({
  states: z.array(text),
  auditActions: z.array(text),
  roles: z.array(text),
  securityEventTypes: z.array(text),
});

export const Status = open({
  spool: open({ messages: int, bytes: int, oldest: opt(time), replaying: z.boolean() })
    .nullable()
    .describe("this process's local spool (inventories read while the database was away); null without one"),
});

const Duplicate = open({
  id: int,
  deviceid: text,
  shared: z.array(z.enum(['serial', 'uuid', 'mac', 'name'])),
}).meta({ id: 'Duplicate' });

export const Device = open({
  id: int,
  deviceid: text,
  state: z.enum(DEVICE_STATES),
  name: opt(text),
  serial: opt(text),
  uuid: opt(text),
  msn: opt(text),
  assetTag: opt(text),
  manufacturer: opt(text),
  model: opt(text),
  macs: z.array(text),
  ips: z.array(text),
  os: opt(text),
  tag: opt(text).describe('the tag of its registration key or client (what GLPI gets)'),
  claimedTag: opt(text).describe('the tag the agent sent: shown, never trusted'),
  claimedTagMismatch: z.boolean(),
  agentId: opt(text),
  agentVersion: opt(text),
  firstSeen: time,
  lastSeen: time,
  lastRemoteAddr: opt(text),
  lastInventoryAt: opt(time),
  duplicates: z.array(Duplicate).describe('look-alikes: devices that share a serial, UUID, MAC or name'),
}).meta({ id: 'Device' });

export const Devices = z.array(Device);

const Registration = open({
  id: int,
  deviceid: opt(text),
  deviceId: opt(int),
  kind: text,
  format: text,
  compression: text,
  partial: z.boolean(),
  outcome: text,
  status: int,
  method: text,
  path: text,
  bodySize: int,
  decodedSize: int,
  remoteAddr: opt(text),
  userAgent: opt(text),
  agentId: opt(text),
  proxyChain: z.array(text),
  message: opt(text),
  receivedAt: time,
  authType: opt(text),
  authUser: opt(text),
  keyName: opt(text),
  keyVersion: opt(int),
  clientId: opt(text),
  certFingerprint: opt(text),
  certSubject: opt(text),
  claimedTag: opt(text),
}).meta({ id: 'Registration' });

export const Registrations = z.array(Registration);

const InventorySummary = open({
  os: z.unknown(),
  manufacturer: z.unknown(),
  model: z.unknown(),
  serial: z.unknown(),
  uuid: z.unknown(),
  memoryMb: z.unknown(),
  softwareCount: opt(int),
  networkCount: opt(int),
  sections: z.array(text),
});

export const DeviceDetail = Device.extend({
  conflictWith: opt(int),
  conflictDetails: opt(open({})),
  stateReason: opt(text),
  keyName: opt(text),
  clientId: opt(text),
  conflictWithDevice: opt(open({ id: int, deviceid: text })),
  inventory: opt(InventorySummary),
  history: z.array(open({ at: time, from: opt(text), to: text, actor: text, reason: opt(text) })),
  submissions: z.array(open({ state: text, kind: text, n: int, bytes: int })),
  sources: z.array(open({ remoteAddr: text, requests: int, lastSeen: time })),
  proxies: z.array(open({ proxyChain: z.array(text), requests: int, firstSeen: time, lastSeen: time })),
  registrations: z.array(Registration),
}).meta({ id: 'DeviceDetail' });

const Item = z.record(z.string(), scalar);

export const DeviceInventory = open({
  id: int,
  deviceid: text,
  state: z.enum(DEVICE_STATES),
  source: opt(
    open({
      fullSubmissionId: opt(int),
      state: opt(text),
      receivedAt: opt(time),
      partialsMerged: int,
      format: text,
    }),
  ),
  sections: z.array(
    open({
      key: text.describe('the section in the JSON protocol: hardware, softwares, …'),
      title: text,
      count: int.describe('entries in the inventory'),
      items: z.array(Item),
      truncated: z.boolean().describe('items holds fewer than count'),
    }),
  ),
});

const FieldChange = open({ field: text, before: scalar, after: scalar });
const ListChange = open({
  added: z.array(Item),
  removed: z.array(Item),
  changed: z.array(open({ key: text, fields: z.array(FieldChange) })),
});
const InventoryRef = open({ submissionId: int, receivedAt: time, state: text });

export const DeviceChanges = open({
  basis: z.enum(['previous', 'reference']).describe('previous inventory, or (a conflict) the approved identity'),
  from: opt(InventoryRef),
  to: opt(InventoryRef),
  changes: opt(
    open({
      identity: z.array(FieldChange),
      macs: open({ added: z.array(text), removed: z.array(text) }),
      interfaces: ListChange,
      disks: ListChange,
      volumes: ListChange,
      software: open({
        added: z.array(Item),
        removed: z.array(Item),
        upgraded: z.array(open({ name: opt(text), publisher: opt(text), from: opt(text), to: opt(text) })),
      }),
    }),
  ),
});

export const DecisionResult = open({
  id: int,
  deviceid: text,
  from: text,
  to: text,
  changed: z.boolean(),
  releasedSubmissions: int,
});

export const DecideResult = z.union([
  open({ results: z.array(DecisionResult) }).describe('with ids: what was done to each device'),
  open({
    dryRun: z.literal(true),
    count: int,
    devices: z.array(open({ id: int, deviceid: text, name: opt(text), state: text })),
  }).describe('with a filter and no confirmCount: what would be decided'),
  open({ dryRun: z.literal(false), count: int, results: z.array(DecisionResult) }).describe(
    'with a filter and its confirmCount',
  ),
]);

const KeyVersion = open({ version: int, secret: text, createdAt: time, expiresAt: opt(time), valid: z.boolean() });

export const Key = open({
  name: text,
  active: z.boolean(),
  expiresAt: opt(time),
  maxDevices: int.describe('0 = unlimited'),
  devicesUsed: int,
  tag: opt(text),
  comment: opt(text),
  createdBy: text,
  createdAt: time,
  frozenAt: opt(time),
  frozenReason: opt(text),
  versions: z.array(KeyVersion).describe('secrets masked'),
}).meta({ id: 'Key' });

export const Keys = z.array(Key);
export const CreatedKey = open({ key: Key, secret: text.describe('shown once') });
export const RotatedKey = open({
  key: Key,
  secret: text.describe('shown once'),
  version: int,
  previousExpiresAt: time,
});

export const KeyUsage = open({
  key: Key,
  usage: z.array(
    open({
      version: int,
      prefix: text,
      expiresAt: opt(time),
      deviceid: opt(text),
      deviceId: opt(int),
      remoteAddr: opt(text),
      requests: int,
      lastUsed: time,
    }),
  ),
  nextCursor: opt(text).describe('the next page (?cursor=), null on the last one'),
});

const ACTIONS = z.enum(['approve', 'quarantine', 'reject']);

export const Rule = open({
  id: int,
  position: int,
  action: ACTIONS,
  match: z.record(z.string(), z.unknown()),
  comment: opt(text),
}).meta({ id: 'Rule' });

export const AddedRule = open({
  rule: Rule,
  applied: z
    .array(open({ id: int, deviceid: text, to: text, ruleId: int }))
    .describe('what the rule set did to the quarantine queue at once'),
});

const Judged = open({
  id: int,
  deviceid: text,
  name: opt(text),
  state: text,
  decision: ACTIONS,
  ruleId: opt(int),
  frozen: z.boolean(),
});

export const PolicyTest = open({
  rules: int.describe('rules judged with'),
  warnings: z.array(text),
  queue: open({ devices: int, wouldApprove: z.array(Judged), wouldReject: z.array(Judged), wouldStay: int }),
  recent: open({ days: int, devices: int, decisions: z.array(Judged) }).describe(
    'devices first seen in the last days whose state the rules would change',
  ),
});

export const Allowlist = open({ name: text, kind: z.enum(['serial', 'uuid', 'mac']), entries: int });

export const Frozen = open({ name: text, frozen: z.boolean() });

export const Policies = open({
  rules: z.array(Rule),
  allowlists: z.array(open({ name: text, kind: z.enum(['serial', 'uuid', 'mac']) })),
});

export const Client = open({
  clientId: text,
  name: text,
  secret: text.describe('masked'),
  deviceid: opt(text),
  tag: opt(text),
  comment: opt(text),
  createdBy: text,
  createdAt: time,
  revokedAt: opt(time),
  lastUsedAt: opt(time),
}).meta({ id: 'Client' });

export const Clients = z.array(Client);
export const CreatedClient = open({
  clientId: text,
  clientSecret: text.describe('shown once'),
  name: text,
  deviceid: opt(text),
});

export const Certificate = open({
  fingerprint: text,
  subject: text,
  issuer: text,
  serial: opt(text),
  notBefore: opt(time),
  notAfter: opt(time),
  firstSeen: time,
  lastSeen: time,
  revokedAt: opt(time),
  revokedBy: opt(text),
}).meta({ id: 'Certificate' });

export const Certificates = z.array(Certificate);

export const Operator = open({
  name: text,
  role: z.enum(OPERATOR_ROLES),
  token: text.describe('masked'),
  createdBy: text,
  createdAt: time,
  revokedAt: opt(time),
  lastUsedAt: opt(time),
}).meta({ id: 'Operator' });

export const Operators = z.array(Operator);
export const CreatedOperator = open({ name: text, role: z.enum(OPERATOR_ROLES), token: text.describe('shown once') });

export const AuditEntries = z.array(
  open({
    id: int,
    at: time,
    actor: text,
    action: text,
    targetType: text,
    targetId: opt(text),
    remoteAddr: opt(text),
    before: z.unknown(),
    after: z.unknown(),
    reason: opt(text),
  }),
);

export const SecurityEvents = z.array(
  open({
    id: int,
    at: time,
    kind: text,
    remoteAddr: opt(text),
    deviceid: opt(text),
    credential: opt(text).describe('the credential it names: a client id, key:NAME, a certificate fingerprint…'),
    details: z.unknown(),
  }),
);

export const OutboxItem = open({
  id: int,
  submissionId: int,
  deviceId: int,
  deviceid: text,
  kind: text,
  partial: z.boolean(),
  bytes: int,
  state: z.enum(OUTBOX_STATES),
  attempts: int,
  nextAttemptAt: opt(time),
  lastStatus: opt(int),
  lastError: opt(text),
  lastResponse: opt(text),
  createdAt: time,
  deliveredAt: opt(time),
}).meta({ id: 'OutboxItem' });

export const OutboxItems = z.array(OutboxItem);

export const Rebound = open({ id: int, deviceid: text, key: opt(text), clientId: opt(text), tag: opt(text) });

export const Dropped = open({ id: int, dropped: z.literal(true) });
