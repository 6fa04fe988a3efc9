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
