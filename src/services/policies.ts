/**
 * Auto-approval policies in use: rules are read from the database (cached briefly), evaluated for every
 * quarantined device as its identity arrives, and applied to the whole quarantine queue when saved. The
 * dry run (`test`) runs the same evaluation on a proposed rule set without saving, so what it reports for
 * the queue is what saving then does. Decisions are recorded with actor "policy" and the rule id as reason.
 */
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Queryable, Sql } from '../store/db.js';
import { insertAudit } from '../store/auth-store.js';
import * as store from '../store/policy-store.js';
import { transitionDevice } from './device-state.js';
import type { Actor } from './admin.js';
import type { Notifier } from './notifier.js';
import {
  type Allowlists,
  type PolicyAction,
  type PolicyDecision,
  type PolicyRule,
  decide,
  trustProblems,
  validateMatch,
} from './policy-engine.js';

const CACHE_MS = 5000;
const TARGET = { approve: 'approved', reject: 'rejected', quarantine: 'quarantined' } as const;

export interface ProposedRule {
  action: PolicyAction;
  match: Record<string, string>;
  comment?: string | null;
}

export function checkRule(r: unknown): ProposedRule {
  const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
  if (o.action !== 'approve' && o.action !== 'quarantine' && o.action !== 'reject')
    throw new AppError('bad_request', 'action must be approve, quarantine or reject');
  const match = (typeof o.match === 'object' && o.match !== null && !Array.isArray(o.match) ? o.match : {}) as Record<
    string,
    unknown
  >;
  const problems = validateMatch(match);
  if (problems.length > 0) throw new AppError('bad_request', `Invalid rule: ${problems.join('; ')}`);
  if (o.comment !== undefined && o.comment !== null && (typeof o.comment !== 'string' || o.comment.length > 500))
    throw new AppError('bad_request', 'comment must be a string of at most 500 characters');
  return {
    action: o.action,
    match: match as Record<string, string>,
    comment: o.comment ?? null,
  };
}

/** Refuses a rule that would decide on what the gateway did not verify (a MAC alone approving). */
function checkTrust(rule: Pick<PolicyRule, 'action' | 'match'>, lists: Allowlists, label = 'Refused'): void {
  const problems = trustProblems(rule, lists);
  if (problems.length > 0) throw new AppError('bad_request', `${label}: ${problems.join('; ')}`);
}

function reasonOf(d: PolicyDecision, rules: readonly PolicyRule[]): string {
  const rule = rules.find((r) => r.id === d.ruleId);
  const text = `policy rule #${d.ruleId}${rule?.comment ? ` (${rule.comment})` : ''}`;
  return d.frozen ? `${text} would approve, but the key is frozen for auto-approval` : text;
}

