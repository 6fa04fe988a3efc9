import { parseDuration, TieredCache, TieredCacheOptionsError, tieredCacheOptionsFromEnv } from '../../lib';
import { resolveOptions } from '../../lib/core/options';

describe('durations', () => {
  it('reads numbers as milliseconds and strings with units', () => {
    expect(parseDuration('t', 1500)).toBe(1500);
    expect(parseDuration('t', '250ms')).toBe(250);
    expect(parseDuration('t', '30s')).toBe(30_000);
    expect(parseDuration('t', '5m')).toBe(300_000);
    expect(parseDuration('t', '1h')).toBe(3_600_000);
    expect(parseDuration('t', '1d')).toBe(86_400_000);
    expect(parseDuration('t', '1.5s')).toBe(1500);
  });

  it('rounds fractional milliseconds up so a TTL never becomes 0', () => {
    expect(parseDuration('t', 0.2)).toBe(1);
  });

  it.each([0, -5, NaN, Infinity, '', 'soon', '5 minutes', '-1s', null, {}])('rejects %p naming the option', (bad) => {
    expect(() => parseDuration('l1.ttl', bad)).toThrow(TieredCacheOptionsError);
    expect(() => parseDuration('l1.ttl', bad)).toThrow(/"l1\.ttl"/);
  });
});

describe('option validation at construction', () => {
  const cases: Array<[string, object, RegExp]> = [
    ['negative size', { l1: { maxEntries: -1 } }, /"l1\.maxEntries" = -1/],
    ['fractional size', { l1: { maxEntries: 1.5 } }, /"l1\.maxEntries"/],
    ['negative bytes', { l1: { maxBytes: -10 } }, /"l1\.maxBytes"/],
    ['bad ttl', { defaultTtl: 0 }, /"defaultTtl" = 0/],
    ['bad l2 ttl', { redis: 'redis://127.0.0.1:1', l2: { ttl: '-5s' } }, /"l2\.ttl"/],
    ['malformed url', { redis: 'http://localhost:6379' }, /"redis\.url" = "http:\/\/localhost:6379"/],
    ['url without host', { redis: 'not a url' }, /"redis\.url"/],
    ['bad db', { redis: 'redis://localhost:6379/abc' }, /"redis\.url".*database "abc"/],
    ['both write strategies', { redis: 'redis://localhost:6379', writeThrough: true, writeBehind: true }, /"writeBehind".*both on/],
    ['no write strategy', { redis: 'redis://localhost:6379', writeThrough: false }, /"writeThrough"/],
    ['promoteAfter 0', { redis: 'redis://localhost:6379', l2: { promoteAfter: 0 } }, /"l2\.promoteAfter" = 0/],
    ['l2 without redis', { l2: { enabled: true } }, /"l2\.enabled".*needs `redis`/],
    ['nothing enabled', { l1: { enabled: false } }, /"l1\.enabled"/],
    ['bad protection', { l1: { protection: 'copy' } }, /"l1\.protection" = "copy"/],
    ['bad codec', { codec: 'msgpack' }, /"codec"/],
    ['bad command timeout', { redis: { url: 'redis://localhost:6379', commandTimeout: -1 } }, /"redis\.commandTimeout"/],
    ['recovery queue of 0', { recovery: { maxKeys: 0 } }, /"recovery\.maxKeys" = 0/],
    ['fractional recovery batch', { recovery: { batchSize: 1.5 } }, /"recovery\.batchSize"/],
    ['recovery neither flag nor object', { recovery: 'yes' }, /"recovery"/],
    ['bad lock', { redis: 'redis://localhost:6379', lock: 'yes' }, /"lock" = "yes"/],
    ['lock ttl too short to renew', { redis: 'redis://localhost:6379', lock: { ttl: 10 } }, /"lock\.ttl" = 10.*at least 30ms/],
    ['bad lock wait', { redis: 'redis://localhost:6379', lock: { wait: -1 } }, /"lock\.wait"/],
    ['bad lock poll', { redis: 'redis://localhost:6379', lock: { poll: 'often' } }, /"lock\.poll"/],
    ['bad lock enabled', { redis: 'redis://localhost:6379', lock: { enabled: 1 } }, /"lock\.enabled"/],
    ['tracing neither flag nor object', { tracing: 'on' }, /"tracing" = "on"/],
    ['bad tracing enabled', { tracing: { enabled: 'yes' } }, /"tracing\.enabled"/],
    ['tracer without startSpan', { tracing: { tracer: {} } }, /"tracing\.tracer"/],
    ['bad tracing l1Hits', { tracing: { l1Hits: 1 } }, /"tracing\.l1Hits"/],
    ['bad tracing recordKeys', { tracing: { recordKeys: 'no' } }, /"tracing\.recordKeys"/],
  ];
  it.each(cases)('%s', (_name, opts, message) => {
    expect(() => new TieredCache(opts as never)).toThrow(TieredCacheOptionsError);
    expect(() => new TieredCache(opts as never)).toThrow(message);
  });

  it('never echoes a Redis password in an error', () => {
    expect(() => new TieredCache({ redis: 'http://user:s3cret@localhost:6379' })).toThrow(/user:\*\*\*@/);
    expect(() => new TieredCache({ redis: 'http://user:s3cret@localhost:6379' })).not.toThrow(/s3cret/);
  });

  it('applies the documented defaults', () => {
    const o = resolveOptions({});
    expect(o.keyPrefix).toBe('cache:');
    expect(o.defaultTtl).toBe(3_600_000);
    expect(o.l1).toMatchObject({ enabled: true, maxEntries: 10_000, ttl: 300_000, cleanupInterval: 60_000, protection: 'none' });
    expect(o.l2.enabled).toBe(false);
    expect(o.redis).toBeUndefined();
    const withRedis = resolveOptions({ redis: 'redis://localhost:6379' });
    expect(withRedis.l2).toEqual({ enabled: true, ttl: 3_600_000, promoteAfter: 1, fillWindow: 60_000 });
    expect(withRedis.redis).toMatchObject({ commandTimeout: 250, connectTimeout: 3000, maxConnections: 1, protocol: 2 });
    expect(withRedis.writeBehind).toBeUndefined();
    expect(withRedis.recovery).toEqual({ maxKeys: 10_000, batchSize: 100 });
    expect(resolveOptions({ recovery: false }).recovery).toBeUndefined();
    expect(resolveOptions({ recovery: { maxKeys: 5 } }).recovery).toEqual({ maxKeys: 5, batchSize: 100 });
    // The fill lock: on with L2 (nothing to lock in without it).
    expect(withRedis.lock).toEqual({ enabled: true, ttl: 2_000, wait: 5_000, poll: 50 });
    expect(o.lock.enabled).toBe(false);
    expect(resolveOptions({ redis: 'redis://localhost:6379', lock: false }).lock.enabled).toBe(false);
    expect(resolveOptions({ redis: 'redis://localhost:6379', lock: { ttl: '500ms', wait: '1s' } }).lock).toEqual({ enabled: true, ttl: 500, wait: 1_000, poll: 50 });
    // Tracing: on when @opentelemetry/api is installed (enabled undefined), L1 hits and keys left out; spans
    // named as the metrics are (metrics.name, else the keyPrefix).
    expect(o.tracing).toEqual({ enabled: undefined, tracer: undefined, l1Hits: false, recordKeys: false, name: 'cache:' });
    expect(resolveOptions({ tracing: false }).tracing.enabled).toBe(false);
    expect(resolveOptions({ keyPrefix: 'p:', metrics: { name: 'users' }, tracing: { l1Hits: true, recordKeys: true } }).tracing).toEqual({
      enabled: undefined,
      tracer: undefined,
      l1Hits: true,
      recordKeys: true,
      name: 'users',
    });
  });
});

