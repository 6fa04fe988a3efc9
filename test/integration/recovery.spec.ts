import { Redis } from 'ioredis';
import { Client } from 'pg';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { decodeEntry } from '../../lib/core/entry-envelope';
import { EngineProcess } from '../support/engine-process';
import { warm } from '../support/l1-helpers';
import { PostgresServer } from '../support/postgres-server';
import { redisFixture } from '../support/redis-fixture';
import { RedisServer } from '../support/redis-server';
import { payloadOf, stored } from '../support/stored';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';

/**
 * Auto-recovery (recovery-queue.ts): writes that could not reach a shared tier are queued and replayed when it is
 * back, each only where the tier proves it is not stale. Real redis-server and PostgreSQL processes; an outage is
 * a TCP proxy that swallows everything (Redis keeps its data, as behind a partition), so what was there before
 * the outage is still there after it, and only the replay can fix it.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

/** A millisecond passes: the next write's envelope createdAt is later than the last one's. */
async function nextMs(): Promise<void> {
  const t = Date.now();
  await waitFor('the clock moved', () => Date.now() > t);
}

describe('auto-recovery of writes a tier missed', () => {
  const fx = redisFixture();

  async function cache(opts: TieredCacheOptions): Promise<TieredCache> {
    const c = new TieredCache({ logger: quiet, ...opts });
    fx.caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** An instance whose every connection (data and bus) goes through a proxy of its own. */
  async function behindProxy(prefix: string, more: Partial<TieredCacheOptions> = {}): Promise<{ c: TieredCache; proxy: TcpProxy }> {
    const proxy = await TcpProxy.start(fx.redis.port);
    fx.proxies.push(proxy);
    const c = await cache({ redis: { url: proxy.url, connectTimeout: 400, commandTimeout: 200 }, keyPrefix: prefix, ...more });
    return { c, proxy };
  }

  /** A and B, each behind its own proxy; A wrote `k` = 'old' and B holds it in L1. Both then lose Redis. */
  async function bothCutOffWithOldK(p: string): Promise<{ a: TieredCache; b: TieredCache; pa: TcpProxy; pb: TcpProxy }> {
    const { c: a, proxy: pa } = await behindProxy(p);
    const { c: b, proxy: pb } = await behindProxy(p);
    await a.set('k', 'old');
    await warm(b, 'k', 'old');
    await Promise.all([down(a, pa), down(b, pb)]);
    return { a, b, pa, pb };
  }

  async function down(c: TieredCache, proxy: TcpProxy): Promise<void> {
    proxy.blackhole = true;
    proxy.cut();
    await waitFor('the instance lost Redis', () => !c.l2!.ready);
  }

  function up(proxy: TcpProxy): void {
    proxy.blackhole = false;
    // The connections accepted while blackholed never answer: dropped, so the clients reconnect at once.
    proxy.cut();
  }

  async function replayed(c: TieredCache): Promise<void> {
    await waitFor('the queue replayed', () => c.l2!.ready && c.stats().l2.recovery.queued === 0 && c.stats().l2.pendingInvalidations === 0, 15_000);
  }

  it('a set on A while Redis is down is in Redis once it is back, and B reads it instead of the older value', async () => {
    const p = `rc${++seq}:`;
    const { a, b, pa, pb } = await bothCutOffWithOldK(p);
    expect(await a.set('k', 'new')).toBe(true);
    expect(a.stats().l2.recovery.queued).toBe(1);
    expect(payloadOf(await fx.raw.get(p + 'k'))).toBe(stored('old'));

    up(pa);
    up(pb);
    await replayed(a);
    expect(payloadOf(await fx.raw.get(p + 'k'))).toBe(stored('new'));
    expect(a.stats().l2.recovery).toMatchObject({ queued: 0, replayed: 1, dropped: 0, overflowed: 0 });
    // B's L1 copy of the older value goes (its own resubscribe, and the replay's announcement).
    await waitFor('B reads the replayed value', async () => (await b.get('k')) === 'new');
  });

  it('resurrect: a set on A and then a delete on B, both during the outage, leave the key absent in Redis and on both', async () => {
    const p = `rc${++seq}:`;
    const { a, b, pa, pb } = await bothCutOffWithOldK(p);
    await a.set('k', 'written-on-a');
    await nextMs();
    await b.delete('k');
    expect(a.stats().l2.recovery.queued).toBe(1);
    expect(b.stats().l2.pendingInvalidations).toBe(1);

    up(pa);
    up(pb);
    await Promise.all([replayed(a), replayed(b)]);
    expect(await fx.raw.exists(p + 'k')).toBe(0);
    await waitFor('both instances miss', async () => (await a.get('k')) === undefined && (await b.get('k')) === undefined);
    // Whichever landed first, nothing is left to bring the value back later.
    expect(a.stats().l2.recovery.queued).toBe(0);
    expect(await fx.raw.exists(p + 'k')).toBe(0);
  });

  it('a delete on another instance while only A is cut off: A replays a delete, never its older write', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p);
    const b = await cache({ redis: fx.redis.url, keyPrefix: p });
    await a.set('k', 'old');

    await down(a, pa);
    await a.set('k', 'written-on-a');
    await nextMs();
    // Reaches Redis at once: the key's fence is there when A comes back.
    expect(await b.delete('k')).toBe(1);
    up(pa);
    await replayed(a);
    expect(await fx.raw.exists(p + 'k')).toBe(0);
    expect(a.stats().l2.recovery).toMatchObject({ replayed: 0, dropped: 1 });
    expect(await a.get('k')).toBeUndefined();
    expect(await b.get('k')).toBeUndefined();
  });

  it('newest write per key wins in the queue (set and mset), and a delete beats the writes queued before it', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p);
    await a.mset([
      ['k', 0],
      ['gone', 0],
    ]);

    await down(a, pa);
    await a.set('k', 1);
    await a.set('k', 2);
    await a.mset([['k', 3]]);
    await a.set('gone', 1);
    await a.delete('gone');
    expect(a.stats().l2.recovery).toMatchObject({ queued: 1, superseded: 3 });

    up(pa);
    await replayed(a);
    expect(payloadOf(await fx.raw.get(p + 'k'))).toBe(stored(3));
    expect(await fx.raw.exists(p + 'gone')).toBe(0);
    expect(a.stats().l2.recovery).toMatchObject({ queued: 0, replayed: 1 });
  });

  it('a pattern or tag invalidation made during the outage turns the queued writes it covers into deletes; a clear discards them', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p);
    await a.mset([
      ['list:1', 'old'],
      ['tagged', 'old'],
      ['kept', 'old'],
    ]);

    await down(a, pa);
    await a.set('list:1', 'new');
    await a.set('tagged', 'new', { tags: ['t'] });
    await a.set('kept', 'new');
    await a.invalidatePattern('list:*');
    // Redis' older value of `tagged` was written without the tag: the tag's own replay would not reach it.
    await a.invalidateTags('t');

    up(pa);
    await replayed(a);
    expect(await fx.raw.exists(p + 'list:1')).toBe(0);
    expect(await fx.raw.exists(p + 'tagged')).toBe(0);
    // The deferred pattern and tag landed first and moved the generation: which keys they covered it cannot
    // tell, so `kept`, written before they landed, is not proven either. A miss, never the older value.
    expect(a.stats().l2.recovery).toMatchObject({ replayed: 0, dropped: 3 });
    expect(await fx.raw.exists(p + 'kept')).toBe(0);
    await a.mset([['kept', 'new']]);

    await down(a, pa);
    await a.set('kept', 'newer');
    await a.clear();
    expect(a.stats().l2.recovery.queued).toBe(0);
    up(pa);
    await replayed(a);
    expect(await fx.raw.exists(p + 'kept')).toBe(0);
  });

  it('a newer write by B during the outage is not overwritten by the older write A replays', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p);
    const { c: b, proxy: pb } = await behindProxy(p);
    const c = await cache({ redis: fx.redis.url, keyPrefix: p });
    await a.mset([
      ['both', 'old'],
      ['direct', 'old'],
    ]);

    await Promise.all([down(a, pa), down(b, pb)]);
    await a.mset([
      ['both', 'from-a'],
      ['direct', 'from-a'],
    ]);
    await nextMs();
    // Queued on B too (both down), and written straight to Redis by C, which still reaches it.
    await b.set('both', 'from-b');
    await c.set('direct', 'from-c');

    // A first: its replay must find C's newer entry and leave it.
    up(pa);
    await replayed(a);
    expect(payloadOf(await fx.raw.get(p + 'direct'))).toBe(stored('from-c'));
    expect(payloadOf(await fx.raw.get(p + 'both'))).toBe(stored('from-a'));
    up(pb);
    await replayed(b);
    expect(payloadOf(await fx.raw.get(p + 'both'))).toBe(stored('from-b'));
    expect(a.stats().l2.recovery).toMatchObject({ replayed: 1, superseded: 1 });
    expect(b.stats().l2.recovery).toMatchObject({ replayed: 1 });
    await waitFor('every instance reads the newest', async () => (await a.get('both')) === 'from-b' && (await a.get('direct')) === 'from-c');
  });

  it('the queue is bounded: past recovery.maxKeys the oldest writes are pushed out and their keys deleted once Redis is back', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p, { recovery: { maxKeys: 3 } });
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    await a.mset(keys.map((k) => [k, 'old'] as const));

    await down(a, pa);
    for (const k of keys) await a.set(k, 'new');
    expect(a.stats().l2.recovery).toMatchObject({ queued: 3, overflowed: 2 });
    // What was pushed out became a deferred delete: reads here skip Redis for those keys meanwhile.
    expect(a.stats().l2.pendingInvalidations).toBe(2);

    up(pa);
    await replayed(a);
    expect(await fx.raw.exists(p + 'k0')).toBe(0);
    expect(await fx.raw.exists(p + 'k1')).toBe(0);
    for (const k of ['k2', 'k3', 'k4']) expect(payloadOf(await fx.raw.get(p + k))).toBe(stored('new'));
    expect(a.stats().l2.recovery).toMatchObject({ queued: 0, replayed: 3, overflowed: 2 });
  });

  it('a write-behind batch that fails goes to the recovery queue and is replayed, not re-flushed blindly', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p, { writeThrough: false, writeBehind: { flushInterval: '1h' } });
    const b = await cache({ redis: fx.redis.url, keyPrefix: p });
    await a.set('kept', 'old');
    await a.set('deleted', 'old');
    await a.flush();

    await a.set('kept', 'new');
    await a.set('deleted', 'new');
    // The proxy swallows the batch (the connection still looks up): it misses its deadline, and is handed to
    // the recovery queue instead of being put back for the next flush.
    pa.blackhole = true;
    await a.flush();
    expect(a.stats().writeBehind.queueLength).toBe(0);
    expect(a.stats().l2.recovery.queued).toBe(2);
    await nextMs();
    expect(await b.delete('deleted')).toBe(1);

    up(pa);
    await replayed(a);
    expect(payloadOf(await fx.raw.get(p + 'kept'))).toBe(stored('new'));
    expect(await fx.raw.exists(p + 'deleted')).toBe(0);
  });

  it('a Redis that comes back empty (restarted without persistence): queued writes become deletes, never blind stores', async () => {
    const own = await RedisServer.start();
    try {
      const p = `rc${++seq}:`;
      const a = await cache({ redis: { url: own.url, connectTimeout: 400, commandTimeout: 200 }, keyPrefix: p });
      await a.set('k', 'old');
      await own.kill();
      await waitFor('A lost Redis', () => !a.l2!.ready);
      await a.set('k', 'new');
      await own.restart();
      await replayed(a);
      // The namespace generation A read before the outage is gone with the data: nothing proves the write is
      // not older than an invalidation that reached the lost data, so the key is a miss instead.
      expect(a.stats().l2.recovery).toMatchObject({ replayed: 0, dropped: 1 });
      const check = new Redis(own.url);
      try {
        expect(await check.exists(p + 'k')).toBe(0);
      } finally {
        check.disconnect();
      }
    } finally {
      await own.stop();
    }
  });

  it('a second instance in its own Node process: it reads what A replayed, and its delete during A`s outage is not undone', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p);
    const b = await EngineProcess.start({ redis: fx.redis.url, keyPrefix: p });
    fx.procs.push(b);
    expect(await b.call('connect')).toBe(true);
    await a.mset([
      ['kept', 'old'],
      ['deleted', 'old'],
    ]);
    expect(await b.call('get', 'kept')).toBe('old');
    expect(await b.call('inL1', 'kept')).toBe(true);

    await down(a, pa);
    await a.mset([
      ['kept', 'new'],
      ['deleted', 'new'],
    ]);
    await nextMs();
    expect(await b.call('delete', 'deleted')).toBe(1);
    up(pa);
    await replayed(a);
    expect(payloadOf(await fx.raw.get(p + 'kept'))).toBe(stored('new'));
    expect(await fx.raw.exists(p + 'deleted')).toBe(0);
    // The replay is announced: B drops the older copy it holds in L1.
    await waitFor('B dropped its older copy', async () => !(await b.call('inL1', 'kept')));
    expect(await b.call('get', 'kept')).toBe('new');
    expect(await b.call('get', 'deleted')).toBeUndefined();
    expect(await a.get('deleted')).toBeUndefined();
  });

  it('recovery: false keeps the old behaviour (nothing queued)', async () => {
    const p = `rc${++seq}:`;
    const { c: a, proxy: pa } = await behindProxy(p, { recovery: false });
    await down(a, pa);
    await a.set('k', 1);
    expect(a.stats().l2.recovery).toEqual({ queued: 0, replayed: 0, dropped: 0, overflowed: 0, superseded: 0 });
  });
});

