/**
 * Agent credentials: registration keys (shared secrets with versions and grace windows) and per-agent
 * client credentials. Only SHA-256 hashes and short visible prefixes are stored.
 */
export interface AgentPrincipal {
  type: 'key' | 'client';
  /** registration key id or client id */
  id: number;
  name: string;
  keyVersionId: number | null;
  username: string | null;
  boundDeviceid: string | null;
  tag: string | null;
}

export interface CredentialService {
  verifyAuthorization(header: string, ctx: { remoteAddr: string | null; at: Date }): Promise<AgentPrincipal | null>;
}
