import { Module, type DynamicModule, type FactoryProvider } from '@nestjs/common';
import { resolveCacheName } from './cache-name';
import { CacheRegistry, TieredCacheRegistryModule } from './cache-registry';
import { getCacheToken } from './cache-tokens';
import { DEFAULT_CACHE_NAME } from './constants';

/** What `TieredCacheModule.forFeature()` returns: no cache of its own, only access to caches registered at root. */
@Module({})
export class TieredCacheFeatureModule {}

/**
 * Makes caches registered by `forRoot` elsewhere in the app injectable in the importing module (by
 * `@InjectCache(name)`, or by type for the default cache), the way `TypeOrmModule.forFeature([...], name)`
 * makes a named connection's repositories available: the root module need not be global. The caches are
 * looked up by name in the app's registry, wherever in the module graph they are registered.
 */
export function cacheFeatureModule(names: readonly string[]): DynamicModule {
  const wanted = names.length === 0 ? [DEFAULT_CACHE_NAME] : [...new Set(names.map((n) => resolveCacheName('forFeature', n)))];
  const providers: FactoryProvider[] = wanted.map((name) => ({
    provide: getCacheToken(name),
    useFactory: (registry: CacheRegistry) => registry.whenRegistered(name, 'forFeature'),
    inject: [CacheRegistry],
  }));
  return { module: TieredCacheFeatureModule, imports: [TieredCacheRegistryModule], providers, exports: providers.map((p) => p.provide) };
}
