import { Inject, Optional, type Provider } from '@nestjs/common';
import { InvalidationStrategyFor } from '../decorators/invalidation-strategy-for.decorator';
import { layoutRule, RuleBasedInvalidationStrategy, strategyProvider, type LayoutEntry, type StrategyCacheOptions } from './rule-based-invalidation.strategy';

export interface TimelineKeyLayout {
  /** Key of a property's timeline (default `property:timeline:{propertyId|property_id}`). */
  timeline?: LayoutEntry;
}

export const TIMELINE_KEY_LAYOUT = Symbol('TIMELINE_KEY_LAYOUT');

export const DEFAULT_TIMELINE_LAYOUT: Required<TimelineKeyLayout> = {
  timeline: 'property:timeline:{propertyId|property_id}',
};

/** The original design's TimelineUpdateStrategy: `timeline.comment_added`, `.note_added`, `.event_added` → the timeline. */
@InvalidationStrategyFor('timeline.*')
export class TimelineInvalidationStrategy extends RuleBasedInvalidationStrategy {
  constructor(@Optional() @Inject(TIMELINE_KEY_LAYOUT) layout?: TimelineKeyLayout) {
    const l = { ...DEFAULT_TIMELINE_LAYOUT, ...layout };
    super('TimelineInvalidationStrategy', layoutRule(['timeline.comment_added', 'timeline.note_added', 'timeline.event_added'], { keys: [l.timeline] }));
  }

  /** `withLayout(layout, { cache: 'scores' })` applies it to a named cache (see strategyProvider). */
  static withLayout(layout: TimelineKeyLayout, options?: StrategyCacheOptions): Provider {
    return strategyProvider(TimelineInvalidationStrategy, () => new TimelineInvalidationStrategy(layout), options);
  }
}
