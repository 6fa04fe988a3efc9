/** Keys under this prefix are the engine's own (tag indexes, fences, the generation, the bus channel). */
export const RESERVED = '__tc:';

export function isValidKey(key: string): boolean {
  return typeof key === 'string' && key.length !== 0 && (key.charCodeAt(0) !== 95 || !key.startsWith(RESERVED));
}

export function keyError(key: unknown): TypeError {
  if (typeof key !== 'string' || key.length === 0) return new TypeError(`cache key must be a non-empty string, got ${String(key)}`);
  return new TypeError(`cache keys starting with "${RESERVED}" are reserved`);
}

export function checkKey(key: string): void {
  if (!isValidKey(key)) throw keyError(key);
}

/** Where a namespace's tag indexes live: sorted sets scored by expiry, and the plain sets of earlier versions. */
export function tagIndexPrefixes(keyPrefix: string): { tagPrefix: string; legacyTagPrefix: string } {
  return { tagPrefix: keyPrefix + RESERVED + 'tagz:', legacyTagPrefix: keyPrefix + RESERVED + 'tag:' };
}

/** The names under keyPrefix that the engine keeps for itself in a Redis tier. */
export interface ReservedNames {
  /** Tag indexes: sorted sets scored by expiry. */
  tagPrefix: string;
  /** The plain-set tag indexes of earlier versions (still popped). */
  legacyTagPrefix: string;
  /** Per-key fill fences (fill-fence.ts). */
  fencePrefix: string;
  /** The namespace generation that pattern, tag and clear invalidations move. */
  genKey: string;
  /** Per-key fill locks (get-set/distributed-lock.ts): one factory run per key across instances. */
  lockPrefix: string;
  /** Where a released fill lock with waiters is announced (the bus subscriber listens). */
  fillChannel: string;
}

export function reservedNames(keyPrefix: string): ReservedNames {
  return {
    ...tagIndexPrefixes(keyPrefix),
    fencePrefix: keyPrefix + RESERVED + 'fence:',
    genKey: keyPrefix + RESERVED + 'gen',
    lockPrefix: keyPrefix + RESERVED + 'lock:',
    fillChannel: keyPrefix + RESERVED + 'filled:v1',
  };
}

/**
 * The fence key (or, under the lock prefix, the fill lock) of a physical key, in the same Cluster slot: Redis hashes only a key's `{hash tag}` when it has
 * one, so the fence reuses that tag, or wraps the whole key in braces. `undefined` when the key holds braces
 * that no wrapping can reproduce (no template-built key does: segments never contain braces).
 */
export function fenceKeyOf(fencePrefix: string, pkey: string): string | undefined {
  const open = pkey.indexOf('{');
  if (open >= 0) {
    const close = pkey.indexOf('}', open + 1);
    if (close > open + 1) return `${fencePrefix}{${pkey.slice(open + 1, close)}}:${pkey}`;
  }
  if (pkey.includes('}')) return undefined;
  return `${fencePrefix}{${pkey}}`;
}
