import { Redis } from 'ioredis';
import { Client } from 'pg';
import { Registry } from 'prom-client';
import { Test } from '@nestjs/testing';
import { attachCacheMetrics, CacheManagerService, TieredCache, TieredCacheHealthIndicator, TieredCacheModule, type TieredCacheOptions, type TierConfig } from '../../lib';
import { decodeEntry, encodeEntry, ENTRY_DEFLATE, ENTRY_GZIP } from '../../lib/core/entry-envelope';
import { EngineProcess } from '../support/engine-process';
import { PostgresServer } from '../support/postgres-server';
import { promtool } from '../support/promtool';
import { RedisCluster, RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * The stack below L2: L1 + L2 (Redis) + L3 (a second Redis) + L4 (PostgreSQL), on servers the test starts.
 * Several instances share the three shared tiers: two in this process, one in a Node process of its own.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

describe('four tiers: memory, redis, redis, postgres', () => {
  let l2: RedisServer;
  let l3: RedisServer;
  let pg: PostgresServer;
  let r2: Redis;
  let r3: Redis;
  let sql: Client;
  const caches: TieredCache[] = [];
  const procs: EngineProcess[] = [];

  beforeAll(async () => {
    [l2, l3, pg] = await Promise.all([RedisServer.start(), RedisServer.start(), PostgresServer.start()]);
    r2 = new Redis(l2.url);
    r3 = new Redis(l3.url);
    sql = await connectSql();
  }, 60_000);
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    r2?.disconnect();
    r3?.disconnect();
    await sql?.end();
    await Promise.all([l2?.stop(), l3?.stop(), pg?.stop()]);
  });

  async function connectSql(): Promise<Client> {
    const c = new Client({ connectionString: pg.url });
    // The fault test kills the server under it.
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  function tiers(extra: Partial<Record<'l1' | 'l2' | 'l3' | 'l4', object>> = {}): TierConfig[] {
    return [
      { name: 'l1', type: 'memory', ttl: '1m', ...extra.l1 },
      { name: 'l2', type: 'redis', redis: l2.url, ttl: '5m', ...extra.l2 },
      { name: 'l3', type: 'redis', redis: l3.url, ttl: '1h', ...extra.l3 },
      { name: 'l4', type: 'postgres', postgres: { url: pg.url, commandTimeout: 2_000, maintenanceInterval: '1h' }, ttl: '30d', ...extra.l4 },
    ] as TierConfig[];
  }

  function options(prefix: string, extra: Partial<TieredCacheOptions> = {}): TieredCacheOptions {
    return { keyPrefix: prefix, tiers: tiers(), ...extra };
  }

  async function cache(prefix: string, extra: Partial<TieredCacheOptions> = {}): Promise<TieredCache> {
    const c = new TieredCache({ logger: quiet, ...options(prefix, extra) });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** What each shared tier holds under `key` (raw reads, not through the cache). */
  async function where(prefix: string, key: string): Promise<{ l2: boolean; l3: boolean; l4: boolean }> {
    const [a, b, row] = await Promise.all([
      r2.exists(prefix + key),
      r3.exists(prefix + key),
      sql.query('SELECT 1 FROM public.tiered_cache WHERE ns = $1 AND key = $2 AND value IS NOT NULL AND expires_at > now()', [prefix, key]),
    ]);
    return { l2: a === 1, l3: b === 1, l4: row.rowCount === 1 };
  }

  const everywhere = { l2: true, l3: true, l4: true };
  const nowhere = { l2: false, l3: false, l4: false };

  it('a set reaches every tier; a read that misses L2 and L3 is answered by L4 and copied into every tier above', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const b = await cache(p);
    expect(await a.set('k', { v: 1 })).toBe(true);
    expect(await where(p, 'k')).toEqual(everywhere);

    await r2.del(p + 'k');
    await r3.del(p + 'k');
    expect(await b.get('k')).toEqual({ v: 1 });
    await waitFor('the L4 hit copied into L2 and L3', async () => JSON.stringify(await where(p, 'k')) === JSON.stringify(everywhere));
    // A copy never outlives what the tier below has left, nor the tier's own TTL.
    const ttl3 = await r3.pttl(p + 'k');
    expect(ttl3).toBeGreaterThan(0);
    expect(ttl3).toBeLessThanOrEqual(3_600_000);
    expect(await r2.pttl(p + 'k')).toBeLessThanOrEqual(300_000);
    // ...and into B's L1: the next read is an L1 hit.
    expect(b.peekLocal('k')).toEqual({ v: 1 });

    const t = b.stats().tiers;
    expect(Object.keys(t)).toEqual(['l1', 'l2', 'l3', 'l4']);
    expect(t.l4).toMatchObject({ kind: 'postgres', level: 3, hits: 1, ready: true });
    expect(t.l3).toMatchObject({ kind: 'redis', level: 2, misses: 1 });
    expect(t.l3.promotions + t.l4.promotions).toBeGreaterThanOrEqual(1);
  });

  it('delete, invalidatePattern, invalidateTags and clear on one instance empty every tier and the other instances (one in its own process)', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const c = await EngineProcess.start({ ...options(p) });
    procs.push(c);
    expect(await c.call('connect')).toBe(true);

    await a.set('d', 1);
    await a.set('p:1', 1);
    await a.set('t', 1, { tags: ['tg'] });
    await a.set('x', 1);
    for (const k of ['d', 'p:1', 't', 'x']) expect(await c.call('get', k)).toBe(1);
    for (const k of ['d', 'p:1', 't', 'x']) expect(await c.call('inL1', k)).toBe(true);

    await c.call('delete', 'd');
    expect(await where(p, 'd')).toEqual(nowhere);
    await c.call('invalidatePattern', 'p:*');
    expect(await where(p, 'p:1')).toEqual(nowhere);
    await c.call('invalidateTags', ['tg']);
    expect(await where(p, 't')).toEqual(nowhere);
    await waitFor("A's L1 dropped what C invalidated", () => a.peekLocal('d') === undefined && a.peekLocal('p:1') === undefined && a.peekLocal('t') === undefined);
    for (const k of ['d', 'p:1', 't']) expect(await a.get(k)).toBeUndefined();
    expect(await a.get('x')).toBe(1);

    await a.clear();
    expect(await where(p, 'x')).toEqual(nowhere);
    await waitFor("C's L1 cleared", async () => !(await c.call('inL1', 'x')));
    expect(await c.call('get', 'x')).toBeUndefined();
  });

  it('a tag invalidation also removes an untagged copy that a read promoted into L2 and L3 from L4', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const b = await cache(p);
    await a.set('t', 'old', { tags: ['tg'] });
    await r2.del(p + 't');
    await r3.del(p + 't');
    expect(await b.get('t')).toBe('old');
    await waitFor('copied up from L4', async () => JSON.stringify(await where(p, 't')) === JSON.stringify(everywhere));

    await a.invalidateTags('tg');
    expect(await where(p, 't')).toEqual(nowhere);
    await waitFor("B's L1 dropped it", () => b.peekLocal('t') === undefined);
    expect(await b.get('t')).toBeUndefined();
  });

  it.each([
    ['delete of the key', (x: EngineProcess) => x.call('delete', 'k')],
    ['tag invalidation', (x: EngineProcess) => x.call('invalidateTags', ['tg'])],
    ['pattern invalidation', (x: EngineProcess) => x.call('invalidatePattern', 'k*')],
  ])("a fill overtaken by another process's %s is returned but stored in no tier", async (_what, invalidate) => {
    const p = `mt${++seq}:`;
    const b = await cache(p);
    const other = await EngineProcess.start(options(p));
    procs.push(other);
    expect(await other.call('connect')).toBe(true);

    let release: (v: string) => void = () => undefined;
    let entered: () => void = () => undefined;
    const inFactory = new Promise<void>((r) => (entered = r));
    const fill = b.getOrSet(
      'k',
      () =>
        new Promise<string>((r) => {
          release = r;
          entered();
        }),
      { tags: ['tg'] },
    );
    await inFactory;
    await invalidate(other);
    release('old row');
    expect(await fill).toBe('old row');
    expect(await where(p, 'k')).toEqual(nowhere);
    expect(b.peekLocal('k')).toBeUndefined();
    expect(await other.call('get', 'k')).toBeUndefined();
  });

  it('a fill no invalidation overtook is stored in every tier', async () => {
    const p = `mt${++seq}:`;
    const b = await cache(p);
    expect(await b.getOrSet('k', () => 'fresh', { tags: ['tg'] })).toBe('fresh');
    expect(await where(p, 'k')).toEqual(everywhere);
    expect(b.peekLocal('k')).toBe('fresh');
  });

  it("set(..., { tier: 'l3' }) writes L3 and L4, never above, and removes the older copies above", async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const b = await cache(p);
    await a.set('k', 'v1');
    expect(await b.get('k')).toBe('v1');
    expect(await a.set('k', 'v2', { tier: 'l3' })).toBe(true);
    expect(await where(p, 'k')).toEqual({ l2: false, l3: true, l4: true });
    expect(a.peekLocal('k')).toBeUndefined();
    await waitFor("B's L1 dropped v1", () => b.peekLocal('k') === undefined);
    expect(await b.get('k')).toBe('v2');
    await expect(a.set('k', 'v3', { tier: 'l9' })).rejects.toThrow(/no such tier.*l1, l2, l3, l4/);
  });

  it('has() and ttl() answer from the tiers below L2 when only they hold the key, on any instance', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const b = await cache(p);
    await a.set('deep', 'v', { tier: 'l4' });
    expect(await where(p, 'deep')).toEqual({ l2: false, l3: false, l4: true });
    expect(await b.has('deep')).toBe(true);
    // L4's own TTL (30 days), not L2's or L1's.
    expect(await b.ttl('deep')).toBeGreaterThan(3_600_000);
    await a.set('mid', 'v', { tier: 'l3' });
    const ttl3 = await b.ttl('mid');
    expect(ttl3).toBeGreaterThan(300_000);
    expect(ttl3).toBeLessThanOrEqual(3_600_000);
    expect(await b.has('absent')).toBe(false);
    expect(await b.ttl('absent')).toBeUndefined();
    await a.delete('deep');
    expect(await b.has('deep')).toBe(false);
    expect(await b.ttl('deep')).toBeUndefined();
  });

  it('a call ttl caps every tier; each tier keeps its own TTL otherwise', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    await a.set('short', 1, { ttl: '10s' });
    await a.set('long', 1);
    const row = async (k: string) =>
      Number((await sql.query<{ ms: string }>('SELECT extract(epoch from expires_at - now()) * 1000 AS ms FROM public.tiered_cache WHERE ns = $1 AND key = $2', [p, k])).rows[0].ms);
    expect(await row('short')).toBeLessThanOrEqual(10_000);
    expect(await row('long')).toBeGreaterThan(29 * 86_400_000);
    expect(await r3.pttl(p + 'short')).toBeLessThanOrEqual(10_000);
    expect(await r3.pttl(p + 'long')).toBeGreaterThan(3_000_000);
  });

  it("write: 'behind' on L4 queues its writes until flush(); a delete drops a queued write", async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p, { tiers: tiers({ l4: { write: 'behind', writeBehind: { flushInterval: '1h' } } }) });
    await a.set('q', 1);
    await a.set('gone', 1);
    expect(await where(p, 'q')).toEqual({ l2: true, l3: true, l4: false });
    await a.delete('gone');
    await a.flush();
    expect(await where(p, 'q')).toEqual(everywhere);
    expect(await where(p, 'gone')).toEqual(nowhere);
    expect(a.stats().tiers.l4.writeBehind).toEqual({ queueLength: 0, flushed: 1, dropped: 0 });
  });

  it("a lower tier's full write-behind queue drops its oldest writes and says so in stats", async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p, { tiers: tiers({ l4: { write: 'behind', writeBehind: { flushInterval: '1h', maxQueue: 2 } } }) });
    for (const k of ['w1', 'w2', 'w3']) await a.set(k, 1);
    expect(a.stats().tiers.l4.writeBehind).toEqual({ queueLength: 2, flushed: 0, dropped: 1 });
    await a.flush();
    expect((await where(p, 'w1')).l4).toBe(false);
    expect((await where(p, 'w3')).l4).toBe(true);
    expect(a.stats().tiers.l4.writeBehind).toEqual({ queueLength: 0, flushed: 2, dropped: 1 });
  });

  it('TieredCacheModule.forRoot({ tiers }) boots a four-tier cache and closes every connection with the app', async () => {
    const p = `mt${++seq}:`;
    const app = await (await Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ ...options(p), logger: quiet })] }).compile()).init();
    const svc = app.get(CacheManagerService);
    await svc.set('k', 'v');
    expect(await where(p, 'k')).toEqual(everywhere);
    expect(Object.keys(svc.engine.stats().tiers)).toEqual(['l1', 'l2', 'l3', 'l4']);
    await app.close();
    const conns = await sql.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'tiered-cache'");
    expect(Number(conns.rows[0].n)).toBe(0);
  });

  it('metrics carry each lower tier under its name (hits, misses, hit ratio, errors), and promtool accepts them', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const registry = new Registry();
    const detach = attachCacheMetrics(a, { registry, name: 'four' });
    try {
      await a.set('k', 1);
      await r2.del(p + 'k');
      await r3.del(p + 'k');
      await waitFor('tracking dropped the L1 copy', () => a.peekLocal('k') === undefined);
      expect(await a.get('k')).toBe(1);
      expect(await a.get('absent')).toBeUndefined();
      const text = await registry.metrics();
      expect(text).toContain('cache_hits_total{cache="four",tier="l4"} 1');
      expect(text).toContain('cache_misses_total{cache="four",tier="l3"} 2');
      expect(text).toContain('cache_hit_ratio{cache="four",tier="l4"} 0.5');
      expect(text).toContain('cache_errors_total{cache="four",tier="l4",operation="command"} 0');
      expect(promtool(text).status).toBe(0);
    } finally {
      detach?.();
    }
  });

  it('mget finds what only the lower tiers hold', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    const b = await cache(p);
    await a.mset([
      ['m1', 1],
      ['m2', 2],
    ]);
    await r2.del(p + 'm1', p + 'm2');
    await r3.del(p + 'm2');
    expect(await b.mget(['m1', 'm2', 'm3'])).toEqual([1, 2, undefined]);
  });

  it('compression per tier: L3 gzip and L4 deflate hold compressed entries, L2 plain; each tier answers with them, on every instance', async () => {
    const p = `mt${++seq}:`;
    const zipped = tiers({ l3: { compression: { algorithm: 'gzip', threshold: '1kb' } }, l4: { compression: { algorithm: 'deflate', threshold: '1kb' } } });
    const a = await cache(p, { tiers: zipped });
    const other = await EngineProcess.start({ ...options(p), tiers: zipped });
    procs.push(other);
    expect(await other.call('connect')).toBe(true);
    const value = { rows: Array.from({ length: 300 }, (_, i) => ({ id: `p-${i}`, city: 'Lyon', price: 1000 + i })) };
    await a.set('big', value);
    const flags = async (): Promise<number[]> => {
      const [v2, v3, row] = await Promise.all([r2.get(p + 'big'), r3.get(p + 'big'), sql.query('SELECT value, bytes FROM public.tiered_cache WHERE ns = $1 AND key = $2', [p, 'big'])]);
      return [v2, v3, row.rows[0]?.value as string | null].map((v) => (v === null ? -1 : (decodeEntry(v).meta?.flags ?? 0)));
    };
    expect(await flags()).toEqual([0, ENTRY_GZIP, ENTRY_DEFLATE]);
    // L4's byte count (what maxBytes trims by) is the stored, compressed size.
    const row = await sql.query('SELECT bytes, length(value) AS len FROM public.tiered_cache WHERE ns = $1 AND key = $2', [p, 'big']);
    expect(Number(row.rows[0].bytes)).toBe(Number(row.rows[0].len));
    expect(Number(row.rows[0].bytes)).toBeLessThan(JSON.stringify(value).length / 4);

    // L3 answers, on the other process: decompressed there.
    await r2.del(p + 'big');
    expect(await other.call('get', 'big')).toEqual(value);
    // L4 answers, on a fresh instance (L2 and L3 emptied by hand).
    await Promise.all([r2.del(p + 'big'), r3.del(p + 'big')]);
    const b = await cache(p, { tiers: zipped });
    expect(await b.get('big')).toEqual(value);
    // The copies promoted from L4 keep its form (no second compression; every reader reads every algorithm).
    await waitFor('the L4 hit copied into L2 and L3', async () => (await r2.exists(p + 'big')) + (await r3.exists(p + 'big')) === 2);
    expect(await flags()).toEqual([ENTRY_DEFLATE, ENTRY_DEFLATE, ENTRY_DEFLATE]);
    expect(await a.get('big')).toEqual(value);
    expect(a.stats().tiers.l3.compression).toMatchObject({ entries: 1 });
    expect(a.stats().tiers.l4.compression).toMatchObject({ entries: 1 });
    expect(a.stats().tiers.l2.compression).toBeUndefined();
  });

  it('a corrupt L4 row is a miss, and is removed', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p);
    await sql.query("INSERT INTO public.tiered_cache (ns, key, value, expires_at) VALUES ($1, 'bad', $2, now() + interval '1 hour')", [p, encodeEntry('\u0001tc1:{not json', { createdAt: Date.now() })]);
    expect(await a.get('bad')).toBeUndefined();
    await waitFor('the corrupt row removed', async () => (await where(p, 'bad')).l4 === false);
    expect(a.stats().l2.corrupt).toBe(1);
  });

  /** Whether L2's entry under `key` is past its logical expiry (what a grace read sees). */
  async function staleInL2(prefix: string, key: string): Promise<boolean> {
    const raw = await r2.get(prefix + key);
    const d = raw === null ? undefined : decodeEntry(raw);
    return d?.status === 'current' && d.meta.staleAt !== undefined && Date.now() >= d.meta.staleAt;
  }

  it('with grace, each tier goes stale at its own TTL: a stale L2 copy is passed over for the fresh L4 entry', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p, { tiers: tiers({ l2: { ttl: 40 }, l3: { ttl: 40 } }), resilience: { grace: '1h' } });
    const b = await cache(p, { tiers: tiers({ l2: { ttl: 40 }, l3: { ttl: 40 } }), resilience: { grace: '1h' } });
    await a.set('k', 'v1');
    // Each tier keeps it past its TTL, for the grace.
    expect(await r2.pttl(p + 'k')).toBeGreaterThan(3_000_000);
    await waitFor("L2's copy past its TTL", () => staleInL2(p, 'k'));
    let ran = 0;
    expect(await b.getOrSet('k', () => (ran++, 'from the source'))).toBe('v1');
    expect(ran).toBe(0);
    expect(b.stats().tiers.l4.hits).toBe(1);
  });

  it('a refresh of a stale L2 entry replaces it and drops the copies below, which held the value it replaced', async () => {
    const p = `mt${++seq}:`;
    const short = { tiers: tiers({ l2: { ttl: 40 }, l3: { ttl: 40 }, l4: { ttl: 40 } }), resilience: { grace: '1h' } };
    const a = await cache(p, short);
    const b = await cache(p, short);
    await a.set('k', 'v1');
    await waitFor("L2's copy past its TTL", () => staleInL2(p, 'k'));
    let release!: (v: string) => void;
    const held = new Promise<string>((r) => (release = r));
    expect(await b.getOrSet('k', () => held)).toBe('v1');
    release('v2');
    await waitFor('the refresh in L2, the older copies gone below', async () => {
      const w = await where(p, 'k');
      return w.l2 && !w.l3 && !w.l4 && (await r2.get(p + 'k'))?.includes('v2') === true;
    });
    expect(await a.getOrSet('k', () => 'never')).toBe('v2');
  });

  it('PostgreSQL down: reads, writes and invalidations resolve; a delete made meanwhile lands once it is back', async () => {
    const p = `mt${++seq}:`;
    const a = await cache(p, { tiers: tiers({ l4: { postgres: { url: pg.url, commandTimeout: 300, connectTimeout: 300, maintenanceInterval: '1h' } } }) });
    // A loaded machine can take longer than the short connectTimeout to boot the tier: it then comes up through its probe.
    await waitFor('L4 up', () => a.stats().tiers.l4.ready);
    await a.set('k', 'v');
    expect(await where(p, 'k')).toEqual(everywhere);
    const up = await new TieredCacheHealthIndicator(a).details();
    expect(up.tiers?.l3).toMatchObject({ kind: 'redis', ok: true });
    expect(up.tiers?.l4).toMatchObject({ kind: 'postgres', ok: true, status: 'ready', pool: { waiting: 0 } });
    expect(up.tiers?.l4.table?.bytes).toBeGreaterThan(0);
    expect(up.degraded).toBeUndefined();
    await pg.kill();
    try {
      expect(await a.get('k')).toBe('v');
      expect(await a.set('other', 1)).toBe(true);
      expect(await a.delete('k')).toBeGreaterThanOrEqual(0);
      // The tier learns of the loss from the first failed query or from its idle connections' error, whichever comes first.
      await waitFor('L4 seen down', () => !a.stats().tiers.l4.ready);
      const down = await new TieredCacheHealthIndicator(a).details({ timeout: 500 });
      expect(down.tiers?.l4).toMatchObject({ kind: 'postgres', ok: false });
      expect(down.degraded).toEqual(expect.arrayContaining([expect.stringMatching(/^tier l4 /)]));
    } finally {
      await pg.restart();
    }
    await sql.end().catch(() => undefined);
    sql = await connectSql();
    // The test server runs with synchronous_commit off: a kill right after the table was created can lose it, and
    // the tier creates it again when it reconnects. Until then the raw query fails.
    await waitFor('the deferred delete reached L4', async () => (await where(p, 'k').catch(() => undefined))?.l4 === false, 20_000);
    expect(await a.get('k')).toBeUndefined();
  }, 60_000);
});

