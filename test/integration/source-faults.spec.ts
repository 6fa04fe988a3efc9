import { Redis } from 'ioredis';
import { CacheFactoryTimeoutError, TieredCache, type TieredCacheOptions } from '../../lib';
import { RedisServer } from '../support/redis-server';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';

/**
 * Faults of the source and of Redis met by getOrSet's resilience options, against real processes: a source that
 * throws, hangs, is slow and recovers; Redis stopped (SIGSTOP), slowed behind a TCP proxy, killed. Every test
 * asserts that callers are answered while the fault still holds (a held factory, a stopped server), so no call
 * waits for the fault to end, and that nothing the source returned is lost.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

/** A source the tests can break: its value, a failure, or a hang until released. */
class Source {
  value = 'v1';
  error: Error | undefined;
  calls = 0;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;

  readonly read = async (): Promise<string> => {
    this.calls++;
    if (this.#gate) await this.#gate;
    if (this.error) throw this.error;
    return this.value;
  };

  hang(): void {
    this.#gate = new Promise((r) => (this.#open = r));
  }

  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }
}

describe('source and Redis faults under getOrSet', () => {
  let redis: RedisServer;
  let raw: Redis;
  const caches: TieredCache[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of cleanups.splice(0)) await c();
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  /** A Redis of the test's own (to stop or kill), and a cache holding 'k' = 'v1' past its TTL, within grace; the source now says 'v2'. */
  async function staleOnOwnRedis(): Promise<{ own: RedisServer; source: Source; c: TieredCache }> {
    const own = await RedisServer.start();
    cleanups.push(() => own.stop());
    const source = new Source();
    const c = await cache({ resilience: { grace: '1h' }, redis: { url: own.url, commandTimeout: 100 } }, own.url);
    await c.getOrSet('k', source.read, { ttl: 30 });
    await expired(c, 'k');
    source.value = 'v2';
    return { own, source, c };
  }

  async function cache(opts: Partial<TieredCacheOptions> = {}, url = redis.url): Promise<TieredCache> {
    const c = new TieredCache({ redis: url, logger: quiet, keyPrefix: `sf${++seq}:`, ...opts });
    caches.push(c);
    await c.connect();
    return c;
  }

  const expired = (c: TieredCache, key: string) => waitFor(`${key} past its TTL`, async () => (await c.get(key)) === undefined);

  it('source throws, then recovers: fail-safe serves the stale copy during the outage and the recovered value after failSafeBackoff', async () => {
    const source = new Source();
    const c = await cache({ resilience: { grace: '1h', failSafeBackoff: 50 } });
    expect(await c.getOrSet('k', source.read, { ttl: 30 })).toBe('v1');
    await expired(c, 'k');
    source.error = new Error('database down');
    for (let i = 0; i < 10; i++) expect(await c.getOrSet('k', source.read, { ttl: '1h' })).toBe('v1');
    await waitFor('the refresh failed', () => c.stats().resilience.refreshFailures >= 1);
    source.error = undefined;
    source.value = 'v2';
    await waitFor('the recovered value is served', async () => (await c.getOrSet('k', source.read, { ttl: '1h' })) === 'v2');
    expect(await raw.get(`${c.options.keyPrefix}k`)).toContain('v2');
  });

  it('source hangs: callers without a copy get CacheFactoryTimeoutError at timeout.hard while the factory is still held, and its result is stored when it returns', async () => {
    const source = new Source();
    const a = await cache();
    const b = await cache({ keyPrefix: a.options.keyPrefix });
    source.hang();
    const answers = await Promise.all(Array.from({ length: 10 }, () => a.getOrSet('k', source.read, { timeout: { hard: 40 } }).catch((e: unknown) => e)));
    for (const e of answers) expect(e).toBeInstanceOf(CacheFactoryTimeoutError);
    expect(source.calls).toBe(1);
    expect(await b.get('k')).toBeUndefined();
    source.release();
    await waitFor('the hung call stored its result for every instance', async () => (await b.get('k')) === 'v1');
  });

  it('source slow: past timeout.soft callers get the stale copy, and the slow result replaces it in Redis for every instance', async () => {
    const source = new Source();
    const a = await cache({ resilience: { grace: '1h', timeout: { soft: 20 } } });
    const b = await cache({ keyPrefix: a.options.keyPrefix, resilience: { grace: '1h' } });
    await a.getOrSet('k', source.read, { ttl: 30 });
    await expired(a, 'k');
    source.value = 'v2';
    source.hang();
    expect(await a.getOrSet('k', source.read, { grace: false })).toBe('v1');
    expect(a.stats().resilience.softTimeouts).toBe(1);
    source.release();
    await waitFor('B reads the slow result', async () => (await b.get('k')) === 'v2');
  });

  it('Redis stopped (SIGSTOP) with a stale entry: getOrSet answers at once from the stale L1 copy, the refresh keeps its result, and Redis is used again after SIGCONT', async () => {
    const { own, source, c } = await staleOnOwnRedis();
    own.pause();
    try {
      expect(await c.getOrSet('k', source.read, { ttl: '1h' })).toBe('v1');
      // The refresh could not ask Redis what to check its store against: its result is kept in L1 only.
      await waitFor('the refreshed value in L1', async () => (await c.get('k')) === 'v2');
      expect(await c.getOrSet('other', async () => 'from the source while Redis is stopped')).toBe('from the source while Redis is stopped');
    } finally {
      own.resume();
    }
    await waitFor('Redis answers again', async () => {
      await c.set('after', 'x');
      const direct = new Redis(own.url);
      try {
        return (await direct.get(`${c.options.keyPrefix}after`))?.includes('x') === true;
      } finally {
        direct.disconnect();
      }
    });
  });

  it('Redis slowed past its command deadline behind a TCP proxy: a stale L1 copy is still answered at once, and a miss falls back to the source', async () => {
    const proxy = await TcpProxy.start(redis.port);
    cleanups.push(() => proxy.stop());
    const source = new Source();
    const c = await cache({ resilience: { grace: '1h' }, redis: { url: proxy.url, commandTimeout: 50 } }, proxy.url);
    await c.getOrSet('k', source.read, { ttl: 30 });
    await expired(c, 'k');
    proxy.delayMs = 500;
    source.value = 'v2';
    expect(await c.getOrSet('k', source.read)).toBe('v1');
    expect(await c.getOrSet('miss', async () => 'from the source')).toBe('from the source');
    await waitFor('L2 calls abandoned at the deadline', () => c.stats().l2.timeouts > 0);
    proxy.delayMs = 0;
  });

  it('Redis killed while a refresh runs: the caller is never failed, the refreshed value is served, and Redis restarted empty is filled by the next miss', async () => {
    const { own, source, c } = await staleOnOwnRedis();
    source.hang();
    expect(await c.getOrSet('k', source.read, { ttl: '1h' })).toBe('v1');
    await own.kill();
    source.release();
    await waitFor('the refreshed value is served', async () => (await c.getOrSet('k', source.read)) === 'v2');
    await own.restart();
    await waitFor('Redis back', () => c.l2?.ready === true);
    const direct = new Redis(own.url);
    try {
      await waitFor('a miss fills Redis again', async () => {
        await c.getOrSet(`n${source.calls}`, source.read);
        return (await direct.keys(`${c.options.keyPrefix}n*`)).length > 0;
      });
    } finally {
      direct.disconnect();
    }
  });
});
