/**
 * First start: with AGENT_AUTH=required and no registration key yet, create "default" (from
 * BOOTSTRAP_SECRET, else generated) and an initial admin operator (from BOOTSTRAP_ADMIN_TOKEN, else
 * generated). Generated plaintexts are logged exactly once — this start — and never again.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { Admin } from './admin.js';

/** Another replica starting at the same moment created it first (our check or the unique index said so). */
function createdElsewhere(err: unknown): boolean {
  return (err instanceof AppError && err.code === 'conflict') || (err as { code?: string }).code === '23505';
}

const SYSTEM = { name: 'system:bootstrap', remoteAddr: null };

export async function bootstrapCredentials(admin: Admin, config: Readonly<Config>, logger: Logger): Promise<void> {
  if (config.agentAuth === 'required' && (await admin.countKeys()) === 0) {
    try {
      const { secret } = await admin.createKey(
        { name: 'default', secret: config.bootstrapSecret, comment: 'created at first start' },
        SYSTEM,
      );
      if (config.bootstrapSecret) logger.warn('registration key "default" created from BOOTSTRAP_SECRET');
      else
        logger.warn(
          `registration key "default" created; give agents --password ${secret} (any --user). Shown once: store it now`,
        );
    } catch (err) {
      if (!createdElsewhere(err)) throw err;
    }
  }
  if ((await admin.countOperators()) === 0) {
    try {
      const { token } = await admin.createOperator(
        { name: 'admin', role: 'admin', token: config.bootstrapAdminToken },
        SYSTEM,
      );
      if (config.bootstrapAdminToken) logger.warn('admin operator "admin" created from BOOTSTRAP_ADMIN_TOKEN');
      else logger.warn(`admin operator "admin" created; its admin API token is ${token} . Shown once: store it now`);
    } catch (err) {
      if (!createdElsewhere(err)) throw err;
    }
  }
}
