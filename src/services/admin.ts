/**
 * What admins do with credentials — registration keys (create, rotate with a grace window, revoke, usage per
 * version), agent clients and operators — each action in one transaction with its audit entry. Plaintext
 * secrets are returned once, by the call that creates them, and never stored or logged.
 */
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Queryable, Sql } from '../store/db.js';
import * as store from '../store/auth-store.js';
import type { AuditAction, OperatorRole } from '../store/auth-store.js';
import { generateClientId, generateSecret, hashSecret, masked, visiblePrefix } from './secrets.js';
import { type ChangedCredential, normalizeFingerprint } from './credentials.js';
import { tagProblem } from '../protocol/inventory-tag.js';

export { AUDIT_ACTIONS, OPERATOR_ROLES, type AuditAction, type OperatorRole } from '../store/auth-store.js';

export interface Actor {
  name: string;
  remoteAddr: string | null;
}

export interface AdminDeps {
  sql: Sql;
  clock: Clock;
  /** Called after a change that must stop cached verifications in this process. */
  /** A credential changed (rotated, revoked, activated): `what` names it; absent, only caches are refreshed. */
  onCredentialsChanged?: (what?: ChangedCredential) => void;
  /** Writes the key usage counted in memory (services/key-usage.ts) before it is read. */
  flushKeyUsage?: () => Promise<void>;
}

/** Key usage pages: default and largest page. */
export const USAGE_PAGE = 100;
export const USAGE_PAGE_MAX = 1000;

function encodeUsageCursor(c: store.UsageCursor): string {
  return Buffer.from(JSON.stringify([c.version, c.at, c.id])).toString('base64url');
}

