/**
 * Secret material: 32 random bytes, a type prefix (agk_ registration key, ags_ client secret, ago_ operator
 * token, agt_ bearer token), SHA-256 for storage and a short visible prefix for people to recognise one.
 * Plaintext exists only in the answer that creates it.
 */
import crypto from 'node:crypto';

export type SecretKind = 'agk' | 'ags' | 'ago' | 'agt';

export function generateSecret(kind: SecretKind): string {
  return `${kind}_${crypto.randomBytes(32).toString('base64url')}`;
}

export function generateClientId(): string {
  return `agc_${crypto.randomBytes(10).toString('hex')}`;
}

export function hashSecret(secret: string): Buffer {
  return crypto.createHash('sha256').update(secret, 'utf8').digest();
}

const GENERATED = /^ag[ksot]_[A-Za-z0-9_-]{43}$/;

/**
 * What may be shown of a secret after creation: for ours, the type and 6 of 43 random characters; for a
 * secret an admin chose (BOOTSTRAP_SECRET), 4 characters only if it is long enough that this reveals little.
 */
export function visiblePrefix(secret: string): string {
  if (GENERATED.test(secret)) return secret.slice(0, 10);
  return secret.length >= 20 ? secret.slice(0, 4) : '';
}

export function masked(prefix: string): string {
  return `${prefix}…`;
}

/** Constant-time equality of two digests (never compare secrets with ===). */
export function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
