import { Redis } from 'ioredis';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { redisFixture } from '../support/redis-fixture';
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
  const fx = redisFixture();

  async function cache(opts: Partial<TieredCacheOptions>): Promise<TieredCache> {
    const c = new TieredCache({ redis: fx.redis.url, logger: quiet, ...opts });
    fx.caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  it("another instance's delete, tag, pattern and clear cancel this instance's queued write-behind writes (separate processes)", async () => {
    const prefix = `c${++seq}:`;
    const a = await EngineProcess.start({ redis: fx.redis.url, keyPrefix: prefix, writeBehind: { flushInterval: '1h' } });
    fx.procs.push(a);
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
    expect(await fx.raw.exists(prefix + 'd', prefix + 't', prefix + 'p:1')).toBe(0);
    expect(await fx.raw.exists(prefix + 'keep')).toBe(1);

    await a.call('set', 'later', 'queued');
    expect(await queued()).toBe(1);
    await b.clear();
    await waitFor("A's queue was emptied", async () => (await queued()) === 0);
    await a.call('flush');
    expect(await fx.raw.exists(prefix + 'later')).toBe(0);
  });

  it('with maxConnections 4, a set followed by a delete of the same key never leaves the value (1,000 pairs)', async () => {
    const prefix = `c${++seq}:`;
    const a = await cache({ keyPrefix: prefix, redis: { url: fx.redis.url, maxConnections: 4 }, bus: false });
    const pairs = Array.from({ length: 1_000 }, (_, i) => `k${i}`);
    await Promise.all(pairs.map(async (k) => {
      const written = a.set(k, 'v');
      const deleted = a.delete(k);
      await Promise.all([written, deleted]);
    }));
    const left = await fx.raw.exists(...pairs.map((k) => prefix + k));
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

describe('a fill overtaken by an invalidation on another instance is returned but stored in no tier', () => {
  let redis: RedisServer;
  let raw: Redis;
  let b: EngineProcess;
  const caches: TieredCache[] = [];
  const prefix = 'race:';

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
    // B, the instance whose factory read the old row, runs in a Node process of its own.
    b = await EngineProcess.start({ redis: redis.url, keyPrefix: prefix });
    expect(await b.call('connect')).toBe(true);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await b.stop();
    raw.disconnect();
    await redis.stop();
  });

  async function instanceA(): Promise<TieredCache> {
    const c = new TieredCache({ redis: redis.url, keyPrefix: prefix, logger: quiet });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  const cases: Array<[string, (a: TieredCache, key: string) => Promise<unknown>]> = [
    [
      'delete',
      async (a, key) => {
        await a.delete(key);
        // The fence it leaves expires with l2.fillWindow (1 minute by default).
        const pttl = await raw.pttl(`${prefix}__tc:fence:{${prefix}${key}}`);
        expect(pttl).toBeGreaterThan(0);
        expect(pttl).toBeLessThanOrEqual(60_000);
      },
    ],
    ['invalidate (queued; resolves once applied)', (a, key) => a.invalidate(key)],
    ['invalidatePattern', (a, key) => a.invalidatePattern(`${key.split(':')[0]}:*`)],
    ['invalidateTags', (a) => a.invalidateTags('row')],
    ['clear', (a) => a.clear()],
  ];

  it.each(cases)('%s on A, the factory on B returning right after it resolved (the key absent from Redis)', async (_name, invalidate) => {
    const a = await instanceA();
    const key = `${_name.split(' ')[0]}:1`;
    expect(await raw.exists(prefix + key)).toBe(0);
    // B's factory is running (it has read the old row) when A changes the row and invalidates.
    expect(await b.call('startFill', key, { tags: ['row'] })).toBe(true);
    await invalidate(a, key);
    // 0 ms later the factory returns the old row.
    expect(await b.call('releaseFill', key, 'OLD')).toBe('OLD');
    expect(await raw.exists(prefix + key)).toBe(0);
    expect(await b.call('inL1', key)).toBe(false);
    expect(await a.get(key)).toBeUndefined();
    expect(await b.call('get', key)).toBeUndefined();
    // The next fill, which starts after the invalidation, is stored as usual.
    expect(await b.call('startFill', key)).toBe(true);
    expect(await b.call('releaseFill', key, 'NEW')).toBe('NEW');
    expect(await raw.exists(prefix + key)).toBe(1);
    expect(await a.get(key)).toBe('NEW');
  });

  it.each([
    ['clear', (a: TieredCache) => a.clear()],
    ["invalidatePattern('*')", (a: TieredCache) => a.invalidatePattern('*')],
  ])('%s as the first invalidation the namespace ever had (no generation in Redis yet) still fences the fill', async (_name, invalidate) => {
    const a = await instanceA();
    await raw.del(`${prefix}__tc:gen`);
    expect(await b.call('startFill', 'first:1')).toBe(true);
    await invalidate(a);
    // The walk leaves the generation it just moved: deleting it would make the fill's check pass again.
    expect(await raw.get(`${prefix}__tc:gen`)).toBe('1');
    expect(await b.call('releaseFill', 'first:1', 'OLD')).toBe('OLD');
    expect(await raw.exists(`${prefix}first:1`)).toBe(0);
    expect(await a.get('first:1')).toBeUndefined();
  });

  it('a pattern that also matches a tag index leaves the index: a later tag invalidation still finds its keys', async () => {
    const a = await instanceA();
    await a.set('y:2', 'OLD', { tags: ['grp:1'] });
    await a.set('x:1', 'v');
    // `*:1` matches x:1, and also the index of tag grp:1 (race:__tc:tagz:grp:1) under the same prefix.
    expect(await a.invalidatePattern('*:1')).toBe(1);
    expect(await raw.exists(`${prefix}__tc:tagz:grp:1`)).toBe(1);
    expect(await a.invalidateTags('grp:1')).toBe(1);
    expect(await raw.exists(`${prefix}y:2`)).toBe(0);
    expect(await b.call('get', 'y:2')).toBeUndefined();
  });

  it('a flushed script cache (SCRIPT FLUSH, a fresh server after failover) cannot let a fill store unchecked', async () => {
    const a = await instanceA();
    expect(await b.call('startFill', 'flush:1')).toBe(true);
    await a.delete('flush:1');
    await raw.script('FLUSH');
    expect(await b.call('releaseFill', 'flush:1', 'OLD')).toBe('OLD');
    expect(await raw.exists(`${prefix}flush:1`)).toBe(0);
    // And a fill nothing overtook still stores after the flush.
    expect(await b.call('startFill', 'flush:2')).toBe(true);
    await raw.script('FLUSH');
    expect(await b.call('releaseFill', 'flush:2', 'NEW')).toBe('NEW');
    expect(await raw.exists(`${prefix}flush:2`)).toBe(1);
    // A tagged fill after a flush is stored and indexed together: the tag invalidation finds it.
    expect(await b.call('startFill', 'flush:3', { tags: ['fl'] })).toBe(true);
    await raw.script('FLUSH');
    expect(await b.call('releaseFill', 'flush:3', 'TAGGED')).toBe('TAGGED');
    expect(await raw.exists(`${prefix}flush:3`)).toBe(1);
    expect(await a.invalidateTags('fl')).toBe(1);
    expect(await raw.exists(`${prefix}flush:3`)).toBe(0);
    // The value waits in the staging key only inside its transaction.
    expect(await raw.exists(`${prefix}__tc:fill`)).toBe(0);
  });

  it('a fill and its tags are stored together: a refused tagged fill leaves neither the value nor a live index entry', async () => {
    const a = await instanceA();
    expect(await b.call('startFill', 'tg:1', { tags: ['tg-a', 'tg-b'] })).toBe(true);
    await a.delete('tg:1');
    expect(await b.call('releaseFill', 'tg:1', 'OLD')).toBe('OLD');
    expect(await raw.exists(`${prefix}tg:1`)).toBe(0);
    expect(await raw.exists(`${prefix}__tc:tagz:tg-a`, `${prefix}__tc:tagz:tg-b`)).toBe(0);
    expect(await b.call('startFill', 'tg:1', { tags: ['tg-a', 'tg-b'] })).toBe(true);
    expect(await b.call('releaseFill', 'tg:1', 'NEW')).toBe('NEW');
    expect(await raw.zrange(`${prefix}__tc:tagz:tg-a`, "0", "-1")).toEqual([`${prefix}tg:1`]);
    expect(await raw.zrange(`${prefix}__tc:tagz:tg-b`, "0", "-1")).toEqual([`${prefix}tg:1`]);
    expect(await a.invalidateTags('tg-b')).toBe(1);
    expect(await b.call('get', 'tg:1')).toBeUndefined();
    expect(await raw.exists(`${prefix}__tc:fill`)).toBe(0);
  });

  it('a write on A overtaking the fill on B wins: the fill only stores into an absent key', async () => {
    const a = await instanceA();
    expect(await b.call('startFill', 'w:1')).toBe(true);
    await a.set('w:1', 'NEW');
    expect(await b.call('releaseFill', 'w:1', 'OLD')).toBe('OLD');
    expect(await a.get('w:1')).toBe('NEW');
    await waitFor('B reads the new value', async () => (await b.call('get', 'w:1')) === 'NEW');
  });

  it('counts the fills it refused', async () => {
    const before = (await b.call<{ l2: { fillsRefused: number } }>('stats')).l2.fillsRefused;
    const a = await instanceA();
    expect(await b.call('startFill', 'n:1')).toBe(true);
    await a.delete('n:1');
    await b.call('releaseFill', 'n:1', 'OLD');
    expect((await b.call<{ l2: { fillsRefused: number } }>('stats')).l2.fillsRefused).toBe(before + 1);
  });
});
