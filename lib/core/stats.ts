import type { BusStats } from './bus/bus-stats';
import type { EngineContext, ResilienceCounters } from './engine-context';
import type { InvalidationQueue } from './invalidation-queue';
import type { InvalidationStats } from './invalidation-stats';
import type { DeferredInvalidations } from './deferred-invalidations';
import type { RecoveryStats } from './recovery-queue';
import type { FillLockStats } from './get-set/distributed-lock';
import { mean, ratio, type TierStats } from './tier-stats';

export { ratio, type TierStats };


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
    /** Entries in a newer envelope version than this one reads (a rolling deploy): misses, left in Redis. */
    newerEntries: number;
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
    /** Writes that could not reach Redis, queued and replayed when it is back (all 0 with `recovery: false`). */
    recovery: RecoveryStats;
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
  /** getOrSet's cluster-wide fill lock (one factory run per missing key across instances). */
  lock: FillLockStats;
  /** Every tier of the stack by name ('l1', 'l2'), in stack order; l1/l2 above stay for existing dashboards. */
  tiers: Record<string, TierStats>;
  /** What getOrSet did about expired entries and a slow or failing source (grace, eager refresh, fail-safe, timeouts). */
  resilience: ResilienceCounters;
}


/** What stats() adds to the engine's shared state. */
export interface StatsSources {
  tiers: Record<string, TierStats>;
  bus: BusStats;
  invalidationCounters: Omit<InvalidationStats, 'queued' | 'applied' | 'batches' | 'queueLength'>;
  invalidationQueue: InvalidationQueue;
  lock: FillLockStats;
}

/** Assembles stats() from the counters and the parts that keep their own. */
export function statsReport(ctx: EngineContext, src: StatsSources): CacheStats {
  const { n, l1, l2, writeBehind } = ctx;
  const hits = n.l1Hits + n.l2Hits;
  const misses = Math.max(0, n.gets - hits);
  const q = src.invalidationQueue;
  return {
    l1: {
      enabled: !!l1,
      hits: n.l1Hits,
      misses: n.l1Misses,
      hitRatio: ratio(n.l1Hits, n.l1Misses),
      size: l1?.size ?? 0,
      maxSize: l1?.maxEntries ?? 0,
      utilization: l1 ? (l1.size / l1.maxEntries) * 100 : 0,
      bytes: l1?.bytes ?? 0,
      maxBytes: l1?.maxBytes,
      evictions: l1?.evictions ?? 0,
    },
    l2: {
      enabled: !!l2,
      status: l2 ? l2.status : 'disabled',
      hits: n.l2Hits,
      misses: n.l2Misses,
      hitRatio: ratio(n.l2Hits, n.l2Misses),
      promotions: n.promotions,
      errors: n.l2Errors,
      timeouts: l2?.deadlines.timeouts ?? 0,
      corrupt: n.corrupt,
      newerEntries: n.newerEntries,
      fillsRefused: n.fillsRefused,
      ...deferredStats(ctx.deferred),
      recovery: ctx.recovery?.stats() ?? { queued: 0, replayed: 0, dropped: 0, overflowed: 0, superseded: 0 },
    },
    overall: {
      gets: n.gets,
      hits,
      misses,
      hitRatio: ratio(hits, misses),
      meanLatencyMs: mean(n.l1LatencyTotal + n.belowLatencyTotal, n.l1LatencySamples + n.belowLatencySamples),
      sets: n.sets,
      deletes: n.deletes,
    },
    writeBehind: {
      enabled: !!writeBehind,
      queueLength: writeBehind?.length ?? 0,
      flushed: writeBehind?.flushed ?? 0,
      dropped: writeBehind?.dropped ?? 0,
    },
    invalidation: {
      ...src.invalidationCounters,
      queued: q.queued,
      applied: q.applied,
      batches: q.batches,
      queueLength: q.length,
    },
    bus: src.bus,
    lock: src.lock,
    tiers: src.tiers,
    resilience: { ...n.resilience },
  };
}

function deferredStats(d: DeferredInvalidations | undefined): Pick<CacheStats['l2'], 'pendingInvalidations' | 'deferredInvalidations' | 'replayedInvalidations' | 'replayRounds' | 'deferredOverflows'> {
  const s = d?.stats();
  return {
    pendingInvalidations: s?.pending ?? 0,
    deferredInvalidations: s?.deferred ?? 0,
    replayedInvalidations: s?.replayed ?? 0,
    replayRounds: s?.retries ?? 0,
    deferredOverflows: s?.overflows ?? 0,
  };
}
