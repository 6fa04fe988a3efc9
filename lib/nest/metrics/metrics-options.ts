import { TieredCacheOptionsError } from '../../core/errors';
import type { TieredCacheMetricsOptions } from '../../core/metrics-options.interface';

/** Validates the `metrics` option at boot; errors name the option. */
export function resolveMetricsOptions(input: unknown): TieredCacheMetricsOptions {
  if (input === undefined) return {};
  if (typeof input === 'boolean') return { enabled: input };
  if (input === null || typeof input !== 'object') throw new TieredCacheOptionsError('metrics', input, 'expected true, false or an options object');
  const o = input as Record<string, unknown>;
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw new TieredCacheOptionsError('metrics.enabled', o.enabled, 'expected true or false');
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 100)) {
    throw new TieredCacheOptionsError('metrics.name', o.name, 'expected a short non-empty string (it is a label value)');
  }
  const r = o.registry as Record<string, unknown> | undefined;
  if (r !== undefined && (r === null || typeof r !== 'object' || typeof r.registerMetric !== 'function' || typeof r.getSingleMetric !== 'function')) {
    throw new TieredCacheOptionsError('metrics.registry', r, 'expected a prom-client Registry');
  }
  const b = o.buckets;
  if (b !== undefined) {
    const ok = Array.isArray(b) && b.length > 0 && b.every((x, i) => typeof x === 'number' && Number.isFinite(x) && x > 0 && (i === 0 || x > (b[i - 1] as number)));
    if (!ok) throw new TieredCacheOptionsError('metrics.buckets', b, 'expected increasing positive numbers of seconds');
  }
  return o as TieredCacheMetricsOptions;
}
