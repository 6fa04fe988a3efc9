import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { TieredCacheOptions } from '../core/tiered-cache-options.interface';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: TIERED_CACHE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<TieredCacheOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
