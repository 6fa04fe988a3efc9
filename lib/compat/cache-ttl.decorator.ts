import { SetMetadata, type CustomDecorator, type ExecutionContext } from '@nestjs/common';
import { CACHE_TTL_METADATA } from './cache.constants';

/** A TTL computed per call, in milliseconds. */
export type CacheTTLFactory = (ctx: ExecutionContext) => number | Promise<number>;

/**
 * TTL in **milliseconds** of what CacheInterceptor caches for a handler, or for every handler of a controller
 * (a handler's own wins); 0 = no expiry. The same metadata as @nestjs/cache-manager's `@CacheTTL`.
 */
export const CacheTTL = (ttl: number | CacheTTLFactory): CustomDecorator<string> => SetMetadata(CACHE_TTL_METADATA, ttl);
