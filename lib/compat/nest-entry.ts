// The parts of nestjs-tiered-cache/compat that need Nest. index.ts loads this file on first use only.
export { CacheModule } from './cache.module';
export { CacheInterceptor } from './cache.interceptor';
export { CacheKey } from './cache-key.decorator';
export { CacheTTL } from './cache-ttl.decorator';
