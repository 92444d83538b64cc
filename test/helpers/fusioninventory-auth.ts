/**
 * For running the real FusionInventory agent against a gateway with AGENT_AUTH=required (PROTOCOL.md §3.8):
 * a gateway started as in production with the bootstrap registration key "default", the agent's Basic
 * options, and the registrations a given run left behind (by id watermark, so runs that happen to share a
 * deviceid — it is the host name plus the second of the first run — are still told apart).
 */
import type { RunningServer } from '../../src/server.js';
import type { RegistrationRecord } from '../../src/store/read-store.js';
import { startTestServer } from './context.js';
import type { AgentRun } from './fusioninventory.js';
import { TEST_BOOTSTRAP_SECRET } from './secrets.js';

/** Plaintext of the registration key "default" that the gateway bootstraps at first start. */
export const BOOTSTRAP_SECRET = TEST_BOOTSTRAP_SECRET;

/**
 * What FusionInventory 2.6 logs at [error] level when the server still answers 401 after it sent its
 * credentials (lib/FusionInventory/Agent/HTTP/Client.pm), as read in a real run's log.
 */
export const WRONG_CREDENTIALS_ERROR = '[http client] authentication required, wrong credentials';

export interface AuthGateway {
  server: RunningServer;
  /** Highest registration id so far (0 when none): take it before a run, pass it to registrationsAfter. */
  lastRegistrationId(): Promise<number>;
  /** Registrations with an id above the watermark, oldest first. */
  registrationsAfter(watermark: number): Promise<RegistrationRecord[]>;
  close(): Promise<void>;
}

export async function startAuthGateway(env: Record<string, string> = {}): Promise<AuthGateway> {
  const { server, close } = await startTestServer({
    AGENT_AUTH: 'required',
    BOOTSTRAP_SECRET,
    SECRET_CACHE_TTL: '0',
    ...env,
  });
  const all = () => server.deps.records.registrations({ limit: 10_000 });
  return {
    server,
    async lastRegistrationId() {
      return (await server.deps.records.registrations({ limit: 1 }))[0]?.id ?? 0;
    },
    async registrationsAfter(watermark) {
      return (await all()).filter((r) => r.id > watermark).reverse();
    },
    close,
  };
}

/** The agent options for Basic credentials (FusionInventory 2.6: --user / --password). */
export function basicAuthArgs(user: string, password: string): string[] {
  return ['--user', user, '--password', password];
}

export function logMessages(run: AgentRun, level: string): string[] {
  return run.entries.filter((e) => e.level === level).map((e) => e.message);
}
