// `nestjs-tiered-cache/compat`: @nestjs/cache-manager 3 / cache-manager 7's API on the tiered cache. Change the
// import path, keep the code. createCache and Cache load no Nest; the Nest parts load on first use (lazy-nest.ts).
export { Cache, type CacheEvents, type StoredDataRaw, type WrapOptions, type WrapOptionsRaw, type ValueOrFunction } from './cache';
export { createCache } from './create-cache';
export { CACHE_MANAGER, CACHE_KEY_METADATA, CACHE_TTL_METADATA, CACHE_MODULE_OPTIONS } from './cache.constants';
export type { CacheOptions, CacheModuleOptions, CacheModuleAsyncOptions, CacheOptionsFactory } from './cache-options.interface';
export { CacheRefreshDiscardedError } from './background-refresh';
export type { CacheKeyFactory } from './cache-key.decorator';
export type { CacheTTLFactory } from './cache-ttl.decorator';
export type { CacheHeaderValue } from './cache.interceptor';
export { CacheModule, CacheInterceptor, CacheKey, CacheTTL } from './lazy-nest';
