import { Redis } from 'ioredis';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { freePort, RedisCluster, RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * getOrSet's cluster-wide fill lock (lib/core/get-set/distributed-lock.ts): instances sharing Redis run one
 * factory per missing key between them. Real redis-server processes, instances in this process and in child
 * processes (dist/: run `npm run build` first); factories are held by latches the tests open, never by sleeps.
 */

const quiet = { warn() {}, error() {} };

interface Latch<T> {
  promise: Promise<T>;
  open(value: T): void;
  fail(err: Error): void;
}

function latch<T>(): Latch<T> {
  let open!: (v: T) => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { promise, open, fail };
}

/** A factory held by a latch, counting its runs. */
function heldFactory<T>(): { factory: () => Promise<T>; runs: () => number; entered: Promise<void>; gate: Latch<T> } {
  const gate = latch<T>();
  const entered = latch<void>();
  let runs = 0;
  return {
    factory: () => {
      runs++;
      entered.open();
      return gate.promise;
    },
    runs: () => runs,
    entered: entered.promise,
    gate,
  };
}

function counting<T>(value: T): { factory: () => T; runs: () => number } {
  let runs = 0;
  return {
    factory: () => {
      runs++;
      return value;
    },
    runs: () => runs,
  };
}

describe('distributed single flight (one factory run per key across instances)', () => {
  let redis: RedisServer;
  let raw: Redis;
  const caches: TieredCache[] = [];
  const children: EngineProcess[] = [];
  let n = 0;
  let prefix = '';

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.port, '127.0.0.1');
  });
  beforeEach(() => {
    prefix = `dsf${++n}:`;
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop()));
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await raw?.quit();
    await redis?.stop();
  });

  async function instance(opts: Partial<TieredCacheOptions> = {}): Promise<TieredCache> {
    const c = new TieredCache({ redis: redis.url, keyPrefix: prefix, logger: quiet, ...opts });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  async function child(opts: Partial<TieredCacheOptions> = {}): Promise<EngineProcess> {
    const c = await EngineProcess.start({ redis: redis.url, keyPrefix: prefix, ...opts });
    children.push(c);
    expect(await c.call('connect')).toBe(true);
    return c;
  }

  const lockStats = async (c: TieredCache | EngineProcess) => (c instanceof TieredCache ? c.stats() : await c.call<ReturnType<TieredCache['stats']>>('stats')).lock;

  it('1,000 concurrent getOrSet of one missing key across 4 processes run its factory once, and all get its value', async () => {
    const local = await instance();
    const others = await Promise.all([child(), child(), child()]);
    const key = 'report:2026';
    const held = heldFactory<{ total: number }>();
    const mine = Array.from({ length: 250 }, () => local.getOrSet(key, held.factory));
    await Promise.all(others.map((o) => o.call('startBurst', key, 250)));
    const runs = async () => held.runs() + (await Promise.all(others.map((o) => o.call<number>('burstRuns', key)))).reduce((a, b) => a + b, 0);
    const waitingNow = async () => (await Promise.all([local, ...others].map(lockStats))).reduce((a, s) => a + s.waited, 0);
    // One factory is running somewhere (the lock holder's), and every other process waits for its value.
    await waitFor('one holder, three waiting processes', async () => (await runs()) === 1 && (await waitingNow()) === 3);
    held.gate.open({ total: 42 });
    await Promise.all(others.map((o) => o.call('openBurst', key, { total: 42 })));
    const results = await Promise.all(others.map((o) => o.call<{ runs: number; values: string[]; rejected: number }>('burstResult', key)));
    expect(await Promise.all(mine)).toEqual(Array(250).fill({ total: 42 }));
    for (const r of results) expect(r).toMatchObject({ values: [JSON.stringify({ total: 42 })], rejected: 0 });
    expect(held.runs() + results.reduce((a, r) => a + r.runs, 0)).toBe(1);
    const stats = await Promise.all([local, ...others].map(lockStats));
    expect(stats.reduce((a, s) => a + s.acquired, 0)).toBe(1);
    expect(stats.reduce((a, s) => a + s.received, 0)).toBe(3);
    expect(stats.reduce((a, s) => a + s.timedOut + s.fallbacks, 0)).toBe(0);
  });

  /** `holder` misses `key` and runs its factory, held by a latch: it holds the key's lock until the latch opens. */
  async function holding(holder: TieredCache, key: string) {
    const held = heldFactory<string>();
    const result = holder.getOrSet(key, held.factory);
    await held.entered;
    return { ...held, result };
  }

  /** Each of `waiters` misses `key` too (its own factory would return `value`); resolves once each waits for the lock. */
  async function waiting(key: string, waiters: TieredCache[], value = 'own') {
    const calls = waiters.map((w) => {
      const f = counting(value);
      return { result: w.getOrSet(key, f.factory), runs: f.runs };
    });
    await waitFor('every waiter waiting for the lock', () => waiters.every((w) => w.stats().lock.waited === 1));
    return calls;
  }

  it('waiters of a held factory get its value once it is released, without running their own', async () => {
    const [a, b, c] = await Promise.all([instance(), instance(), instance()]);
    const held = await holding(a, 'user:7');
    const waiters = await waiting('user:7', [b, c]);
    expect(waiters.map((w) => w.runs())).toEqual([0, 0]);
    held.gate.open('from-a');
    expect(await Promise.all([held.result, ...waiters.map((w) => w.result)])).toEqual(['from-a', 'from-a', 'from-a']);
    expect(waiters.map((w) => w.runs())).toEqual([0, 0]);
    expect(b.stats().lock).toMatchObject({ waited: 1, received: 1, acquired: 0, timedOut: 0 });
    // The lock is gone once the value is in: the next miss of the key takes it at once.
    expect(await raw.keys(`${prefix}__tc:lock:*`)).toEqual([]);
  });

  it("a fill under the lock stores its tags with it (the store's transaction also lets the lock go)", async () => {
    const [a, b] = await Promise.all([instance(), instance()]);
    const held = heldFactory<string>();
    const fromA = a.getOrSet('listing:3', held.factory, { tags: ['listings'] });
    await held.entered;
    const [w] = await waiting('listing:3', [b]);
    held.gate.open('tagged');
    expect(await Promise.all([fromA, w.result])).toEqual(['tagged', 'tagged']);
    expect(await raw.keys(`${prefix}__tc:lock:*`)).toEqual([]);
    expect(await b.invalidateTags('listings')).toBe(1);
    expect(await raw.exists(`${prefix}listing:3`)).toBe(0);
  });

  it('a waiter with the bus off still gets the value (it polls)', async () => {
    const a = await instance();
    const b = await instance({ bus: false });
    const held = await holding(a, 'k');
    const [w] = await waiting('k', [b]);
    held.gate.open('from-a');
    expect(await Promise.all([held.result, w.result])).toEqual(['from-a', 'from-a']);
    expect(w.runs()).toBe(0);
  });

  it('a holder killed (SIGKILL) while its factory runs is replaced after the lock TTL: the factory runs on another instance', async () => {
    const lock = { ttl: 300 };
    const holder = await child({ lock });
    const survivor = await instance({ lock });
    // Entered: the child holds the lock and is inside its factory, held there.
    expect(await holder.call('startFill', 'job:1')).toBe(true);
    const [w] = await waiting('job:1', [survivor], 'survivor');
    await holder.kill();
    expect(await w.result).toBe('survivor');
    expect(w.runs()).toBe(1);
    expect(survivor.stats().lock).toMatchObject({ waited: 1, acquired: 1, timedOut: 0 });
    expect(await survivor.get('job:1')).toBe('survivor');
  });

  it('a throwing factory releases the lock at once: its caller gets the error, a waiter takes the lock and runs its own', async () => {
    // A lock that would outlive the test, and a wait as long: only the release lets the waiter go on.
    const lock = { ttl: '60s', wait: '20s' };
    const a = await instance({ lock });
    const b = await instance({ lock });
    const held = await holding(a, 'flaky');
    const [w] = await waiting('flaky', [b], 'from-b');
    held.gate.fail(new Error('source down'));
    await expect(held.result).rejects.toThrow('source down');
    expect(await w.result).toBe('from-b');
    expect(w.runs()).toBe(1);
    expect(b.stats().lock).toMatchObject({ waited: 1, acquired: 1, timedOut: 0 });
    expect(await a.get('flaky')).toBe('from-b');
  });

  it('with Redis unreachable, getOrSet falls back to single flight per process', async () => {
    const port = await freePort();
    const c = new TieredCache({ redis: { url: `redis://127.0.0.1:${port}`, connectTimeout: 200 }, keyPrefix: prefix, logger: quiet });
    caches.push(c);
    expect(await c.connect()).toBe(false);
    const held = heldFactory<number>();
    const calls = Array.from({ length: 100 }, () => c.getOrSet('offline', held.factory));
    await held.entered;
    held.gate.open(5);
    expect(await Promise.all(calls)).toEqual(Array(100).fill(5));
    expect(held.runs()).toBe(1);
    expect(c.stats().lock).toMatchObject({ acquired: 0, waited: 0, fallbacks: 1 });
  });

  it("an invalidation during the holder's run: its value is not stored, and the waiter runs the factory again instead of getting it", async () => {
    const [a, b, c] = await Promise.all([instance(), instance(), instance()]);
    const held = await holding(a, 'price:9');
    const [w] = await waiting('price:9', [b], 'after-delete');
    // The source changed while A was reading it: another instance deletes the key.
    await c.delete('price:9');
    held.gate.open('before-delete');
    expect(await held.result).toBe('before-delete');
    expect(await w.result).toBe('after-delete');
    expect(w.runs()).toBe(1);
    expect(a.stats().l2.fillsRefused).toBe(1);
    expect(await c.get('price:9')).toBe('after-delete');
    expect(await raw.get(`${prefix}price:9`)).not.toContain('before-delete');
  });

  it('a waiter never waits past lock.wait: it runs its own factory then', async () => {
    const a = await instance({ lock: { ttl: '60s' } });
    const b = await instance({ lock: { wait: 150 } });
    const held = await holding(a, 'slow');
    const f = counting('from-b');
    expect(await b.getOrSet('slow', f.factory)).toBe('from-b');
    expect(f.runs()).toBe(1);
    expect(b.stats().lock).toMatchObject({ waited: 1, timedOut: 1, acquired: 0 });
    held.gate.open('from-a');
    expect(await held.result).toBe('from-a');
  });

  it('getOrSet with { lock: false } neither takes nor waits for the lock', async () => {
    const a = await instance();
    const b = await instance();
    const held = await holding(a, 'own');
    const f = counting('from-b');
    expect(await b.getOrSet('own', f.factory, { lock: false })).toBe('from-b');
    expect(b.stats().lock).toMatchObject({ waited: 0, acquired: 0 });
    held.gate.open('from-a');
    await held.result;
  });

  it('lock: false for the cache keeps single flight per process: each instance runs its own factory', async () => {
    const a = await instance({ lock: false });
    const b = await instance({ lock: false });
    const held = await holding(a, 'solo');
    const f = counting('from-b');
    expect(await b.getOrSet('solo', f.factory)).toBe('from-b');
    expect(b.stats().lock).toMatchObject({ enabled: false, waited: 0, acquired: 0 });
    held.gate.open('from-a');
    await held.result;
  });

  it('on a 3-master Redis Cluster, 400 concurrent getOrSet of one missing key across 4 instances run its factory once', async () => {
    const cluster = await RedisCluster.start();
    try {
      const all = await Promise.all(
        [0, 1, 2, 3].map(async () => {
          const c = new TieredCache({ redis: { mode: 'cluster', nodes: cluster.nodes, commandTimeout: 300, connectTimeout: 3_000 }, keyPrefix: 'dsfc:', logger: quiet });
          caches.push(c);
          expect(await c.connect()).toBe(true);
          return c;
        }),
      );
      const held = all.map(() => heldFactory<string>());
      const calls = all.flatMap((c, i) => Array.from({ length: 100 }, () => c.getOrSet('{tenant:1}:dashboard', held[i].factory)));
      const runs = () => held.reduce((a, h) => a + h.runs(), 0);
      const waitingNow = () => all.reduce((a, c) => a + c.stats().lock.waited, 0);
      await waitFor('one holder, three waiting', () => runs() === 1 && waitingNow() === 3).catch((err: Error) => {
        throw new Error(`${err.message}; factory runs ${runs()}, lock stats ${JSON.stringify(all.map((c) => c.stats().lock))}`);
      });
      for (const h of held) h.gate.open('dash');
      expect(await Promise.all(calls)).toEqual(Array(400).fill('dash'));
      expect(runs()).toBe(1);
      expect(all.reduce((a, c) => a + c.stats().lock.received, 0)).toBe(3);
    } finally {
      await Promise.all(caches.splice(0).map((c) => c.close()));
      await cluster.stop();
    }
  });
});
