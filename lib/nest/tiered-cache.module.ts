import { Module, RequestMethod, type DynamicModule, type MiddlewareConsumer, type NestModule, type Provider } from '@nestjs/common';
import { DiscoveryModule, HttpAdapterHost } from '@nestjs/core';
import { EventInvalidationListener } from './events/event-invalidation.listener';
import { InvalidationExplorer } from './events/invalidation.explorer';
import { CacheManagerService } from './cache-manager.service';
import { DEFAULT_CACHE_NAME, TIERED_CACHE } from './constants';
import { ASYNC_OPTIONS_TYPE, ConfigurableModuleClass, OPTIONS_TYPE } from './tiered-cache.module-definition';
import { resolveCacheName } from './cache-name';
import { TieredCacheRegistryModule } from './cache-registry';
import { getCacheHealthIndicatorToken, getCacheToken } from './cache-tokens';
import { cacheFeatureModule } from './cache-feature.module';
import { MethodCacheExplorer } from './method-cache.explorer';
import { TieredCacheHealthIndicator } from './health/tiered-cache.health';
import { CacheMetricsService } from './metrics/cache-metrics.service';
import { HttpFastPath, HttpFastPathMiddleware } from './http/http-fast-path';
import { engineInternals } from '../core/tiered-cache';
import { TieredCacheWarmup } from './warmup/tiered-cache-warmup.service';
import { TIERED_CACHE_WARMUP } from './warmup/warmup.constants';
import { WarmupExplorer } from './warmup/warmup.explorer';
import { WarmupMetadataAccessor } from './warmup/warmup-metadata.accessor';
import { WarmupOrchestrator } from './warmup/warmup.orchestrator';
import { WarmupRegistry } from './warmup/warmup.registry';

/**
 * `TieredCacheModule.forRoot(options)` or `.forRootAsync({ imports, inject, useFactory, isGlobal })`.
 * With no `redis` option the cache is L1-only. `name` registers a named cache (several per app, each with
 * its own options); `forFeature(name)` makes one injectable in a feature module.
 */
@Module({
  imports: [DiscoveryModule, TieredCacheRegistryModule],
  providers: [
    MethodCacheExplorer,
    CacheManagerService,
    InvalidationExplorer,
    EventInvalidationListener,
    { provide: TIERED_CACHE, useFactory: (svc: CacheManagerService) => svc.engine, inject: [CacheManagerService] },
    // Optional peers (terminus, prom-client) are loaded lazily by these two; without them they stay idle.
    TieredCacheHealthIndicator,
    CacheMetricsService,
    // Always provided (options may come from forRootAsync, known only once resolved); idle unless http.fastPath.
    HttpFastPath,
    // @CacheWarmer providers: found at init, scheduled at bootstrap, run on demand through TieredCacheWarmup.
    WarmupMetadataAccessor,
    WarmupExplorer,
    WarmupRegistry,
    WarmupOrchestrator,
    TieredCacheWarmup,
    { provide: TIERED_CACHE_WARMUP, useExisting: TieredCacheWarmup },
  ],
  // Exports depend on the name (see withExports): a named cache must not export the class tokens, or with
  // isGlobal it would shadow the default cache wherever CacheManagerService is injected by type.
})
export class TieredCacheModule extends ConfigurableModuleClass implements NestModule {
  static override forRoot(options: typeof OPTIONS_TYPE): DynamicModule {
    return withExports(super.forRoot(options), options.name);
  }

  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    return withExports(super.forRootAsync(options), options.name);
  }

  /**
   * No cache of its own: makes caches registered by forRoot elsewhere in the app injectable here
   * (`forFeature('scores')`; no name: the default cache), without making the root module global.
   */
  static forFeature(...names: string[]): DynamicModule {
    return cacheFeatureModule(names);
  }

  constructor(
    private readonly fastPath: HttpFastPath,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    super();
  }

  configure(consumer: MiddlewareConsumer): void {
    const fastPath = this.fastPath;
    if (!fastPath.enabled) return;
    const adapter = this.adapterHost.httpAdapter as { getType?(): string } | undefined;
    const type = adapter?.getType?.();
    if (type !== 'express') {
      engineInternals(fastPath.engine).log('warn', 'http-fast-path', `http.fastPath is for Express only; this app runs on ${type ?? 'no HTTP adapter'}, so it stays off`);
      return;
    }
    if (fastPath.engine.l1 === undefined) {
      engineInternals(fastPath.engine).log('warn', 'http-fast-path', 'http.fastPath answers from L1, which is disabled (l1.enabled: false), so it stays off');
      return;
    }
    fastPath.activate();
    // RequestMethod.ALL: Nest then mounts the middleware as it is, with no method filter of its own in front.
    // '*' is Nest's spelling of "every route" (converted to path-to-regexp v8's '/{*path}' without a warning).
    consumer.apply(HttpFastPathMiddleware).forRoutes({ path: '*', method: RequestMethod.ALL });
  }
}

/** The default cache exports its class tokens; a named one its name's tokens only. */
function withExports(definition: DynamicModule, name: string | undefined): DynamicModule {
  const n = resolveCacheName('name', name);
  if (n === DEFAULT_CACHE_NAME) {
    return { ...definition, exports: [...(definition.exports ?? []), CacheManagerService, TIERED_CACHE, TieredCacheHealthIndicator, CacheMetricsService, HttpFastPath, TieredCacheWarmup, TIERED_CACHE_WARMUP] };
  }
  const aliases: Provider[] = [
    { provide: getCacheToken(n), useExisting: CacheManagerService },
    { provide: getCacheHealthIndicatorToken(n), useExisting: TieredCacheHealthIndicator },
  ];
  return {
    ...definition,
    providers: [...(definition.providers ?? []), ...aliases],
    exports: [...(definition.exports ?? []), ...aliases.map((a) => (a as { provide: string }).provide)],
  };
}
