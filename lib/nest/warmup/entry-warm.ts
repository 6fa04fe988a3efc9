import type { TieredCache } from '../../core/tiered-cache';
import type { SetOptions } from '../../core/tiered-cache-options.interface';
import type { CacheWarmerHandler, WarmupContext, WarmupEntry, WarmupMode } from './cache-warmer-options.interface';
import type { KeyOutcome } from './warmup-run';

/**
 * Warming through the warmer's own `load(id)`: the entries it returns are written with `set` (every tier a write
 * reaches), `true` means it filled the cache itself. In mode 'missing' the id's `key(id)` is looked up first, and
 * an id the cache holds is not loaded.
 */
export function entryWarm(handler: CacheWarmerHandler, engine: TieredCache, where: string): (id: unknown, mode: WarmupMode, context: WarmupContext) => Promise<KeyOutcome> {
  const load = handler.load as NonNullable<CacheWarmerHandler['load']>;
  return async (id, mode, context) => {
    if (mode === 'missing') {
      const key = (handler.key as (id: unknown) => unknown).call(handler, id);
      if (typeof key !== 'string' || key.length === 0) throw new TypeError(`${where}.key(${String(id)}) returned ${String(key)}, expected a cache key`);
      if (await engine.has(key)) return 'skipped';
    }
    const result = await load.call(handler, id, context);
    if (result === undefined || result === null || result === false) return 'skipped';
    if (result === true) return 'ok';
    const entries: readonly WarmupEntry[] = Array.isArray(result) ? result : [result as WarmupEntry];
    let stored = 0;
    for (const e of entries) {
      if (e === null || typeof e !== 'object' || typeof e.key !== 'string') {
        throw new TypeError(`${where}.load(${String(id)}) returned ${String(e)}, expected { key, value, ttl?, tags? } entries`);
      }
      const options: SetOptions = {};
      if (e.ttl !== undefined) options.ttl = e.ttl;
      if (e.l1Ttl !== undefined) options.l1Ttl = e.l1Ttl;
      if (e.grace !== undefined) options.grace = e.grace;
      if (e.tags !== undefined) options.tags = e.tags;
      if (await engine.set(e.key, e.value, options)) stored++;
    }
    return stored > 0 ? 'ok' : 'skipped';
  };
}
