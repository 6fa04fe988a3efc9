/** Metadata key of a `@CacheWarmer` class's resolved options. */
export const CACHE_WARMER_METADATA = 'tiered-cache:warmer';

/**
 * Token of TieredCacheWarmup in every app that imports TieredCacheModule. A registered symbol, so the CLI finds the
 * service even when it was loaded from another copy of this package than the app's.
 */
export const TIERED_CACHE_WARMUP = Symbol.for('nestjs-tiered-cache.warmup');

/** EventEmitter2 events (when EventEmitterModule is imported). */
export const WARMUP_EVENTS = {
  started: 'tiered-cache.warmup.started',
  /** At most once a second per run, and once at its end. */
  progress: 'tiered-cache.warmup.progress',
  finished: 'tiered-cache.warmup.finished',
} as const;
