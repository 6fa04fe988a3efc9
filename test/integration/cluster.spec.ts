import { type INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { Cluster, Redis } from 'ioredis';
import { register } from 'prom-client';
import request from 'supertest';
import { CacheManagerService, TieredCache, TieredCacheModule, type TieredCacheOptions } from '../../lib';
import { expectPromtoolToAccept } from '../support/promtool';
import { bootHealthApp } from '../support/health-app';
import { RedisCluster } from '../support/redis-server';
import { waitFor } from '../support/wait-for';
import { warm } from '../support/l1-helpers';

/**
 * The cache against a real 3-master Redis Cluster (no replicas), started by the harness: the cluster code paths
 * (reads routed to each master, per-master SCAN, per-key GETs for mget, tags as per-slot sets, pub/sub overwrites on
 * the bus, CLUSTER INFO/NODES in health and metrics), and a master dying.
 */

const quiet = { warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const COMMAND_TIMEOUT = 300;

function clusterRedis(cluster: RedisCluster) {
  return { mode: 'cluster' as const, nodes: cluster.nodes, commandTimeout: COMMAND_TIMEOUT, connectTimeout: 3_000 };
}

/** Every key on one node (direct connection, SCAN). */
async function keysOn(node: Redis, match = '*'): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

describe('Redis Cluster: engine', () => {
  let cluster: RedisCluster;
  let raw: Cluster;
  let direct: Redis[];
  const caches: TieredCache[] = [];
  let n = 0;

  async function cache(opts: Partial<TieredCacheOptions> = {}): Promise<TieredCache> {
    const c = new TieredCache({ redis: clusterRedis(cluster), keyPrefix: `c${++n}:`, logger: quiet, bus: false, ...opts });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** Which masters hold keys matching `match`. */
  async function mastersHolding(match: string): Promise<number> {
    const counts = await Promise.all(direct.map((d) => keysOn(d, match).then((k) => k.length)));
    return counts.filter((c) => c > 0).length;
  }

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    raw = new Cluster(cluster.nodes);
    direct = cluster.nodes.map((nd) => new Redis(nd.port, nd.host));
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await raw?.quit();
    await Promise.all((direct ?? []).map((d) => d.quit()));
    await cluster?.stop();
  });

  it('set/get/has/ttl/delete go through the cluster', async () => {
    const a = await cache({ keyPrefix: 'basic:' });
    const b = await cache({ keyPrefix: 'basic:' });
    expect(a.l2?.mode).toBe('cluster');
    await a.set('user:1', { name: 'Ann', at: new Date(1000) }, { ttl: '10s' });
    expect(await raw.get('basic:user:1')).toContain('Ann');
    const pttl = await raw.pttl('basic:user:1');
    expect(pttl).toBeGreaterThan(9_000);
    expect(await b.get('user:1')).toEqual({ name: 'Ann', at: new Date(1000) });
    expect(b.stats().l2.hits).toBe(1);
    expect(await b.has('user:1')).toBe(true);
    expect(await b.has('user:2')).toBe(false);
    expect(await b.ttl('user:1')).toBeGreaterThan(9_000);
    expect(await b.delete(['user:1', 'user:2'])).toBe(1);
    expect(await raw.exists('basic:user:1')).toBe(0);
    expect(await b.get('user:1')).toBeUndefined();
  });

  it('mset and mget of 50 keys spread over every master, values in order', async () => {
    const a = await cache({ keyPrefix: 'mg:' });
    const b = await cache({ keyPrefix: 'mg:', l1: { ttl: '1h' } });
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    expect(await a.mset(keys.map((k, i) => [k, { i }] as const), { ttl: 5_000 })).toBe(50);
    // The keys really are spread: every master holds some (one MGET could not have read them).
    expect(await mastersHolding('mg:k*')).toBe(3);
    const vals = await b.mget([...keys, 'missing']);
    expect(vals).toEqual([...keys.map((_, i) => ({ i })), undefined]);
    expect(b.stats().l2.promotions).toBe(50);
    // Each promoted copy is capped at what is left of its L2 TTL.
    for (const k of keys) {
      const t = b.l1!.remainingTtl(k)!;
      expect(t).toBeGreaterThan(0);
      expect(t).toBeLessThanOrEqual(5_000);
    }
    const hits = b.stats().l1.hits;
    expect(await b.mget(keys.slice(0, 10))).toEqual(keys.slice(0, 10).map((_, i) => ({ i })));
    expect(b.stats().l1.hits).toBe(hits + 10);
  });

  it('an L2 hit is promoted into L1 with a TTL capped at the remaining L2 TTL', async () => {
    const a = await cache({ keyPrefix: 'promo:' });
    const b = await cache({ keyPrefix: 'promo:', l1: { ttl: '1h' } });
    await a.set('k', 'v', { ttl: 300 });
    expect(await b.get('k')).toBe('v');
    expect(b.stats().l2.promotions).toBe(1);
    expect(b.l1!.remainingTtl('k')!).toBeLessThanOrEqual(300);
    expect(await b.get('k')).toBe('v');
    expect(b.stats().l1.hits).toBe(1);
    await sleep(360);
    expect(b.l1!.has('k')).toBe(false);
    expect(await b.get('k')).toBeUndefined();
  });

  it('getOrSet runs the factory once for concurrent callers and writes to the cluster', async () => {
    const a = await cache({ keyPrefix: 'gos:' });
    let runs = 0;
    const factory = async () => {
      runs++;
      await sleep(50);
      return { computed: true };
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => a.getOrSet('k', factory)));
    expect(results.every((r) => (r as { computed: boolean }).computed)).toBe(true);
    expect(runs).toBe(1);
    expect(await raw.exists('gos:k')).toBe(1);
    // Another instance finds it in L2 without running its factory.
    const b = await cache({ keyPrefix: 'gos:' });
    expect(await b.getOrSet('k', () => (runs++, { computed: false }))).toEqual({ computed: true });
    expect(runs).toBe(1);
  });

  it('tags: invalidateTags removes entries tagged across slots, and only those', async () => {
    const a = await cache({ keyPrefix: 'tg:' });
    const b = await cache({ keyPrefix: 'tg:' });
    for (let i = 0; i < 30; i++) await a.set(`p${i}`, i, { tags: i % 2 === 0 ? ['even', 'all'] : ['all'] });
    await a.set('untagged', 1);
    expect(await mastersHolding('tg:p*')).toBe(3);
    // b reads some of them so its L1 holds promoted copies (which carry no tag index).
    expect(await b.get('p0')).toBe(0);
    expect(await b.get('p1')).toBe(1);
    expect(await b.invalidateTags('even')).toBe(15);
    for (let i = 0; i < 30; i++) expect(await raw.exists(`tg:p${i}`)).toBe(i % 2 === 0 ? 0 : 1);
    expect(b.l1!.has('p0')).toBe(false);
    expect(b.l1!.has('p1')).toBe(true);
    expect(await b.get('p0')).toBeUndefined();
    expect(await b.invalidateTags(['all'])).toBe(15);
    expect(await mastersHolding('tg:p*')).toBe(0);
    expect(await raw.exists('tg:untagged')).toBe(1);
  });

  it("invalidatePattern('p:*') removes matching keys on every master and nothing else", async () => {
    const c = await cache({ keyPrefix: 'pat:' });
    await c.mset(Array.from({ length: 60 }, (_, i) => [`p:${i}`, i] as const));
    await c.mset(Array.from({ length: 30 }, (_, i) => [`q:${i}`, i] as const));
    await raw.set('p:outside', 'keep'); // no prefix: not this cache's key
    expect(await mastersHolding('pat:p:*')).toBe(3);
    expect(await c.invalidatePattern('p:*')).toBe(60);
    expect(await mastersHolding('pat:p:*')).toBe(0);
    expect(c.l1!.has('p:0')).toBe(false);
    const q = (await Promise.all(direct.map((d) => keysOn(d, 'pat:q:*')))).flat();
    expect(q).toHaveLength(30);
    expect(await raw.get('p:outside')).toBe('keep');
    expect(await c.get('q:7')).toBe(7);
  });

  it('a hung master does not stop a pattern walk: the others are cleaned, the result says incomplete, the rest lands later', async () => {
    const c = await cache({ keyPrefix: 'hung:' });
    await c.mset(Array.from({ length: 60 }, (_, i) => [`p:${i}`, i] as const));
    expect(await mastersHolding('hung:p:*')).toBe(3);
    const hung = 1;
    const hungPort = cluster.nodes[hung].port;
    cluster.pause(hung); // resumed well within the cluster's node timeout (2 s), so no slot is lost
    let report;
    try {
      report = await c.invalidatePattern('p:*', { detailed: true });
    } finally {
      cluster.resume(hung);
    }
    expect(report.complete).toBe(false);
    expect(report.deferred).toBe(true);
    expect(report.failedNodes).toEqual([`127.0.0.1:${hungPort}`]);
    // The healthy masters were walked to the end although the hung one came first or in between.
    for (let i = 0; i < 3; i++) if (i !== hung) expect(await keysOn(direct[i], 'hung:p:*')).toEqual([]);
    expect(c.l1!.has('p:0')).toBe(false);
    expect(c.stats().l2.pendingInvalidations).toBe(1);
    // Replayed once the master answers again.
    await waitFor('the deferred pattern landed', () => c.stats().l2.pendingInvalidations === 0, 15_000);
    expect(await mastersHolding('hung:p:*')).toBe(0);
  });

  it('a fill overtaken by a delete or a pattern invalidation on another instance is returned but not stored', async () => {
    const a = await cache({ keyPrefix: 'race:' });
    const b = await cache({ keyPrefix: 'race:' });
    for (const [key, invalidate] of [
      ['d:1', () => a.delete('d:1')],
      ['p:1', () => a.invalidatePattern('p:*')],
    ] as const) {
      let release!: (v: string) => void;
      let entered!: () => void;
      const running = new Promise<void>((r) => (entered = r));
      const result = b.getOrSet(key, () => {
        entered();
        return new Promise<string>((r) => (release = r));
      });
      await running;
      await invalidate();
      release('OLD');
      expect(await result).toBe('OLD');
      expect(await raw.exists(`race:${key}`)).toBe(0);
      expect(b.l1!.has(key)).toBe(false);
    }
    expect(b.stats().l2.fillsRefused).toBe(2);
    // A fill that nothing overtook is stored.
    expect(await b.getOrSet('fresh', () => 'v')).toBe('v');
    expect(await raw.exists('race:fresh')).toBe(1);
  });

  it("clear() removes this cache's namespace on every master, and nothing else", async () => {
    const c = await cache({ keyPrefix: 'clr:' });
    const other = await cache({ keyPrefix: 'other:' });
    await raw.set('foreign:1', 'keep');
    await raw.set('clr', 'keep'); // the prefix without its colon is not in the namespace
    await c.mset(Array.from({ length: 40 }, (_, i) => [`k${i}`, i] as const));
    await c.set('t', 1, { tags: ['x'] });
    await other.set('k1', 'other');
    expect(await mastersHolding('clr:*')).toBe(3);
    expect(await c.clear()).toBeGreaterThanOrEqual(41);
    // Left behind: only the fill-fence state (the namespace generation), which a walk never deletes; the tag
    // index went with the keys.
    const left = (await Promise.all(direct.map((d) => keysOn(d, 'clr:*')))).flat();
    expect(left).toEqual(['clr:__tc:gen']);
    expect(await raw.get('foreign:1')).toBe('keep');
    expect(await raw.get('clr')).toBe('keep');
    expect(await other.get('k1')).toBe('other');
    expect(await c.get('k1')).toBeUndefined();
  });
});

