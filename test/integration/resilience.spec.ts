import { CacheFactoryTimeoutError, TieredCache, TieredCacheOptionsError, type TieredCacheOptions } from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { redisFixture } from '../support/redis-fixture';
import { waitFor } from '../support/wait-for';

/**
 * getOrSet against a slow or failing source: stale-while-revalidate within grace, early refresh, adaptive TTL,
 * fail-safe and factory timeouts, on real Redis, with instances in one process and in separate ones. Entries are
 * written with short TTLs and the tests wait until the cache itself reports them expired (get() misses), never
 * for a fixed time.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

/** A factory held until the test releases it. */
function latch<T>(): { factory: () => Promise<T>; calls: () => number; entered: Promise<void>; release: (v: T) => void; fail: (e: Error) => void } {
  let calls = 0;
  let enter!: () => void;
  const entered = new Promise<void>((r) => (enter = r));
  let settle!: { resolve: (v: T) => void; reject: (e: Error) => void };
  const gate = new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
  return {
    factory: () => {
      calls++;
      enter();
      return gate;
    },
    calls: () => calls,
    entered,
    release: (v) => settle.resolve(v),
    fail: (e) => settle.reject(e),
  };
}

describe('resilience: grace, early refresh, fail-safe, factory timeouts', () => {
  const fx = redisFixture();
  const { caches, procs } = fx;

  async function cache(opts: Partial<TieredCacheOptions> = {}): Promise<TieredCache> {
    const c = new TieredCache({ redis: fx.redis.url, logger: quiet, ...opts });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** Waits until `key` has gone past its TTL as `c` sees it (get() misses: stale copies are misses to it). */
  const expired = (c: TieredCache, key: string) => waitFor(`${key} past its TTL`, async () => (await c.get(key)) === undefined);

  /** `key` filled with 'v1' by `c` with a short TTL, then waited past it: a stale copy within grace. */
  async function staleV1(c: TieredCache, key = 'k'): Promise<void> {
    await c.getOrSet(key, () => 'v1', { ttl: 30 });
    await expired(c, key);
  }

  describe('stale-while-revalidate (grace)', () => {
    it('a read past the TTL within grace returns the stale value at once and refreshes it in the background', async () => {
      const prefix = `swr${++seq}:`;
      const c = await cache({ keyPrefix: prefix });
      expect(await c.getOrSet('k', () => 'v1', { ttl: 30, grace: '1h' })).toBe('v1');
      await expired(c, 'k');
      const refresh = latch<string>();
      // Answered while the refresh is still held in its factory.
      expect(await c.getOrSet('k', refresh.factory, { ttl: 30, grace: '1h' })).toBe('v1');
      await refresh.entered;
      expect(refresh.calls()).toBe(1);
      refresh.release('v2');
      await waitFor('the refreshed value is served', async () => (await c.getOrSet('k', () => 'never', { ttl: '1h', grace: '1h' })) === 'v2');
      expect(await fx.raw.get(`${prefix}k`)).toContain('v2');
      const r = c.stats().resilience;
      expect(r.staleServed).toBeGreaterThanOrEqual(1);
      expect(r.refreshes).toBeGreaterThanOrEqual(1);
    });

    it('100 concurrent reads of one stale key run one refresh', async () => {
      const c = await cache({ keyPrefix: `swr${++seq}:`, resilience: { grace: '1h' } });
      await staleV1(c);
      const refresh = latch<string>();
      const answers = await Promise.all(Array.from({ length: 100 }, () => c.getOrSet('k', refresh.factory, { ttl: 30 })));
      expect(new Set(answers)).toEqual(new Set(['v1']));
      await refresh.entered;
      expect(refresh.calls()).toBe(1);
      refresh.release('v2');
      await waitFor('refreshed', async () => (await c.get('k')) === 'v2');
    });

    it('another instance without an L1 copy is answered from the stale copy in Redis, and its refresh reaches the first instance without a second factory run', async () => {
      const prefix = `swr${++seq}:`;
      const a = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      const b = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await a.getOrSet('k', () => 'v1', { ttl: 40 });
      await expired(b, 'k');
      const refreshB = latch<string>();
      expect(await b.getOrSet('k', refreshB.factory, { ttl: '1h' })).toBe('v1');
      await refreshB.entered;
      refreshB.release('v2');
      await waitFor("B's refresh is in Redis", async () => (await fx.raw.get(`${prefix}k`))?.includes('v2') === true);
      // A's L1 copy is stale too: it is served once, and A's refresh finds B's value in Redis.
      let ranOnA = 0;
      const factoryA = () => {
        ranOnA++;
        return 'from A';
      };
      await a.getOrSet('k', factoryA, { ttl: '1h' });
      await waitFor('A serves the refreshed value', async () => (await a.getOrSet('k', factoryA, { ttl: '1h' })) === 'v2');
      expect(ranOnA).toBe(0);
    });

    it('two instances serving the same stale key refresh it once: the second leaves the refresh to the holder of the fill lock', async () => {
      const prefix = `swr${++seq}:`;
      const a = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      const b = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await a.getOrSet('k', () => 'v1', { ttl: 40 });
      expect(await b.getOrSet('k', () => 'never')).toBe('v1');
      await expired(a, 'k');
      await expired(b, 'k');
      const refreshA = latch<string>();
      expect(await a.getOrSet('k', refreshA.factory, { ttl: '1h' })).toBe('v1');
      await refreshA.entered;
      let ranOnB = 0;
      const factoryB = () => {
        ranOnB++;
        return 'from B';
      };
      expect(await b.getOrSet('k', factoryB, { ttl: '1h' })).toBe('v1');
      await waitFor("B left its refresh to A", () => b.stats().lock.refreshesLeft === 1);
      expect(b.stats().lock.acquired).toBe(0);
      refreshA.release('v2');
      await waitFor('B serves the value A refreshed', async () => (await b.getOrSet('k', factoryB, { ttl: '1h' })) === 'v2');
      expect(ranOnB).toBe(0);
    });

    it('get() treats a stale copy as a miss and leaves it for getOrSet', async () => {
      const prefix = `swr${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await c.set('k', 'v1', { ttl: 30 });
      await expired(c, 'k');
      expect(await c.mget(['k'])).toEqual([undefined]);
      expect(await fx.raw.exists(`${prefix}k`)).toBe(1);
      const refresh = latch<string>();
      expect(await c.getOrSet('k', refresh.factory)).toBe('v1');
      refresh.release('v2');
      await waitFor('refreshed', async () => (await c.get('k')) === 'v2');
    });

    it('a stale copy is never served after an invalidation of its key, on any instance (separate process)', async () => {
      const prefix = `swr${++seq}:`;
      const opts = { redis: fx.redis.url, keyPrefix: prefix, resilience: { grace: '1h' } };
      const a = await EngineProcess.start(opts);
      procs.push(a);
      expect(await a.call('connect')).toBe(true);
      const b = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await a.call('set', 'k', 'old', { ttl: 40 });
      await expired(b, 'k');
      await b.delete('k');
      // A's stale L1 copy went with the delete: A waits for its factory instead of answering 'old'.
      await a.call('startFill', 'k', { ttl: '1h' });
      expect(await a.call('releaseFill', 'k', 'new')).toBe('new');
      // (Its store may be refused: Redis' own tracking message for the delete can reach A after its fill began.)
      expect(await b.get('k')).not.toBe('old');
      expect(await b.getOrSet('k', () => 'from B')).not.toBe('old');
    });

    it("an invalidation while a background refresh runs keeps the refresh's result out of every tier", async () => {
      const prefix = `swr${++seq}:`;
      const a = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      const b = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await staleV1(a);
      const refresh = latch<string>();
      expect(await a.getOrSet('k', refresh.factory, { ttl: '1h' })).toBe('v1');
      await refresh.entered;
      await b.delete('k');
      refresh.release('read before the delete');
      await waitFor('the refresh settled', () => a.stats().l2.fillsRefused >= 1);
      expect(await fx.raw.exists(`${prefix}k`)).toBe(0);
      expect(await a.get('k')).toBeUndefined();
    });

    it('a write overtaking a refresh is not overwritten by it', async () => {
      const prefix = `swr${++seq}:`;
      const a = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      const b = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await staleV1(a);
      const refresh = latch<string>();
      expect(await a.getOrSet('k', refresh.factory, { ttl: '1h' })).toBe('v1');
      await refresh.entered;
      await b.set('k', 'written by B', { ttl: '1h' });
      refresh.release('refreshed from an old read');
      await waitFor('the refresh settled', () => a.stats().l2.fillsRefused >= 1);
      expect(await b.get('k')).toBe('written by B');
      await waitFor('A sees B', async () => (await a.get('k')) === 'written by B');
    });

    it('an L1-only cache serves stale copies within grace too', async () => {
      const c = new TieredCache({ logger: quiet, resilience: { grace: '1h' } });
      caches.push(c);
      await c.getOrSet('k', () => 'v1', { ttl: 20 });
      await expired(c, 'k');
      const refresh = latch<string>();
      expect(await c.getOrSet('k', refresh.factory)).toBe('v1');
      refresh.release('v2');
      await waitFor('refreshed', async () => (await c.get('k')) === 'v2');
    });
  });

  describe('early refresh and adaptive TTL', () => {
    it('a hit past eagerRefresh of its TTL returns the value and refreshes it before it expires', async () => {
      const prefix = `eager${++seq}:`;
      const c = await cache({ keyPrefix: prefix });
      const t0 = Date.now();
      await c.getOrSet('k', () => 'v1', { ttl: 4_000, eagerRefresh: 0.02 });
      await waitFor('past 2 % of the TTL', () => Date.now() > t0 + 100);
      const refresh = latch<string>();
      expect(await c.getOrSet('k', refresh.factory, { ttl: 4_000, eagerRefresh: 0.02 })).toBe('v1');
      await refresh.entered;
      refresh.release('v2');
      await waitFor('refreshed before expiry', async () => (await c.get('k')) === 'v2');
      // A second instance reading it sees the refreshed entry, fresh.
      const other = await cache({ keyPrefix: prefix });
      expect(await other.get('k')).toBe('v2');
    });

    it('ttl as a function of the value sets each entry its own lifetime in every tier', async () => {
      const prefix = `adaptive${++seq}:`;
      const c = await cache({ keyPrefix: prefix });
      const ttl = (v: { hot: boolean }) => (v.hot ? '1h' : '2s');
      await c.getOrSet('hot', () => ({ hot: true }), { ttl });
      await c.getOrSet('cold', () => ({ hot: false }), { ttl });
      await c.set('set-cold', { hot: false }, { ttl });
      expect(await fx.raw.pttl(`${prefix}hot`)).toBeGreaterThan(3_000_000);
      expect(await fx.raw.pttl(`${prefix}cold`)).toBeLessThanOrEqual(2_000);
      expect(await fx.raw.pttl(`${prefix}set-cold`)).toBeLessThanOrEqual(2_000);
      expect(await c.ttl('cold')).toBeLessThanOrEqual(2_000);
    });

    it('an adaptive TTL that returns garbage rejects the call and writes nothing', async () => {
      const prefix = `adaptive${++seq}:`;
      const c = await cache({ keyPrefix: prefix });
      await expect(c.getOrSet('k', () => 1, { ttl: () => -5 })).rejects.toThrow(/ttl/);
      expect(await fx.raw.exists(`${prefix}k`)).toBe(0);
      expect(await c.get('k')).toBeUndefined();
    });
  });

  describe('fail-safe', () => {
    it('a factory that throws with a stale copy within grace serves the copy, and the source is not called again before failSafeBackoff', async () => {
      const prefix = `fs${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h', failSafeBackoff: '1h' } });
      await staleV1(c);
      let calls = 0;
      const failing = () => {
        calls++;
        throw new Error('source down');
      };
      // grace: false on the read: no stale copy at once, but fail-safe still falls back on it.
      expect(await c.getOrSet('k', failing, { grace: false })).toBe('v1');
      expect(calls).toBe(1);
      for (let i = 0; i < 5; i++) expect(await c.getOrSet('k', failing, { grace: false })).toBe('v1');
      expect(calls).toBe(1);
      expect(c.stats().resilience.failSafe).toBe(1);
    });

    it('a background refresh that fails keeps the stale copy and backs off the source', async () => {
      const prefix = `fs${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h', failSafeBackoff: '1h' } });
      await staleV1(c);
      let calls = 0;
      const failing = async () => {
        calls++;
        throw new Error('source down');
      };
      expect(await c.getOrSet('k', failing)).toBe('v1');
      await waitFor('the refresh failed', () => c.stats().resilience.refreshFailures === 1);
      for (let i = 0; i < 5; i++) expect(await c.getOrSet('k', failing)).toBe('v1');
      expect(calls).toBe(1);
    });

    it('without a stale copy the original error reaches the caller unchanged and nothing is cached', async () => {
      const prefix = `fs${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      const boom = new Error('no source');
      await expect(c.getOrSet('k', () => Promise.reject(boom))).rejects.toBe(boom);
      expect(await fx.raw.exists(`${prefix}k`)).toBe(0);
      expect(await c.getOrSet('k', () => 'fresh')).toBe('fresh');
    });

    it('an invalidation withdraws the stale copy: a failing factory then fails the call', async () => {
      const prefix = `fs${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await staleV1(c);
      await c.delete('k');
      await expect(c.getOrSet('k', () => Promise.reject(new Error('source down')))).rejects.toThrow('source down');
    });

    it('failSafe: false lets the error through even with a stale copy', async () => {
      const prefix = `fs${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h', failSafe: false } });
      await staleV1(c);
      await expect(c.getOrSet('k', () => Promise.reject(new Error('source down')), { grace: false })).rejects.toThrow('source down');
    });
  });

  describe('factory timeouts', () => {
    it('past timeout.soft a caller with a stale copy gets it; the factory finishes in the background and updates every tier', async () => {
      const prefix = `to${++seq}:`;
      const a = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      const b = await cache({ keyPrefix: prefix });
      await staleV1(a);
      const slow = latch<string>();
      expect(await a.getOrSet('k', slow.factory, { grace: false, timeout: { soft: 20 } })).toBe('v1');
      expect(a.stats().resilience.softTimeouts).toBe(1);
      slow.release('late but fresh');
      await waitFor('the late result reached Redis', async () => (await b.get('k')) === 'late but fresh');
      expect(await a.get('k')).toBe('late but fresh');
    });

    it('past timeout.hard a caller without a stale copy gets a CacheFactoryTimeoutError; the late result is still stored', async () => {
      const prefix = `to${++seq}:`;
      const c = await cache({ keyPrefix: prefix });
      const slow = latch<string>();
      const err = await c.getOrSet('k', slow.factory, { timeout: { hard: 30 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CacheFactoryTimeoutError);
      expect((err as CacheFactoryTimeoutError).key).toBe('k');
      expect(c.stats().resilience.hardTimeouts).toBe(1);
      slow.release('late');
      await waitFor('stored when it came', async () => (await c.get('k')) === 'late');
      expect(slow.calls()).toBe(1);
    });

    it('a late result is not stored when the key was invalidated meanwhile', async () => {
      const prefix = `to${++seq}:`;
      const a = await cache({ keyPrefix: prefix });
      const b = await cache({ keyPrefix: prefix });
      const slow = latch<string>();
      await expect(a.getOrSet('k', slow.factory, { timeout: { hard: 30 } })).rejects.toBeInstanceOf(CacheFactoryTimeoutError);
      await b.delete('k');
      slow.release('read before the delete');
      await waitFor('the late fill settled', () => a.stats().l2.fillsRefused >= 1);
      expect(await fx.raw.exists(`${prefix}k`)).toBe(0);
    });

    it('past timeout.hard with a stale copy, fail-safe answers with the copy', async () => {
      const prefix = `to${++seq}:`;
      const c = await cache({ keyPrefix: prefix, resilience: { grace: '1h' } });
      await staleV1(c);
      const hung = latch<string>();
      expect(await c.getOrSet('k', hung.factory, { grace: false, timeout: { hard: 25 } })).toBe('v1');
      expect(c.stats().resilience.failSafe).toBe(1);
      hung.release('v2');
      await waitFor('stored when it came', async () => (await c.get('k')) === 'v2');
    });

    it('callers joining a flight that timed out get the same timeout, and one factory runs', async () => {
      const c = await cache({ keyPrefix: `to${++seq}:` });
      const slow = latch<string>();
      const calls = Array.from({ length: 20 }, () => c.getOrSet('k', slow.factory, { timeout: { hard: 30 } }).catch((e: unknown) => e));
      for (const e of await Promise.all(calls)) expect(e).toBeInstanceOf(CacheFactoryTimeoutError);
      expect(slow.calls()).toBe(1);
      slow.release('done');
      await waitFor('stored', async () => (await c.get('k')) === 'done');
    });
  });

  describe('options', () => {
    it('invalid cache-wide resilience options fail at construction naming the option', () => {
      expect(() => new TieredCache({ resilience: { grace: 'soon' } })).toThrow(TieredCacheOptionsError);
      expect(() => new TieredCache({ resilience: { grace: 'soon' } })).toThrow(/resilience\.grace/);
      expect(() => new TieredCache({ resilience: { eagerRefresh: 1.5 } })).toThrow(/resilience\.eagerRefresh/);
      expect(() => new TieredCache({ resilience: { timeout: { soft: '2s', hard: '1s' } } })).toThrow(/resilience\.timeout\.soft/);
      expect(() => new TieredCache({ resilience: { failSafe: 'yes' as never } })).toThrow(/resilience\.failSafe/);
    });

    it('an invalid per-call option rejects the call before the factory runs', async () => {
      const c = new TieredCache({ logger: quiet });
      caches.push(c);
      let ran = false;
      const factory = () => {
        ran = true;
        return 1;
      };
      await expect(c.getOrSet('k', factory, { eagerRefresh: 2 })).rejects.toThrow(TypeError);
      await expect(c.getOrSet('k', factory, { timeout: { soft: -1 } })).rejects.toThrow(/timeout\.soft/);
      await expect(c.getOrSet('k', factory, { grace: 'later' })).rejects.toThrow(/grace/);
      expect(ran).toBe(false);
    });
  });
});
