import type { CachePutOptions } from '../cache-decorator-options.interface';
import { checkCommonOptions, checkKeyOption, recordOperation, decoratorCache } from './cache-operations';

/** Always runs the method, then stores its result under `key` (for provider methods). */
export function CachePut(options: CachePutOptions): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    recordOperation('CachePut', target, propertyKey, descriptor, (ops, where) => {
      if (ops.put) throw new TypeError(`${where}: applied twice`);
      checkKeyOption(where, 'key', options?.key);
      checkCommonOptions(where, options);
      ops.put = { ...options, cache: decoratorCache(where, options.cache) };
    });
  };
}
