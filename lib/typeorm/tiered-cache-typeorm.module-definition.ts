import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { TieredCacheTypeOrmOptions } from './tiered-cache-typeorm-options.interface';

export const {
  ConfigurableModuleClass: TieredCacheTypeOrmConfigurableModule,
  MODULE_OPTIONS_TOKEN: TIERED_CACHE_TYPEORM_OPTIONS,
  OPTIONS_TYPE: TIERED_CACHE_TYPEORM_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: TIERED_CACHE_TYPEORM_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<TieredCacheTypeOrmOptions>().setClassMethodName('forRoot').build();
