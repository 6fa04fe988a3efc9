import { MAX_TTL_MS } from '../core/duration';

/**
 * cache-manager's TTLs (milliseconds, as Keyv reads them) in the engine's terms. Keyv takes any number: 0 means
 * "never expires", a negative TTL stores an entry that is already expired (so the key reads as absent), and
 * NaN or Infinity end up as an expiry no clock reaches. The engine only stores whole, positive TTLs up to
 * MAX_TTL_MS, so each case is mapped explicitly instead of passed through.
 */

/** A TTL that says the entry is gone at once: the write becomes a delete. */
export const EXPIRED = 'expired';

/** The TTL a "never expires" entry is stored with. */
export const NO_EXPIRY = MAX_TTL_MS;

/**
 * Remaining TTLs above this belong to entries written with NO_EXPIRY: ttl() reports them as having no expiry,
 * as cache-manager does. Half of MAX_TTL_MS is over 100,000 years: no real TTL comes near it.
 */
export const NO_EXPIRY_FLOOR = MAX_TTL_MS / 2;

/**
 * A call's TTL: undefined = the default, EXPIRED, or milliseconds for the engine. A value that is not a number
 * (or NaN) is a programming error at the call site: a TypeError naming `where`.
 */
export function callTtl(ttl: unknown, where: string): number | undefined | typeof EXPIRED {
  if (ttl === undefined || ttl === null) return undefined;
  if (typeof ttl !== 'number' || Number.isNaN(ttl)) throw new TypeError(`${where}: ttl must be a number of milliseconds, got ${String(ttl)}`);
  if (ttl < 0) return EXPIRED;
  if (ttl === 0 || ttl >= NO_EXPIRY) return NO_EXPIRY;
  return Math.ceil(ttl);
}
