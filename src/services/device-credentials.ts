/**
 * The queue's "agent", "credential" and "proxy" columns: what each device of a page is pinned to and how
 * its latest request authenticated (one query per page, store/device-credential-store.ts), and which agent
 * it runs, read from the agent's version string (FusionInventory-Agent_v2.6-3, GLPI-Agent_v1.12).
 */
import type { Sql } from '../store/db.js';
import { type DeviceCredential, deviceCredentials } from '../store/device-credential-store.js';

export interface AgentKind {
  /** FusionInventory or GLPI Agent; null when the version string names neither */
  product: 'FusionInventory' | 'GLPI Agent' | null;
  version: string | null;
}

export function agentKind(agentVersion: string | null): AgentKind {
  const v = agentVersion?.trim() ?? '';
  const m = /^(FusionInventory|GLPI)[-_ ]?Agent[-_ ]?v?([0-9][0-9A-Za-z.+~-]*)?/i.exec(v);
  if (!m) return { product: null, version: v || null };
  return {
    product: m[1]!.toLowerCase() === 'glpi' ? 'GLPI Agent' : 'FusionInventory',
    version: m[2] ?? null,
  };
}

export type Credential = Omit<DeviceCredential, 'id' | 'proxyChain'>;

/** Adds `agent`, `credential` and `proxyChain` (of the latest request) to each device of a page. */
export async function withCredentials<T extends { id: number; agentVersion: string | null }>(
  sql: Sql,
  devices: T[],
): Promise<(T & { agent: AgentKind; credential: Credential | null; proxyChain: string[] })[]> {
  const rows = await deviceCredentials(
    sql,
    devices.map((d) => d.id),
  );
  const by = new Map(rows.map((r) => [r.id, r]));
  return devices.map((d) => {
    const r = by.get(d.id);
    const credential: Credential | null =
      r && (r.keyName || r.clientId || r.certFingerprint || r.authType)
        ? {
            keyName: r.keyName,
            keyVersion: r.keyVersion,
            clientId: r.clientId,
            certFingerprint: r.certFingerprint,
            certSubject: r.certSubject,
            authType: r.authType,
          }
        : null;
    return { ...d, agent: agentKind(d.agentVersion), credential, proxyChain: r?.proxyChain ?? [] };
  });
}
