import { Module } from '@nestjs/common';
import { CacheManagerService } from './cache-manager.service';
import { TIERED_CACHE } from './constants';
import { ConfigurableModuleClass } from './tiered-cache.module-definition';

/**
 * `TieredCacheModule.forRoot(options)` or `.forRootAsync({ imports, inject, useFactory, isGlobal })`.
 * With no `redis` option the cache is L1-only.
 */
@Module({
  providers: [
    CacheManagerService,
    { provide: TIERED_CACHE, useFactory: (svc: CacheManagerService) => svc.engine, inject: [CacheManagerService] },
  ],
  exports: [CacheManagerService, TIERED_CACHE],
})
export class TieredCacheModule extends ConfigurableModuleClass {}
