/** Metadata key of `@InvalidationStrategyFor`: the event-name globs a strategy handles. */
export const INVALIDATION_STRATEGY_EVENTS = 'tiered-cache:invalidation-strategy-events';
