import type { BusStats } from '../invalidation/invalidation-bus';
import type { InvalidationStats } from '../invalidation/invalidation-stats';

/** The shape of `stats()`. Ratios are 0..1; `utilization` is a percentage. */
export interface CacheStats {
  l1: {
    enabled: boolean;
    hits: number;
    misses: number;
    hitRatio: number;
    size: number;
    maxSize: number;
    utilization: number;
    bytes: number;
    maxBytes: number | undefined;
    evictions: number;
  };
  l2: {
    enabled: boolean;
    status: string;
    hits: number;
    misses: number;
    hitRatio: number;
    promotions: number;
    errors: number;
    timeouts: number;
    corrupt: number;
    /** getOrSet results returned but not stored because an invalidation overtook their factory (on any instance). */
    fillsRefused: number;
    /**
     * Invalidations (each key, pattern, tag; 1 for a clear) made here that have not reached Redis yet. They
     * are retried until they land; meanwhile this instance reads nothing they cover from Redis.
     */
    pendingInvalidations: number;
    /** Invalidations that could not reach Redis when made (and were kept for replay). */
    deferredInvalidations: number;
    /** Deferred invalidations that reached Redis later. */
    replayedInvalidations: number;
    /** Replay rounds attempted. */
    replayRounds: number;
    /** Times the deferred set outgrew its bounds (10,000 keys, 100 patterns, 1,000 tags) and became one clear. */
    deferredOverflows: number;
  };
  overall: {
    gets: number;
    hits: number;
    misses: number;
    hitRatio: number;
    /** Mean latency of get/getOrSet lookups (factory time excluded), sampled 1 call in 8. */
    meanLatencyMs: number;
    sets: number;
    deletes: number;
  };
  writeBehind: { enabled: boolean; queueLength: number; flushed: number; dropped: number };
  /** Event-driven invalidation and the `invalidate(key)` batch queue. */
  invalidation: InvalidationStats;
  /** Cross-instance invalidation bus. */
  bus: BusStats;
}

export function ratio(hits: number, misses: number): number {
  const total = hits + misses;
  return total === 0 ? 0 : hits / total;
}
