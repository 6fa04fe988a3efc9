/**
 * Injection tokens and metadata keys, spelled as @nestjs/cache-manager 3 spells them: an app that still imports
 * some of them (or `@CacheKey` / `@CacheTTL`) from there resolves and decorates the same things as this package.
 * Plain strings, so this file needs no Nest.
 */

/** Injection token of the `Cache` (`@Inject(CACHE_MANAGER) cache: Cache`). */
export const CACHE_MANAGER = 'CACHE_MANAGER';

/** Metadata key written by `@CacheKey()` and read by `CacheInterceptor`. */
export const CACHE_KEY_METADATA = 'cache_module:cache_key';

/** Metadata key written by `@CacheTTL()` and read by `CacheInterceptor`. */
export const CACHE_TTL_METADATA = 'cache_module:cache_ttl';

/** Injection token of the options given to `CacheModule.register()` / `registerAsync()`. */
export const CACHE_MODULE_OPTIONS = 'CACHE_MODULE_OPTIONS';