describe('Redis Cluster: invalidation bus (two instances)', () => {
  let cluster: RedisCluster;
  const open: TieredCache[] = [];

  async function instance(): Promise<TieredCache> {
    const c = new TieredCache({ redis: clusterRedis(cluster), keyPrefix: 'bus:', logger: quiet });
    open.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** B has applied everything A published so far (only A publishes here: B's received counts A's messages). */
  async function delivered(a: TieredCache, b: TieredCache): Promise<void> {
    await a.bus!.drain();
    const sent = a.stats().bus.published;
    await waitFor('B applied what A published', () => b.stats().bus.received >= sent);
  }

  beforeAll(async () => {
    cluster = await RedisCluster.start();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("overwrites, deletes and tag invalidations on A drop B's L1 copies (pub/sub: no CLIENT TRACKING on a Cluster)", async () => {
    const a = await instance();
    const b = await instance();
    expect(a.stats().bus).toMatchObject({ enabled: true, subscribed: true, overwrites: 'pubsub' });
    expect(b.stats().bus).toMatchObject({ subscribed: true, overwrites: 'pubsub' });

    // Overwrite.
    await a.set('k', 'old');
    await delivered(a, b);
    await warm(b, 'k', 'old');
    await a.set('k', 'new');
    await waitFor('B drops k after the overwrite', () => !b.l1!.has('k'));
    expect(await b.get('k')).toBe('new');
    expect(a.stats().bus.published).toBeGreaterThan(0);
    expect(b.stats().bus.trackedKeys).toBe(0);

    // Delete.
    await warm(b, 'k', 'new');
    const received = b.stats().bus.received;
    await a.delete('k');
    await waitFor('B drops k after the delete', () => !b.l1!.has('k'));
    expect(b.stats().bus.received).toBeGreaterThan(received);
    expect(await b.get('k')).toBeUndefined();

    // Tags, keys on several slots.
    for (let i = 0; i < 10; i++) await a.set(`t${i}`, i, { tags: ['grp'] });
    await delivered(a, b);
    for (let i = 0; i < 10; i++) await warm(b, `t${i}`, i);
    expect(await a.invalidateTags('grp')).toBe(10);
    await waitFor('B drops every tagged key', () => Array.from({ length: 10 }, (_, i) => b.l1!.has(`t${i}`)).every((h) => !h));
    for (let i = 0; i < 10; i++) expect(await b.get(`t${i}`)).toBeUndefined();
    expect(a.stats().bus.publishFailures).toBe(0);
  });

  // Last in this block: it kills a master of this block's cluster.
  it("when the node holding B's subscription dies, B's bus notices the move and empties L1 once re-subscribed", async () => {
    const a = await instance();
    const b = await instance();
    for (let i = 0; i < 10; i++) await a.set(`s${i}`, i);
    await delivered(a, b);
    for (let i = 0; i < 10; i++) await warm(b, `s${i}`, i);
    expect(b.stats().bus.l1ClearsOnReconnect).toBe(0);

    // ioredis picks the subscriber node itself; only its (private) ClusterSubscriber knows which one.
    const subPort = (b.bus as any).sub.subscriber.getInstance().options.port as number;
    const dead = cluster.nodes.findIndex((nd) => nd.port === subPort);
    expect(dead).toBeGreaterThanOrEqual(0);
    await cluster.kill(dead);

    // ioredis moves the subscription to a live node: messages published meanwhile are lost, so L1 must go.
    await waitFor('B re-subscribed on another node and emptied L1', () => b.stats().bus.l1ClearsOnReconnect === 1, 10_000);
    expect(b.bus!.state).toBe('subscribed');
    for (let i = 0; i < 10; i++) expect(b.l1!.has(`s${i}`)).toBe(false);
    const now = (b.bus as any).sub.subscriber.getInstance().options.port as number;
    expect(now).not.toBe(subPort);
  });
});

describe('Redis Cluster: health', () => {
  let cluster: RedisCluster;
  let app: INestApplication;

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    app = await bootHealthApp({ redis: clusterRedis(cluster) });
  });
  afterAll(async () => {
    await app?.close();
    await cluster?.stop();
  });

  it('reports up with the cluster details: state ok, 3/3 nodes, all slots covered', async () => {
    const cache = app.get(CacheManagerService);
    await cache.set('a', 1);
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    const c = res.body.info.cache;
    expect(c.status).toBe('up');
    expect(c.l2).toMatchObject({ enabled: true, mode: 'cluster', status: 'up', reachable: true, connection: 'ready' });
    expect(c.l2.cluster).toEqual({ state: 'ok', nodesHealthy: 3, nodesTotal: 3, slotsOk: 16_384, allSlotsCovered: true });
    expect(c.l2.pingMs).toEqual(expect.any(Number));
    expect(c.l2.usedMemory).toBeGreaterThan(0);
    expect(c.l2.connectedClients).toBeGreaterThanOrEqual(3);
    expect(c.bus).toMatchObject({ state: 'subscribed', healthy: true, overwrites: 'pubsub' });
    expect(c.degraded).toBeUndefined();
    await request(app.getHttpServer()).get('/health/strict').expect(200);
  });

  it('a dead master: degraded (up) without requireL2, down with it; checks and engine calls stay bounded', async () => {
    const cache = app.get(CacheManagerService);
    // Keys on every master, so some live on the node that dies.
    await cache.mset(Array.from({ length: 30 }, (_, i) => [`k${i}`, i] as const));
    await cluster.kill(2);

    let c: Record<string, any> = {};
    await waitFor(
      'health shows the cluster degraded',
      async () => {
        c = (await request(app.getHttpServer()).get('/health').expect(200)).body.info.cache;
        // Two masters still answer: L2 stays reachable throughout (a dead master's INFO is left out).
        expect(c.l2.reachable).toBe(true);
        // PFAIL first (slots not all served, state still ok), then FAIL once the other masters agree.
        if (c.l2.cluster && !c.l2.cluster.allSlotsCovered) expect(c.l2.status).toBe('degraded');
        return c.l2.cluster?.state === 'fail';
      },
      20_000,
    );
    expect(c.status).toBe('up');
    expect(c.l2).toMatchObject({ mode: 'cluster', status: 'degraded', reachable: true });
    expect(c.l2.cluster).toMatchObject({ state: 'fail', nodesHealthy: 2, nodesTotal: 3, allSlotsCovered: false });
    expect(c.l2.cluster.slotsOk).toBeLessThan(16_384);
    expect(c.l2.cluster.slotsOk).toBeGreaterThan(0);
    expect(c.degraded).toContainEqual(expect.stringMatching(/^Redis Cluster state fail, \d+ of 16384 slots served$/));

    const t0 = Date.now();
    const strict = await request(app.getHttpServer()).get('/health/strict?timeout=500').expect(503);
    expect(Date.now() - t0).toBeLessThan(500 + 300);
    expect(strict.body.error.cache).toMatchObject({ status: 'down', l2: { status: 'degraded', required: true } });

    // A key on a live master's slot: in state fail that master answers CLUSTERDOWN at once; the call fails at
    // once too (a soft miss), instead of ioredis retrying until the command deadline.
    const live = new Redis(cluster.nodes[0].port, cluster.nodes[0].host);
    try {
      const slots = (await live.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
      const mine = slots.filter(([, , [, port]]) => port === cluster.nodes[0].port);
      let key = '';
      for (let i = 0; !key; i++) {
        const slot = Number(await live.call('CLUSTER', 'KEYSLOT', `cache:live${i}`));
        if (mine.some(([from, to]) => slot >= from && slot <= to)) key = `live${i}`;
      }
      const timeouts = cache.stats().l2.timeouts;
      const s0 = performance.now();
      expect(await cache.get(key)).toBeUndefined();
      expect(performance.now() - s0).toBeLessThan(COMMAND_TIMEOUT / 2);
      expect(cache.stats().l2.timeouts).toBe(timeouts);
    } finally {
      live.disconnect();
    }

    // Engine calls never throw and never wait past the command deadline (plus scheduling slack).
    const bound = COMMAND_TIMEOUT + 400;
    const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      const s = performance.now();
      const r = await fn();
      const ms = performance.now() - s;
      if (ms > bound) throw new Error(`${what} took ${Math.round(ms)} ms (bound ${bound} ms)`);
      return r;
    };
    for (let i = 0; i < 30; i++) {
      // The value, or a soft miss (a dead slot, or CLUSTERDOWN while the cluster is in state fail).
      expect([i, undefined]).toContain(await timed('get', () => cache.get(`k${i}`)));
      expect(await timed('get (never written)', () => cache.get(`fresh${i}`))).toBeUndefined();
    }
    await timed('set', () => cache.set('during', 'x'));
    expect(['x', undefined]).toContain(await timed('get after set', () => cache.get('during')));
    await timed('mget', () => cache.mget(Array.from({ length: 30 }, (_, i) => `other${i}`)));
    await timed('mset', () => cache.mset(Array.from({ length: 10 }, (_, i) => [`m${i}`, i] as const)));
    await timed('has', () => cache.has('nope'));
    await timed('ttl', () => cache.ttl('nope'));
    await timed('delete', () => cache.delete(['k1', 'k2', 'k3']));
    await timed('getOrSet', () => cache.getOrSet('gos', () => 'computed'));
    await timed('invalidateTags', () => cache.invalidateTags('none'));
    // Pattern and clear walk every master, each step with its own deadline.
    const walk = 3 * (COMMAND_TIMEOUT + 400);
    let s = performance.now();
    await cache.invalidatePattern('k1*');
    expect(performance.now() - s).toBeLessThan(walk);
    s = performance.now();
    await cache.clear();
    expect(performance.now() - s).toBeLessThan(walk);
  }, 40_000);
});

describe('Redis Cluster: Prometheus metrics', () => {
  let cluster: RedisCluster;
  let app: INestApplication;

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    @Module({
      imports: [PrometheusModule.register(), TieredCacheModule.forRoot({ logger: quiet, keyPrefix: 'm:', redis: clusterRedis(cluster) })],
    })
    class AppModule {}
    const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = ref.createNestApplication({ logger: false });
    await app.init();
  });
  afterAll(async () => {
    await app?.close();
    register.clear();
    await cluster?.stop();
  });

  it('exposes redis_cluster_nodes_healthy and redis_cluster_slots_ok, and passes promtool', async () => {
    const cache = app.get(CacheManagerService);
    await cache.set('a', 1);
    await cache.get('a');
    const text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
    expect(text).toMatch(/^redis_cluster_nodes_healthy\{cache="m:"\} 3$/m);
    expect(text).toMatch(/^redis_cluster_nodes_known\{cache="m:"\} 3$/m);
    expect(text).toMatch(/^redis_cluster_slots_ok\{cache="m:"\} 16384$/m);
    expect(text).toMatch(/^cache_l2_up\{cache="m:"\} 1$/m);

    expectPromtoolToAccept(text);
  });
});
