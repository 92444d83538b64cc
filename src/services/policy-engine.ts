/**
 * Auto-approval rules, as pure functions. A rule matches when every condition it names holds (an empty rule
 * matches every device); rules are tried in order and the first match decides approve, quarantine or reject.
 * A key frozen for auto-approval never lets a rule approve its devices: they stay quarantined.
 */
import net from 'node:net';
import type { SubjectRow } from '../store/policy-store.js';

export type PolicyAction = 'approve' | 'quarantine' | 'reject';

export interface PolicyMatch {
  /** name of the registration key that registered the device */
  key?: string;
  tag?: string;
  /** source network of the device's last request, e.g. 10.1.0.0/16 */
  cidr?: string;
  /** name of an allowlist (serials, UUIDs or MACs imported from CSV) the device must be on */
  allowlist?: string;
  manufacturer?: string;
  model?: string;
  agent?: 'fusioninventory' | 'glpi-agent';
}

export interface PolicyRule {
  id: number;
  position: number;
  action: PolicyAction;
  match: PolicyMatch;
  comment: string | null;
}

/** What rules look at: a device's attributes as the store reads them. */
export type PolicySubject = Omit<SubjectRow, 'id' | 'deviceid' | 'name' | 'state' | 'firstSeen'>;

/** allowlist name → its values by kind (lower-case) */
export type Allowlists = Map<string, { serial: Set<string>; uuid: Set<string>; mac: Set<string> }>;

export const MATCH_KEYS = ['key', 'tag', 'cidr', 'allowlist', 'manufacturer', 'model', 'agent'] as const;

/** Checks a rule's conditions are well-formed; returns the problems (empty when fine). */
export function validateMatch(m: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [k, v] of Object.entries(m)) {
    if (!(MATCH_KEYS as readonly string[]).includes(k))
      problems.push(`unknown condition "${k}" (use ${MATCH_KEYS.join(', ')})`);
    else if (typeof v !== 'string' || v === '' || v.length > 256) problems.push(`${k} must be a non-empty string`);
  }
  if (typeof m.cidr === 'string' && !parseCidr(m.cidr))
    problems.push(`cidr "${m.cidr}" is not a network such as 10.1.0.0/16`);
  if (m.agent !== undefined && m.agent !== 'fusioninventory' && m.agent !== 'glpi-agent')
    problems.push('agent must be fusioninventory or glpi-agent');
  return problems;
}

function parseCidr(cidr: string): { addr: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return null;
  const family = net.isIPv4(m[1]!) ? 'ipv4' : net.isIPv6(m[1]!) ? 'ipv6' : null;
  const prefix = Number(m[2]);
  if (!family || prefix > (family === 'ipv4' ? 32 : 128)) return null;
  return { addr: m[1]!, prefix, family };
}

function inCidr(addr: string | null, cidr: string): boolean {
  if (!addr) return false;
  const c = parseCidr(cidr);
  if (!c) return false;
  const plain = addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
  const family = net.isIPv4(plain) ? 'ipv4' : net.isIPv6(plain) ? 'ipv6' : null;
  if (!family || family !== c.family) return false;
  const list = new net.BlockList();
  list.addSubnet(c.addr, c.prefix, c.family);
  return list.check(plain, family);
}

function same(a: string | null, b: string): boolean {
  return a !== null && a.trim().toLowerCase() === b.trim().toLowerCase();
}

export function agentKind(agentVersion: string | null): 'fusioninventory' | 'glpi-agent' | null {
  if (!agentVersion) return null;
  if (/^FusionInventory/i.test(agentVersion)) return 'fusioninventory';
  if (/^GLPI-Agent/i.test(agentVersion)) return 'glpi-agent';
  return null;
}

export function matches(rule: PolicyRule, s: PolicySubject, lists: Allowlists): boolean {
  const m = rule.match;
  if (m.key !== undefined && s.key !== m.key) return false;
  if (m.tag !== undefined && !same(s.tag, m.tag) && !same(s.assignedTag, m.tag)) return false;
  if (m.cidr !== undefined && !inCidr(s.remoteAddr, m.cidr)) return false;
  if (m.manufacturer !== undefined && !same(s.manufacturer, m.manufacturer)) return false;
  if (m.model !== undefined && !same(s.model, m.model)) return false;
  if (m.agent !== undefined && agentKind(s.agentVersion) !== m.agent) return false;
  if (m.allowlist !== undefined) {
    const list = lists.get(m.allowlist);
    if (!list) return false;
    const onList =
      (s.serial !== null && list.serial.has(s.serial.toLowerCase())) ||
      (s.uuid !== null && list.uuid.has(s.uuid.toLowerCase())) ||
      s.macs.some((mac) => list.mac.has(mac.toLowerCase()));
    if (!onList) return false;
  }
  return true;
}

export interface PolicyDecision {
  action: PolicyAction;
  ruleId: number;
  /** The rule said approve, but the key is frozen for auto-approval. */
  frozen: boolean;
}

/** First matching rule, in order; null when none matches (the device stays quarantined). */
export function decide(rules: readonly PolicyRule[], s: PolicySubject, lists: Allowlists): PolicyDecision | null {
  const ordered = [...rules].sort((a, b) => a.position - b.position || a.id - b.id);
  for (const rule of ordered) {
    if (!matches(rule, s, lists)) continue;
    if (rule.action === 'approve' && s.keyFrozen) return { action: 'quarantine', ruleId: rule.id, frozen: true };
    return { action: rule.action, ruleId: rule.id, frozen: false };
  }
  return null;
}
