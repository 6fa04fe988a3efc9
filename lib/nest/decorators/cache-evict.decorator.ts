import { TieredCacheOptionsError } from '../../core/errors';
import type { CacheEvictOptions } from '../cache-decorator-options.interface';
import { checkCommonOptions, checkKeyOption, recordOperation, decoratorCache } from './cache-operations';

/**
 * Evicts keys, patterns, tags (or everything) after the method succeeds, or before it runs with
 * `beforeInvocation`. `@CacheEvict({ keys: ['property:{id}'], patterns: ['property-search:*'] })`
 */
export function CacheEvict(options: CacheEvictOptions): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    recordOperation('CacheEvict', target, propertyKey, descriptor, (ops, where) => {
      const o = options ?? {};
      for (const option of ['keys', 'patterns'] as const) {
        const v = o[option];
        if (v === undefined) continue;
        const list = typeof v === 'string' ? [v] : v;
        if (!Array.isArray(list)) throw new TieredCacheOptionsError(`${where} ${option}`, v, 'expected templates or functions');
        for (const k of list) checkKeyOption(where, option, k);
      }
      checkCommonOptions(where, { tags: o.tags });
      if (!o.keys && !o.patterns && !o.tags && !o.allEntries) {
        throw new TieredCacheOptionsError(`${where}`, o, 'name keys, patterns, tags or allEntries');
      }
      ops.evict.push({ ...o, cache: decoratorCache(where, o.cache) });
    });
  };
}
