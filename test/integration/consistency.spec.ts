import { Redis } from 'ioredis';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * Ordering and bookkeeping that keep instances consistent: remote invalidations cancel queued write-behind
 * writes, one instance's commands on a key reach Redis in the order issued whatever maxConnections is, and
 * mget promotes exactly as get does.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

describe('consistency across instances', () => {
  let redis: RedisServer;
  let raw: Redis;
  const caches: TieredCache[] = [];
  const procs: EngineProcess[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  async function cache(opts: Partial<TieredCacheOptions>): Promise<TieredCache> {
    const c = new TieredCache({ redis: redis.url, logger: quiet, ...opts });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  it("another instance's delete, tag, pattern and clear cancel this instance's queued write-behind writes (separate processes)", async () => {
    const prefix = `c${++seq}:`;
    const a = await EngineProcess.start({ redis: redis.url, keyPrefix: prefix, writeBehind: { flushInterval: '1h' } });
    procs.push(a);
    expect(await a.call('connect')).toBe(true);
    const b = await cache({ keyPrefix: prefix });
    const queued = async () => (await a.call<{ writeBehind: { queueLength: number } }>('stats')).writeBehind.queueLength;

    await a.call('set', 'd', 'queued');
    await a.call('set', 't', 'queued', { tags: ['tg'] });
    await a.call('set', 'p:1', 'queued');
    await a.call('set', 'keep', 'queued');
    expect(await queued()).toBe(4);

    await b.delete('d');
    await b.invalidateTags('tg');
    await b.invalidatePattern('p:*');
    await waitFor("A's queue lost the three invalidated writes", async () => (await queued()) === 1);
    await a.call('flush');
    expect(await raw.exists(prefix + 'd', prefix + 't', prefix + 'p:1')).toBe(0);
    expect(await raw.exists(prefix + 'keep')).toBe(1);

    await a.call('set', 'later', 'queued');
    expect(await queued()).toBe(1);
    await b.clear();
    await waitFor("A's queue was emptied", async () => (await queued()) === 0);
    await a.call('flush');
    expect(await raw.exists(prefix + 'later')).toBe(0);
  });

  it('with maxConnections 4, a set followed by a delete of the same key never leaves the value (1,000 pairs)', async () => {
    const prefix = `c${++seq}:`;
    const a = await cache({ keyPrefix: prefix, redis: { url: redis.url, maxConnections: 4 }, bus: false });
    const pairs = Array.from({ length: 1_000 }, (_, i) => `k${i}`);
    await Promise.all(pairs.map(async (k) => {
      const written = a.set(k, 'v');
      const deleted = a.delete(k);
      await Promise.all([written, deleted]);
    }));
    const left = await raw.exists(...pairs.map((k) => prefix + k));
    expect(left).toBe(0);
  });

  it('mget follows l2.promoteAfter exactly as get does', async () => {
    const prefix = `c${++seq}:`;
    const w = await cache({ keyPrefix: prefix, bus: false });
    await w.mset([['a', 1], ['b', 2]]);
    const r = await cache({ keyPrefix: prefix, bus: false, l2: { promoteAfter: 2 } });
    expect(await r.mget(['a', 'b'])).toEqual([1, 2]);
    expect(r.stats().l2.promotions).toBe(0);
    expect(r.peekLocal('a')).toBeUndefined();
    expect(await r.mget(['a', 'b'])).toEqual([1, 2]);
    expect(r.stats().l2.promotions).toBe(2);
    expect(r.peekLocal('a')).toBe(1);
    // And get counts the same way.
    await w.set('c', 3);
    expect(await r.get('c')).toBe(3);
    expect(r.peekLocal('c')).toBeUndefined();
    expect(await r.get('c')).toBe(3);
    expect(r.peekLocal('c')).toBe(3);
  });
});
