import { ConfigurableModuleBuilder, Inject, Module, type DynamicModule, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Cache, cacheInternals } from './cache';
import { CACHE_MANAGER, CACHE_MODULE_OPTIONS } from './cache.constants';
import type { CacheModuleAsyncOptions, CacheModuleOptions } from './cache-options.interface';
import { buildCache } from './create-cache';

const { ConfigurableModuleClass } = new ConfigurableModuleBuilder<CacheModuleOptions>({ moduleName: 'Cache', optionsInjectionToken: CACHE_MODULE_OPTIONS })
  .setFactoryMethodName('createCacheOptions')
  .build();

/**
 * @nestjs/cache-manager's CacheModule on the tiered cache: `register(options)` or `registerAsync({ imports,
 * useFactory, inject, useClass, useExisting, extraProviders, isGlobal })`. Provides the `Cache` under
 * CACHE_MANAGER and under the `Cache` class. Invalid options (and `stores`) fail at boot, naming the option.
 * The cache connects at module init (bounded by `tiered.redis.connectTimeout`: boot never waits longer, and a
 * Redis that is down leaves the app on its in-process tier) and closes at application shutdown.
 */
@Module({
  providers: [
    { provide: CACHE_MANAGER, useFactory: (options: CacheModuleOptions) => buildCache(options, true), inject: [CACHE_MODULE_OPTIONS] },
    { provide: Cache, useExisting: CACHE_MANAGER },
  ],
  exports: [CACHE_MANAGER, Cache],
})
export class CacheModule extends ConfigurableModuleClass implements OnModuleInit, OnApplicationShutdown {
  // Whatever is bound to CACHE_MANAGER (a test may override it with a value of its own).
  constructor(@Inject(CACHE_MANAGER) private readonly cache: unknown) {
    super();
  }

  static override register(options: CacheModuleOptions = {}): DynamicModule {
    return { global: options.isGlobal, ...super.register(options) };
  }

  static override registerAsync(options: CacheModuleAsyncOptions): DynamicModule {
    const definition = super.registerAsync(options);
    return {
      global: options.isGlobal,
      ...definition,
      providers: options.extraProviders ? [...(definition.providers ?? []), ...options.extraProviders] : definition.providers,
    };
  }

  async onModuleInit(): Promise<void> {
    if (this.cache instanceof Cache) await cacheInternals(this.cache).connect();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.cache instanceof Cache) await cacheInternals(this.cache).close();
  }
}
