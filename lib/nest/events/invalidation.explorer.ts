import { Inject, Injectable, Logger, Optional, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { INVALIDATION_STRATEGY_CACHE, INVALIDATION_STRATEGY_EVENTS } from './constants';
import { compileEventPatterns, type EventMatcher } from './event-pattern';
import type { InvalidationStrategy } from './invalidation-strategy.interface';
import { DEFAULT_CACHE_NAME, TIERED_CACHE_NAME } from '../constants';
import { CacheRegistry } from '../cache-registry';
import { describeCache } from '../cache-name';

export interface DiscoveredStrategy {
  readonly name: string;
  readonly matches: EventMatcher;
  readonly instance: InvalidationStrategy;
  /** The cache it invalidates. */
  readonly cache: string;
}

/**
 * Finds every provider marked with `@InvalidationStrategyFor`, in any module of the app. Each cache's explorer
 * keeps the strategies aimed at its cache (`strategies`), so a strategy runs once per event, against its cache.
 */
@Injectable()
export class InvalidationExplorer implements OnModuleInit {
  private readonly logger = new Logger('TieredCache');
  /** This cache's strategies (filled at module init). */
  strategies: DiscoveredStrategy[] = [];
  private readonly cacheName: string;

  constructor(
    private readonly discovery: DiscoveryService,
    @Optional() @Inject(TIERED_CACHE_NAME) cacheName?: string,
    @Optional() private readonly registry?: CacheRegistry,
  ) {
    this.cacheName = cacheName ?? DEFAULT_CACHE_NAME;
  }

  onModuleInit(): void {
    const all = this.explore();
    for (const s of all) {
      if (s.cache === this.cacheName || this.registry?.get(s.cache) !== undefined) continue;
      const known = this.registry?.names() ?? [this.cacheName];
      throw new TypeError(
        `${s.name} invalidates ${describeCache(s.cache)}, which this app does not register (caches: ${known.map((n) => `'${n}'`).join(', ')})`,
      );
    }
    this.strategies = all.filter((s) => s.cache === this.cacheName);
  }

  /** Every strategy of the app, whatever cache it is aimed at. */
  explore(): DiscoveredStrategy[] {
    const found: DiscoveredStrategy[] = [];
    const seen = new Set<unknown>();
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object' || seen.has(instance)) continue;
      const events = Reflect.getMetadata(INVALIDATION_STRATEGY_EVENTS, instance.constructor) as string[] | undefined;
      if (!events) continue;
      seen.add(instance);
      const name = instance.constructor.name;
      const s = instance as Partial<InvalidationStrategy>;
      // An instance pointed at a cache (invalidatesCache) overrides its class's decorator.
      const cache = (Reflect.getOwnMetadata(INVALIDATION_STRATEGY_CACHE, instance) ?? Reflect.getMetadata(INVALIDATION_STRATEGY_CACHE, instance.constructor) ?? DEFAULT_CACHE_NAME) as string;
      if (!wrapper.isDependencyTreeStatic()) {
        // Reported by the strategy's own cache only, not once per cache of the app.
        if (cache === this.cacheName) this.logger.error(`${name} is request-scoped; invalidation strategies must be singletons. It is ignored.`);
        continue;
      }
      if (typeof s.supports !== 'function' || typeof s.invalidate !== 'function') {
        throw new TypeError(`${name} is marked @InvalidationStrategyFor but does not implement supports() and invalidate()`);
      }
      found.push({ name, matches: compileEventPatterns(events), instance: instance as InvalidationStrategy, cache });
    }
    return found;
  }
}
