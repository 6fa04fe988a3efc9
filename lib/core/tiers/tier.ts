import { L2_FAILED, type L2Failed } from './deadline';

/**
 * The contract every tier of the cache stack keeps (test/contract/tier-contract.ts holds the suite each
 * implementation passes). Keys are cache keys as callers write them: a tier that shares a namespace (Redis)
 * applies its own prefix. `V` is what the tier holds: decoded values in memory, encoded payloads remotely.
 *
 * A remote tier can fail where a memory tier cannot: its methods then resolve to TIER_FAILED (never reject,
 * never hang past the tier's command deadline), so the stack can tell "absent" from "could not ask".
 */
export const TIER_FAILED = L2_FAILED;
export type TierFailed = L2Failed;

/** What a tier holds and what it can do; the stack reads these instead of testing the tier's class. */
export interface TierCapabilities {
  /** Shared by every instance (Redis, a database): invalidations must reach it from any of them. */
  readonly shared: boolean;
  /** Survives a restart of the store. */
  readonly persistent: boolean;
  /** Holds an index per tag, so deleteTags costs O(tagged entries). */
  readonly tags: boolean;
  /** Can delete by a Redis glob without the caller listing the keys. */
  readonly patterns: boolean;
  /** Enforces a byte bound on what it holds (the `bytes` of each write). */
  readonly byteBound: boolean;
  /** Supports fenced fills (fill-fence.ts): a fill overtaken by an invalidation on any instance is refused. */
  readonly fences: boolean;
}

export interface TierEntry<V> {
  value: V;
  /** Remaining lifetime in ms; -1 when the tier keeps it without expiry. */
  ttl: number;
}

export interface TierWrite<V> {
  key: string;
  value: V;
  /** Lifetime in ms (> 0). */
  ttl: number;
  tags?: readonly string[];
  /** UTF-8 size of the encoded value (what byte bounds count). */
  bytes?: number;
}

/** What a delete by pattern or tag did; `complete` is false when part of the tier could not be walked. */
export interface TierRemoval {
  removed: number;
  complete: boolean;
}

/** Where a remote tier's circuit breaker stands (circuit-breaker.ts). */
export type BreakerStateName = 'closed' | 'half-open' | 'open';

export interface TierHealth {
  ok: boolean;
  /** Free-form state for health details ('ready', 'reconnecting', 'memory', 'breaker open', ...). */
  status: string;
  /** A remote tier with a circuit breaker: where it stands (circuit-breaker.ts); not 'closed' means not ok. */
  breaker?: BreakerStateName;
}

export type Awaitable<T> = T | Promise<T>;

export interface Tier<V> {
  /** Unique within a stack ('l1', 'l2'): the key of stats().tiers. */
  readonly name: string;
  readonly kind: 'memory' | 'redis' | 'postgres';
  readonly capabilities: TierCapabilities;
  /** Can answer now (a remote tier that is connected). */
  readonly ready: boolean;
  getEntry(key: string): Awaitable<TierEntry<V> | undefined | TierFailed>;
  getEntries(keys: readonly string[]): Awaitable<Array<TierEntry<V> | undefined> | TierFailed>;
  /** False when the tier refused the value (it cannot hold it); TIER_FAILED when it could not be asked. */
  setEntry(write: TierWrite<V>): Awaitable<boolean | TierFailed>;
  setEntries(writes: ReadonlyArray<TierWrite<V>>): Awaitable<boolean | TierFailed>;
  /** Resolves to the number of keys that were present. */
  deleteKeys(keys: readonly string[]): Awaitable<number | TierFailed>;
  deletePattern(glob: string): Promise<TierRemoval>;
  /**
   * Removes every entry written with any of `tags`. A tier may over-invalidate, never under-invalidate: Redis
   * keeps naming a key under a tag until that tagged write's TTL ends, so a key re-written without the tag
   * meanwhile is removed too (a miss, never a stale read); the memory tier forgets the tag at the re-write.
   * `onKeys` hears the cache keys removed, batch by batch (copies of them in other tiers carry no tags, and are
   * dropped by name).
   */
  deleteTags(tags: readonly string[], onKeys?: (keys: string[]) => void): Awaitable<TierRemoval>;
  /** Remaining lifetime in ms; undefined when absent; -1 when kept without expiry. */
  ttlOf(key: string): Awaitable<number | undefined | TierFailed>;
  health(): Promise<TierHealth>;
  close(): Awaitable<void>;
}

/** What a fill read in a fenced tier when it found its key missing: handed back, unchanged, to storeFenced. */
export interface FillMark {
  readonly fence: string;
  readonly generation: string;
}

/**
 * Fenced fills, for a tier whose capabilities.fences is true: a fill that read a key missing stores its value
 * only if no invalidation reached the tier since, from any instance. deleteKeys writes a new fence token per key
 * (kept for the tier's fill window); deletePattern and deleteTags move the namespace generation before they
 * delete; storeFenced writes only when the key is still absent and both still read as in `mark`, atomically in
 * the tier, so an invalidation cannot fall between the check and the write.
 */
export interface FencedTier<V> {
  /** The key's live entry, if any, and what a store of it must be checked against; one round trip. */
  readFenced(key: string): Promise<{ entry: TierEntry<V> | undefined; mark: FillMark } | TierFailed>;
  /** True when written; false when refused (overtaken by an invalidation or a write, or the tier cannot hold it). */
  storeFenced(write: TierWrite<V>, mark: FillMark): Promise<boolean | TierFailed>;
}

/**
 * Replayed writes (recovery-queue.ts), for a fenced tier: a write that could not reach the tier is stored later
 * only where the tier proves it is not stale (see RecoveryQueue for the argument).
 */
export interface ReplayableTier<V> extends FencedTier<V> {
  /** The namespace generation now, as readFenced's mark holds it. */
  currentGeneration(): Promise<string | TierFailed>;
  /**
   * storeFenced over an entry: writes only if the key still holds `expected` (what readFenced returned, as the
   * tier stores it; undefined: no entry, and no tombstone) and neither fence nor generation moved from `mark`.
   */
  replaceFenced(write: TierWrite<V>, mark: FillMark, expected: V | undefined): Promise<boolean | TierFailed>;
  /** Called each time the tier can answer again. */
  onReady(listener: () => void): void;
}

export function isFenced<V>(tier: Tier<V>): tier is Tier<V> & FencedTier<V> {
  return tier.capabilities.fences && typeof (tier as Partial<FencedTier<V>>).readFenced === 'function' && typeof (tier as Partial<FencedTier<V>>).storeFenced === 'function';
}

export function isReplayable<V>(tier: Tier<V>): tier is Tier<V> & ReplayableTier<V> {
  const r = tier as Partial<ReplayableTier<V>>;
  return isFenced(tier) && typeof r.replaceFenced === 'function' && typeof r.currentGeneration === 'function' && typeof r.onReady === 'function';
}

/**
 * The lifetime an upper copy may have: never longer than what the tier below has left (-1: no expiry below),
 * and not at all when the entry below is about to go (0 or less).
 */
export function cappedTtl(upperTtl: number, remainingBelow: number): number {
  if (remainingBelow === -1) return upperTtl;
  return remainingBelow > 0 ? Math.min(upperTtl, remainingBelow) : 0;
}