export function createPolicies(deps: {
  sql: Sql;
  clock: Clock;
  /** UPSTREAM_URL set: approvals enqueue what they release for GLPI. */
  forward?: boolean;
  /** A policy's decisions are announced like people's (device.approved / device.rejected), in their transaction. */
  notifier?: Pick<Notifier, 'emit'>;
}) {
  const { sql, clock } = deps;
  let cache: { at: number; rules: PolicyRule[]; lists: Allowlists } | null = null;

  async function load(): Promise<{ rules: PolicyRule[]; lists: Allowlists }> {
    if (cache && Date.now() - cache.at < CACHE_MS) return cache;
    const rules = (await store.listRules(sql)).map((r) => ({
      id: r.id,
      position: r.position,
      action: r.action,
      match: r.match,
      comment: r.comment,
    }));
    const lists: Allowlists = new Map();
    for (const e of await store.loadAllowlists(sql)) {
      if (!lists.has(e.name)) lists.set(e.name, { serial: new Set(), uuid: new Set(), mac: new Set() });
      lists.get(e.name)![e.kind].add(e.value.toLowerCase());
    }
    cache = { at: Date.now(), rules, lists };
    return cache;
  }

  /** Applies rules to the given quarantined devices in one transaction; returns what changed. */
  async function applyTo(q: Queryable, subjects: store.SubjectRow[], rules: PolicyRule[], lists: Allowlists) {
    const at = clock.now();
    const changes = [];
    for (const s of subjects) {
      if (s.state !== 'quarantined') continue; // conflicts and decided devices are for people
      const d = decide(rules, s, lists);
      if (!d || d.action === 'quarantine') continue;
      const reason = reasonOf(d, rules);
      const r = await transitionDevice(q, s.id, TARGET[d.action], 'policy', reason, at, { forward: deps.forward });
      if (!r?.changed) continue;
      changes.push({ id: s.id, deviceid: s.deviceid, to: r.to, ruleId: d.ruleId });
      await deps.notifier?.emit(q, r.to === 'approved' ? 'device.approved' : 'device.rejected', {
        id: r.id,
        deviceid: r.deviceid,
        from: r.from,
        to: r.to,
        actor: 'policy',
        reason,
      });
    }
    return changes;
  }

  function invalidate(): void {
    cache = null;
  }

  return {
    invalidate,

    /** Evaluates one device after an agent message; returns its state afterwards. */
    async evaluate(deviceId: number): Promise<string | null> {
      const { rules, lists } = await load();
      if (rules.length === 0) return null;
      const [subject] = await store.loadSubjects(sql, { id: deviceId });
      if (!subject || subject.state !== 'quarantined') return subject?.state ?? null;
      const changes = await sql.begin((tx) => applyTo(tx, [subject], rules, lists));
      return changes[0]?.to ?? subject.state;
    },

    async list() {
      return { rules: await store.listRules(sql), allowlists: await store.allowlistSummary(sql) };
    },

    /**
     * What a rule set would decide: for the quarantine queue (what saving it changes now) and for the
     * devices first seen in the last `days` days (what it would have decided for them).
     */
    async test(proposed: ProposedRule[] | null, days: number) {
      const { rules: current, lists } = await load();
      // A proposed rule that `add` would refuse is refused here too, with the same message.
      proposed?.forEach((p, i) => checkTrust(p, lists, `Rule ${i + 1} refused`));
      const rules: PolicyRule[] = proposed
        ? proposed.map((p, i) => ({
            id: -(i + 1),
            position: i + 1,
            action: p.action,
            match: p.match,
            comment: p.comment ?? null,
          }))
        : current;
      const since = new Date(clock.now().getTime() - days * 86400_000);
      const [queue, recent] = await Promise.all([
        store.loadSubjects(sql, { state: 'quarantined' }),
        store.loadSubjects(sql, { firstSeenSince: since }),
      ]);
      const judge = (s: store.SubjectRow) => {
        const d = decide(rules, s, lists);
        return {
          id: s.id,
          deviceid: s.deviceid,
          name: s.name,
          state: s.state,
          decision: d?.action ?? 'quarantine',
          ruleId: d?.ruleId ?? null,
          frozen: d?.frozen ?? false,
        };
      };
      const queueResults = queue.map(judge);
      return {
        rules: rules.length,
        /** saved rules (from before this check) whose MAC allowlist entries cannot approve on their own */
        warnings: rules.flatMap((r) => trustProblems(r, lists).map((p) => `rule #${r.id}: ${p}; its MACs are ignored`)),
        queue: {
          devices: queueResults.length,
          wouldApprove: queueResults.filter((r) => r.decision === 'approve'),
          wouldReject: queueResults.filter((r) => r.decision === 'reject'),
          wouldStay: queueResults.filter((r) => r.decision === 'quarantine').length,
        },
        recent: {
          days,
          devices: recent.length,
          decisions: recent.map(judge).filter((r) => TARGET[r.decision] !== r.state),
        },
      };
    },

    /** Saves a rule (at `position`, or last) and applies the rule set to the quarantine queue at once. */
    async add(input: ProposedRule & { position?: number | null }, actor: Actor) {
      const rule = checkRule(input);
      invalidate(); // judged on the allowlists as they are now
      checkTrust(rule, (await load()).lists);
      const result = await sql.begin(async (tx) => {
        const row = await store.insertRule(tx, {
          position: input.position ?? null,
          action: rule.action,
          match: rule.match,
          comment: rule.comment ?? null,
          createdBy: actor.name,
          at: clock.now(),
        });
        await insertAudit(tx, {
          at: clock.now(),
          actor: actor.name,
          action: 'policy.add',
          targetType: 'policy_rule',
          targetId: String(row.id),
          remoteAddr: actor.remoteAddr,
          before: null,
          after: row,
          reason: rule.comment ?? null,
        });
        return row;
      });
      invalidate();
      const { rules, lists } = await load();
      const queue = await store.loadSubjects(sql, { state: 'quarantined' });
      const applied = await sql.begin((tx) => applyTo(tx, queue, rules, lists));
      return { rule: result, applied };
    },

    async remove(id: number, actor: Actor) {
      const row = await sql.begin(async (tx) => {
        const deleted = await store.deleteRule(tx, id);
        if (!deleted) throw new AppError('not_found', `No policy rule #${id}`);
        await insertAudit(tx, {
          at: clock.now(),
          actor: actor.name,
          action: 'policy.remove',
          targetType: 'policy_rule',
          targetId: String(id),
          remoteAddr: actor.remoteAddr,
          before: deleted,
          after: null,
          reason: null,
        });
        return deleted;
      });
      invalidate();
      return row;
    },

    /** Replaces one allowlist's values of one kind, from CSV text (first column; header and blanks skipped). */
    async importAllowlist(name: string, kind: 'serial' | 'uuid' | 'mac', csv: string, actor: Actor) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
        throw new AppError('bad_request', 'allowlist name must be 1-64 letters, digits, . _ -');
      const values = csv
        .split(/\r?\n/)
        .map((line) => line.split(/[,;]/)[0]!.trim().replace(/^"|"$/g, ''))
        .filter((v) => v !== '' && !/^(serial|uuid|mac|value)$/i.test(v))
        .map((v) => (kind === 'mac' ? v.toLowerCase().replace(/-/g, ':') : v));
      const count = await sql.begin(async (tx) => {
        const n = await store.replaceAllowlist(tx, name, kind, values);
        await insertAudit(tx, {
          at: clock.now(),
          actor: actor.name,
          action: 'allowlist.import',
          targetType: 'allowlist',
          targetId: `${name}/${kind}`,
          remoteAddr: actor.remoteAddr,
          before: null,
          after: { entries: n },
          reason: null,
        });
        return n;
      });
      invalidate();
      // MACs imported into the list of an approve rule without key or cidr do not approve: say so.
      const { rules, lists } = await load();
      const warnings = rules
        .filter((r) => r.match.allowlist === name)
        .flatMap((r) => trustProblems(r, lists).map((p) => `rule #${r.id}: ${p}; its MACs are ignored`));
      return { name, kind, entries: count, ...(warnings.length ? { warnings } : {}) };
    },

    /** Freezes (or unfreezes) a key for auto-approval: its new devices stay quarantined whatever the rules say. */
    async setFrozen(keyName: string, frozen: boolean, reason: string | null, actor: Actor) {
      const ok = await sql.begin(async (tx) => {
        const changed = await store.setKeyFrozen(tx, keyName, frozen, reason, clock.now());
        if (changed)
          await insertAudit(tx, {
            at: clock.now(),
            actor: actor.name,
            action: frozen ? 'key.freeze' : 'key.unfreeze',
            targetType: 'registration_key',
            targetId: keyName,
            remoteAddr: actor.remoteAddr,
            before: null,
            after: { frozen },
            reason,
          });
        return changed;
      });
      if (!ok) throw new AppError('not_found', `No registration key named "${keyName}"`);
      invalidate();
      return { name: keyName, frozen };
    },
  };
}

export type Policies = ReturnType<typeof createPolicies>;
