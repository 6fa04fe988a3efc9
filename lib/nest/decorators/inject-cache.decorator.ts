import { Inject } from '@nestjs/common';
import { getCacheToken } from '../cache-tokens';

/**
 * Injects a cache's CacheManagerService: `@InjectCache('scores') private readonly scores: CacheManagerService`.
 * Without a name, the default cache (the same as injecting CacheManagerService by type).
 */
export function InjectCache(name?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getCacheToken(name));
}
