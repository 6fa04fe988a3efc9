/** Injection token of the Nest-free engine (`TieredCache`) behind CacheManagerService. */
export const TIERED_CACHE = Symbol('TIERED_CACHE');

/** Metadata key of the caching operations (`@Cacheable`, `@CacheEvict`, `@CachePut`) of a method. */
export const CACHE_OPERATIONS_METADATA = 'tiered-cache:operations';

/** Injection token of `TieredCacheInterceptorOptions` (optional). */
export const TIERED_CACHE_INTERCEPTOR_OPTIONS = Symbol('TIERED_CACHE_INTERCEPTOR_OPTIONS');

/** Name of the cache registered without a `name` (what `@InjectCache()` and decorators without `cache` use). */
export const DEFAULT_CACHE_NAME = 'default';

/** Injection token of a TieredCacheModule instance's cache name (`forRoot({ name })`, `'default'` without one). */
export const TIERED_CACHE_NAME = Symbol('TIERED_CACHE_NAME');
