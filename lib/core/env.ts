import { parseDuration } from './duration';
import { TieredCacheOptionsError } from './errors';
import type { TieredCacheOptions } from './tiered-cache-options.interface';

type Env = Record<string, string | undefined>;

/**
 * Builds options from environment variables (see the README's table). A bare number in a duration variable
 * means **seconds**, as in the .env files this replaces (`CACHE_DEFAULT_TTL=3600`); '500ms', '30s', '5m' work too.
 * Unset variables leave the library default. A malformed value fails with the variable's name.
 */
export function tieredCacheOptionsFromEnv(env: Env = process.env): TieredCacheOptions {
  const opts: TieredCacheOptions = {};
  const str = (name: string) => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const dur = (name: string) => {
    const v = str(name);
    return v === undefined ? undefined : parseDuration(name, v, 's');
  };
  const int = (name: string) => {
    const v = str(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) <= 0) throw new TieredCacheOptionsError(name, v, 'expected a positive whole number');
    return Number(v);
  };
  const bool = (name: string) => {
    const v = str(name)?.toLowerCase();
    if (v === undefined) return undefined;
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    throw new TieredCacheOptionsError(name, env[name], 'expected true or false');
  };

  const prefix = env.CACHE_KEY_PREFIX;
  if (prefix !== undefined) opts.keyPrefix = prefix;
  const defaultTtl = dur('CACHE_DEFAULT_TTL');
  if (defaultTtl !== undefined) opts.defaultTtl = defaultTtl;

  opts.l1 = prune({
    enabled: bool('CACHE_L1_ENABLED'),
    maxEntries: int('CACHE_L1_MAX_SIZE'),
    maxBytes: int('CACHE_L1_MAX_BYTES'),
    ttl: dur('CACHE_L1_TTL'),
    cleanupInterval: dur('CACHE_L1_CLEANUP_INTERVAL'),
  });
  opts.l2 = prune({ enabled: bool('CACHE_L2_ENABLED'), ttl: dur('CACHE_L2_TTL'), promoteAfter: int('CACHE_PROMOTE_AFTER') });

  const url = str('REDIS_URL');
  if (url !== undefined && opts.l2.enabled !== false) {
    opts.redis = prune({
      url,
      maxConnections: int('REDIS_MAX_CONNECTIONS'),
      socketTimeout: dur('REDIS_SOCKET_TIMEOUT'),
      commandTimeout: dur('REDIS_COMMAND_TIMEOUT'),
      connectTimeout: dur('REDIS_CONNECT_TIMEOUT'),
    }) as { url: string };
  }

  const writeThrough = bool('CACHE_WRITE_THROUGH');
  const writeBehind = bool('CACHE_WRITE_BEHIND');
  if (writeThrough !== undefined) opts.writeThrough = writeThrough;
  if (writeBehind !== undefined) opts.writeBehind = writeBehind;
  const readThrough = bool('CACHE_READ_THROUGH');
  if (readThrough !== undefined) opts.readThrough = readThrough;
  const nulls = bool('CACHE_NULL_VALUES');
  if (nulls !== undefined) opts.cacheNullValues = nulls;
  // Cross-instance invalidation (the pub/sub bus) and the batching of invalidate(key).
  const invalidationEnabled = bool('CACHE_INVALIDATION_ENABLED');
  if (invalidationEnabled !== undefined) opts.bus = invalidationEnabled;
  const invalidation = prune({ batchSize: int('CACHE_INVALIDATION_BATCH_SIZE'), maxDelay: dur('CACHE_INVALIDATION_TIMEOUT') });
  if (Object.keys(invalidation).length > 0) opts.invalidation = invalidation;
  const metrics = bool('CACHE_METRICS_ENABLED');
  if (metrics !== undefined) opts.metrics = metrics;
  return opts;
}

function prune<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}