describe('four tiers: PostgreSQL down at boot', () => {
  let l2: RedisServer;
  let l3: RedisServer;
  let pg: PostgresServer;
  const caches: TieredCache[] = [];

  beforeAll(async () => {
    // Initialized but not started: the first instance boots while the database is not there.
    [l2, l3, pg] = await Promise.all([RedisServer.start(), RedisServer.start(), PostgresServer.initialize()]);
  }, 60_000);
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all([l2?.stop(), l3?.stop(), pg?.stop()]);
  });

  function build(prefix: string): TieredCache {
    const c = new TieredCache({
      logger: quiet,
      keyPrefix: prefix,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: l2.url },
        { name: 'l3', type: 'redis', redis: l3.url },
        { name: 'l4', type: 'postgres', postgres: { url: pg.url, commandTimeout: 300, connectTimeout: 300, maintenanceInterval: '1h' } },
      ],
    });
    caches.push(c);
    return c;
  }

  it('down at boot: connect resolves, the cache serves from the tiers it has, and uses L4 once the database is started', async () => {
    const p = `mb${++seq}:`;
    const a = build(p);
    // Redis answers; the database does not: connect still resolves (L2 is what it reports).
    expect(await a.connect()).toBe(true);
    expect(a.stats().tiers.l4.ready).toBe(false);
    expect(await a.set('early', 1)).toBe(true);
    expect(await a.getOrSet('fill', () => 'v')).toBe('v');
    await pg.boot();
    await waitFor('the tier reconnected and created its table', () => a.stats().tiers.l4.ready, 20_000);
    expect(await a.set('late', 2)).toBe(true);
    const sql = new Client({ connectionString: pg.url });
    sql.on('error', () => undefined);
    await sql.connect();
    try {
      const rows = await sql.query<{ key: string }>('SELECT key FROM public.tiered_cache WHERE ns = $1 AND value IS NOT NULL ORDER BY key', [p]);
      expect(rows.rows.map((r) => r.key)).toEqual(['late']);
    } finally {
      await sql.end();
    }
  }, 60_000);
});