describe('auto-recovery of a PostgreSQL tier below Redis', () => {
  let l2: RedisServer;
  let pg: PostgresServer;
  const caches: TieredCache[] = [];

  beforeAll(async () => {
    [l2, pg] = await Promise.all([RedisServer.start(), PostgresServer.start()]);
  }, 60_000);
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all([l2?.stop(), pg?.stop()]);
  });

  async function sqlClient(): Promise<Client> {
    const c = new Client({ connectionString: pg.url });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  async function rowPayload(prefix: string, key: string): Promise<string | null | undefined> {
    const c = await sqlClient();
    try {
      const r = await c.query<{ value: string | null }>('SELECT value FROM public.tiered_cache WHERE ns = $1 AND key = $2 AND expires_at > now()', [prefix, key]);
      return r.rows.length === 0 || r.rows[0].value === null ? null : decodeEntry(r.rows[0].value).payload;
    } finally {
      await c.end();
    }
  }

  it('PostgreSQL down and back: a write queued for it reaches it, and the copy above it goes', async () => {
    const p = `rp${++seq}:`;
    const a = new TieredCache({
      logger: quiet,
      keyPrefix: p,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: l2.url },
        { name: 'l4', type: 'postgres', postgres: { url: pg.url, commandTimeout: 300, connectTimeout: 300, maintenanceInterval: '1h' }, ttl: '1d' },
      ],
    });
    caches.push(a);
    await a.connect();
    await waitFor('L4 up', () => a.stats().tiers.l4.ready, 20_000);
    await a.set('k', 'old');
    expect(await rowPayload(p, 'k')).toBe(stored('old'));
    // The test server commits asynchronously: made durable first, so the kill loses nothing written before it.
    const c = await sqlClient();
    await c.query('CHECKPOINT');
    await c.end();

    await pg.kill();
    try {
      await a.set('k', 'new');
      await waitFor('L4 seen down', () => !a.stats().tiers.l4.ready);
      await a.set('k', 'newest');
      expect(a.stats().tiers.l4.recovery).toMatchObject({ queued: 1 });
    } finally {
      await pg.restart();
    }
    await waitFor('the queued write reached L4', () => a.stats().tiers.l4.ready && a.stats().tiers.l4.recovery?.queued === 0, 20_000);
    expect(a.stats().tiers.l4.recovery).toMatchObject({ replayed: 1, dropped: 0 });
    expect(await rowPayload(p, 'k')).toBe(stored('newest'));
    // L2 had it all along; its copy is dropped anyway (it may have been refilled from L4's older row meanwhile).
    expect(await a.get('k')).toBe('newest');
  }, 60_000);

  it('PostgreSQL cut off for A only: a delete B makes meanwhile leaves a tombstone, and A replays a delete, not its write', async () => {
    const p = `rp${++seq}:`;
    const proxy = await TcpProxy.start(pg.port);
    try {
      const l4 = (url: string) => ({ name: 'l4', type: 'postgres' as const, postgres: { url, commandTimeout: 300, connectTimeout: 300, maintenanceInterval: '1h' }, ttl: '1d' });
      const build = async (url: string): Promise<TieredCache> => {
        const c = new TieredCache({ logger: quiet, keyPrefix: p, tiers: [{ name: 'l1', type: 'memory' }, { name: 'l2', type: 'redis', redis: l2.url }, l4(url)] });
        caches.push(c);
        await c.connect();
        await waitFor('L4 up', () => c.stats().tiers.l4.ready, 20_000);
        return c;
      };
      const a = await build(pg.url.replace(`:${pg.port}/`, `:${proxy.port}/`));
      const b = await build(pg.url);
      await a.set('k', 'old');
      expect(await rowPayload(p, 'k')).toBe(stored('old'));

      proxy.blackhole = true;
      proxy.cut();
      await a.set('k', 'from-a');
      await waitFor('the write queued for L4', () => a.stats().tiers.l4.recovery?.queued === 1, 10_000);
      await nextMs();
      expect(await b.delete('k')).toBeGreaterThanOrEqual(1);
      proxy.blackhole = false;
      proxy.cut();
      await waitFor('the queue settled', () => a.stats().tiers.l4.recovery?.queued === 0, 20_000);
      expect(a.stats().tiers.l4.recovery).toMatchObject({ replayed: 0, dropped: 1 });
      expect(await rowPayload(p, 'k')).toBeNull();
      await waitFor('A misses', async () => (await a.get('k')) === undefined);
      expect(await b.get('k')).toBeUndefined();
    } finally {
      await proxy.stop();
    }
  }, 60_000);
});
