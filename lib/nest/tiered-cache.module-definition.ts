import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { TieredCacheOptions } from '../core/tiered-cache-options.interface';
import { resolveCacheName } from './cache-name';
import { TIERED_CACHE_NAME } from './constants';

/**
 * `isGlobal` and `name` are extras: module-level settings, not cache options. The name must be known when the
 * module graph is built (it names the module's tokens), so forRootAsync takes it next to `useFactory`, not
 * from the factory.
 */
export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: TIERED_CACHE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<TieredCacheOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false, name: undefined as string | undefined }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
    providers: [...(definition.providers ?? []), { provide: TIERED_CACHE_NAME, useValue: resolveCacheName('name', extras.name) }],
  }))
  .build();
