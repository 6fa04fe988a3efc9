import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import type { CacheWarmerOptions } from './cache-warmer-options.interface';
import { CACHE_WARMER_METADATA } from './warmup.constants';
import { resolveWarmerOptions } from './warmer-options';

/**
 * Marks a provider as a cache warmer (it is also made `@Injectable()`): the module finds it at boot, runs it on
 * demand (`TieredCacheWarmup.run(name)`), at bootstrap (`onBootstrap`) and on a schedule (`cron`).
 *
 * `@CacheWarmer({ name: 'customers', method: 'getCustomer', cron: '0 2 * * *' })` on a class with a @Cacheable
 * `getCustomer(id)` and an `async *keys()`; or a class with `keys()` and `load(id)` (see CacheWarmerHandler).
 */
export function CacheWarmer(options: CacheWarmerOptions): ClassDecorator {
  return (target) => {
    const resolved = resolveWarmerOptions(target.name, options);
    Reflect.defineMetadata(CACHE_WARMER_METADATA, resolved, target);
    Injectable()(target);
  };
}
