import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { CacheManagerService } from '../cache-manager.service';
import { eventName } from './event-pattern';
import { findEventEmitter, type AnyEventListener, type EventEmitterLike } from './event-emitter-lookup';
import { InvalidationExplorer } from './invalidation.explorer';
import { compileRules, type CompiledRule } from './invalidation-rule';
import { applyRules } from './rule-runner';
import { TIERED_CACHE_OPTIONS } from '../tiered-cache.module-definition';
import type { TieredCacheOptions } from '../../core/tiered-cache-options.interface';
import { engineInternals } from '../../core/tiered-cache';

/**
 * Routes every event of the app's EventEmitter2 (from `EventEmitterModule`, optional) to the matching
 * `invalidationRules` and `@InvalidationStrategyFor` strategies. The emitter is never broken: this listener
 * returns a promise that does not reject (so `emitAsync` callers may wait for the invalidation).
 */
@Injectable()
export class EventInvalidationListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private emitter: EventEmitterLike | undefined;
  private readonly listener: AnyEventListener = (event, ...values) => this.handle(eventName(event), values[0]);
  /** `invalidationRules`, compiled at boot: a bad rule fails the app's start with a message naming it. */
  private readonly rules: readonly CompiledRule[];

  constructor(
    private readonly cache: CacheManagerService,
    private readonly explorer: InvalidationExplorer,
    private readonly moduleRef: ModuleRef,
    @Inject(TIERED_CACHE_OPTIONS) options: TieredCacheOptions,
  ) {
    this.rules = compileRules('invalidationRules', options.invalidationRules);
  }

  onApplicationBootstrap(): void {
    const hasWork = this.rules.length > 0 || this.explorer.strategies.length > 0;
    if (!hasWork) return;
    this.emitter = findEventEmitter(this.moduleRef);
    if (this.emitter) this.emitter.onAny(this.listener);
    else {
      engineInternals(this.cache.engine).log('warn', 'no-event-emitter', 'invalidation rules or strategies are configured but EventEmitterModule is not imported; they will not run');
    }
  }

  onApplicationShutdown(): void {
    this.emitter?.offAny(this.listener);
    this.emitter = undefined;
  }

  /** Applies what `event` invalidates; resolves to the number of entries removed. Never rejects. */
  async handle(event: string, payload: unknown): Promise<number> {
    const engine = this.cache.engine;
    const counters = engine.invalidationCounters;
    const rules = this.rules;
    const strategies = this.explorer.strategies.filter((s) => {
      if (!s.matches(event)) return false;
      try {
        return s.instance.supports(event, payload);
      } catch (err) {
        this.strategyFailed(s.name, event, err);
        return false;
      }
    });
    const ruleHit = rules.some((r) => r.matches(event));
    if (!ruleHit && strategies.length === 0) return 0;
    counters.events++;
    engineInternals(engine).noteInvalidation('event');
    const jobs: Array<Promise<number>> = [];
    if (ruleHit) jobs.push(applyRules(engine, rules, event, payload));
    for (const s of strategies) {
      counters.strategyRuns++;
      jobs.push(
        Promise.resolve()
          .then(() => s.instance.invalidate(event, payload, this.cache))
          .then(
            (n) => {
              const removed = typeof n === 'number' && Number.isFinite(n) ? n : 0;
              counters.removed += removed;
              return removed;
            },
            (err: unknown) => {
              this.strategyFailed(s.name, event, err);
              return 0;
            },
          ),
      );
    }
    const counts = await Promise.all(jobs);
    return counts.reduce((a, b) => a + b, 0);
  }

  private strategyFailed(name: string, event: string, err: unknown): void {
    this.cache.engine.invalidationCounters.strategyFailures++;
    const msg = err instanceof Error ? err.message : String(err);
    engineInternals(this.cache.engine).log('error', `strategy:${name}`, `invalidation strategy ${name} failed for event "${event}": ${msg}`);
  }
}
