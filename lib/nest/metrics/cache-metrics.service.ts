import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { CacheManagerService } from '../cache-manager.service';
import type { TieredCacheOptions } from '../../core/tiered-cache-options.interface';
import { TIERED_CACHE_OPTIONS } from '../tiered-cache.module-definition';
import { attachCacheMetrics } from './cache-metrics';
import { resolveMetricsOptions } from './metrics-options';

/**
 * Registers the cache's Prometheus metrics in prom-client's default registry — the one
 * @willsoto/nestjs-prometheus serves on `/metrics` — when prom-client is installed. Without it the module
 * runs with metrics off; `metrics: true` turns that into a boot error instead.
 */
@Injectable()
export class CacheMetricsService implements OnApplicationShutdown {
  private readonly detach: (() => void) | undefined;

  constructor(@Inject(TIERED_CACHE_OPTIONS) options: TieredCacheOptions, cache: CacheManagerService) {
    this.detach = attachCacheMetrics(cache.engine, resolveMetricsOptions(options.metrics));
  }

  /** Whether metrics are being recorded. */
  get enabled(): boolean {
    return this.detach !== undefined;
  }

  onApplicationShutdown(): void {
    this.detach?.();
  }
}
