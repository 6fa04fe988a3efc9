import { tieredCacheOptionsFromEnv } from '../../lib/core/env';
import { resolveOptions } from '../../lib/core/options';
import { parseByteSize } from '../../lib/core/tier-options';
import type { TierConfig, TieredCacheOptions } from '../../lib';

/** The `tiers` form of the options: what it expands to, and the boot errors that name the bad option. */

const redis = 'redis://127.0.0.1:1';
const pg = 'postgres://u:p@127.0.0.1:1/db';

function resolve(tiers: unknown, extra: Partial<TieredCacheOptions> = {}) {
  return resolveOptions({ tiers: tiers as TierConfig[], ...extra });
}

describe('tiers option', () => {
  it('expands memory + redis into the short form, and keeps the tiers below', () => {
    const o = resolve([
      { name: 'mem', type: 'memory', maxEntries: 50, maxBytes: '5mb', ttl: '60s' },
      { name: 'near', type: 'redis', redis, ttl: '5m', promoteAfter: 2 },
      { name: 'far', type: 'redis', redis, ttl: '1h', write: 'behind', writeBehind: { maxQueue: 10 } },
      { name: 'db', type: 'postgres', postgres: pg, ttl: '30d', maxEntries: 1000, maxBytes: '1gb' },
    ]);
    expect(o.l1).toMatchObject({ enabled: true, maxEntries: 50, maxBytes: 5 * 1024 * 1024, ttl: 60_000 });
    expect(o.l2).toMatchObject({ enabled: true, ttl: 300_000, promoteAfter: 2 });
    expect(o.redis?.mode).toBe('standalone');
    expect(o.tierNames).toEqual({ l1: 'mem', l2: 'near' });
    expect(o.lower.map((t) => [t.name, t.type, t.ttl, t.behind !== undefined])).toEqual([
      ['far', 'redis', 3_600_000, true],
      ['db', 'postgres', 30 * 86_400_000, false],
    ]);
    expect(o.lower[1]).toMatchObject({ postgres: { url: pg, maxEntries: 1000, maxBytes: 1024 ** 3 } });
    expect(o.warnings).toEqual([]);
  });

  it('without a memory tier, L1 is off', () => {
    expect(resolve([{ name: 'r', type: 'redis', redis }]).l1.enabled).toBe(false);
  });

  it.each([
    ['not an array', {}, 'tiers'],
    ['empty', [], 'tiers'],
    ['unknown type', [{ name: 'a', type: 'memcached' }], 'tiers[0].type'],
    ['two tiers of one name', [{ name: 'a', type: 'memory' }, { name: 'a', type: 'redis', redis }], 'tiers[1].name'],
    ['a memory tier that is not first', [{ name: 'r', type: 'redis', redis }, { name: 'm', type: 'memory' }], 'tiers[1].type'],
    ['postgres before any redis tier', [{ name: 'm', type: 'memory' }, { name: 'p', type: 'postgres', postgres: pg }], 'tiers[1].type'],
    ['a bad postgres URL', [{ name: 'r', type: 'redis', redis }, { name: 'p', type: 'postgres', postgres: 'mysql://x' }], 'tiers[1].postgres.url'],
    ['a bad lower redis URL', [{ name: 'r', type: 'redis', redis }, { name: 'r2', type: 'redis', redis: 'http://x' }], 'tiers.r2.redis.url'],
    ['a bad size', [{ name: 'm', type: 'memory', maxBytes: '5 parsecs' }], 'tiers[0].maxBytes'],
    ['a bad write mode', [{ name: 'r', type: 'redis', redis, write: 'around' }], 'tiers[0].write'],
    ['compression on the memory tier', [{ name: 'm', type: 'memory', compression: true }, { name: 'r', type: 'redis', redis }], 'tiers[0].compression'],
    ['an unknown compression algorithm', [{ name: 'r', type: 'redis', redis, compression: { algorithm: 'lz4' } }], 'tiers[0].compression.algorithm'],
    ['a compression level out of range', [{ name: 'r', type: 'redis', redis }, { name: 'p', type: 'postgres', postgres: pg, compression: { algorithm: 'gzip', level: 0 } }], 'tiers[1].compression.level'],
    ['a bad compression threshold', [{ name: 'r', type: 'redis', redis }, { name: 'r3', type: 'redis', redis, compression: { threshold: '-1kb' } }], 'tiers[1].compression.threshold'],
    ['a lower tier named l2', [{ name: 'm', type: 'memory' }, { name: 'r', type: 'redis', redis }, { name: 'l2', type: 'postgres', postgres: pg }], 'tiers[2].name'],
    ['fillWindow below the first redis tier', [{ name: 'r', type: 'redis', redis }, { name: 'r2', type: 'redis', redis, fillWindow: '1m' }], 'tiers[1].fillWindow'],
  ])('%s fails at boot naming the option', (_what, tiers, option) => {
    expect(() => resolve(tiers)).toThrow(expect.objectContaining({ name: 'TieredCacheOptionsError', option }));
  });

  it('compression per tier: the first redis tier becomes l2.compression, the tiers below keep their own', () => {
    const o = resolve([
      { name: 'm', type: 'memory' },
      { name: 'r', type: 'redis', redis, compression: true },
      { name: 'r3', type: 'redis', redis, compression: { algorithm: 'gzip', threshold: '4kb' } },
      { name: 'p', type: 'postgres', postgres: pg },
    ]);
    expect(o.l2.compression).toEqual({ algorithm: 'brotli', level: 1, threshold: 1024 });
    expect(o.lower.map((t) => t.compression)).toEqual([{ algorithm: 'gzip', level: 6, threshold: 4096 }, undefined]);
    expect(resolveOptions({ redis, l2: { compression: { algorithm: 'deflate' } } }).l2.compression).toEqual({ algorithm: 'deflate', level: 6, threshold: 1024 });
    expect(resolveOptions({ redis }).l2.compression).toBeUndefined();
    expect(() => resolveOptions({ redis, l2: { compression: { level: 99 } } })).toThrow(expect.objectContaining({ option: 'l2.compression.level' }));
  });

  it('the short form and tiers together are refused', () => {
    expect(() => resolve([{ name: 'm', type: 'memory' }], { redis })).toThrow(expect.objectContaining({ option: 'redis' }));
  });

  it('a TTL longer above than below is accepted with a warning', () => {
    const o = resolve([
      { name: 'r', type: 'redis', redis, ttl: '1d' },
      { name: 'p', type: 'postgres', postgres: pg, ttl: '1h' },
    ]);
    expect(o.warnings).toEqual([expect.stringContaining('"r" keeps entries longer')]);
  });

  it('parses byte sizes', () => {
    expect(parseByteSize('x', '1kb')).toBe(1024);
    expect(parseByteSize('x', 12)).toBe(12);
    expect(() => parseByteSize('x', 0)).toThrow(/positive/);
  });
});

