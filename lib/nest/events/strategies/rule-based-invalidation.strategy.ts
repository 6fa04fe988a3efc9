import type { Provider } from '@nestjs/common';
import type { CacheManagerService } from '../../cache-manager.service';
import { resolveCacheName } from '../../cache-name';
import { DEFAULT_CACHE_NAME } from '../../constants';
import { INVALIDATION_STRATEGY_CACHE } from '../constants';
import type { InvalidationRule } from '../../../core/tiered-cache-options.interface';
import { compileRules, type CompiledRule } from '../invalidation-rule';
import type { InvalidationStrategy } from '../invalidation-strategy.interface';
import { applyRules } from '../rule-runner';

/**
 * A strategy made of declarative rules: the base of the ready-made Property/Score/Timeline strategies, and a
 * way to package rules as a provider. Rules are validated when the strategy is constructed (at boot).
 */
export class RuleBasedInvalidationStrategy implements InvalidationStrategy {
  protected readonly rules: CompiledRule[];

  constructor(name: string, rules: InvalidationRule[]) {
    this.rules = compileRules(name, rules);
  }

  supports(event: string): boolean {
    return this.rules.some((r) => r.matches(event));
  }

  invalidate(event: string, payload: unknown, cache: CacheManagerService): Promise<number> {
    return applyRules(cache.engine, this.rules, event, payload);
  }
}

/** A template, or `false` to leave that cache out. */
export type LayoutEntry = string | false;

/** Builds the rule for `events` from the layout entries that are not turned off. */
export function layoutRule(event: string[], parts: { keys?: LayoutEntry[]; patterns?: LayoutEntry[]; tags?: LayoutEntry[] }): InvalidationRule[] {
  const on = (l: LayoutEntry[] | undefined) => (l ?? []).filter((x): x is string => typeof x === 'string');
  const rule: InvalidationRule = { event, keys: on(parts.keys), patterns: on(parts.patterns), tags: on(parts.tags) };
  return rule.keys!.length + rule.patterns!.length + rule.tags!.length > 0 ? [rule] : [];
}

/** Where a ready-made strategy provider applies its rules. */
export interface StrategyCacheOptions {
  /** The cache it invalidates (`forRoot({ name })`). Default: the default cache. */
  cache?: string;
}

/**
 * Points one strategy instance at a named cache, over what its class's `@InvalidationStrategyFor` says: for a
 * factory provider of a class that serves several caches (each instance its own provider token).
 */
export function invalidatesCache<T extends object>(strategy: T, cache: string): T {
  Reflect.defineMetadata(INVALIDATION_STRATEGY_CACHE, resolveCacheName('invalidatesCache', cache), strategy);
  return strategy;
}

/**
 * The provider `withLayout(layout, { cache })` returns: the class itself as token for the default cache (as
 * `providers: [TheStrategy]`), `'<Class>:<cache>'` for a named one, so one app can run the strategy for
 * several caches.
 */
export function strategyProvider(type: abstract new (...args: never[]) => object, make: () => object, options: StrategyCacheOptions | undefined): Provider {
  const cache = resolveCacheName('withLayout cache', options?.cache);
  if (cache === DEFAULT_CACHE_NAME) return { provide: type, useFactory: make };
  return { provide: `${type.name}:${cache}`, useFactory: () => invalidatesCache(make(), cache) };
}
