/**
 * Auto-approval rules, as pure functions. A rule matches when every condition it names holds (an empty rule
 * matches every device); rules are tried in order and the first match decides approve, quarantine or reject.
 * A key frozen for auto-approval never lets a rule approve its devices: they stay quarantined.
 *
 * Decisions rest on what the gateway verified: `tag` is the tag of the registration key the device
 * registered with (the tag an agent sends is never seen here), `cidr` is the recorded source address of its
 * last request, and a MAC address (visible to anyone on the LAN) never approves on its own: an approve rule
 * counts a MAC on its allowlist only when it also names `key` or `cidr`.
 */
import net from 'node:net';
import type { SubjectRow } from '../store/policy-store.js';

export type PolicyAction = 'approve' | 'quarantine' | 'reject';

export interface PolicyMatch {
  /** name of the registration key that registered the device */
  key?: string;
  /** the tag of that key (never the tag the agent sends) */
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

/** Anyone on the LAN sees MACs and can send them: an approval needs a verified key or network beside one. */
function macMayCount(rule: Pick<PolicyRule, 'action' | 'match'>): boolean {
  return rule.action !== 'approve' || rule.match.key !== undefined || rule.match.cidr !== undefined;
}

/**
 * Why a rule may not be saved as it stands, given the allowlists: an approve rule whose allowlist holds MAC
 * addresses and that names neither `key` nor `cidr` would approve on a MAC alone. Empty when fine.
 */
export function trustProblems(rule: Pick<PolicyRule, 'action' | 'match'>, lists: Allowlists): string[] {
  const name = rule.match.allowlist;
  if (name === undefined || macMayCount(rule)) return [];
  const list = lists.get(name);
  if (!list || list.mac.size === 0) return [];
  return [
    `allowlist "${name}" holds MAC addresses, and a MAC alone cannot approve (anyone on the LAN sees MACs and can send them): an approve rule on it must also name a key or a cidr (--key, --cidr)`,
  ];
}

export function matches(rule: PolicyRule, s: PolicySubject, lists: Allowlists): boolean {
  const m = rule.match;
  if (m.key !== undefined && s.key !== m.key) return false;
  if (m.tag !== undefined && !same(s.tag, m.tag)) return false;
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
      (macMayCount(rule) && s.macs.some((mac) => list.mac.has(mac.toLowerCase())));
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
