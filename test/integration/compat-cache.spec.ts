import { Cache, CacheRefreshDiscardedError, createCache, type CacheEvents, type CacheOptions } from '../../lib/compat';
import { NO_EXPIRY } from '../../lib/compat/ttl';
import { redisFixture } from '../support/redis-fixture';

/**
 * The compat Cache against cache-manager 7's contract: results, misses, null, TTLs (relative in, absolute out),
 * events and wrap (single flight, refreshThreshold), L1-only and with real Redis behind it.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

/** A promise the test resolves: holds a factory until released. */
function latch<T = void>(): { promise: Promise<T>; open(v: T): void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

/** Every event of a cache, in order, with its payload. */
function record(cache: Cache): Array<[string, unknown]> {
  const seen: Array<[string, unknown]> = [];
  for (const e of ['get', 'mget', 'ttl', 'set', 'mset', 'del', 'mdel', 'clear', 'refresh'] as const) {
    cache.on(e, ((payload: unknown) => seen.push([e, payload])) as CacheEvents[typeof e]);
  }
  return seen;
}

/** The next `refresh` event. */
function nextRefresh(cache: Cache): Promise<{ key: string; value: unknown; error?: unknown }> {
  return new Promise((resolve) => {
    const listener = (d: { key: string; value: unknown; error?: unknown }) => {
      cache.off('refresh', listener);
      resolve(d);
    };
    cache.on('refresh', listener);
  });
}

describe('compat Cache (cache-manager 7 semantics)', () => {
  const fx = redisFixture();
  const made: Cache[] = [];
  afterEach(async () => {
    await Promise.all(made.splice(0).map((c) => c.disconnect()));
  });

  describe.each([
    ['L1 only', false],
    ['L1 + Redis (tiered.redis)', true],
  ] as const)('%s', (_mode, withRedis) => {
    function make(options: CacheOptions = {}): Cache {
      const c = createCache({ namespace: `cc${++seq}`, ...options, tiered: { logger: quiet, ...(withRedis ? { redis: fx.redis.url } : {}), ...options.tiered } });
      made.push(c);
      return c;
    }
    const ns = () => `cc${seq}:`;

    it('set resolves the value, get returns it (the same value for null), a miss is undefined', async () => {
      const c = make();
      await expect(c.set('a', { n: 1 })).resolves.toEqual({ n: 1 });
      await expect(c.get('a')).resolves.toEqual({ n: 1 });
      await expect(c.get('missing')).resolves.toBeUndefined();
      await expect(c.set('nil', null)).resolves.toBeNull();
      await expect(c.get('nil')).resolves.toBeNull();
      if (withRedis) expect(await fx.raw.exists(`${ns()}a`, `${ns()}nil`)).toBe(2);
    });

    it('null is a cached value: wrap returns it without calling the function, mget keeps it apart from a miss', async () => {
      const c = make();
      await c.set('nil', null);
      const fn = jest.fn(() => 'computed');
      await expect(c.wrap('nil', fn)).resolves.toBeNull();
      expect(fn).not.toHaveBeenCalled();
      await expect(c.mget(['nil', 'missing'])).resolves.toEqual([null, undefined]);
      // A function that returns null: cached too.
      const nullFn = jest.fn(() => null);
      await expect(c.wrap('made-null', nullFn)).resolves.toBeNull();
      await expect(c.wrap('made-null', nullFn)).resolves.toBeNull();
      expect(nullFn).toHaveBeenCalledTimes(1);
    });

    it('set(key, undefined) and a negative TTL leave the key absent, as cache-manager (Keyv) does', async () => {
      const c = make();
      await c.set('u', 'old');
      await expect(c.set('u', undefined)).resolves.toBeUndefined();
      await expect(c.get('u')).resolves.toBeUndefined();
      await c.set('neg', 'old');
      await expect(c.set('neg', 'new', -1)).resolves.toBe('new');
      await expect(c.get('neg')).resolves.toBeUndefined();
      if (withRedis) expect(await fx.raw.exists(`${ns()}u`, `${ns()}neg`)).toBe(0);
    });

    it('ttl(key) is the absolute expiry in epoch ms; 0 and no default mean no expiry (undefined); absent is undefined', async () => {
      const c = make();
      const before = Date.now();
      await c.set('k', 'v', 60_000);
      const expires = await c.ttl('k');
      expect(expires).toBeGreaterThanOrEqual(before + 60_000 - 5);
      expect(expires).toBeLessThanOrEqual(Date.now() + 60_000);
      await c.set('forever', 'v', 0);
      await expect(c.ttl('forever')).resolves.toBeUndefined();
      await expect(c.get('forever')).resolves.toBe('v');
      await c.set('default', 'v');
      await expect(c.ttl('default')).resolves.toBeUndefined();
      await expect(c.ttl('missing')).resolves.toBeUndefined();
      if (withRedis) {
        const pttl = await fx.raw.pttl(`${ns()}k`);
        expect(pttl).toBeGreaterThan(59_000);
        expect(pttl).toBeLessThanOrEqual(60_000);
        // "No expiry" is stored with the longest TTL every tier accepts.
        expect(await fx.raw.pttl(`${ns()}forever`)).toBeGreaterThan(NO_EXPIRY - 60_000);
      }
    });

    it('the ttl option is the default TTL of set, mset and wrap', async () => {
      const c = make({ ttl: 30_000 });
      const t0 = Date.now();
      await c.set('s', 1);
      await c.mset([{ key: 'm', value: 2 }]);
      await c.wrap('w', () => 3);
      for (const key of ['s', 'm', 'w']) {
        const expires = (await c.ttl(key)) as number;
        expect(expires).toBeGreaterThanOrEqual(t0 + 30_000 - 5);
        expect(expires).toBeLessThanOrEqual(Date.now() + 30_000);
      }
    });

    it('a TTL that is not a number rejects set with a TypeError (and a set event carrying it)', async () => {
      const c = make();
      const seen = record(c);
      await expect(c.set('k', 1, Number.NaN)).rejects.toThrow(TypeError);
      await expect(c.set('k', 1, '5m' as unknown as number)).rejects.toThrow(/ttl must be a number of milliseconds/);
      expect(seen.map(([e, d]) => [e, (d as { error?: unknown }).error instanceof TypeError])).toEqual([
        ['set', true],
        ['set', true],
      ]);
      await expect(c.get('k')).resolves.toBeUndefined();
    });

    it('mset takes per-entry TTLs and resolves to the list with the default TTL filled in; mget and mdel', async () => {
      const c = make({ ttl: 45_000 });
      const t0 = Date.now();
      const out = await c.mset<number | string>([
        { key: 'a', value: 1 },
        { key: 'b', value: 2, ttl: 5_000 },
        { key: 'c', value: 3, ttl: 0 },
        { key: 'a', value: 'last' },
      ]);
      expect(out).toEqual([
        { key: 'a', value: 1, ttl: 45_000 },
        { key: 'b', value: 2, ttl: 5_000 },
        { key: 'c', value: 3, ttl: 0 },
        { key: 'a', value: 'last', ttl: 45_000 },
      ]);
      await expect(c.mget(['a', 'b', 'c', 'x'])).resolves.toEqual(['last', 2, 3, undefined]);
      expect((await c.ttl('b')) as number).toBeLessThanOrEqual(Date.now() + 5_000);
      expect((await c.ttl('b')) as number).toBeGreaterThanOrEqual(t0 + 5_000 - 5);
      await expect(c.ttl('c')).resolves.toBeUndefined();
      await expect(c.mdel(['a', 'b'])).resolves.toBe(true);
      await expect(c.mget(['a', 'b', 'c'])).resolves.toEqual([undefined, undefined, 3]);
    });

    it('del and clear resolve true; clear empties this namespace only', async () => {
      const c = make();
      const other = make();
      await c.set('x', 1);
      await other.set('x', 'other');
      await expect(c.del('x')).resolves.toBe(true);
      await expect(c.del('never-there')).resolves.toBe(true);
      await c.set('y', 1);
      await expect(c.clear()).resolves.toBe(true);
      await expect(c.get('y')).resolves.toBeUndefined();
      await expect(other.get('x')).resolves.toBe('other');
    });

    it("emits cache-manager's events with its payloads (one store, 'primary')", async () => {
      const c = make({ ttl: 60_000 });
      const seen = record(c);
      await c.set('k', 'v');
      await c.get('k');
      await c.get('missing');
      await c.mget(['k', 'missing']);
      await c.mset([{ key: 'm', value: 1 }]);
      await c.del('k');
      await c.mdel(['m']);
      await c.clear();
      await c.get('');
      expect(seen.slice(0, -1)).toEqual([
        ['set', { key: 'k', value: 'v', store: 'primary' }],
        ['set', { key: 'k', value: 'v' }],
        ['get', { key: 'k', value: 'v', store: 'primary' }],
        ['mget', { keys: ['k', 'missing'], values: ['v', undefined] }],
        ['mset', { list: [{ key: 'm', value: 1, ttl: 60_000 }] }],
        ['del', { key: 'k' }],
        ['mdel', { keys: ['m'] }],
        ['clear', undefined],
      ]);
      // An invalid key is a miss with an error, never a rejection of get.
      expect(seen.at(-1)?.[0]).toBe('get');
      expect((seen.at(-1)?.[1] as { error: Error }).error).toBeInstanceOf(TypeError);
    });

    it('ttl emits a ttl event with the raw entry when someone listens', async () => {
      const c = make();
      await c.set('k', { n: 1 }, 10_000);
      const events: unknown[] = [];
      c.on('ttl', (d) => events.push(d));
      const expires = await c.ttl('k');
      expect(events).toEqual([{ key: 'k', value: { value: { n: 1 }, expires } }]);
    });

    it('wrap: concurrent calls for one key run the function once (held by a latch) and all get its value', async () => {
      const c = make();
      const gate = latch<string>();
      const entered = latch();
      let runs = 0;
      const fn = async () => {
        runs++;
        entered.open();
        return gate.promise;
      };
      const calls = Array.from({ length: 10 }, () => c.wrap('w', fn, 60_000));
      await entered.promise;
      gate.open('computed');
      await expect(Promise.all(calls)).resolves.toEqual(Array(10).fill('computed'));
      expect(runs).toBe(1);
      await expect(c.get('w')).resolves.toBe('computed');
      await expect(c.wrap('w', fn)).resolves.toBe('computed');
      expect(runs).toBe(1);
    });

    it('wrap: an error reaches every waiting call and nothing is cached', async () => {
      const c = make();
      const gate = latch();
      const entered = latch();
      const fn = jest.fn(async () => {
        entered.open();
        await gate.promise;
        throw new Error('source down');
      });
      const calls = [c.wrap('e', fn), c.wrap('e', fn)];
      await entered.promise;
      gate.open();
      for (const call of calls) await expect(call).rejects.toThrow('source down');
      expect(fn).toHaveBeenCalledTimes(1);
      await expect(c.get('e')).resolves.toBeUndefined();
      await expect(c.wrap('e', () => 'ok')).resolves.toBe('ok');
    });

    it('wrap: TTL as a function of the value; raw: true resolves to { value, expires }', async () => {
      const c = make();
      const t0 = Date.now();
      const raw = await c.wrap('r', () => ({ ttl: 20_000 }), { ttl: (v: { ttl: number }) => v.ttl, raw: true });
      expect(raw.value).toEqual({ ttl: 20_000 });
      expect(raw.expires).toBeGreaterThanOrEqual(t0 + 20_000);
      const stored = (await c.ttl('r')) as number;
      expect(stored).toBeGreaterThanOrEqual(t0 + 20_000 - 5);
      expect(stored).toBeLessThanOrEqual(Date.now() + 20_000);
      const hit = await c.wrap('r', () => ({ ttl: 1 }), { raw: true });
      expect(hit.value).toEqual({ ttl: 20_000 });
      // Redis' PTTL is read again, a millisecond of clock apart.
      expect(Math.abs((hit.expires as number) - stored)).toBeLessThanOrEqual(5);
    });

    it('wrap with refreshThreshold: a hit with less TTL left is answered at once and refreshed in the background, once', async () => {
      const c = make();
      await c.set('r', 'old', 60_000);
      const gate = latch<string>();
      const entered = latch();
      const fn = jest.fn(async () => {
        entered.open();
        return gate.promise;
      });
      const refreshed = nextRefresh(c);
      // 60 s left, threshold 120 s: due.
      await expect(c.wrap('r', fn, 60_000, 120_000)).resolves.toBe('old');
      await entered.promise;
      await expect(c.wrap('r', fn, { ttl: 60_000, refreshThreshold: 120_000 })).resolves.toBe('old');
      expect(fn).toHaveBeenCalledTimes(1);
      const t0 = Date.now();
      gate.open('new');
      await expect(refreshed).resolves.toEqual({ key: 'r', value: 'new' });
      await expect(c.get('r')).resolves.toBe('new');
      expect((await c.ttl('r')) as number).toBeGreaterThanOrEqual(t0 + 60_000 - 5);
    });

    it('wrap refreshes only when the TTL left is below the threshold (a function of the value, or the option)', async () => {
      const c = make({ refreshThreshold: 120_000 });
      await c.set('fresh', 'v', 60_000);
      const fn = jest.fn(() => 'new');
      await expect(c.wrap('fresh', fn, 60_000, () => 1_000)).resolves.toBe('v');
      expect(fn).not.toHaveBeenCalled();
      // The option's default threshold (120 s) applies when the call gives none.
      const refreshed = nextRefresh(c);
      await expect(c.wrap('fresh', fn, 60_000)).resolves.toBe('v');
      await expect(refreshed).resolves.toEqual({ key: 'fresh', value: 'new' });
      // An entry that never expires is never due.
      await c.set('forever', 'v', 0);
      await expect(c.wrap('forever', fn, 60_000)).resolves.toBe('v');
      expect(fn).toHaveBeenCalledTimes(1);
    });

    it('a refresh whose key is deleted while it runs is discarded (refresh event with the old value and the reason)', async () => {
      const c = make();
      await c.set('r', 'old', 60_000);
      const gate = latch<string>();
      const entered = latch();
      const refreshed = nextRefresh(c);
      await c.wrap('r', async () => {
        entered.open();
        return gate.promise;
      }, 60_000, 120_000);
      await entered.promise;
      await c.del('r');
      gate.open('computed before the delete');
      const outcome = await refreshed;
      expect(outcome.value).toBe('old');
      expect(outcome.error).toBeInstanceOf(CacheRefreshDiscardedError);
      await expect(c.get('r')).resolves.toBeUndefined();
    });

    it('a refresh that fails leaves the value and reports the error', async () => {
      const c = make();
      await c.set('r', 'old', 60_000);
      const refreshed = nextRefresh(c);
      await c.wrap('r', () => Promise.reject(new Error('source down')), 60_000, 120_000);
      const outcome = await refreshed;
      expect(outcome).toMatchObject({ key: 'r', value: 'old' });
      expect((outcome.error as Error).message).toBe('source down');
      await expect(c.get('r')).resolves.toBe('old');
    });

    it('cacheId, disconnect, bound methods, and no Keyv stores', async () => {
      const c = make({ cacheId: 'orders' });
      expect(c.cacheId()).toBe('orders');
      const { get, set, wrap } = c;
      await set('d', 1);
      await expect(get('d')).resolves.toBe(1);
      await expect(wrap('d', () => 2)).resolves.toBe(1);
      expect(() => c.stores).toThrow(/no Keyv `stores`.*cache\.tiered/);
      expect(typeof make().cacheId()).toBe('string');
      await expect(c.disconnect()).resolves.toBeUndefined();
    });
  });

  it('createCache with Redis: the first calls wait for the connection, so they reach Redis', async () => {
    const c = createCache({ namespace: 'gate', tiered: { redis: fx.redis.url, logger: quiet } });
    made.push(c);
    await c.set('first', 1);
    expect(await fx.raw.exists('gate:first')).toBe(1);
    expect(c.tiered.l2?.ready).toBe(true);
  });

  it('another instance deleting a key while a refresh runs: the refresh does not bring it back', async () => {
    const a = createCache({ namespace: 'rd', tiered: { redis: fx.redis.url, logger: quiet } });
    const b = createCache({ namespace: 'rd', tiered: { redis: fx.redis.url, logger: quiet } });
    made.push(a, b);
    await a.set('r', 'old', 60_000);
    const gate = latch<string>();
    const entered = latch();
    const refreshed = nextRefresh(a);
    await a.wrap('r', async () => {
      entered.open();
      return gate.promise;
    }, 60_000, 120_000);
    await entered.promise;
    await b.del('r');
    gate.open('stale');
    expect((await refreshed).error).toBeInstanceOf(CacheRefreshDiscardedError);
    expect(await fx.raw.exists('rd:r')).toBe(0);
    await expect(b.get('r')).resolves.toBeUndefined();
  });
});
