import { SetMetadata, type CustomDecorator, type ExecutionContext } from '@nestjs/common';
import { CACHE_KEY_METADATA } from './cache.constants';

/** A key computed per call (the request, message or event is in the context). A nil or empty key skips the cache. */
export type CacheKeyFactory = (ctx: ExecutionContext) => string | undefined | Promise<string | undefined>;

/**
 * The key CacheInterceptor caches a handler's result under, instead of the request URL (and the only key in
 * WebSocket and microservice handlers). The same metadata as @nestjs/cache-manager's `@CacheKey`: either
 * decorator works with either interceptor.
 */
export const CacheKey = (key: string | CacheKeyFactory): CustomDecorator<string> => SetMetadata(CACHE_KEY_METADATA, key);
