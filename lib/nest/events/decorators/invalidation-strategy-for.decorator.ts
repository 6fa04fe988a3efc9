import { SetMetadata } from '@nestjs/common';
import { INVALIDATION_STRATEGY_EVENTS } from '../constants';

/**
 * Marks a provider as an invalidation strategy for events matching any of `events` (EventEmitter2 globs:
 * `*` one segment, `**` any number). The class must implement `InvalidationStrategy` and be a provider.
 */
export const InvalidationStrategyFor = (...events: string[]): ClassDecorator => {
  if (events.length === 0 || events.some((e) => typeof e !== 'string' || e.length === 0)) {
    throw new TypeError('@InvalidationStrategyFor needs at least one non-empty event name or glob');
  }
  return SetMetadata(INVALIDATION_STRATEGY_EVENTS, events);
};
