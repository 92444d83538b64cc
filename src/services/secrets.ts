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

/** What may be shown of a secret after creation: its type and first 6 characters. */
export function visiblePrefix(secret: string): string {
  const at = secret.indexOf('_');
  return at > 0 && at <= 4 ? secret.slice(0, at + 7) : secret.slice(0, 4);
}

export function masked(prefix: string): string {
  return `${prefix}…`;
}

/** Constant-time equality of two digests (never compare secrets with ===). */
export function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