describe('tiers from environment variables', () => {
  it('CACHE_L3_* and CACHE_L4_* add tiers below the short form, which becomes the tiers form', () => {
    const o = resolveOptions(
      tieredCacheOptionsFromEnv({
        REDIS_URL: redis,
        CACHE_L1_MAX_SIZE: '500',
        CACHE_L2_TTL: '300',
        CACHE_L3_REDIS_NODES: '127.0.0.1:7000, 127.0.0.1:7001',
        CACHE_L3_TTL: '3600',
        CACHE_L4_POSTGRES_URL: pg,
        CACHE_L4_TTL: '30d',
        CACHE_L4_MAX_ENTRIES: '1000000',
        CACHE_L4_TABLE: 'cache_rows',
        CACHE_L4_WRITE_BEHIND: 'true',
      }),
    );
    expect(o.l1.maxEntries).toBe(500);
    expect(o.l2.ttl).toBe(300_000);
    expect(o.lower.map((t) => [t.name, t.type, t.ttl])).toEqual([
      ['l3', 'redis', 3_600_000],
      ['l4', 'postgres', 30 * 86_400_000],
    ]);
    expect(o.lower[0]).toMatchObject({ redis: { mode: 'cluster', nodes: ['127.0.0.1:7000', '127.0.0.1:7001'] } });
    expect(o.lower[1]).toMatchObject({ postgres: { url: pg, table: 'cache_rows', maxEntries: 1_000_000 }, behind: { maxQueue: 10_000 } });
  });

  it('CACHE_Lx_COMPRESSION and CACHE_Lx_COMPRESSION_THRESHOLD', () => {
    const o = resolveOptions(
      tieredCacheOptionsFromEnv({
        REDIS_URL: redis,
        CACHE_L2_COMPRESSION: 'off',
        CACHE_L3_REDIS_URL: redis,
        CACHE_L3_COMPRESSION: 'on',
        CACHE_L3_COMPRESSION_THRESHOLD: '2kb',
        CACHE_L4_POSTGRES_URL: pg,
        CACHE_L4_COMPRESSION: 'gzip',
        CACHE_L4_COMPRESSION_THRESHOLD: '512',
      }),
    );
    expect(o.l2.compression).toBeUndefined();
    expect(o.lower.map((t) => t.compression)).toEqual([
      { algorithm: 'brotli', level: 1, threshold: 2048 },
      { algorithm: 'gzip', level: 6, threshold: 512 },
    ]);
    expect(resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL: redis, CACHE_L2_COMPRESSION: 'deflate' })).l2.compression).toMatchObject({ algorithm: 'deflate' });
    expect(() => tieredCacheOptionsFromEnv({ REDIS_URL: redis, CACHE_L2_COMPRESSION: 'zip' })).toThrow(expect.objectContaining({ option: 'CACHE_L2_COMPRESSION' }));
    expect(() => tieredCacheOptionsFromEnv({ REDIS_URL: redis, CACHE_L2_COMPRESSION_THRESHOLD: '1kb' })).toThrow(expect.objectContaining({ option: 'CACHE_L2_COMPRESSION_THRESHOLD' }));
    expect(() => resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL: redis, CACHE_L2_COMPRESSION: 'on', CACHE_L2_COMPRESSION_THRESHOLD: 'lots' }))).toThrow(
      expect.objectContaining({ option: 'l2.compression.threshold' }),
    );
  });

  it('without the lower-tier variables the short form stays', () => {
    expect(tieredCacheOptionsFromEnv({ REDIS_URL: redis }).tiers).toBeUndefined();
  });

  it('CACHE_L4_POSTGRES_URL without REDIS_URL fails naming the variable', () => {
    expect(() => tieredCacheOptionsFromEnv({ CACHE_L4_POSTGRES_URL: pg })).toThrow(expect.objectContaining({ option: 'CACHE_L4_POSTGRES_URL' }));
  });
});
