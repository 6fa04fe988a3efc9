import { CacheSerializationError, TieredCache, type TieredCacheOptions } from '../../lib';

const quiet = { warn() {}, error() {} };
const caches: TieredCache[] = [];
function cache(opts: TieredCacheOptions = {}): TieredCache {
  const c = new TieredCache({ logger: quiet, ...opts });
  caches.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()));
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('engine with L1 only (no Redis configured)', () => {
  it('stores, reads, overwrites and deletes', async () => {
    const c = cache();
    expect(await c.get('a')).toBeUndefined();
    expect(await c.set('a', { n: 1 })).toBe(true);
    expect(await c.get('a')).toEqual({ n: 1 });
    await c.set('a', { n: 2 });
    expect(await c.get('a')).toEqual({ n: 2 });
    expect(await c.has('a')).toBe(true);
    expect(await c.delete(['a', 'missing'])).toBe(1);
    expect(await c.has('a')).toBe(false);
  });

  it('holds live objects: a cached value is shared by every reader', async () => {
    const c = cache();
    const v = { n: 1 };
    await c.set('a', v);
    expect(await c.get('a')).toBe(v);
  });

  it("protection 'clone' gives each reader its own copy", async () => {
    const c = cache({ l1: { protection: 'clone' } });
    await c.set('a', { n: 1, d: new Date(1) });
    const first = await c.get<{ n: number }>('a');
    first!.n = 99;
    expect(await c.get('a')).toEqual({ n: 1, d: new Date(1) });
  });

  it("protection 'freeze' deep-freezes what is stored", async () => {
    const c = cache({ l1: { protection: 'freeze' } });
    await c.set('a', { inner: { n: 1 } });
    const v = await c.get<{ inner: { n: number } }>('a');
    expect(Object.isFrozen(v)).toBe(true);
    expect(Object.isFrozen(v!.inner)).toBe(true);
  });

  it('never stores undefined; stores null only with cacheNullValues', async () => {
    const c = cache();
    expect(await c.set('u', undefined)).toBe(false);
    expect(await c.set('n', null)).toBe(false);
    expect(await c.has('n')).toBe(false);
    const withNulls = cache({ cacheNullValues: true });
    expect(await withNulls.set('n', null)).toBe(true);
    expect(await withNulls.has('n')).toBe(true);
    expect(await withNulls.get('n')).toBeNull();
  });

  it('falsy values are hits', async () => {
    const c = cache();
    for (const [k, v] of [['zero', 0], ['empty', ''], ['no', false]] as const) {
      await c.set(k, v);
      expect(await c.get(k)).toBe(v);
    }
    expect(c.stats().l1.hits).toBe(3);
  });

  it('rejects an unserializable value before writing anything', async () => {
    const c = cache();
    await c.set('k', 'old');
    await expect(c.set('k', { f: () => 1 })).rejects.toBeInstanceOf(CacheSerializationError);
    expect(await c.get('k')).toBe('old');
    await expect(c.mset([['a', 1], ['b', { s: Symbol('x') }]])).rejects.toBeInstanceOf(CacheSerializationError);
    expect(await c.has('a')).toBe(false);
  });

  it('rejects values over maxValueBytes', async () => {
    const c = cache({ maxValueBytes: 100 });
    await expect(c.set('big', 'x'.repeat(200))).rejects.toThrow(/maxValueBytes/);
    expect(await c.has('big')).toBe(false);
  });

  it('rejects bad per-call TTLs and keys', async () => {
    const c = cache();
    await expect(c.set('k', 1, { ttl: -1 })).rejects.toThrow(/ttl/);
    await expect(c.set('k', 1, { ttl: 'forever' })).rejects.toThrow(/ttl/);
    await expect(c.get('')).rejects.toThrow(/non-empty/);
    await expect(c.set('__tc:x', 1)).rejects.toThrow(/reserved/);
  });

  it('expires entries by TTL (ms or duration string) and reports the remaining TTL', async () => {
    const c = cache();
    await c.set('short', 1, { ttl: 30 });
    await c.set('long', 1, { ttl: '1h' });
    const ttl = await c.ttl('long');
    expect(ttl).toBeGreaterThan(3_590_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    await sleep(60);
    expect(await c.get('short')).toBeUndefined();
    expect(await c.ttl('short')).toBeUndefined();
    expect(await c.get('long')).toBe(1);
  });

  it('l1Ttl shortens the L1 lifetime but never extends past ttl', async () => {
    const c = cache();
    await c.set('a', 1, { ttl: '1h', l1Ttl: 20 });
    await c.set('b', 1, { ttl: 20, l1Ttl: '1h' });
    await sleep(50);
    expect(await c.get('a')).toBeUndefined();
    expect(await c.get('b')).toBeUndefined();
  });

  it('evicts least recently used entries past maxEntries and counts evictions', async () => {
    const c = cache({ l1: { maxEntries: 3 } });
    for (const k of ['a', 'b', 'c']) await c.set(k, k);
    await c.get('a');
    await c.set('d', 'd');
    expect(await c.has('b')).toBe(false);
    expect(await c.has('a')).toBe(true);
    const s = c.stats();
    expect(s.l1.evictions).toBe(1);
    expect(s.l1.size).toBe(3);
    expect(s.l1.utilization).toBe(100);
  });

  it('bounds L1 by bytes when maxBytes is set', async () => {
    const c = cache({ l1: { maxBytes: 2_000 } });
    for (let i = 0; i < 50; i++) await c.set(`k${i}`, 'x'.repeat(100));
    const s = c.stats();
    expect(s.l1.bytes).toBeLessThanOrEqual(2_000);
    expect(s.l1.size).toBeLessThan(50);
    expect(s.l1.evictions).toBeGreaterThan(0);
  });

  it('purges expired entries in the background', async () => {
    const c = cache({ l1: { cleanupInterval: 20 } });
    for (let i = 0; i < 10; i++) await c.set(`k${i}`, i, { ttl: 10 });
    expect(c.stats().l1.size).toBe(10);
    await sleep(80);
    expect(c.stats().l1.size).toBe(0);
  });

  it('mget and mset', async () => {
    const c = cache();
    expect(await c.mset({ a: 1, b: 2 })).toBe(2);
    expect(await c.mset([['c', 3], ['skip', undefined]])).toBe(1);
    const got = await c.mget(['a', 'x', 'c']);
    expect(got).toEqual([1, undefined, 3]);
    // A miss is an element, not a hole (toEqual does not tell them apart).
    expect(1 in got).toBe(true);
  });

  it('getOrSet runs the factory once for concurrent callers and caches the result', async () => {
    const c = cache();
    let runs = 0;
    const factory = async () => {
      runs++;
      await sleep(20);
      return { v: 42 };
    };
    const results = await Promise.all(Array.from({ length: 100 }, () => c.getOrSet('k', factory)));
    expect(runs).toBe(1);
    expect(results.every((r) => r === results[0])).toBe(true);
    expect(await c.getOrSet('k', factory)).toEqual({ v: 42 });
    expect(runs).toBe(1);
  });

  it('getOrSet passes a factory error to every waiter unchanged and caches nothing', async () => {
    const c = cache();
    const boom = new Error('db down');
    let runs = 0;
    const failing = async () => {
      runs++;
      await sleep(5);
      throw boom;
    };
    const settled = await Promise.allSettled([c.getOrSet('k', failing), c.getOrSet('k', failing)]);
    expect(settled.map((s) => (s as PromiseRejectedResult).reason)).toEqual([boom, boom]);
    expect(runs).toBe(1);
    expect(await c.getOrSet('k', () => 'ok')).toBe('ok');
  });

  it('does not cache a fill that was invalidated while the factory ran', async () => {
    const c = cache();
    let release!: (v: string) => void;
    const pending = c.getOrSet('k', () => new Promise<string>((r) => (release = r)));
    await sleep(5);
    await c.delete('k');
    release('old');
    expect(await pending).toBe('old');
    expect(await c.has('k')).toBe(false);
  });

  it('readThrough=false returns the factory result without caching it', async () => {
    const c = cache({ readThrough: false });
    expect(await c.getOrSet('k', () => 1)).toBe(1);
    expect(await c.has('k')).toBe(false);
  });

  it('invalidates by glob pattern, by tag, and clears', async () => {
    const c = cache();
    await c.mset({ 'property:1': 1, 'property:2': 2, 'lead:1': 3, 'prop[x]': 4 });
    await c.set('tagged:1', 1, { tags: ['t1', 'shared'] });
    await c.set('tagged:2', 2, { tags: ['t2', 'shared'] });
    expect(await c.invalidatePattern('property:*')).toBe(2);
    expect(await c.mget(['property:1', 'lead:1'])).toEqual([undefined, 3]);
    expect(await c.invalidatePattern('prop\\[x\\]')).toBe(1);
    expect(await c.invalidateTags('t1')).toBe(1);
    expect(await c.has('tagged:2')).toBe(true);
    expect(await c.invalidateTags(['shared'])).toBe(1);
    expect(await c.has('tagged:2')).toBe(false);
    expect(await c.clear()).toBe(1);
    expect(c.stats().l1.size).toBe(0);
  });

  it('reports stats for every tier and overall', async () => {
    const c = cache();
    await c.set('a', 1);
    for (let i = 0; i < 16; i++) await c.get('a');
    await c.get('b');
    const s = c.stats();
    expect(s.l1).toMatchObject({ enabled: true, hits: 16, misses: 1, size: 1, maxSize: 10_000 });
    expect(s.l1.hitRatio).toBeCloseTo(16 / 17);
    expect(s.overall).toMatchObject({ gets: 17, hits: 16, misses: 1 });
    expect(s.overall.meanLatencyMs).toBeGreaterThan(0);
    expect(s.l2).toMatchObject({ enabled: false, status: 'disabled', hits: 0, promotions: 0, errors: 0 });
    expect(s.writeBehind).toMatchObject({ enabled: false, queueLength: 0 });
  });
});
