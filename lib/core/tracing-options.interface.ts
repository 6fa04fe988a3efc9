/**
 * The part of an OpenTelemetry `Span` the cache uses. Structural, so these types do not require
 * @opentelemetry/api to be installed; an OpenTelemetry span fits.
 */
export interface CacheSpan {
  setAttribute(key: string, value: string | number | boolean | string[]): unknown;
  recordException(exception: Error | string): void;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

/** The part of an OpenTelemetry `Tracer` the cache uses (structural: any `Tracer` of @opentelemetry/api fits). */
export interface CacheTracer {
  startSpan(name: string, options?: { attributes?: Record<string, string | number | boolean | string[]> }, context?: unknown): CacheSpan;
}

export interface TieredCacheTracingOptions {
  /**
   * Default: on when @opentelemetry/api is installed (spans go to whatever tracer provider is registered; without
   * one they are OpenTelemetry's no-op spans), off when it is not. `true` makes a missing @opentelemetry/api a
   * boot error; `false` turns tracing off (no span, no wrapper: the calls run exactly as without tracing).
   */
  enabled?: boolean;
  /** The tracer to use. Default: `trace.getTracer('nestjs-tiered-cache')` of the global tracer provider. */
  tracer?: CacheTracer;
  /**
   * Default false: a get or getOrSet that L1 answers (about 100 ns) gets no span; a span would cost more than
   * the hit. `true` gives every L1 hit a span too (decorator and HTTP hits included).
   */
  l1Hits?: boolean;
  /**
   * Default false: no key, pattern or tag is put on a span (they may carry user ids, e-mails, tenants). `true` adds
   * `cache.key`, `cache.pattern` and `cache.tags`.
   */
  recordKeys?: boolean;
}
