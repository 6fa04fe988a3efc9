import { Redis } from 'ioredis';
import { CacheSerializationError, MAX_TTL_MS, TieredCache, TieredCacheOptionsError, escapeGlob, type TieredCacheOptions } from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { heardMarker, warm } from '../support/l1-helpers';
import { redisFixture } from '../support/redis-fixture';
import { RedisServer } from '../support/redis-server';
import { payloadOf, stored } from '../support/stored';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';

/**
 * Faults that once took every instance down or brought deleted values back: hostile bus messages and globs,
 * invalidations that cannot reach Redis, write-behind flushes that fail, Redis' last millisecond of an entry,
 * sizes counted in the wrong unit and TTLs no tier can store. Real redis-server processes, a TCP proxy for
 * network faults, and instances in a separate Node process.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

describe('hardening', () => {
  const fx = redisFixture();

  function options(prefix: string, more: Partial<TieredCacheOptions> = {}): TieredCacheOptions {
    return { redis: fx.redis.url, keyPrefix: prefix, ...more };
  }

  async function cache(opts: TieredCacheOptions): Promise<TieredCache> {
    const c = new TieredCache({ logger: quiet, ...opts });
    fx.caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  async function proc(opts: TieredCacheOptions): Promise<EngineProcess> {
    const p = await EngineProcess.start(opts);
    fx.procs.push(p);
    expect(await p.call('connect')).toBe(true);
    return p;
  }

  /** The bus message another instance (or anyone who can PUBLISH) would send. */
  function busMessage(change: object): string {
    return JSON.stringify({ v: 1, src: 'someone-else', change });
  }

  /** Waits until the child process has applied `n` more bus messages than `before`. */
  async function childHeard(p: EngineProcess, before: number, n = 1): Promise<void> {
    await waitFor('the other process applied the message', async () => (await p.call<{ bus: { received: number } }>('stats')).bus.received >= before + n);
  }

  describe('hostile bus messages and globs', () => {
    it('a reversed range in a pattern on the bus kills no instance; both drop what Redis would match', async () => {
      const prefix = `h${++seq}:`;
      const a = await cache(options(prefix));
      const b = await proc(options(prefix));
      for (const k of ['list:a', 'list:q', 'list:z', 'other']) {
        await a.set(k, k);
        await warm(a, k, k);
        expect(await b.call('get', k)).toBe(k);
      }
      for (const k of ['list:a', 'list:q', 'list:z', 'other']) expect(await b.call('inL1', k)).toBe(true);
      const before = (await b.call<{ bus: { received: number } }>('stats')).bus.received;

      await fx.raw.publish(a.bus!.channel, busMessage({ type: 'pattern', pattern: 'list:[z-a]*' }));
      await heardMarker(fx.raw, a.bus!.channel, a);
      await childHeard(b, before, 2);
      await waitFor('B applied the pattern', async () => !(await b.call('inL1', 'list:z')));

      // Redis reads [z-a] as [a-z]; so does L1 now, on both instances, and both are still up.
      expect(b.alive).toBe(true);
      expect(await b.call('ping')).toEqual(expect.objectContaining({ pid: expect.any(Number) }));
      for (const k of ['list:a', 'list:q', 'list:z']) {
        expect(a.peekLocal(k)).toBeUndefined();
        expect(await b.call('inL1', k)).toBe(false);
      }
      expect(a.peekLocal('other')).toBe('other');
      expect(await b.call('inL1', 'other')).toBe(true);

      // The same glob locally resolves (it used to reject with a SyntaxError) and removes what Redis matches.
      await a.set('k:b', 1);
      await a.set('k:d', 1);
      await a.invalidatePattern('k:[c-a]');
      expect(a.peekLocal('k:b')).toBeUndefined();
      expect(await fx.raw.exists(prefix + 'k:b')).toBe(0);
      expect(await fx.raw.exists(prefix + 'k:d')).toBe(1);
    });

    it('a garbage or hostile message is counted and dropped; the subscriber keeps working', async () => {
      const prefix = `h${++seq}:`;
      const a = await cache(options(prefix));
      const malformed = a.stats().bus.malformed;
      for (const m of ['{', 'null', '[]', busMessage({ type: 'pattern', pattern: 42 }), busMessage({ type: 'delete', keys: [{}] }), '\u0000'.repeat(10)]) {
        await fx.raw.publish(a.bus!.channel, m);
      }
      await heardMarker(fx.raw, a.bus!.channel, a);
      expect(a.stats().bus.malformed).toBe(malformed + 6);
      await a.set('x', 1);
      await warm(a, 'x', 1);
      await fx.raw.publish(a.bus!.channel, busMessage({ type: 'delete', keys: ['x'] }));
      await heardMarker(fx.raw, a.bus!.channel, a);
      expect(a.peekLocal('x')).toBeUndefined();
    });

    it('a ReDoS glob over a large L1 leaves the event loop ticking, here and in another process, and reads of its keys miss meanwhile', async () => {
      const prefix = `h${++seq}:`;
      const hostile = '*a'.repeat(14) + '*b';
      const key = (i: number) => 'a'.repeat(34) + String(i).padStart(6, '0');
      const count = 100_000;
      const remote = 30_000;
      // L1 only here: nothing else (no Redis round trip) can make the loop turn while the walk runs.
      const local = await cache({ l1: { maxEntries: count + 100 } });
      const a = await cache(options(prefix));
      for (let i = 0; i < count; i += 1000) {
        await local.mset(Array.from({ length: 1000 }, (_, j) => [key(i + j), 1] as const));
      }
      await local.set('a'.repeat(30) + 'b', 'matches');
      expect(local.stats().l1.size).toBe(count + 1);

      // The walk yields between slices: other work runs while it goes on.
      let ticks = 0;
      let ticking = true;
      const tick = (): void => {
        ticks++;
        if (ticking) setImmediate(tick);
      };
      setImmediate(tick);
      const running = local.invalidatePattern(hostile);
      const ticksAtStart = ticks;
      // Until the walk is over, a key it matches reads as a miss, one it does not as a hit.
      expect(local.peekLocal('a'.repeat(30) + 'b')).toBeUndefined();
      expect(local.peekLocal(key(count - 1))).toBe(1);
      expect(await running).toBe(1);
      ticking = false;
      expect(ticks).toBeGreaterThan(ticksAtStart);
      expect(local.stats().l1.size).toBe(count);

      // Another process with the same L1 applies it from the bus and stays responsive.
      const b = await proc(options(prefix, { l1: { maxEntries: remote + 100 } }));
      expect(await b.call('fill', 'a'.repeat(34), remote, 1)).toBe(remote);
      await b.call('set', 'a'.repeat(20) + 'b', 'matches');
      const before = (await b.call<{ bus: { received: number } }>('stats')).bus.received;
      const pingsBefore = (await b.call<{ ticks: number }>('ping')).ticks;
      await fx.raw.publish(a.bus!.channel, busMessage({ type: 'pattern', pattern: hostile }));
      await childHeard(b, before);
      await waitFor('the walk in the other process is over', async () => !(await b.call('inL1', 'a'.repeat(20) + 'b')) && (await b.call<{ l1: { size: number } }>('stats')).l1.size === remote);
      expect(b.alive).toBe(true);
      expect((await b.call<{ ticks: number }>('ping')).ticks).toBeGreaterThan(pingsBefore);
      expect(await b.call('inL1', 'a'.repeat(34) + '0')).toBe(true);
    });

    it('L1 and Redis agree on escapes inside a class: k:[\\]] removes k:] and keeps k:\\]', async () => {
      const prefix = `h${++seq}:`;
      const a = await cache(options(prefix));
      const b = await proc(options(prefix));
      for (const k of ['k:]', 'k:\\]', 'k:\\']) {
        await a.set(k, k);
        expect(await b.call('get', k)).toBe(k);
      }
      await a.invalidatePattern('k:[\\]]');
      await waitFor('B applied the pattern', async () => !(await b.call('inL1', 'k:]')));
      expect(a.peekLocal('k:]')).toBeUndefined();
      expect(await b.call('inL1', 'k:]')).toBe(false);
      expect(await fx.raw.exists(prefix + 'k:]')).toBe(0);
      for (const k of ['k:\\]', 'k:\\']) {
        expect(a.peekLocal(k)).toBe(k);
        expect(await b.call('inL1', k)).toBe(true);
        expect(await fx.raw.exists(prefix + k)).toBe(1);
      }
    });

    it('escapeGlob makes any user input a literal in L1 and in Redis', async () => {
      const prefix = `h${++seq}:`;
      const a = await cache(options(prefix));
      const id = 'a*b?[c]\\d^-e';
      await a.set(`user:${id}`, 1);
      await a.set('user:aXb?[c]\\d^-e', 2);
      await a.set('user:a*b?[c]\\d^-e:more', 3);
      expect(await a.invalidatePattern(`user:${escapeGlob(id)}`)).toBe(1);
      expect(await a.get(`user:${id}`)).toBeUndefined();
      expect(await a.get('user:aXb?[c]\\d^-e')).toBe(2);
      expect(await a.get('user:a*b?[c]\\d^-e:more')).toBe(3);
    });
  });

  describe('invalidations that cannot reach Redis', () => {
    async function viaProxy(prefix: string, more: Partial<TieredCacheOptions> = {}): Promise<{ a: TieredCache; proxy: TcpProxy }> {
      const proxy = await TcpProxy.start(fx.redis.port);
      fx.proxies.push(proxy);
      const a = await cache({ redis: { url: proxy.url, connectTimeout: 400, commandTimeout: 200 }, keyPrefix: prefix, ...more });
      return { a, proxy };
    }

    function unreachable(proxy: TcpProxy): void {
      proxy.blackhole = true;
      proxy.cut();
    }

    it('a delete made while Redis is unreachable is retried until it lands, and no instance reads the old value back', async () => {
      const prefix = `h${++seq}:`;
      const { a, proxy } = await viaProxy(prefix);
      const b = await proc(options(prefix));
      await b.call('set', 'k', 'old');
      await b.call('set', 'k2', 'old');
      await warm(a, 'k', 'old');
      expect(await b.call('get', 'k')).toBe('old');

      unreachable(proxy);
      await waitFor('A lost Redis', () => !a.l2!.ready);
      expect(await a.delete('k')).toBe(1);
      // Newest intent wins, but a write that fails too must not leave the value from before the delete.
      expect(await a.delete('k2')).toBe(0);
      expect(await a.set('k2', 'new')).toBe(true);
      expect(a.stats().l2.pendingInvalidations).toBe(2);
      expect(a.stats().l2.deferredInvalidations).toBe(2);
      expect(payloadOf(await fx.raw.get(prefix + 'k'))).toBe(stored('old'));

      proxy.blackhole = false;
      await waitFor('the deferred deletes landed', () => a.stats().l2.pendingInvalidations === 0, 15_000);
      expect(await fx.raw.exists(prefix + 'k')).toBe(0);
      expect(payloadOf(await fx.raw.get(prefix + 'k2'))).not.toBe(stored('old'));
      expect(a.stats().l2.replayedInvalidations).toBe(2);
      await waitFor('B dropped its copy', async () => !(await b.call('inL1', 'k')));
      expect(await b.call('get', 'k')).toBeUndefined();
      expect(await a.get('k')).toBeUndefined();
    });

    it('while a delete is pending, this instance reads nothing it covers from Redis, and a write that lands settles it', async () => {
      const prefix = `h${++seq}:`;
      // A user Redis lets read and write but not delete: the delete fails while everything else works.
      await fx.raw.call('ACL', 'SETUSER', 'nounlink', 'reset', 'on', '>pw', '~*', '&*', '+@all', '-unlink');
      try {
        const a = await cache({ redis: `redis://nounlink:pw@127.0.0.1:${fx.redis.port}`, keyPrefix: prefix, bus: false });
        await fx.raw.set(prefix + 'k', stored('old'));
        await fx.raw.set(prefix + 'w', stored('old'));
        await a.delete(['k', 'w']);
        expect(a.stats().l2.pendingInvalidations).toBe(2);
        expect(payloadOf(await fx.raw.get(prefix + 'k'))).toBe(stored('old'));
        expect(await a.get('k')).toBeUndefined();
        expect(await a.mget(['k', 'w'])).toEqual([undefined, undefined]);
        expect(await a.has('k')).toBe(false);
        // A fill cannot store over the old value (it only stores into an absent key): it keeps its result in L1.
        expect(await a.getOrSet('k', () => 'fresh')).toBe('fresh');
        expect(payloadOf(await fx.raw.get(prefix + 'k'))).toBe(stored('old'));
        expect(a.stats().l2.pendingInvalidations).toBe(2);
        // A write that reaches Redis does: newest intent wins, the delete of k is settled.
        expect(await a.set('k', 'newer')).toBe(true);
        expect(payloadOf(await fx.raw.get(prefix + 'k'))).toBe(stored('newer'));
        expect(a.stats().l2.pendingInvalidations).toBe(1);
        await fx.raw.call('ACL', 'SETUSER', 'nounlink', '+unlink');
        await waitFor('the deferred delete landed', () => a.stats().l2.pendingInvalidations === 0, 15_000);
        expect(await fx.raw.exists(prefix + 'w')).toBe(0);
        expect(payloadOf(await fx.raw.get(prefix + 'k'))).toBe(stored('newer'));
        expect(await a.get('k')).toBe('newer');
      } finally {
        await fx.raw.call('ACL', 'DELUSER', 'nounlink');
      }
    });

    it('tag and pattern invalidations and clears are deferred too; past its bounds the queue becomes one clear', async () => {
      const prefix = `h${++seq}:`;
      const { a, proxy } = await viaProxy(prefix, { bus: false });
      await a.set('t1', 1, { tags: ['tag'] });
      await a.set('p:1', 1);
      await a.set('keep', 1);
      unreachable(proxy);
      await waitFor('A lost Redis', () => !a.l2!.ready);
      await a.invalidateTags('tag');
      expect(await a.invalidatePattern('p:*', { detailed: true })).toEqual({ removed: 1, complete: false, failedNodes: [`127.0.0.1:${proxy.port}`], deferred: true });
      expect(a.stats().l2.pendingInvalidations).toBe(2);
      proxy.blackhole = false;
      await waitFor('tag and pattern landed', () => a.stats().l2.pendingInvalidations === 0, 15_000);
      expect(await fx.raw.exists(prefix + 't1')).toBe(0);
      expect(await fx.raw.exists(prefix + 'p:1')).toBe(0);
      expect(await fx.raw.exists(prefix + 'keep')).toBe(1);

      // 10,001 keys: more than the queue holds. It becomes one clear of the namespace.
      unreachable(proxy);
      await waitFor('A lost Redis again', () => !a.l2!.ready);
      await a.delete(Array.from({ length: 10_001 }, (_, i) => `many:${i}`));
      expect(a.stats().l2.deferredOverflows).toBe(1);
      expect(a.stats().l2.pendingInvalidations).toBe(1);
      proxy.blackhole = false;
      await waitFor('the clear landed', () => a.stats().l2.pendingInvalidations === 0, 15_000);
      expect(await fx.raw.exists(prefix + 'keep')).toBe(0);
    });

    it('a write-behind flush that timed out does not bring back a key deleted meanwhile', async () => {
      const own = await RedisServer.start();
      try {
        const prefix = `h${++seq}:`;
        const a = await cache({ redis: { url: own.url, commandTimeout: 200 }, keyPrefix: prefix, writeBehind: { flushInterval: '1h' }, bus: false });
        const check = new Redis(own.url);
        try {
          own.pause();
          await a.set('k', 'v');
          expect(a.stats().writeBehind.queueLength).toBe(1);
          const flushing = a.flush(); // the batch is out and will miss its deadline
          expect(await a.delete('k')).toBe(1);
          await flushing;
          expect(a.stats().writeBehind.queueLength).toBe(0);
          own.resume();
          await a.flush();
          await waitFor('the deferred delete landed', () => a.stats().l2.pendingInvalidations === 0, 10_000);
          expect(await check.exists(prefix + 'k')).toBe(0);
          expect(await a.get('k')).toBeUndefined();
        } finally {
          own.resume();
          check.disconnect();
        }
      } finally {
        await own.stop();
      }
    });
  });

  describe("Redis' last millisecond, sizes and TTLs", () => {
    it('an entry read with PTTL 0 is returned but not copied into L1', async () => {
      const prefix = `h${++seq}:`;
      const proxy = await TcpProxy.start(fx.redis.port);
      fx.proxies.push(proxy);
      const a = await cache({ redis: proxy.url, keyPrefix: prefix, bus: false });
      await fx.raw.set(prefix + 'k', stored('v'), 'PX', 60_000);
      await fx.raw.set(prefix + 'control', stored('v'), 'PX', 60_000);
      // Every positive integer reply becomes 0: what PTTL answers in the entry's last millisecond.
      proxy.rewriteReplies = (chunk) => Buffer.from(chunk.toString('latin1').replace(/^:[1-9]\d*\r\n/gm, ':0\r\n'), 'latin1');
      expect(await a.get('k')).toBe('v');
      expect(a.peekLocal('k')).toBeUndefined();
      expect(a.stats().l2.promotions).toBe(0);
      proxy.rewriteReplies = undefined;
      expect(await a.get('control')).toBe('v');
      expect(a.peekLocal('control')).toBe('v');
      expect(a.stats().l2.promotions).toBe(1);
    });

    it('maxValueBytes and l1.maxBytes count UTF-8 bytes', async () => {
      const prefix = `h${++seq}:`;
      const a = await cache(options(prefix, { maxValueBytes: 1_000_000, l1: { maxBytes: 2_000_000 } }));
      await expect(a.set('big', '€'.repeat(400_000))).rejects.toThrow(CacheSerializationError);
      await expect(a.set('big', '€'.repeat(400_000))).rejects.toThrow(/1200007 bytes exceeds maxValueBytes 1000000/);
      expect(await fx.raw.exists(prefix + 'big')).toBe(0);
      expect(a.peekLocal('big')).toBeUndefined();
      expect(await a.set('fits', '€'.repeat(300_000))).toBe(true);
      // The limits count the codec's payload; Redis also holds the entry header (ASCII) in front of it.
      const fits = (await fx.raw.get(prefix + 'fits'))!;
      const payload = payloadOf(fits)!;
      expect(Buffer.byteLength(payload, 'utf8')).toBe(900_007);
      expect(await fx.raw.strlen(prefix + 'fits')).toBe(900_007 + fits.length - payload.length);
      expect(a.stats().l1.bytes).toBe(900_007);
      // Promoted copies are weighed the same way.
      const b = await cache(options(prefix, { l1: { maxBytes: 2_000_000 }, bus: false }));
      expect(await b.get('fits')).toBe('€'.repeat(300_000));
      expect(b.stats().l1.bytes).toBe(900_007);
    });

    it('a TTL no tier can store is refused at the call, before anything is written; MAX_TTL_MS itself works', async () => {
      const prefix = `h${++seq}:`;
      const a = await cache(options(prefix));
      for (const ttl of [Number.MAX_VALUE, MAX_TTL_MS + 1, Infinity]) {
        await expect(a.set('k', 1, { ttl })).rejects.toThrow(TypeError);
      }
      await expect(a.set('k', 1, { ttl: Number.MAX_VALUE })).rejects.toThrow(/ttl.*MAX_TTL_MS/);
      await expect(a.getOrSet('g', () => 1, { ttl: Number.MAX_VALUE })).rejects.toThrow(/MAX_TTL_MS/);
      expect(a.peekLocal('k')).toBeUndefined();
      expect(await fx.raw.exists(prefix + 'k')).toBe(0);

      expect(await a.set('k', 1, { ttl: MAX_TTL_MS })).toBe(true);
      expect(await fx.raw.pttl(prefix + 'k')).toBeGreaterThan(MAX_TTL_MS - 60_000);
      expect(a.peekLocal('k')).toBe(1);
      expect(await a.ttl('k')).toBeGreaterThan(MAX_TTL_MS - 60_000);

      // Options fail at boot, naming the option.
      expect(() => new TieredCache({ l2: { ttl: Number.MAX_VALUE }, redis: fx.redis.url, logger: quiet })).toThrow(TieredCacheOptionsError);
      expect(() => new TieredCache({ l2: { ttl: Number.MAX_VALUE }, redis: fx.redis.url, logger: quiet })).toThrow(/"l2\.ttl"/);
      expect(() => new TieredCache({ defaultTtl: '300000000000d', logger: quiet })).toThrow(/"defaultTtl"/);
      // A timer option past Node's limit would fire every millisecond.
      expect(() => new TieredCache({ l1: { cleanupInterval: '30d' }, logger: quiet })).toThrow(/"l1\.cleanupInterval".*24\.8 days/);
    });
  });
});
