import type { CacheStats } from '../../../lib';

/** `GET /cache/stats` in the shape of the original design (caching-strategy.md): rates are percentages. */
export interface CacheStatsDto {
  l1_hits: number;
  l1_misses: number;
  l1_hit_rate: number;
  l2_hits: number;
  l2_misses: number;
  l2_hit_rate: number;
  overall_hit_rate: number;
  l1_size: number;
  l1_max_size: number;
  l1_utilization: number;
  l1_evictions: number;
  l2_status: string;
  l2_errors: number;
  l2_timeouts: number;
  /** Invalidations that could not reach Redis yet and are being retried (not in the original design). */
  l2_pending_invalidations: number;
  promotions: number;
  average_latency_ms: number;
  write_behind_queue: number;
}

const pct = (ratio: number) => Math.round(ratio * 1000) / 10;

export function toCacheStatsDto(s: CacheStats): CacheStatsDto {
  return {
    l1_hits: s.l1.hits,
    l1_misses: s.l1.misses,
    l1_hit_rate: pct(s.l1.hitRatio),
    l2_hits: s.l2.hits,
    l2_misses: s.l2.misses,
    l2_hit_rate: pct(s.l2.hitRatio),
    overall_hit_rate: pct(s.overall.hitRatio),
    l1_size: s.l1.size,
    l1_max_size: s.l1.maxSize,
    l1_utilization: Math.round(s.l1.utilization * 10) / 10,
    l1_evictions: s.l1.evictions,
    l2_status: s.l2.status,
    l2_errors: s.l2.errors,
    l2_timeouts: s.l2.timeouts,
    l2_pending_invalidations: s.l2.pendingInvalidations,
    promotions: s.l2.promotions,
    average_latency_ms: Math.round(s.overall.meanLatencyMs * 1000) / 1000,
    write_behind_queue: s.writeBehind.queueLength,
  };
}
