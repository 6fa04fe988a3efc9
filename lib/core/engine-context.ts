import type { CacheChange } from './cache-change';
import type { ReservedNames } from './keys/cache-key';
import type { DeferredInvalidations } from './deferred-invalidations';
import type { LowerTiers } from './lower-tiers';
import type { SingleFlight } from './get-set/single-flight';
import type { CacheObserver } from './observer';
import type { ResolvedOptions } from './options';
import type { ReadGuard } from './read-guard';
import type { RecoveryQueue } from './recovery-queue';
import type { MemoryTier } from './tiers/memory.tier';
import type { L2Write, RedisTier } from './tiers/redis.tier';
import type { ValueProtection } from './value-protection';
import type { WriteBehindQueue } from './write-behind-queue';

/** A value ready to be written: encoded, sized and checked (write-path.ts builds it). */
export interface PreparedWrite extends L2Write {
  key: string;
  l1Ttl: number;
  tags: readonly string[] | undefined;
  /** UTF-8 size of the codec's payload (what maxValueBytes and l1.maxBytes count). */
  bytes: number;
  /** The call's own ttl, when it gave one: it caps every lower tier's TTL too. */
  callTtl?: number;
  /** Written with a logical expiry (grace or eager refresh): when it goes stale, epoch ms; `ttl` and `l1Ttl` then include `grace`. */
  staleAt?: number;
  /** How long every tier keeps the entry past its TTL (0: none). */
  grace: number;
  /** When the value was encoded (epoch ms; the envelope's createdAt). */
  createdAt: number;
  /** How long the L1 copy is fresh (ms): l1Ttl without the grace. */
  l1Fresh: number;
  /** Intent sequence number, set when a deferred delete of this key is pending (see DeferredInvalidations). */
  seq?: number;
}

/** The engine's counters; stats() reports them. */
export interface EngineCounters {
  l1Hits: number;
  l1Misses: number;
  l2Hits: number;
  l2Misses: number;
  l2Errors: number;
  promotions: number;
  corrupt: number;
  newerEntries: number;
  fillsRefused: number;
  /** What getOrSet did about expired entries and a slow or failing source (stats().resilience). */
  resilience: ResilienceCounters;
  gets: number;
  sets: number;
  deletes: number;
  /** The sampled lookups L1 answered, and those that went below it (stats().overall adds them up). */
  l1LatencyTotal: number;
  l1LatencySamples: number;
  belowLatencyTotal: number;
  belowLatencySamples: number;
}

/** What getOrSet did about expired entries and a slow or failing source. */
export interface ResilienceCounters {
  /** Lookups below L1 that found a copy past its TTL, within grace (L1's own are among l1.hits). */
  staleHits: number;
  /** Stale copies answered instead of waiting for the factory (stale-while-revalidate, soft timeout, fail-safe). */
  staleServed: number;
  /** Background refreshes started (of a stale copy, or early), and factory failures while a copy was held. */
  refreshes: number;
  refreshFailures: number;
  /** Factory failures or hard timeouts answered with a stale copy. */
  failSafe: number;
  softTimeouts: number;
  hardTimeouts: number;
}

export function newCounters(): EngineCounters {
  return {
    l1Hits: 0,
    l1Misses: 0,
    l2Hits: 0,
    l2Misses: 0,
    l2Errors: 0,
    promotions: 0,
    corrupt: 0,
    newerEntries: 0,
    fillsRefused: 0,
    resilience: { staleHits: 0, staleServed: 0, refreshes: 0, refreshFailures: 0, failSafe: 0, softTimeouts: 0, hardTimeouts: 0 },
    gets: 0,
    sets: 0,
    deletes: 0,
    l1LatencyTotal: 0,
    l1LatencySamples: 0,
    belowLatencyTotal: 0,
    belowLatencySamples: 0,
  };
}


/**
 * What the engine's parts share: the tiers, the queues, the counters and the few hooks back to the facade.
 * Each part (cache stack, write path, factory runner, invalidator, tag system) takes this and nothing of the
 * others' internals; the facade builds it once.
 */
export interface EngineContext {
  readonly options: ResolvedOptions;
  /** keyPrefix: the cache's namespace in Redis. */
  readonly prefix: string;
  /** How messages name L2 (tier-label.ts). */
  readonly l2Label: string;
  readonly reserved: ReservedNames;
  readonly l1: MemoryTier | undefined;
  readonly l2: RedisTier | undefined;
  /** The tiers below L2 (`tiers` with more than one shared tier); undefined otherwise. */
  readonly lower: LowerTiers | undefined;
  /** Invalidations that could not reach Redis, replayed until they land; undefined without L2. */
  readonly deferred: DeferredInvalidations | undefined;
  readonly writeBehind: WriteBehindQueue<PreparedWrite> | undefined;
  /** Writes that could not reach Redis, replayed when it is back; undefined without L2 or with `recovery: false`. */
  readonly recovery: RecoveryQueue<L2Write> | undefined;
  readonly flights: SingleFlight;
  readonly readGuard: ReadGuard;
  readonly protection: ValueProtection;
  readonly n: EngineCounters;
  /** Metrics hooks; undefined when nobody observes (the hot paths test this one field). */
  readonly observer: CacheObserver | undefined;
  /** False while the bus is not subscribed: L1 may have missed other instances' changes. */
  readonly l1Trusted: boolean;
  readonly closed: boolean;
  /** Announces a local change (the bus and metrics listen). */
  emit(change: CacheChange): void;
  log(level: 'warn' | 'error', kind: string, message: string): void;
}
