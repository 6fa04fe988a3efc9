import type { RecoveryStats } from './recovery-queue';
import type { BreakerStats } from './tiers/circuit-breaker';

/** stats().tiers[name]: one tier's share of the work, in stack order. */
export interface TierStats {
  kind: 'memory' | 'redis' | 'postgres';
  /** Position in the stack, 0 = first asked. */
  level: number;
  hits: number;
  misses: number;
  hitRatio: number;
  /** Copies made into this tier from a tier below it. */
  promotions: number;
  /** Commands that failed or missed their deadline (remote tiers). */
  errors: number;
  /** Of those, the ones that missed their deadline (remote tiers). */
  timeouts?: number;
  /** Entries held, where the tier knows it cheaply (memory: now; PostgreSQL: at its last trim, when it trims). */
  size?: number;
  ready: boolean;
  /**
   * Mean latency of the lookups this tier answered, in ms. L1 and L2: of the get/getOrSet calls sampled for
   * stats().overall (1 in 8, factory time excluded), those L1 answered, and those that went below it (L2's
   * figure: the whole lookup, the tiers below it included). A tier below L2: of its own reads, every one timed.
   */
  meanLatencyMs?: number;
  /** A tier that compresses: entries this instance compressed, their serialized bytes before and after. */
  compression?: { entries: number; bytesBefore: number; bytesAfter: number };
  /** A tier below L2 with `write: 'behind'`: its queue (L2's own is stats().writeBehind). */
  writeBehind?: { queueLength: number; flushed: number; dropped: number };
  /** A tier below L2, with `recovery` on: its writes queued for replay (recovery-queue.ts; L2's own is stats().l2.recovery). */
  recovery?: RecoveryStats;
  /** The tier's hit-rate target (`hitRateTarget`), judged over recent lookups (hit-rate-targets.ts). */
  target?: TierTargetStats;
  /**
   * A remote tier with a circuit breaker (on unless `breaker: false`): its state, the times it opened, and the
   * calls it skipped (answered as failed without sending them; not counted in `errors`).
   */
  breaker?: BreakerStats;
}

/** TierStats.compression of a tier's compressor, if it has one. */
export function compressionStats(c: { compressed: number; bytesIn: number; bytesOut: number } | undefined): TierStats['compression'] {
  return c === undefined ? undefined : { entries: c.compressed, bytesBefore: c.bytesIn, bytesAfter: c.bytesOut };
}

/** total / samples, 0 before the first sample. */
export function mean(total: number, samples: number): number {
  return samples === 0 ? 0 : total / samples;
}

/** hits / (hits + misses), 0 before the first lookup. */
export function ratio(hits: number, misses: number): number {
  const total = hits + misses;
  return total === 0 ? 0 : hits / total;
}

/** stats().tiers[name].target: how the tier did against its target over its last judged window. */
export interface TierTargetStats {
  ratio: number;
  window: number;
  /** Hit ratio of the last judged window; null before the first one (the warm-up). */
  windowRatio: number | null;
  /** false when the last judged window fell short; null during the warm-up. */
  met: boolean | null;
}
