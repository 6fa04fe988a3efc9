import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { CacheManagerService } from '../cache-manager.service';
import type { TieredCacheOptions } from '../../core/tiered-cache-options.interface';
import { TIERED_CACHE_OPTIONS } from '../tiered-cache.module-definition';
import { attachCacheMetrics } from './cache-metrics';
import { resolveMetricsOptions } from './metrics-options';
import { DEFAULT_CACHE_NAME } from '../constants';

/**
 * Registers the cache's Prometheus metrics in prom-client's default registry — the one
 * @willsoto/nestjs-prometheus serves on `/metrics` — when prom-client is installed. Without it the module
 * runs with metrics off; `metrics: true` turns that into a boot error instead. Several caches of an app share
 * one set of metric objects per registry, their series told apart by the `cache` label.
 */
@Injectable()
export class CacheMetricsService implements OnApplicationShutdown {
  private readonly detach: (() => void) | undefined;

  constructor(@Inject(TIERED_CACHE_OPTIONS) options: TieredCacheOptions, cache: CacheManagerService) {
    const metrics = resolveMetricsOptions(options.metrics);
    // The `cache` label: metrics.name, else a named cache's name; the default cache keeps its keyPrefix
    // (the label it always had, which existing dashboards select on).
    const named = cache.name !== DEFAULT_CACHE_NAME && metrics.name === undefined;
    this.detach = attachCacheMetrics(cache.engine, named ? { ...metrics, name: cache.name } : metrics);
  }

  /** Whether metrics are being recorded. */
  get enabled(): boolean {
    return this.detach !== undefined;
  }

  onApplicationShutdown(): void {
    this.detach?.();
  }
}
