import { INVALIDATION_STRATEGY_CACHE, INVALIDATION_STRATEGY_EVENTS } from '../constants';
import { resolveCacheName } from '../../cache-name';

export interface InvalidationStrategyForOptions {
  /** The cache the strategy invalidates (`forRoot({ name })`). Default: the default cache. */
  cache?: string;
}

/**
 * Marks a provider as an invalidation strategy for events matching any of `events` (EventEmitter2 globs:
 * `*` one segment, `**` any number). The class must implement `InvalidationStrategy` and be a provider.
 * A last argument `{ cache: 'scores' }` points it at a named cache: only that cache's listener runs it, and
 * `invalidate()` receives that cache.
 */
export function InvalidationStrategyFor(...events: string[]): ClassDecorator;
export function InvalidationStrategyFor(...args: [...events: string[], options: InvalidationStrategyForOptions]): ClassDecorator;
export function InvalidationStrategyFor(...args: Array<string | InvalidationStrategyForOptions>): ClassDecorator {
  const last = args[args.length - 1];
  const options = last !== null && typeof last === 'object' ? (last as InvalidationStrategyForOptions) : undefined;
  const events = options === undefined ? args : args.slice(0, -1);
  if (events.length === 0 || events.some((e) => typeof e !== 'string' || e.length === 0)) {
    throw new TypeError('@InvalidationStrategyFor needs at least one non-empty event name or glob');
  }
  const cache = resolveCacheName('@InvalidationStrategyFor cache', options?.cache);
  return (target) => {
    Reflect.defineMetadata(INVALIDATION_STRATEGY_EVENTS, events, target);
    Reflect.defineMetadata(INVALIDATION_STRATEGY_CACHE, cache, target);
  };
}
