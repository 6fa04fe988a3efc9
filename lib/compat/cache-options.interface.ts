import type { ConfigurableModuleAsyncOptions, Provider, Type } from '@nestjs/common';
import type { TieredCacheOptions } from '../core/tiered-cache-options.interface';

/**
 * Options of `createCache()` and `CacheModule.register()`: the fields of cache-manager 7 / @nestjs/cache-manager 3
 * that mean something here, plus `tiered` for everything the engine can do. Anything else fails at boot.
 */
export interface CacheOptions {
  /**
   * Default TTL in **milliseconds** when a call gives none. `0` or absent: entries do not expire (as in
   * cache-manager). Mutually exclusive with `tiered.defaultTtl`.
   */
  ttl?: number;
  /** Namespace of every key (in Redis: `<namespace>:<key>`). Mutually exclusive with `tiered.keyPrefix` (default `cache:`). */
  namespace?: string;
  /** Default `refreshThreshold` of `wrap()` (ms): a hit with less TTL left is refreshed in the background. */
  refreshThreshold?: number;
  /**
   * `true`: `set` resolves once the in-process tier has the value and Redis writes are queued (the engine's
   * `writeBehind`). Without Redis it changes nothing. Mutually exclusive with `tiered.writeThrough` / `tiered.writeBehind`.
   */
  nonBlocking?: boolean;
  /** Accepted for compatibility; a refresh always writes every tier here. */
  refreshAllStores?: boolean;
  /** What `cacheId()` returns (default: random). */
  cacheId?: string;
  /**
   * CacheInterceptor: HTTP requests carrying one of these headers are neither served from nor stored in the
   * cache (`X-Cache: BYPASS`), since their response may belong to that caller. Default `true` =
   * `['authorization', 'cookie', 'proxy-authorization']`; a list replaces it; `false` turns the bypass off.
   */
  credentialBypass?: boolean | readonly string[];
  /** Any option of the engine (`redis`, `tiers`, `l1`, `bus`, `lock`, `resilience`, …): see TieredCacheOptions. */
  tiered?: TieredCacheOptions;
  /**
   * Not supported: Keyv stores cannot be tiers of this cache. The in-process tier is built in (`tiered.l1`),
   * Redis is `tiered.redis`, further tiers are `tiered.tiers`. Giving `stores` fails at boot saying so.
   */
  stores?: never;
}

/** `CacheModule.register()` options: CacheOptions, plus whether the module is global. */
export interface CacheModuleOptions extends CacheOptions {
  /** Register the module globally: CACHE_MANAGER is injectable everywhere (default false). */
  isGlobal?: boolean;
}

/** A class that supplies the options (`registerAsync({ useClass })` / `useExisting`). */
export interface CacheOptionsFactory {
  createCacheOptions(): Promise<CacheModuleOptions> | CacheModuleOptions;
}

/** `CacheModule.registerAsync()` options, as in @nestjs/cache-manager. */
export interface CacheModuleAsyncOptions extends ConfigurableModuleAsyncOptions<CacheModuleOptions, 'createCacheOptions'> {
  useExisting?: Type<CacheOptionsFactory>;
  useClass?: Type<CacheOptionsFactory>;
  /** Providers registered inside the module (what `useClass` or `useFactory` may inject). */
  extraProviders?: Provider[];
  /** Register the module globally (default false). */
  isGlobal?: boolean;
}