describe('four tiers with L3 on a three-master Redis Cluster', () => {
  let l2: RedisServer;
  let cluster: RedisCluster;
  let pg: PostgresServer;
  const caches: TieredCache[] = [];

  beforeAll(async () => {
    [l2, cluster, pg] = await Promise.all([RedisServer.start(), RedisCluster.start(3), PostgresServer.start()]);
  }, 90_000);
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all([l2?.stop(), cluster?.stop(), pg?.stop()]);
  });

  async function cache(prefix: string): Promise<TieredCache> {
    const c = new TieredCache({
      logger: quiet,
      keyPrefix: prefix,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: l2.url, ttl: '5m' },
        { name: 'l3', type: 'redis', redis: { mode: 'cluster', nodes: cluster.nodes, connectTimeout: 5_000 }, ttl: '1h' },
        { name: 'l4', type: 'postgres', postgres: { url: pg.url, commandTimeout: 2_000, maintenanceInterval: '1h' }, ttl: '30d' },
      ],
    });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  it('keys spread over the masters: written to every tier, read back from L3 and L4 on another instance, invalidated everywhere', async () => {
    const p = `mc${++seq}:`;
    const a = await cache(p);
    const b = await cache(p);
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    for (const k of keys) await a.set(k, k.toUpperCase(), { tags: ['all'] });
    const r2 = new Redis(l2.url);
    const direct = cluster.nodes.map((n) => new Redis(n.port, n.host));
    try {
      const l3Count = async () => (await Promise.all(direct.map((d) => d.dbsize()))).reduce((x, y) => x + y, 0);
      expect(await l3Count()).toBeGreaterThanOrEqual(keys.length);
      expect((await Promise.all(direct.map((d) => d.dbsize()))).filter((n) => n > 0).length).toBeGreaterThan(1);
      await r2.del(...keys.map((k) => p + k));
      for (const k of keys) expect(await b.get(k)).toBe(k.toUpperCase());
      expect(b.stats().tiers.l3.hits).toBe(keys.length);

      const fill = await b.getOrSet('fresh', () => 'filled');
      expect(fill).toBe('filled');
      expect(await a.get('fresh')).toBe('filled');

      await a.invalidateTags('all');
      await a.delete('fresh');
      await waitFor("B's L1 dropped every invalidated key", () => [...keys, 'fresh'].every((k) => b.peekLocal(k) === undefined));
      for (const k of [...keys, 'fresh']) expect(await b.get(k)).toBeUndefined();
      expect(await l3Count()).toBeLessThan(keys.length);
    } finally {
      r2.disconnect();
      for (const d of direct) d.disconnect();
    }
  }, 60_000);
});
