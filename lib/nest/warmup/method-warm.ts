import type { TieredCache } from '../../core/tiered-cache';
import type { GetOrSetOptions } from '../../core/tiered-cache-options.interface';
import { MethodFailure, NotStored } from '../cache-invocation';
import type { CompiledCacheable } from '../method-cache.wrapper';
import type { WarmupMode } from './cache-warmer-options.interface';
import type { KeyOutcome } from './warmup-run';

/**
 * Warming through a @Cacheable method: its own key, TTL and tags, its condition and unless. 'refresh' calls the
 * method as written (not its cached wrapper, which would answer from the cache) and writes the result with `set`,
 * as @CachePut does; 'missing' goes through `getOrSet` as a cached call would, so a key any tier holds is not
 * loaded again, and a fill an invalidation overtook is not stored (the fill fence).
 */
export function methodWarm(
  c: CompiledCacheable,
  engine: TieredCache,
  instance: object,
  argsOf: (id: unknown) => readonly unknown[],
): (id: unknown, mode: WarmupMode) => Promise<KeyOutcome> {
  const storable = (v: unknown): boolean => v !== undefined && (v !== null || engine.options.cacheNullValues);
  return async (id, mode) => {
    const args = argsOf(id);
    if (!Array.isArray(args)) throw new TypeError(`args(${String(id)}) returned ${String(args)}, expected an argument list`);
    if (c.condition !== undefined && c.condition(...args) !== true) return 'skipped';
    const key = c.keyOf(args);
    if (mode === 'refresh') {
      const result = await c.original.apply(instance, args as unknown[]);
      if (c.unless !== undefined && c.unless(result) === true) return 'skipped';
      const options = c.dynamicTags ? { ...c.base, tags: c.dynamicTags(args, result) } : c.base;
      return (await engine.set(key, result as never, options)) ? 'ok' : 'skipped';
    }
    // The engine reads the options when it stores: tags that depend on the result are filled in by the factory.
    const options: GetOrSetOptions<never> = c.dynamicTags ? { ...c.base } : c.base;
    let loaded = false;
    try {
      await engine.getOrSet<unknown>(
        key,
        async () => {
          let result: unknown;
          try {
            result = await c.original.apply(instance, args as unknown[]);
          } catch (err) {
            throw new MethodFailure(err);
          }
          if (c.unless !== undefined && c.unless(result) === true) throw new NotStored(result);
          if (c.dynamicTags) (options as { tags?: readonly string[] }).tags = c.dynamicTags(args, result);
          loaded = storable(result);
          return result;
        },
        options as GetOrSetOptions<unknown>,
      );
    } catch (err) {
      if (err instanceof MethodFailure) throw err.error;
      if (err instanceof NotStored) return 'skipped';
      throw err;
    }
    return loaded ? 'ok' : 'skipped';
  };
}
