import { parseDuration } from './duration';
import { TieredCacheOptionsError } from './errors';
import type { BreakerOptions, CompressionOptions, PostgresConnectionOptions, RedisConnectionOptions, TierConfig, TieredCacheOptions } from './tiered-cache-options.interface';

type Env = Record<string, string | undefined>;

/**
 * Builds options from environment variables (see docs/options.md). A bare number in a duration variable
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
  // CACHE_Lx_COMPRESSION: off | on (the defaults) | gzip | deflate | brotli; CACHE_Lx_COMPRESSION_THRESHOLD: bytes or '1kb'.
  const compression = (tier: string): CompressionOptions | boolean | undefined => {
    const name = `CACHE_${tier}_COMPRESSION`;
    const v = str(name)?.toLowerCase();
    const threshold = str(`${name}_THRESHOLD`);
    if (v === undefined) {
      if (threshold !== undefined) throw new TieredCacheOptionsError(`${name}_THRESHOLD`, threshold, `needs ${name}`);
      return undefined;
    }
    let on: CompressionOptions | boolean;
    if (['false', '0', 'no', 'off'].includes(v)) on = false;
    else if (['true', '1', 'yes', 'on'].includes(v)) on = {};
    else if (v === 'gzip' || v === 'deflate' || v === 'brotli') on = { algorithm: v };
    else throw new TieredCacheOptionsError(name, env[name], 'expected off, on, gzip, deflate or brotli');
    if (threshold !== undefined) {
      if (on === false) throw new TieredCacheOptionsError(`${name}_THRESHOLD`, threshold, `${name} is off`);
      on.threshold = /^\d+$/.test(threshold) ? Number(threshold) : threshold;
    }
    return on;
  };
  // CACHE_Lx_BREAKER: off | on (the defaults); CACHE_Lx_BREAKER_FAILURES / _WINDOW / _OPEN_FOR tune it.
  const breaker = (tier: string): BreakerOptions | false | undefined => {
    const name = `CACHE_${tier}_BREAKER`;
    const on = bool(name);
    const tuned: BreakerOptions = prune({ failures: int(`${name}_FAILURES`), window: dur(`${name}_WINDOW`), openFor: dur(`${name}_OPEN_FOR`) });
    const first = Object.keys(tuned)[0];
    if (on === false) {
      if (first !== undefined) {
        const v = `${name}_${first === 'openFor' ? 'OPEN_FOR' : first.toUpperCase()}`;
        throw new TieredCacheOptionsError(v, env[v], `${name} is off`);
      }
      return false;
    }
    return on === undefined && first === undefined ? undefined : tuned;
  };
  opts.l2 = prune({ enabled: bool('CACHE_L2_ENABLED'), ttl: dur('CACHE_L2_TTL'), promoteAfter: int('CACHE_PROMOTE_AFTER'), compression: compression('L2') });

  const url = str('REDIS_URL');
  if (url !== undefined && opts.l2.enabled !== false) {
    opts.redis = prune({
      url,
      maxConnections: int('REDIS_MAX_CONNECTIONS'),
      socketTimeout: dur('REDIS_SOCKET_TIMEOUT'),
      commandTimeout: dur('REDIS_COMMAND_TIMEOUT'),
      connectTimeout: dur('REDIS_CONNECT_TIMEOUT'),
      breaker: breaker('L2'),
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
  // CACHE_TRACING: on | off (default: on when @opentelemetry/api is installed); CACHE_TRACING_L1_HITS / _KEYS tune it.
  const tracingOn = bool('CACHE_TRACING');
  const tracing = prune({ l1Hits: bool('CACHE_TRACING_L1_HITS'), recordKeys: bool('CACHE_TRACING_KEYS') });
  if (tracingOn === false) {
    const first = Object.keys(tracing)[0];
    if (first !== undefined) {
      const v = first === 'l1Hits' ? 'CACHE_TRACING_L1_HITS' : 'CACHE_TRACING_KEYS';
      throw new TieredCacheOptionsError(v, env[v], 'CACHE_TRACING is off');
    }
    opts.tracing = false;
  } else if (Object.keys(tracing).length > 0) opts.tracing = tracingOn ? { enabled: true, ...tracing } : tracing;
  else if (tracingOn === true) opts.tracing = true;
  // CACHE_GRACE and CACHE_FACTORY_*_TIMEOUT accept 0 / off for "none" (the library default).
  const offOrDur = (name: string): number | false | undefined => {
    const v = str(name)?.toLowerCase();
    if (v === undefined) return undefined;
    return ['0', 'off', 'false', 'no'].includes(v) ? false : dur(name);
  };
  const eager = str('CACHE_EAGER_REFRESH');
  let eagerRefresh: number | false | undefined;
  if (eager !== undefined) {
    eagerRefresh = ['0', 'off', 'false', 'no'].includes(eager.toLowerCase()) ? false : Number(eager);
    if (eagerRefresh !== false && !(eagerRefresh > 0 && eagerRefresh < 1)) throw new TieredCacheOptionsError('CACHE_EAGER_REFRESH', eager, 'expected a fraction of the TTL between 0 and 1 (e.g. 0.8), or off');
  }
  const soft = offOrDur('CACHE_FACTORY_SOFT_TIMEOUT');
  const hard = offOrDur('CACHE_FACTORY_HARD_TIMEOUT');
  const resilience = prune({
    grace: offOrDur('CACHE_GRACE'),
    eagerRefresh,
    failSafe: bool('CACHE_FAIL_SAFE'),
    failSafeTtl: dur('CACHE_FAIL_SAFE_TTL'),
    failSafeBackoff: dur('CACHE_FAIL_SAFE_BACKOFF'),
    timeout: soft === undefined && hard === undefined ? undefined : prune({ soft: soft || undefined, hard: hard || undefined }),
  });
  if (Object.keys(resilience).length > 0) opts.resilience = resilience;
  const lockOn = bool('CACHE_LOCK');
  const lock = prune({ ttl: dur('CACHE_LOCK_TTL'), wait: dur('CACHE_LOCK_WAIT') });
  if (lockOn === false) opts.lock = false;
  else if (Object.keys(lock).length > 0) opts.lock = lock;
  else if (lockOn === true) opts.lock = true;
  const recoveryOn = bool('CACHE_RECOVERY');
  const recoveryMax = int('CACHE_RECOVERY_MAX_KEYS');
  if (recoveryOn === false) opts.recovery = false;
  else if (recoveryMax !== undefined) opts.recovery = { maxKeys: recoveryMax };

  // Tiers below L2: with either one set, the options take the `tiers` form.
  const lower: TierConfig[] = [];
  const l3Url = str('CACHE_L3_REDIS_URL');
  const l3Nodes = str('CACHE_L3_REDIS_NODES');
  if (l3Url !== undefined || l3Nodes !== undefined) {
    const common = prune({ commandTimeout: dur('CACHE_L3_COMMAND_TIMEOUT'), connectTimeout: dur('REDIS_CONNECT_TIMEOUT') });
    const redis: RedisConnectionOptions =
      l3Nodes !== undefined ? { mode: 'cluster', nodes: l3Nodes.split(',').map((n) => n.trim()).filter((n) => n !== ''), ...common } : { url: l3Url as string, ...common };
    lower.push(
      prune({ name: 'l3', type: 'redis' as const, redis, ttl: dur('CACHE_L3_TTL'), promoteAfter: int('CACHE_L3_PROMOTE_AFTER'), compression: compression('L3'), breaker: breaker('L3') }),
    );
  }
  const l4Url = str('CACHE_L4_POSTGRES_URL');
  if (l4Url !== undefined) {
    const postgres: PostgresConnectionOptions = prune({
      url: l4Url,
      schema: str('CACHE_L4_SCHEMA'),
      table: str('CACHE_L4_TABLE'),
      createTable: bool('CACHE_L4_CREATE_TABLE'),
      unlogged: bool('CACHE_L4_UNLOGGED'),
      commandTimeout: dur('CACHE_L4_COMMAND_TIMEOUT'),
      maxConnections: int('CACHE_L4_MAX_CONNECTIONS'),
    });
    const behind = bool('CACHE_L4_WRITE_BEHIND');
    lower.push(
      prune({
        name: 'l4',
        type: 'postgres' as const,
        postgres,
        ttl: dur('CACHE_L4_TTL'),
        maxEntries: int('CACHE_L4_MAX_ENTRIES'),
        maxBytes: int('CACHE_L4_MAX_BYTES'),
        promoteAfter: int('CACHE_L4_PROMOTE_AFTER'),
        compression: compression('L4'),
        breaker: breaker('L4'),
        write: behind === undefined ? undefined : behind ? ('behind' as const) : ('through' as const),
      }),
    );
  }
  if (lower.length === 0) return opts;
  if (opts.redis === undefined) {
    const name = l4Url !== undefined && l3Url === undefined && l3Nodes === undefined ? 'CACHE_L4_POSTGRES_URL' : 'CACHE_L3_REDIS_URL';
    throw new TieredCacheOptionsError(name, env[name] ?? env.CACHE_L3_REDIS_NODES, 'needs REDIS_URL (and L2 on): the first shared tier must be Redis');
  }
  const { l1, l2, redis, writeBehind: behindL2, writeThrough: _wt, ...rest } = opts;
  if (_wt === true && behindL2 === true) throw new TieredCacheOptionsError('CACHE_WRITE_BEHIND', env.CACHE_WRITE_BEHIND, 'CACHE_WRITE_THROUGH and CACHE_WRITE_BEHIND are both on; choose one');
  const tiers: TierConfig[] = [];
  if (l1?.enabled !== false) {
    const { enabled: _e, ...memory } = l1 ?? {};
    tiers.push({ name: 'l1', type: 'memory', ...memory });
  }
  const { enabled: _e2, ...l2rest } = l2 ?? {};
  tiers.push(prune({ name: 'l2', type: 'redis' as const, redis: redis as RedisConnectionOptions, ...l2rest, write: behindL2 ? ('behind' as const) : undefined }));
  return { ...rest, tiers: [...tiers, ...lower] };
}

function prune<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}
