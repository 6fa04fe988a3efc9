import { Inject, Optional, type Provider } from '@nestjs/common';
import { InvalidationStrategyFor } from '../decorators/invalidation-strategy-for.decorator';
import { layoutRule, RuleBasedInvalidationStrategy, strategyProvider, type LayoutEntry, type StrategyCacheOptions } from './rule-based-invalidation.strategy';

/** Where the app keeps property data. Placeholders come from the event payload; `false` leaves a cache out. */
export interface PropertyKeyLayout {
  /** Key of one property (default `property:detail:{propertyId|property_id}`). */
  detail?: LayoutEntry;
  /** Key of its score (default `property:score:{propertyId|property_id}`). */
  score?: LayoutEntry;
  /** Key of its timeline (default `property:timeline:{propertyId|property_id}`). */
  timeline?: LayoutEntry;
  /** Pattern of a tenant's property lists (default `properties:list:{tenantId|tenant_id}:*`). */
  list?: LayoutEntry;
  /** Tag carried by every entry derived from one property (default `property:{propertyId|property_id}`). */
  tag?: LayoutEntry;
}

export const PROPERTY_KEY_LAYOUT = Symbol('PROPERTY_KEY_LAYOUT');

const ID = '{propertyId|property_id}';
export const DEFAULT_PROPERTY_LAYOUT: Required<PropertyKeyLayout> = {
  detail: `property:detail:${ID}`,
  score: `property:score:${ID}`,
  timeline: `property:timeline:${ID}`,
  list: 'properties:list:{tenantId|tenant_id}:*',
  tag: `property:${ID}`,
};

/**
 * The original design's PropertyUpdateStrategy, as a configurable building block:
 * - `property.created` → the tenant's lists;
 * - `property.updated`, `property.state_changed` → the detail, the property's tag, the tenant's lists;
 * - `property.deleted` → detail, score, timeline, tag and lists.
 * Each group is its own rule, so a payload without `tenantId` still invalidates the detail (and logs the skip).
 *
 * `providers: [PropertyInvalidationStrategy]` uses the default layout;
 * `PropertyInvalidationStrategy.withLayout({ detail: 'prop:{id}' })` another one.
 */
@InvalidationStrategyFor('property.*')
export class PropertyInvalidationStrategy extends RuleBasedInvalidationStrategy {
  constructor(@Optional() @Inject(PROPERTY_KEY_LAYOUT) layout?: PropertyKeyLayout) {
    const l = { ...DEFAULT_PROPERTY_LAYOUT, ...layout };
    super('PropertyInvalidationStrategy', [
      ...layoutRule(['property.updated', 'property.state_changed', 'property.deleted'], { keys: [l.detail], tags: [l.tag] }),
      ...layoutRule(['property.deleted'], { keys: [l.score, l.timeline] }),
      ...layoutRule(['property.created', 'property.updated', 'property.state_changed', 'property.deleted'], { patterns: [l.list] }),
    ]);
  }

  /** `withLayout(layout, { cache: 'scores' })` applies it to a named cache (see strategyProvider). */
  static withLayout(layout: PropertyKeyLayout, options?: StrategyCacheOptions): Provider {
    return strategyProvider(PropertyInvalidationStrategy, () => new PropertyInvalidationStrategy(layout), options);
  }
}
