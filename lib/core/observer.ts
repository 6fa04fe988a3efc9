import type { CacheChange } from './cache-change';

/** Operations the engine times. A closed set, so a metric labelled by it stays bounded. */
export type CacheOperation =
  | 'get'
  | 'getOrSet'
  | 'mget'
  | 'set'
  | 'mset'
  | 'delete'
  | 'invalidatePattern'
  | 'invalidateTags'
  | 'clear';

/** The deepest tier an operation reached: 'l1' when answered in-process, 'l2' when Redis was involved. */
export type CacheTier = 'l1' | 'l2';

/**
 * What caused an invalidation. `api`, `tag` and `pattern` are read from `onChange` (delete/clear,
 * invalidateTags, invalidatePattern); `bus` is reported by `dropLocal` (another instance's invalidation
 * received over the bus and applied to this L1; not this instance's own messages, not the L1 clear on
 * (re)subscribe); `event` by the domain-event layer through `noteInvalidation('event', n)`, one per domain
 * event handled (the deletes it makes are also counted under api/tag/pattern).
 */
export type InvalidationSource = 'api' | 'event' | 'bus' | 'tag' | 'pattern';

/**
 * How many invalidations a change is: its keys for a delete, one per tag, one for a pattern or a clear.
 * 0 for an overwrite (a write), for the key deletes a tag invalidation makes (counted as its tags) and for a
 * replayed invalidation (see CacheChange).
 * The same rule counts local changes (api/tag/pattern) and changes received from other instances (bus).
 */
export function invalidationCount(change: CacheChange): number {
  // A replayed invalidation was counted when it was made.
  if ('replay' in change && change.replay) return 0;
  switch (change.type) {
    case 'delete':
      return change.byTag ? 0 : change.keys.length;
    case 'tags':
      return change.tags.length;
    case 'pattern':
    case 'clear':
      return 1;
    case 'overwrite':
      return 0;
  }
}

/**
 * Optional hooks for metrics. Absent hooks cost one property check; the L1-hit path only reaches them on
 * the calls it already samples for `stats().overall.meanLatencyMs`.
 */
export interface CacheObserver {
  /** Duration of one operation. get/getOrSet report a sample (1 call in 8); the others report every call. */
  duration?(operation: CacheOperation, tier: CacheTier, seconds: number): void;
  /** An L2 call failed (`operation` is the RedisTier op: get, set, delete, scan, connection, …). */
  l2Error?(operation: string): void;
  /** Only 'bus' and 'event' arrive here. Count is keys for key lists, one per tag, pattern or clear. */
  invalidation?(source: InvalidationSource, count: number): void;
}

/** One observer that forwards to several, so the engine keeps a single field to test on its hot path. */
export function fanOut(observers: readonly CacheObserver[]): CacheObserver | undefined {
  if (observers.length === 0) return undefined;
  if (observers.length === 1) return observers[0];
  return {
    duration: (op, tier, s) => observers.forEach((o) => o.duration?.(op, tier, s)),
    l2Error: (op) => observers.forEach((o) => o.l2Error?.(op)),
    invalidation: (src, n) => observers.forEach((o) => o.invalidation?.(src, n)),
  };
}
