import { Inject, Injectable, Optional, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { GetOrSetOptions, SetOptions, TieredCacheOptions } from '../core/tiered-cache-options.interface';
import type { CacheStats } from '../core/stats';
import { TieredCache, type PatternInvalidationReport } from '../core/tiered-cache';
import { TIERED_CACHE_OPTIONS } from './tiered-cache.module-definition';
import { DEFAULT_CACHE_NAME, TIERED_CACHE_NAME } from './constants';
import { CacheRegistry } from './cache-registry';
import { nestCacheLogger } from './nest-cache-logger';

/**
 * The cache as Nest code sees it: a thin shell over the engine (`TieredCache`) that ties it to the module
 * lifecycle — connect on init, flush the write-behind queue and close connections on shutdown.
 */
@Injectable()
export class CacheManagerService implements OnModuleInit, OnApplicationShutdown {
  readonly engine: TieredCache;
  /** `forRoot({ name })`; `'default'` for the cache registered without one. */
  readonly name: string;

  constructor(
    @Inject(TIERED_CACHE_OPTIONS) options: TieredCacheOptions,
    @Optional() @Inject(TIERED_CACHE_NAME) name?: string,
    @Optional() registry?: CacheRegistry,
  ) {
    this.name = name ?? DEFAULT_CACHE_NAME;
    // A named cache gets a namespace of its own by default, so it never shares keys or a bus channel with another.
    const named = this.name !== DEFAULT_CACHE_NAME && options !== null && typeof options === 'object' && options.keyPrefix === undefined;
    // Invalid options throw here, so the app fails at boot with a message naming the option.
    // Without a logger of the app's own, the engine logs through Nest's.
    const withLogger = options?.logger === undefined ? { ...options, logger: nestCacheLogger() } : options;
    this.engine = new TieredCache(named ? { ...withLogger, keyPrefix: `${this.name}:` } : withLogger);
    try {
      registry?.register(this);
    } catch (err) {
      // Nothing is connected yet (connections are opened in onModuleInit); this releases the timers.
      void this.engine.close();
      throw err;
    }
  }

  async onModuleInit(): Promise<void> {
    await this.engine.connect();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.engine.close();
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.engine.get<T>(key);
  }

  set<T>(key: string, value: T, options?: SetOptions<T>): Promise<boolean> {
    return this.engine.set(key, value, options);
  }

  delete(keys: string | readonly string[]): Promise<number> {
    return this.engine.delete(keys);
  }

  has(key: string): Promise<boolean> {
    return this.engine.has(key);
  }

  ttl(key: string): Promise<number | undefined> {
    return this.engine.ttl(key);
  }

  mget<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return this.engine.mget<T>(keys);
  }

  mset(entries: ReadonlyArray<readonly [string, unknown]> | Record<string, unknown>, options?: SetOptions): Promise<number> {
    return this.engine.mset(entries, options);
  }

  getOrSet<T>(key: string, factory: () => T | Promise<T>, options?: GetOrSetOptions<T>): Promise<T> {
    return this.engine.getOrSet(key, factory, options);
  }

  /** Queued, batched invalidation (`invalidation.batchSize` / `maxDelay`); `delete` is immediate. */
  invalidate(keys: string | readonly string[]): Promise<void> {
    return this.engine.invalidate(keys);
  }

  /**
   * Removes every key matching a Redis glob. Build globs from user input with `escapeGlob`. With
   * `{ detailed: true }`, resolves to a report that says whether every Redis node was walked to the end.
   */
  invalidatePattern(glob: string): Promise<number>;
  invalidatePattern(glob: string, options: { detailed: true }): Promise<PatternInvalidationReport>;
  invalidatePattern(glob: string, options?: { detailed: true }): Promise<number | PatternInvalidationReport> {
    return options?.detailed ? this.engine.invalidatePattern(glob, { detailed: true }) : this.engine.invalidatePattern(glob);
  }

  invalidateTags(tags: string | readonly string[]): Promise<number> {
    return this.engine.invalidateTags(tags);
  }

  clear(): Promise<number> {
    return this.engine.clear();
  }

  flush(): Promise<void> {
    return this.engine.flush();
  }

  stats(): CacheStats {
    return this.engine.stats();
  }
}
