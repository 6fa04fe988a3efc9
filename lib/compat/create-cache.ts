import { TieredCache } from '../core/tiered-cache';
import { attachCacheMetrics } from '../nest/metrics/cache-metrics';
import { resolveMetricsOptions } from '../nest/metrics/metrics-options';
import { Cache, cacheInternals } from './cache';
import type { CacheOptions } from './cache-options.interface';
import { resolveCacheOptions } from './compat-options';

/**
 * cache-manager 7's `createCache()`, without Nest: the cache is usable at once (operations made while it
 * connects wait for the connection, at most `tiered.redis.connectTimeout`). `disconnect()` closes it.
 * Prometheus metrics are attached only when `tiered.metrics` asks for them.
 */
export function createCache(options?: CacheOptions): Cache {
  const cache = buildCache(options, false);
  void cacheInternals(cache).connect();
  return cache;
}

/**
 * A Cache that is not connected yet (CacheModule connects it at init). `metricsByDefault`: metrics on when
 * prom-client is installed and `tiered.metrics` does not say otherwise, as TieredCacheModule does.
 */
export function buildCache(options: CacheOptions | undefined, metricsByDefault: boolean): Cache {
  const { engine, settings } = resolveCacheOptions(options);
  const metrics = resolveMetricsOptions(engine.metrics);
  const tiered = new TieredCache(engine);
  const cache = new Cache(tiered, settings);
  if (metrics.enabled !== false && (metricsByDefault || engine.metrics !== undefined)) {
    let detach: (() => void) | undefined;
    try {
      detach = attachCacheMetrics(tiered, metrics);
    } catch (err) {
      void tiered.close();
      throw err;
    }
    if (detach !== undefined) cacheInternals(cache).onClose(detach);
  }
  return cache;
}
