// The Nest-free engine: `nestjs-tiered-cache/core`. Nothing reachable from here imports @nestjs/*.
export { TieredCache, type CacheChange, type PatternInvalidationReport } from './tiered-cache';
export { escapeGlob } from './glob';
export type { CacheStats } from './stats';
export type { TierStats, TierTargetStats } from './tier-stats';
export type { BreakerStats, BreakerStateName } from './tiers/circuit-breaker';
export { defaultCodec, jsonCodec, CacheDecodeError, type CacheCodec } from './codec';
export { TieredCacheOptionsError, CacheSerializationError } from './errors';
export { parseDuration, MAX_TTL_MS, type Duration } from './duration';
export { tieredCacheOptionsFromEnv } from './env';
export type * from './tiered-cache-options.interface';
export type * from './metrics-options.interface';
export { canonicalize, stableDigest } from './keys/stable-digest';
export { buildArgumentsKey } from './keys/method-key';
export { InvalidationBus, type BusState } from './bus/invalidation-bus';
export type { BusStats } from './bus/bus-stats';
export type { InvalidationStats } from './invalidation-stats';
export type { CacheObserver, CacheOperation, CacheTier, InvalidationSource } from './observer';
export { decodeEntry, type DecodedEntry, type EntryMeta } from './entry-envelope';
