import { CacheManagerService } from './cache-manager.service';
import { resolveCacheName } from './cache-name';
import { DEFAULT_CACHE_NAME } from './constants';
import { TieredCacheHealthIndicator } from './health/tiered-cache.health';

/**
 * Injection token of a cache's CacheManagerService: the class itself for the default cache (so
 * `@InjectCache()` and plain `constructor(cache: CacheManagerService)` are the same thing), a string for a
 * named one, as `getDataSourceToken` / `getConnectionToken` do for named TypeORM / Mongoose connections.
 */
export function getCacheToken(name?: string): typeof CacheManagerService | string {
  const n = resolveCacheName('getCacheToken', name);
  return n === DEFAULT_CACHE_NAME ? CacheManagerService : `CacheManagerService:${n}`;
}

/** Injection token of a cache's TieredCacheHealthIndicator (the class for the default cache). */
export function getCacheHealthIndicatorToken(name?: string): typeof TieredCacheHealthIndicator | string {
  const n = resolveCacheName('getCacheHealthIndicatorToken', name);
  return n === DEFAULT_CACHE_NAME ? TieredCacheHealthIndicator : `TieredCacheHealthIndicator:${n}`;
}