describe('tieredCacheOptionsFromEnv', () => {
  it('is L1-only with an empty environment', () => {
    const o = resolveOptions(tieredCacheOptionsFromEnv({}));
    expect(o.l1.enabled).toBe(true);
    expect(o.l2.enabled).toBe(false);
  });

  it('reads every documented variable; bare numbers in TTL variables are seconds', () => {
    const o = resolveOptions(
      tieredCacheOptionsFromEnv({
        REDIS_URL: 'redis://127.0.0.1:6390/2',
        REDIS_MAX_CONNECTIONS: '4',
        REDIS_SOCKET_TIMEOUT: '5.0',
        CACHE_KEY_PREFIX: 'realestate:',
        CACHE_DEFAULT_TTL: '3600',
        CACHE_L1_ENABLED: 'true',
        CACHE_L1_MAX_SIZE: '1000',
        CACHE_L1_MAX_BYTES: '1048576',
        CACHE_L1_TTL: '300',
        CACHE_L1_CLEANUP_INTERVAL: '60',
        CACHE_L2_ENABLED: 'true',
        CACHE_L2_TTL: '2h',
        CACHE_WRITE_THROUGH: 'false',
        CACHE_WRITE_BEHIND: 'true',
        CACHE_READ_THROUGH: 'true',
        CACHE_NULL_VALUES: 'true',
        CACHE_PROMOTE_AFTER: '2',
      }),
    );
    expect(o.keyPrefix).toBe('realestate:');
    expect(o.defaultTtl).toBe(3_600_000);
    expect(o.l1).toMatchObject({ maxEntries: 1000, maxBytes: 1_048_576, ttl: 300_000, cleanupInterval: 60_000 });
    expect(o.l2).toEqual({ enabled: true, ttl: 7_200_000, promoteAfter: 2, fillWindow: 60_000 });
    expect(o.redis).toMatchObject({ url: 'redis://127.0.0.1:6390/2', maxConnections: 4, socketTimeout: 5000 });
    expect(o.writeBehind).toBeDefined();
    expect(o.cacheNullValues).toBe(true);
  });

  it('CACHE_L2_ENABLED=false ignores REDIS_URL', () => {
    const o = resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL: 'redis://localhost:6379', CACHE_L2_ENABLED: 'false' }));
    expect(o.l2.enabled).toBe(false);
  });

  it.each([
    ['CACHE_L1_MAX_SIZE', '-5'],
    ['CACHE_L1_TTL', 'soon'],
    ['CACHE_NULL_VALUES', 'maybe'],
    ['CACHE_PROMOTE_AFTER', '0'],
  ])('names the variable in the error: %s=%s', (name, value) => {
    expect(() => tieredCacheOptionsFromEnv({ [name]: value })).toThrow(new RegExp(`"${name}"`));
  });

  it('the design defaults (write-through and write-behind both true) fail at boot', () => {
    expect(() => new TieredCache(tieredCacheOptionsFromEnv({ REDIS_URL: 'redis://localhost:6379', CACHE_WRITE_THROUGH: 'true', CACHE_WRITE_BEHIND: 'true' }))).toThrow(
      /both on/,
    );
  });

  it('resilience, lock and recovery from their variables (bare numbers are seconds; 0 or off means none)', () => {
    const REDIS_URL = 'redis://localhost:6379';
    const o = resolveOptions(
      tieredCacheOptionsFromEnv({
        REDIS_URL,
        CACHE_GRACE: '3600',
        CACHE_EAGER_REFRESH: '0.8',
        CACHE_FAIL_SAFE_BACKOFF: '30',
        CACHE_FACTORY_SOFT_TIMEOUT: '100ms',
        CACHE_FACTORY_HARD_TIMEOUT: '2',
        CACHE_LOCK_WAIT: '1',
        CACHE_RECOVERY_MAX_KEYS: '500',
      }),
    );
    expect(o.resilience).toMatchObject({ grace: 3_600_000, eagerRefresh: 0.8, failSafe: true, failSafeTtl: 3_600_000, failSafeBackoff: 30_000, soft: 100, hard: 2_000 });
    expect(o.lock).toMatchObject({ enabled: true, wait: 1_000 });
    expect(o.recovery).toMatchObject({ maxKeys: 500 });
    const off = resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL, CACHE_GRACE: 'off', CACHE_FACTORY_HARD_TIMEOUT: '0', CACHE_FAIL_SAFE: 'false', CACHE_LOCK: 'off', CACHE_RECOVERY: 'off' }));
    expect(off.resilience).toMatchObject({ grace: 0, hard: 0, failSafe: false });
    expect(off.lock.enabled).toBe(false);
    expect(off.recovery).toBeUndefined();
    expect(() => tieredCacheOptionsFromEnv({ CACHE_EAGER_REFRESH: '80%' })).toThrow(/CACHE_EAGER_REFRESH/);
    expect(() => tieredCacheOptionsFromEnv({ CACHE_GRACE: 'soon' })).toThrow(/CACHE_GRACE/);
  });

  it('tracing from CACHE_TRACING, CACHE_TRACING_L1_HITS and CACHE_TRACING_KEYS', () => {
    expect(tieredCacheOptionsFromEnv({}).tracing).toBeUndefined();
    expect(tieredCacheOptionsFromEnv({ CACHE_TRACING: 'off' }).tracing).toBe(false);
    expect(tieredCacheOptionsFromEnv({ CACHE_TRACING: 'on' }).tracing).toBe(true);
    expect(tieredCacheOptionsFromEnv({ CACHE_TRACING_L1_HITS: 'true' }).tracing).toEqual({ l1Hits: true });
    expect(tieredCacheOptionsFromEnv({ CACHE_TRACING: 'true', CACHE_TRACING_KEYS: 'yes', CACHE_TRACING_L1_HITS: 'no' }).tracing).toEqual({ enabled: true, recordKeys: true, l1Hits: false });
    expect(resolveOptions(tieredCacheOptionsFromEnv({ CACHE_TRACING_KEYS: '1' })).tracing).toMatchObject({ enabled: undefined, recordKeys: true, l1Hits: false });
    expect(() => tieredCacheOptionsFromEnv({ CACHE_TRACING: 'maybe' })).toThrow(/"CACHE_TRACING"/);
    expect(() => tieredCacheOptionsFromEnv({ CACHE_TRACING: 'off', CACHE_TRACING_KEYS: 'true' })).toThrow(/"CACHE_TRACING_KEYS".*CACHE_TRACING is off/);
  });
});
