import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { EventInvalidationListener } from './invalidation/event-invalidation.listener';
import { InvalidationExplorer } from './invalidation/invalidation.explorer';
import { CacheManagerService } from './cache-manager.service';
import { TIERED_CACHE } from './constants';
import { ConfigurableModuleClass } from './tiered-cache.module-definition';
import { MethodCacheExplorer } from './method-cache.explorer';
import { TieredCacheHealthIndicator } from './health/tiered-cache.health';
import { CacheMetricsService } from './metrics/cache-metrics.service';

/**
 * `TieredCacheModule.forRoot(options)` or `.forRootAsync({ imports, inject, useFactory, isGlobal })`.
 * With no `redis` option the cache is L1-only.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    MethodCacheExplorer,
    CacheManagerService,
    InvalidationExplorer,
    EventInvalidationListener,
    { provide: TIERED_CACHE, useFactory: (svc: CacheManagerService) => svc.engine, inject: [CacheManagerService] },
    // Optional peers (terminus, prom-client) are loaded lazily by these two; without them they stay idle.
    TieredCacheHealthIndicator,
    CacheMetricsService,
  ],
  exports: [CacheManagerService, TIERED_CACHE, TieredCacheHealthIndicator, CacheMetricsService],
})
export class TieredCacheModule extends ConfigurableModuleClass {}
