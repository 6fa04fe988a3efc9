import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { INVALIDATION_STRATEGY_EVENTS } from './constants';
import { compileEventPatterns, type EventMatcher } from './event-pattern';
import type { InvalidationStrategy } from './invalidation-strategy.interface';

export interface DiscoveredStrategy {
  readonly name: string;
  readonly matches: EventMatcher;
  readonly instance: InvalidationStrategy;
}

/** Finds every provider marked with `@InvalidationStrategyFor`, in any module of the app. */
@Injectable()
export class InvalidationExplorer implements OnModuleInit {
  private readonly logger = new Logger('TieredCache');
  strategies: DiscoveredStrategy[] = [];

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    this.strategies = this.explore();
  }

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
      if (!wrapper.isDependencyTreeStatic()) {
        this.logger.error(`${name} is request-scoped; invalidation strategies must be singletons. It is ignored.`);
        continue;
      }
      if (typeof s.supports !== 'function' || typeof s.invalidate !== 'function') {
        throw new TypeError(`${name} is marked @InvalidationStrategyFor but does not implement supports() and invalidate()`);
      }
      found.push({ name, matches: compileEventPatterns(events), instance: instance as InvalidationStrategy });
    }
    return found;
  }
}
