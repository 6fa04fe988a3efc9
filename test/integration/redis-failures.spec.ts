import type { Redis } from 'ioredis';
import { TieredCache } from '../../lib';
import { RedisServer, freePort } from '../support/redis-server';
import { TcpProxy } from '../support/tcp-proxy';

const quiet = { warn() {}, error() {} };
// Keeps Redis busy for ~100 ms (DEBUG SLEEP is disabled by default since Redis 7).
const BUSY_100MS = `local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2]
while true do local n = redis.call('TIME') if n[1] * 1000000 + n[2] - t0 > 100000 then break end end
return 1`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(25);
  }
}

/** Wall time of a call, to check "bounded by the deadline" with a generous margin (not a speed assertion). */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = Date.now();
  const v = await fn();
  return [v, Date.now() - t0];
}

describe('Redis unavailable or failing', () => {
  const caches: TieredCache[] = [];
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });

  it('close() while connect() still waits for a hung Redis ends the wait at once (connect resolves false)', async () => {
    const redis = await RedisServer.start();
    redis.pause();
    try {
      // A connect bound far past Jest's own test timeout: only close() can end this wait in time.
      const cache = new TieredCache({ redis: { url: redis.url, connectTimeout: '60s' } });
      const connecting = cache.connect();
      await cache.close();
      expect(await connecting).toBe(false);
    } finally {
      redis.resume();
      await redis.stop();
    }
  });

  it('boots with Redis down, serves from L1 and the factory, and uses L2 once Redis is there', async () => {
    const port = await freePort();
    const c = new TieredCache({ redis: { url: `redis://127.0.0.1:${port}`, connectTimeout: 300 }, logger: quiet });
    caches.push(c);
    expect(await c.connect()).toBe(false);
    expect(await c.set('k', 1)).toBe(true);
    expect(await c.get('k')).toBe(1);
    expect(await c.getOrSet('f', () => 'computed')).toBe('computed');
    expect(await c.get('missing')).toBeUndefined();
    expect(await c.delete('k')).toBe(1);
    expect(c.stats().l2.status).not.toBe('ready');

    const server = await RedisServer.start([], port);
    try {
      await waitFor(() => c.l2!.ready);
      await c.set('back', { v: 2 });
      const other = new TieredCache({ redis: server.url, logger: quiet });
      caches.push(other);
      await other.connect();
      expect(await other.get('back')).toEqual({ v: 2 });
    } finally {
      await server.stop();
    }
  });

  describe('with a server that dies and hangs', () => {
    let redis: RedisServer;
    beforeAll(async () => (redis = await RedisServer.start()));
    afterAll(() => redis.stop());

    it('Redis killed mid-traffic: no call throws, L1 keeps answering, L2 is used again after restart', async () => {
      const c = new TieredCache({ redis: redis.url, keyPrefix: 'kill:', logger: quiet });
      caches.push(c);
      await c.connect();
      await c.set('warm', 'l1-value');
      const traffic = (async () => {
        const errors: unknown[] = [];
        for (let i = 0; i < 300; i++) {
          try {
            await c.get('warm');
            await c.getOrSet(`miss:${i}`, () => i);
            await c.set(`w:${i}`, i);
            await c.delete(`w:${i}`);
          } catch (err) {
            errors.push(err);
          }
          await sleep(2);
        }
        return errors;
      })();
      await sleep(100);
      await redis.kill();
      const errors = await traffic;
      expect(errors).toEqual([]);
      expect(await c.get('warm')).toBe('l1-value');
      expect(c.stats().l2.errors).toBeGreaterThan(0);

      await redis.restart();
      await waitFor(() => c.l2!.ready);
      await c.set('after', 'restart');
      const fresh = new TieredCache({ redis: redis.url, keyPrefix: 'kill:', logger: quiet });
      caches.push(fresh);
      await fresh.connect();
      expect(await fresh.get('after')).toBe('restart');
    });

    it('a hung Redis (no answer) never holds a call past the command timeout', async () => {
      // Every call goes out and meets its own deadline: the breaker, which would skip them, has a spec of its own.
      const c = new TieredCache({ redis: { url: redis.url, commandTimeout: 100, breaker: false }, keyPrefix: 'hung:', l1: { enabled: false }, logger: quiet });
      caches.push(c);
      await c.connect();
      await c.set('k', 1);
      redis.pause();
      try {
        const [v, ms] = await timed(() => c.get('k'));
        expect(v).toBeUndefined();
        expect(ms).toBeLessThan(2000); // 20x the deadline: proves "bounded", not "fast"
        const [stored, setMs] = await timed(() => c.set('k2', 2));
        expect(stored).toBe(true);
        expect(setMs).toBeLessThan(2000);
        const [computed] = await timed(() => c.getOrSet('k3', () => 'source'));
        expect(computed).toBe('source');
        expect(c.stats().l2.timeouts).toBeGreaterThanOrEqual(3);
      } finally {
        redis.resume();
      }
      // The late replies to the abandoned commands are consumed in order: later calls get their own answers.
      expect(await c.get('k')).toBe(1);
      expect(await c.mget(['k', 'k2'])).toEqual([1, 2]);
    });

    it('a call in flight when the connection drops is bounded even if the reconnect hangs in its handshake', async () => {
      const proxy = await TcpProxy.start(redis.port);
      const c = new TieredCache({ redis: { url: proxy.url, commandTimeout: 100 }, keyPrefix: 'drop:', l1: { enabled: false }, bus: false, logger: quiet });
      caches.push(c);
      try {
        await c.connect();
        await c.set('k', 1);
        expect(await c.get('k')).toBe(1);
        // The GET leaves but gets no answer; then the connection drops, and the reconnect is accepted and
        // never answered: ioredis holds the GET to resend it once the new connection is ready, which never comes.
        proxy.blackhole = true;
        const pending = timed(() => c.get('k'));
        await sleep(10);
        proxy.cut();
        // Raced against a bound of our own, so a regression fails here instead of hanging the suite.
        const [v, ms] = await Promise.race([pending, sleep(5_000).then(() => ['still pending', 5_000] as const)]);
        expect(v).toBeUndefined();
        expect(ms).toBeLessThan(2000); // 20x the deadline: proves "bounded", not "fast"
        const [stored, setMs] = await timed(() => c.set('k2', 2));
        expect(stored).toBe(true);
        expect(setMs).toBeLessThan(2000);
      } finally {
        await c.close();
        await proxy.stop();
      }
    });

    it('a client ioredis gave up on (status end, e.g. a Sentinel failover racing its reconnect) is connected again', async () => {
      const c = new TieredCache({ redis: redis.url, keyPrefix: 'ended:', logger: quiet });
      caches.push(c);
      await c.connect();
      await c.set('k', 1);
      await waitFor(() => c.bus!.subscribed);
      // What ioredis does when its connector fails: the client ends and would never reconnect by itself.
      c.l2!.client.disconnect();
      (c.bus as unknown as { sub: Redis }).sub.disconnect();
      await waitFor(() => c.l2!.client.status === 'end');
      expect(await c.get('k')).toBe(1); // meanwhile: L1 answers (L2 is not ready, so L1 is used)
      await waitFor(() => c.l2!.ready && c.bus!.subscribed === true);
      expect(c.stats().bus.l1ClearsOnReconnect).toBe(1);
      expect(await c.get('k')).toBe(1); // from L2 again, after L1 was emptied on re-subscribe
      expect(c.stats().l2.hits).toBeGreaterThan(0);
    });

    /**
     * L2-only cache with a 50 ms deadline, holding 'k' = 'v'; the second value counts its socket closes. No
     * breaker: the watchdog is judged by the calls' traffic, which an open breaker would hold back.
     */
    async function watchedL2Cache(keyPrefix: string, socketTimeout: number): Promise<[TieredCache, () => number]> {
      const c = new TieredCache({ redis: { url: redis.url, commandTimeout: 50, socketTimeout, breaker: false }, keyPrefix, l1: { enabled: false }, bus: false, logger: quiet });
      caches.push(c);
      await c.connect();
      await c.set('k', 'v');
      let closes = 0;
      c.l2!.client.on('close', () => closes++);
      return [c, () => closes];
    }

    it('a connection that stops answering for socketTimeout is dropped and re-established', async () => {
      const [c, closes] = await watchedL2Cache('silent:', 300);
      redis.pause();
      try {
        // Traffic keeps timing out and no byte comes back: the watchdog must drop the socket (as ioredis'
        // socketTimeout would) instead of leaving a "ready" connection that swallows every call.
        const end = Date.now() + 8000;
        while (closes() === 0 && Date.now() < end) {
          expect(await c.get('k')).toBeUndefined();
          await sleep(20);
        }
        expect(closes()).toBeGreaterThan(0);
        expect(c.stats().l2.timeouts).toBeGreaterThan(0);
      } finally {
        redis.resume();
      }
      await waitFor(() => c.l2!.ready);
      expect(await c.get('k')).toBe('v');
    });

    it('a slow but answering Redis is not mistaken for a dead connection', async () => {
      const [c, closes] = await watchedL2Cache('slow:', 200);
      // Each busy script holds Redis past the deadline, but replies keep arriving between them.
      const other = new TieredCache({ redis: redis.url, keyPrefix: 'slow:', bus: false, logger: quiet });
      caches.push(other);
      await other.connect();
      for (let i = 0; i < 8; i++) {
        const sleeper = (other.l2!.client as Redis).eval(BUSY_100MS, 0);
        await c.get('k');
        await sleeper;
        expect(await c.get('k')).toBe('v');
      }
      expect(c.stats().l2.timeouts).toBeGreaterThan(0);
      expect(closes()).toBe(0);
    });

    it('the offline queue does not pile up requests while disconnected', async () => {
      const c = new TieredCache({ redis: redis.url, keyPrefix: 'oq:', logger: quiet });
      caches.push(c);
      await c.connect();
      await redis.kill();
      await waitFor(() => !c.l2!.ready);
      const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.get(`k${i}`)));
      expect(results.every((r) => r === undefined)).toBe(true);
      const client = c.l2!.client as unknown as { offlineQueue: { length: number } };
      expect(client.offlineQueue.length).toBe(0);
      await redis.restart();
    });
  });
});
