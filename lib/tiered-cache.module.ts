import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { EventInvalidationListener } from './invalidation/event-invalidation.listener';
import { InvalidationExplorer } from './invalidation/invalidation.explorer';
import { CacheManagerService } from './cache-manager.service';
import { TIERED_CACHE } from './constants';
import { ConfigurableModuleClass } from './tiered-cache.module-definition';
import { MethodCacheExplorer } from './method-cache.explorer';

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
  ],
  exports: [CacheManagerService, TIERED_CACHE],
})
export class TieredCacheModule extends ConfigurableModuleClass {}