function decodeUsageCursor(text: string): store.UsageCursor {
  try {
    const [version, at, id] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[];
    if (
      Number.isInteger(version) &&
      typeof at === 'string' &&
      at.length <= 40 &&
      /^[0-9: .+-]+$/.test(at) &&
      Number.isInteger(id)
    )
      return { version: version as number, at, id: id as number };
  } catch {
    // answered below
  }
  throw new AppError('bad_request', 'cursor is not one this server gave');
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkName(what: string, name: string): void {
  if (!NAME.test(name)) throw new AppError('bad_request', `${what} name must be 1-64 letters, digits, '.', '_' or '-'`);
}

/** A tag must be one GLPI can be sent unambiguously (src/protocol/inventory-tag.ts), or none. */
function checkTag(tag: string | null | undefined): void {
  const problem = tag === null || tag === undefined ? null : tagProblem(tag);
  if (problem) throw new AppError('bad_request', `Invalid tag: ${problem}`);
}

/** A key as people see it: the row without its id, and its versions with secrets masked. */
export interface KeyView extends Omit<store.KeyRow, 'id'> {
  versions: { version: number; secret: string; createdAt: Date; expiresAt: Date | null; valid: boolean }[];
}

export function createAdmin(deps: AdminDeps) {
  const { sql, clock } = deps;
  const changed = (what?: ChangedCredential) => deps.onCredentialsChanged?.(what);

  async function audit(
    tx: Queryable,
    actor: Actor,
    action: AuditAction,
    targetType: string,
    targetId: string | null,
    before: unknown,
    after: unknown,
    reason: string | null = null,
  ) {
    await store.insertAudit(tx, {
      at: clock.now(),
      actor: actor.name,
      action,
      targetType,
      targetId,
      remoteAddr: actor.remoteAddr,
      before,
      after,
      reason,
    });
  }

  async function keyView(tx: Queryable, key: store.KeyRow): Promise<KeyView> {
    const now = clock.now();
    const versions = await store.listKeyVersions(tx, key.id);
    return {
      name: key.name,
      active: key.active,
      expiresAt: key.expiresAt,
      maxDevices: key.maxDevices,
      devicesUsed: key.devicesUsed,
      tag: key.tag,
      comment: key.comment,
      createdBy: key.createdBy,
      createdAt: key.createdAt,
      frozenAt: key.frozenAt ?? null,
      frozenReason: key.frozenReason ?? null,
      versions: versions.map((v) => ({
        version: v.version,
        secret: masked(v.prefix),
        createdAt: v.createdAt,
        expiresAt: v.expiresAt,
        valid: v.expiresAt === null || v.expiresAt > now,
      })),
    };
  }

  async function requireKey(tx: Queryable, name: string, forUpdate = false): Promise<store.KeyRow> {
    const key = await store.findKeyByName(tx, name, { forUpdate });
    if (!key) throw new AppError('not_found', `No registration key named "${name}"`);
    return key;
  }

  return {
    async createKey(
      input: {
        name: string;
        tag?: string | null;
        maxDevices?: number;
        expiresAt?: Date | null;
        comment?: string | null;
        secret?: string;
      },
      actor: Actor,
    ): Promise<{ key: KeyView; secret: string }> {
      checkName('key', input.name);
      checkTag(input.tag);
      if (input.maxDevices !== undefined && (!Number.isInteger(input.maxDevices) || input.maxDevices < 0))
        throw new AppError('bad_request', 'maxDevices must be a whole number ≥ 0 (0 = unlimited)');
      const secret = input.secret ?? generateSecret('agk');
      return sql.begin(async (tx) => {
        if (await store.findKeyByName(tx, input.name))
          throw new AppError('conflict', `A registration key named "${input.name}" exists already`);
        const key = await store.insertKey(tx, {
          name: input.name,
          expiresAt: input.expiresAt ?? null,
          maxDevices: input.maxDevices ?? 0,
          tag: input.tag ?? null,
          comment: input.comment ?? null,
          createdBy: actor.name,
          at: clock.now(),
        });
        await store.insertKeyVersion(tx, {
          keyId: key.id,
          version: 1,
          prefix: visiblePrefix(secret),
          hash: hashSecret(secret),
          at: clock.now(),
        });
        const view = await keyView(tx, key);
        await audit(tx, actor, 'key.create', 'registration_key', key.name, null, view);
        return { key: view, secret };
      });
    },

    /** New version now; every older version stays valid until now + grace (0 = cut off at once). */
    async rotateKey(
      name: string,
      graceSeconds: number,
      actor: Actor,
    ): Promise<{ key: KeyView; secret: string; version: number; previousExpiresAt: Date }> {
      const secret = generateSecret('agk');
      const result = await sql.begin(async (tx) => {
        const key = await requireKey(tx, name, true);
        const before = await keyView(tx, key);
        const now = clock.now();
        const previousExpiresAt = new Date(now.getTime() + graceSeconds * 1000);
        await store.expireOpenVersions(tx, key.id, previousExpiresAt);
        const version = Math.max(0, ...before.versions.map((v) => v.version)) + 1;
        await store.insertKeyVersion(tx, {
          keyId: key.id,
          version,
          prefix: visiblePrefix(secret),
          hash: hashSecret(secret),
          at: now,
        });
        const after = await keyView(tx, key);
        await audit(tx, actor, 'key.rotate', 'registration_key', key.name, before, after, `grace ${graceSeconds}s`);
        return { keyId: key.id, result: { key: after, secret, version, previousExpiresAt } };
      });
      changed({ type: 'key', id: result.keyId });
      return result.result;
    },

    async setKeyActive(name: string, active: boolean, actor: Actor): Promise<KeyView> {
      const view = await sql.begin(async (tx) => {
        const key = await requireKey(tx, name, true);
        const before = await keyView(tx, key);
        await store.updateKey(tx, key.id, { active });
        const after = await keyView(tx, { ...key, active });
        await audit(tx, actor, active ? 'key.activate' : 'key.revoke', 'registration_key', key.name, before, after);
        return { keyId: key.id, after };
      });
      changed({ type: 'key', id: view.keyId });
      return view.after;
    },

    async listKeys(): Promise<KeyView[]> {
      const keys = await store.listKeys(sql);
      return Promise.all(keys.map((k) => keyView(sql, k)));
    },

    /**
     * Which devices and addresses used each version, how often and when last: by version, most recently
     * used first, one page at a time (`nextCursor` continues it; null on the last page).
     */
    async keyUsage(
      name: string,
      page: { limit?: number; cursor?: string } = {},
    ): Promise<{ key: KeyView; usage: store.VersionUsageRow[]; nextCursor: string | null }> {
      const limit = page.limit ?? USAGE_PAGE;
      if (!Number.isInteger(limit) || limit < 1 || limit > USAGE_PAGE_MAX)
        throw new AppError('bad_request', `limit must be a whole number from 1 to ${USAGE_PAGE_MAX}`);
      const after = page.cursor ? decodeUsageCursor(page.cursor) : null;
      const key = await requireKey(sql, name);
      await deps.flushKeyUsage?.();
      const rows: Awaited<ReturnType<typeof store.keyVersionUsagePage>> = [];
      for (const v of await store.listKeyVersions(sql, key.id)) {
        if (after && v.version < after.version) continue;
        const from = after && v.version === after.version ? after : null;
        rows.push(...(await store.keyVersionUsagePage(sql, v, from, limit + 1 - rows.length)));
        if (rows.length > limit) break;
      }
      const more = rows.length > limit;
      const shown = rows.slice(0, limit);
      return {
        key: await keyView(sql, key),
        usage: shown.map(({ cursor: _c, ...u }) => u),
        nextCursor: more ? encodeUsageCursor(shown[shown.length - 1]!.cursor) : null,
      };
    },

    async createClient(
      input: { name: string; deviceid?: string | null; tag?: string | null; comment?: string | null },
      actor: Actor,
    ): Promise<{ clientId: string; clientSecret: string; name: string; deviceid: string | null; tag: string | null }> {
      checkName('client', input.name);
      checkTag(input.tag);
      const clientSecret = generateSecret('ags');
      const clientId = generateClientId();
      return sql.begin(async (tx) => {
        const row = await store.insertClient(tx, {
          clientId,
          name: input.name,
          hash: hashSecret(clientSecret),
          prefix: visiblePrefix(clientSecret),
          deviceid: input.deviceid ?? null,
          tag: input.tag ?? null,
          comment: input.comment ?? null,
          createdBy: actor.name,
          at: clock.now(),
        });
        await audit(tx, actor, 'client.create', 'agent_client', clientId, null, publicClient(row));
        // A client bound to a device that exists already speaks for it from now on: its tag wins over the key's.
        if (row.deviceid && row.tag) {
          const before = await store.assignDeviceTag(tx, row.deviceid, row.tag);
          if (before !== undefined && before !== row.tag)
            await audit(tx, actor, 'device.tag', 'device', row.deviceid, { tag: before }, { tag: row.tag, clientId });
        }
        return { clientId, clientSecret, name: row.name, deviceid: row.deviceid, tag: row.tag };
      });
    },

    async listClients() {
      return (await store.listClients(sql)).map(publicClient);
    },

    async revokeClient(clientId: string, actor: Actor) {
      const result = await sql.begin(async (tx) => {
        const client = await store.findClient(tx, clientId);
        if (!client) throw new AppError('not_found', `No client with id "${clientId}"`);
        await store.revokeClient(tx, client.id, clock.now());
        const after = publicClient((await store.findClient(tx, clientId))!);
        await audit(tx, actor, 'client.revoke', 'agent_client', clientId, publicClient(client), after);
        return { id: client.id, after };
      });
      changed({ type: 'client', id: result.id });
      return result.after;
    },

    /** Client certificates seen (TLS_CLIENT_CA), most recently seen first, with the devices pinned to each. */
    async listCertificates() {
      return (await store.listCertificates(sql)).map((c) => ({
        ...publicCertificate(c),
        devicesPinned: c.devicesPinned,
      }));
    },

    /**
     * Revokes a client certificate by fingerprint (with or without colons, any case): from then on it gets
     * the identical 401, within SECRET_CACHE_TTL elsewhere. Audited as `cert.revoke`.
     */
    async revokeCertificate(fingerprint: string, actor: Actor) {
      const hex = normalizeFingerprint(fingerprint);
      if (!hex) throw new AppError('bad_request', 'fingerprint must be 64 hex digits (SHA-256), colons allowed');
      const result = await sql.begin(async (tx) => {
        const cert = await store.findCertificate(tx, hex, { forUpdate: true });
        if (!cert) throw new AppError('not_found', `No client certificate with fingerprint ${hex}`);
        await store.revokeCertificate(tx, cert.id, clock.now(), actor.name);
        const after = publicCertificate((await store.findCertificate(tx, hex))!);
        await audit(tx, actor, 'cert.revoke', 'client_certificate', hex, publicCertificate(cert), after);
        return { id: cert.id, after };
      });
      changed({ type: 'cert', id: result.id, fingerprint: hex });
      return result.after;
    },

    async createOperator(
      input: { name: string; role: OperatorRole; token?: string },
      actor: Actor,
    ): Promise<{ name: string; role: OperatorRole; token: string }> {
      checkName('operator', input.name);
      if (!(store.OPERATOR_ROLES as readonly string[]).includes(input.role))
        throw new AppError('bad_request', `role must be ${store.OPERATOR_ROLES.join(' or ')}`);
      const token = input.token ?? generateSecret('ago');
      return sql.begin(async (tx) => {
        if (await store.findOperatorByName(tx, input.name))
          throw new AppError('conflict', `An operator named "${input.name}" exists already`);
        const row = await store.insertOperator(tx, {
          name: input.name,
          role: input.role,
          hash: hashSecret(token),
          prefix: visiblePrefix(token),
          createdBy: actor.name,
          at: clock.now(),
        });
        await audit(tx, actor, 'operator.create', 'operator', row.name, null, publicOperator(row));
        return { name: row.name, role: row.role, token };
      });
    },

    async listOperators() {
      return (await store.listOperators(sql)).map(publicOperator);
    },

    async revokeOperator(name: string, actor: Actor) {
      const result = await sql.begin(async (tx) => {
        const op = await store.findOperatorByName(tx, name);
        if (!op) throw new AppError('not_found', `No operator named "${name}"`);
        await store.revokeOperator(tx, op.id, clock.now());
        const after = publicOperator((await store.findOperatorByName(tx, name))!);
        await audit(tx, actor, 'operator.revoke', 'operator', name, publicOperator(op), after);
        return after;
      });
      changed();
      return result;
    },

    /** The operator a bearer token belongs to (revoked tokens never match). */
    async operatorForToken(token: string): Promise<{ name: string; role: OperatorRole } | null> {
      const op = await store.findOperatorByHash(sql, hashSecret(token));
      if (!op) return null;
      await store.touchOperator(sql, op.id, clock.now());
      return { name: op.name, role: op.role };
    },

    listAudit: (f: { limit: number; action?: string }) => store.listAudit(sql, f),
    listSecurityEvents: (limit: number) => store.listSecurityEvents(sql, limit),
    expiringVersionsInUse: async (horizonSeconds: number) => {
      await deps.flushKeyUsage?.();
      const now = clock.now();
      return store.expiringVersionsInUse(sql, now, new Date(now.getTime() + horizonSeconds * 1000));
    },
    countKeys: () => store.countKeys(sql),
    countOperators: () => store.countOperators(sql),
  };
}

export type Admin = ReturnType<typeof createAdmin>;

function publicClient(c: store.ClientRow) {
  return {
    clientId: c.clientId,
    name: c.name,
    secret: masked(c.secretPrefix),
    deviceid: c.deviceid,
    tag: c.tag,
    comment: c.comment,
    createdBy: c.createdBy,
    createdAt: c.createdAt,
    revokedAt: c.revokedAt,
    lastUsedAt: c.lastUsedAt,
  };
}

function publicCertificate(c: store.CertificateRow) {
  return {
    fingerprint: c.fingerprint,
    subject: c.subject,
    issuer: c.issuer,
    serial: c.serial,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    firstSeen: c.firstSeen,
    lastSeen: c.lastSeen,
    revokedAt: c.revokedAt,
    revokedBy: c.revokedBy,
  };
}

function publicOperator(o: store.OperatorRow) {
  return {
    name: o.name,
    role: o.role,
    token: masked(o.tokenPrefix),
    createdBy: o.createdBy,
    createdAt: o.createdAt,
    revokedAt: o.revokedAt,
    lastUsedAt: o.lastUsedAt,
  };
}
