import { TieredCacheOptionsError } from '../../core/errors';
import type { CacheableOptions } from '../cache-decorator-options.interface';
import { checkCommonOptions, checkKeyOption, recordOperation, decoratorCache } from './cache-operations';

/**
 * Caches what the method resolves to. On a provider method every call is cached, whoever makes it (the
 * module wraps the instance at bootstrap); on a controller handler, TieredCacheInterceptor caches the
 * HTTP response. Concurrent calls with one key run the method once; errors are never cached.
 *
 * `@Cacheable({ keyPrefix: 'lead_score', ttl: '1h' })`, `@Cacheable({ key: 'property:{id}', tags: ['property'] })`
 */
export function Cacheable(options: CacheableOptions = {}): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    recordOperation('Cacheable', target, propertyKey, descriptor, (ops, where) => {
      if (ops.cacheable) throw new TypeError(`${where}: applied twice`);
      if (options.key !== undefined) checkKeyOption(where, 'key', options.key);
      if (options.keyPrefix !== undefined) {
        if (typeof options.keyPrefix !== 'string' || options.keyPrefix.length === 0 || options.keyPrefix.startsWith('__tc:')) {
          throw new TieredCacheOptionsError(`${where} keyPrefix`, options.keyPrefix, 'expected a non-empty string not starting with "__tc:"');
        }
        if (options.key !== undefined) throw new TieredCacheOptionsError(`${where} keyPrefix`, options.keyPrefix, 'give either key or keyPrefix, not both');
      }
      checkCommonOptions(where, options);
      if (options.vary !== undefined && (!Array.isArray(options.vary) || options.vary.some((h) => typeof h !== 'string' || h.length === 0))) {
        throw new TieredCacheOptionsError(`${where} vary`, options.vary, 'expected an array of header names');
      }
      ops.cacheable = { ...options, cache: decoratorCache(where, options.cache) };
    });
  };
}
