/** Injection token of the Nest-free engine (`TieredCache`) behind CacheManagerService. */
export const TIERED_CACHE = Symbol('TIERED_CACHE');
