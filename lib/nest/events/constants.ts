/** Metadata key of `@InvalidationStrategyFor`: the event-name globs a strategy handles. */
export const INVALIDATION_STRATEGY_EVENTS = 'tiered-cache:invalidation-strategy-events';

/** Metadata key of the cache a strategy invalidates (on its class, from the decorator, or on an instance). */
export const INVALIDATION_STRATEGY_CACHE = 'tiered-cache:invalidation-strategy-cache';
