import type { CacheManagerService } from '../cache-manager.service';

/**
 * Decides what one domain event invalidates. Mark the class with `@InvalidationStrategyFor('property.*')` and
 * register it as an ordinary provider: it is discovered through DI, so it can inject repositories.
 * A strategy that throws is logged and counted; the other strategies still run and the emitter is unaffected.
 */
export interface InvalidationStrategy {
  /** Further filter after the event-name globs (e.g. only events of one aggregate type). */
  supports(event: string, payload: unknown): boolean;
  /**
   * Invalidates through `cache`: the strategy's cache (`@InvalidationStrategyFor(..., { cache })`, default the
   * default cache). Resolves to the number of entries removed.
   */
  invalidate(event: string, payload: unknown, cache: CacheManagerService): Promise<number>;
}
