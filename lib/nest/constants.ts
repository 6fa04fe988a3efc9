/** Injection token of the Nest-free engine (`TieredCache`) behind CacheManagerService. */
export const TIERED_CACHE = Symbol('TIERED_CACHE');

/** Metadata key of the caching operations (`@Cacheable`, `@CacheEvict`, `@CachePut`) of a method. */
export const CACHE_OPERATIONS_METADATA = 'tiered-cache:operations';

/** Injection token of `TieredCacheInterceptorOptions` (optional). */
export const TIERED_CACHE_INTERCEPTOR_OPTIONS = Symbol('TIERED_CACHE_INTERCEPTOR_OPTIONS');
