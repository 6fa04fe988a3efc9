/**
 * The part of a prom-client `Registry` the cache uses (structural, so these types do not require
 * prom-client to be installed).
 */
export interface MetricsRegistry {
  registerMetric(metric: unknown): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

export interface TieredCacheMetricsOptions {
  /**
   * Default: on when prom-client is installed, off (silently) when it is not. `true` makes a missing
   * prom-client a boot error; `false` turns metrics off.
   */
  enabled?: boolean;
  /**
   * Where the metrics are registered. Default: prom-client's default `register`, the one
   * @willsoto/nestjs-prometheus serves on `/metrics`.
   */
  registry?: MetricsRegistry;
  /**
   * Value of the `cache` label that tells several caches in one registry apart (default: the keyPrefix).
   * Keep it a fixed name: it is a label value.
   */
  name?: string;
  /** Buckets of `cache_operation_duration_seconds`, in seconds. */
  buckets?: number[];
}
