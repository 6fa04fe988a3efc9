import { Inject, Optional, type Provider } from '@nestjs/common';
import { InvalidationStrategyFor } from '../decorators/invalidation-strategy-for.decorator';
import { layoutRule, RuleBasedInvalidationStrategy, strategyProvider, type LayoutEntry, type StrategyCacheOptions } from './rule-based-invalidation.strategy';

export interface ScoreKeyLayout {
  /** Key of a property's score (default `property:score:{propertyId|property_id}`). */
  score?: LayoutEntry;
  /** Key of the property detail, when it embeds the score (default `property:detail:{propertyId|property_id}`). */
  detail?: LayoutEntry;
  /** Pattern of lists ranked by score (default `false`: off). E.g. `properties:list:{tenantId}:*`. */
  list?: LayoutEntry;
}

export const SCORE_KEY_LAYOUT = Symbol('SCORE_KEY_LAYOUT');

export const DEFAULT_SCORE_LAYOUT: Required<ScoreKeyLayout> = {
  score: 'property:score:{propertyId|property_id}',
  detail: 'property:detail:{propertyId|property_id}',
  list: false,
};

/** The original design's ScoreUpdateStrategy: `score.calculated` and `score.updated` → the score (and detail). */
@InvalidationStrategyFor('score.*')
export class ScoreInvalidationStrategy extends RuleBasedInvalidationStrategy {
  constructor(@Optional() @Inject(SCORE_KEY_LAYOUT) layout?: ScoreKeyLayout) {
    const l = { ...DEFAULT_SCORE_LAYOUT, ...layout };
    const events = ['score.calculated', 'score.updated'];
    super('ScoreInvalidationStrategy', [...layoutRule(events, { keys: [l.score, l.detail] }), ...layoutRule(events, { patterns: [l.list] })]);
  }

  /** `withLayout(layout, { cache: 'scores' })` applies it to a named cache (see strategyProvider). */
  static withLayout(layout: ScoreKeyLayout, options?: StrategyCacheOptions): Provider {
    return strategyProvider(ScoreInvalidationStrategy, () => new ScoreInvalidationStrategy(layout), options);
  }
}
