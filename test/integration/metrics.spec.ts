import type { Redis } from 'ioredis';
import { type INestApplication, Module } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { Histogram, register, Registry } from 'prom-client';
import request from 'supertest';
import { attachCacheMetrics, CacheManagerService, CacheMetricsService, TieredCache, TieredCacheModule, type TieredCacheOptions } from '../../lib';
import { SeriesHistogram } from '../../lib/nest/metrics/series-histogram';
import { OWN, expectPromtoolToAccept, promtool } from '../support/promtool';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';
import { engineInternals } from '../../lib/core/tiered-cache';

const quiet = { warn() {}, error() {} };

async function boot(options: TieredCacheOptions): Promise<INestApplication> {
  @Module({
    imports: [PrometheusModule.register(), TieredCacheModule.forRoot({ logger: quiet, ...options })],
  })
  class AppModule {}
  const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}

async function scrape(app: INestApplication): Promise<string> {
  const res = await request(app.getHttpServer()).get('/metrics').expect(200);
  return res.text;
}

/** `name{labels}` → value for the cache's own series, labels in a fixed order (cache, the rest sorted, le last). */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!OWN.test(line)) continue;
    const m = /^([a-z0-9_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unexpected line: ${line}`);
    const labels = (m[2] ?? '').match(/[a-z_]+="(?:[^"\\]|\\.)*"/g) ?? [];
    const rank = (l: string) => (l.startsWith('cache=') ? '0' : l.startsWith('le=') ? '2' : '1') + l;
    labels.sort((a, b) => rank(a).localeCompare(rank(b)));
    out.set(`${m[1]}{${labels.join(',')}}`.replace('{}', ''), Number(m[3]));
  }
  return out;
}

describe('Prometheus metrics on /metrics (@willsoto/nestjs-prometheus)', () => {
  let redis: RedisServer;
  let app: INestApplication;

  beforeAll(async () => (redis = await RedisServer.start()));
  afterAll(() => redis.stop());
  beforeEach(async () => {
    app = await boot({ redis: { url: redis.url, commandTimeout: 200 } });
  });
  afterEach(async () => {
    await app.close();
    // PrometheusModule.register() adds the default metrics to the global registry on every boot.
    register.clear();
  });

  it('exposes the cache metrics in the registry the scrape reads, with counts matching the operations', async () => {
    const cache = app.get(CacheManagerService);
    expect(app.get(CacheMetricsService).enabled).toBe(true);
    const other = new TieredCache({ redis: redis.url, logger: quiet, l1: { enabled: false } });
    await other.connect();
    await other.set('from-l2', 'x');
    await other.close();
    // Its overwrite message must be in before 'from-l2' is promoted here, or it would drop the promoted copy.
    await waitFor("the other instance's overwrite message arrived", () => cache.stats().bus.received === 1);

    await cache.set('a', 1, { tags: ['t'] });
    for (let i = 0; i < 16; i++) await cache.get('a'); // L1 hits
    await cache.get('nope'); // L1 miss, L2 miss
    await cache.get('from-l2'); // L1 miss, L2 hit, promoted
    await cache.get('from-l2'); // L1 hit
    await cache.delete(['a', 'b']);
    await cache.invalidateTags(['t', 'u']);
    await cache.invalidatePattern('user:*');
    engineInternals(cache.engine).noteInvalidation('event');
    // As the bus applies another instance's delete of three keys. (`other`'s set of 'from-l2' reached this
    // instance as an overwrite, and the L1 clear on subscribe is not a received invalidation: neither counts.)
    engineInternals(cache.engine).dropLocal({ type: 'delete', keys: ['x', 'y', 'z'] });

    const s = series(await scrape(app));
    const c = 'cache="cache:"';
    expect(s.get(`cache_hits_total{${c},tier="l1"}`)).toBe(17);
    expect(s.get(`cache_misses_total{${c},tier="l1"}`)).toBe(2);
    expect(s.get(`cache_hits_total{${c},tier="l2"}`)).toBe(1);
    expect(s.get(`cache_misses_total{${c},tier="l2"}`)).toBe(1);
    expect(s.get(`cache_hit_ratio{${c},tier="overall"}`)).toBeCloseTo(18 / 19);
    expect(s.get(`cache_hit_ratio{${c},tier="l1"}`)).toBeCloseTo(17 / 19);
    expect(s.get(`cache_hit_ratio{${c},tier="l2"}`)).toBeCloseTo(1 / 2);
    expect(s.get(`cache_promotions_total{${c}}`)).toBe(1);
    expect(s.get(`cache_l1_entries{${c}}`)).toBe(1);
    expect(s.get(`cache_l1_memory_bytes{${c}}`)).toBe(0);
    expect(s.get(`cache_evictions_total{${c}}`)).toBe(0);
    expect(s.get(`cache_l2_up{${c}}`)).toBe(1);
    expect(s.get(`cache_write_behind_queue_length{${c}}`)).toBe(0);
    expect(s.get(`cache_invalidations_total{${c},source="api"}`)).toBe(2);
    expect(s.get(`cache_invalidations_total{${c},source="tag"}`)).toBe(2);
    expect(s.get(`cache_invalidations_total{${c},source="pattern"}`)).toBe(1);
    expect(s.get(`cache_invalidations_total{${c},source="event"}`)).toBe(1);
    expect(s.get(`cache_invalidations_total{${c},source="bus"}`)).toBe(3);
    // 20 gets: 1 in 8 is timed (the 8th and 16th, both L1 hits).
    expect(s.get(`cache_operation_duration_seconds_count{${c},operation="get",tier="l1"}`)).toBe(2);
    expect(s.get(`cache_operation_duration_seconds_count{${c},operation="set",tier="l2"}`)).toBe(1);
    expect(s.get(`cache_operation_duration_seconds_count{${c},operation="delete",tier="l2"}`)).toBe(1);
    expect(s.get(`cache_operation_duration_seconds_bucket{${c},operation="set",tier="l2",le="+Inf"}`)).toBe(1);
    expect(s.get(`cache_errors_total{${c},operation="timeout",tier="l2"}`)).toBe(0);
    // Not a Cluster: no cluster series.
    expect([...s.keys()].some((k) => k.startsWith('redis_cluster_'))).toBe(false);
  });

  it('creates no series per key: many distinct keys leave the set of series unchanged', async () => {
    const cache = app.get(CacheManagerService);
    const round = async (prefix: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const k = `${prefix}:${i}`;
        await cache.set(k, { i });
        await cache.get(k);
        await cache.get(`${k}:missing`);
        await cache.mget([k, `${k}:x`]);
        await cache.getOrSet(`${k}:f`, () => i);
      }
      await cache.delete([`${prefix}:0`]);
      await cache.invalidatePattern(`${prefix}:*`);
      await cache.invalidateTags([`${prefix}-tag`]);
    };
    await round('warm', 16);
    const before = [...series(await scrape(app)).keys()].sort();

    await round('user-4711-secret', 400);
    const text = await scrape(app);
    const after = [...series(text).keys()].sort();

    expect(after).toEqual(before);
    expect(text).not.toContain('user-4711-secret');
  });

  it('passes promtool check metrics (the real Prometheus parser and linter)', async () => {
    const cache = app.get(CacheManagerService);
    await cache.set('a', 1);
    for (let i = 0; i < 8; i++) await cache.get(i % 2 ? 'a' : 'b');
    await cache.delete('a');

    const text = await scrape(app);
    expect(text).toContain('cache_hits_total');
    expectPromtoolToAccept(text);
  });

  it("counts source=\"bus\" on the receiving instance: other instances' invalidations, not writes, echoes or the L1 clear on resubscribe", async () => {
    const receiver = app.get(CacheManagerService);
    // A second app on the same Redis and key prefix (so the same bus channel), recorded under cache="sender".
    @Module({
      imports: [
        EventEmitterModule.forRoot(),
        TieredCacheModule.forRoot({
          logger: quiet,
          redis: redis.url,
          metrics: { name: 'sender' },
          invalidationRules: [{ event: 'listing.updated', keys: ['listing:{id}'] }],
        }),
      ],
    })
    class SenderModule {}
    const senderApp = await (await Test.createTestingModule({ imports: [SenderModule] }).compile()).createNestApplication({ logger: false }).init();
    try {
      const sender = senderApp.get(CacheManagerService);
      const bus = (name: string) => async () => series(await scrape(app)).get(`cache_invalidations_total{cache="${name}",source="bus"}`);
      /** Everything `from` has published so far has been applied by `to` (nobody else publishes here). */
      const delivered = async (from: CacheManagerService, to: CacheManagerService) => {
        await from.engine.bus!.drain();
        const sent = from.stats().bus.published;
        await waitFor('the messages arrived', () => to.stats().bus.received >= sent);
      };

      // The L1 clear on (re)subscribe is counted as a re-subscribe, not as received invalidations.
      await receiver.set('local', 1);
      await delivered(receiver, sender);
      await (receiver.engine.l2!.client as Redis).call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await waitFor('both re-subscribed', () =>
        [receiver, sender].every((c) => c.stats().bus.l1ClearsOnReconnect === 1 && c.stats().bus.subscribed),
      );
      expect(receiver.engine.l1!.has('local')).toBe(false);
      expect(await bus('cache:')()).toBe(0);
      expect(await bus('sender')()).toBe(0); // the receiver's set is a write

      await sender.set('written', 1); // a write: 0
      await sender.set('tagged', 1, { tags: ['t1'] }); // a write: 0
      await sender.delete(['d1', 'd2']); // 2
      await sender.invalidatePattern('p:*'); // 1
      await sender.invalidateTags(['t1', 't2']); // 2 (the delete of 'tagged' it makes is part of it: 0)
      await sender.invalidate('q1'); // queued, then deleted: 1
      await senderApp.get(EventEmitter2).emitAsync('listing.updated', { id: 'l1' }); // its delete: 1
      await sender.clear(); // 1
      await delivered(sender, receiver);

      const s = series(await scrape(app));
      const bySource = (name: string) =>
        Object.fromEntries(['api', 'tag', 'pattern', 'event', 'bus'].map((src) => [src, s.get(`cache_invalidations_total{cache="${name}",source="${src}"}`)]));
      expect(bySource('cache:')).toEqual({ api: 0, tag: 0, pattern: 0, event: 0, bus: 8 });
      // The sender counts its own changes by their origin; its own messages coming back (echoes) are not 'bus'.
      expect(bySource('sender')).toEqual({ api: 5, tag: 2, pattern: 1, event: 1, bus: 0 });
      expect(sender.stats().bus.echoes).toBeGreaterThan(0);

      // And the other way round: the receiver's delete counts once on the sender.
      await receiver.delete('back');
      await delivered(receiver, sender);
      expect(await bus('sender')()).toBe(1);
      expect(await bus('cache:')()).toBe(8);
    } finally {
      await senderApp.close();
    }
  });

  it('counts L2 errors by operation and reports cache_l2_up 0 while Redis is down', async () => {
    const cache = app.get(CacheManagerService);
    const server = await RedisServer.start();
    const app2 = await (async () => {
      // Bus off: its PUBLISH of k2's overwrite rides the same connection and would time out too, or not,
      // depending on when the pause ends — the counts below are about the cache's own calls.
      @Module({ imports: [TieredCacheModule.forRoot({ logger: quiet, redis: { url: server.url, commandTimeout: 200 }, bus: false, metrics: { name: 'second' } })] })
      class SecondModule {}
      const ref = await Test.createTestingModule({ imports: [SecondModule] }).compile();
      const a = ref.createNestApplication({ logger: false });
      await a.init();
      return a;
    })();
    try {
      const second = app2.get(CacheManagerService);
      await second.set('k', 1);
      // A command Redis rejects (WRONGTYPE) is an L2 error, counted under its operation.
      await (second.engine.l2?.client as Redis).lpush(second.engine.redisKey('list'), 'x');
      expect(await second.get('list')).toBeUndefined();
      server.pause();
      await second.set('k2', 2); // abandoned at the command deadline
      server.resume();
      await server.kill();
      // Polled, not `once(client, 'close')`: events.once rejects on the 'error' the client emits first when the
      // killed server's kernel resets the socket (read ECONNRESET) — an error the cache handles and counts.
      await waitFor('the second cache sees Redis down', () => !second.engine.l2!.ready);
      await second.get('gone'); // not sent: the connection is down (a miss, not an error)

      const s = series(await scrape(app));
      expect(s.get('cache_l2_up{cache="second"}')).toBe(0);
      expect(s.get('cache_l2_up{cache="cache:"}')).toBe(1);
      expect(s.get('cache_errors_total{cache="second",operation="timeout",tier="l2"}')).toBe(1);
      expect(s.get('cache_errors_total{cache="second",operation="get",tier="l2"}')).toBe(1);
      expect(s.get('cache_misses_total{cache="second",tier="l2"}')).toBe(2);
      expect(await cache.set('still', 'fine')).toBe(true);
    } finally {
      await app2.close();
      await server.stop();
    }
    // A closed cache's series leave the registry with it.
    const s = series(await scrape(app));
    expect([...s.keys()].some((k) => k.includes('cache="second"'))).toBe(false);
  });

  it("reports the bus: cache_bus_up, its counters as stats().bus has them, and 0 once Redis is gone; no bus series for a cache without one", async () => {
    const server = await RedisServer.start();
    @Module({ imports: [TieredCacheModule.forRoot({ logger: quiet, redis: { url: server.url, commandTimeout: 200 }, metrics: { name: 'bused' } })] })
    class BusedModule {}
    @Module({ imports: [TieredCacheModule.forRoot({ logger: quiet, redis: { url: server.url, commandTimeout: 200 }, bus: false, metrics: { name: 'busless' } })] })
    class BuslessModule {}
    const open = async (m: object) => (await Test.createTestingModule({ imports: [m as never] }).compile()).createNestApplication({ logger: false }).init();
    const bused = await open(BusedModule);
    const busless = await open(BuslessModule);
    try {
      const cache = bused.get(CacheManagerService);
      await cache.delete(['a', 'b']);
      await cache.invalidateTags(['t']);
      await cache.engine.bus!.drain();
      let s = series(await scrape(app));
      const st = cache.stats().bus;
      expect(st.published).toBeGreaterThanOrEqual(2);
      expect(s.get('cache_bus_up{cache="bused"}')).toBe(1);
      expect(s.get('cache_bus_published_total{cache="bused"}')).toBe(st.published);
      expect(s.get('cache_bus_publish_failures_total{cache="bused"}')).toBe(0);
      expect(s.get('cache_bus_received_total{cache="bused"}')).toBe(st.received);
      expect(s.get('cache_bus_malformed_total{cache="bused"}')).toBe(0);
      expect(s.get('cache_bus_resubscribe_clears_total{cache="bused"}')).toBe(0);
      expect(s.get('cache_bus_retry_overflows_total{cache="bused"}')).toBe(0);
      expect(s.get('cache_bus_retry_queue_length{cache="bused"}')).toBe(0);
      expect([...s.keys()].some((k) => k.startsWith('cache_bus_') && k.includes('cache="busless"'))).toBe(false);

      await server.kill();
      await waitFor('the bus lost its subscription', () => !cache.stats().bus.subscribed);
      await cache.delete('c'); // not published: Redis is gone; kept for retry
      s = series(await scrape(app));
      expect(s.get('cache_bus_up{cache="bused"}')).toBe(0);
      expect(s.get('cache_l2_up{cache="bused"}')).toBe(0);
      expect(s.get('cache_bus_retry_queue_length{cache="bused"}')).toBe(cache.stats().bus.retryQueue);
      expect(cache.stats().bus.retryQueue).toBeGreaterThan(0);
    } finally {
      await bused.close();
      await busless.close();
      await server.stop();
    }
  });
});

describe('SeriesHistogram', () => {
  it("renders exactly what prom-client's own Histogram renders for the same observations", async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const theirs = new Registry();
    const ours = new Registry();
    const h = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['cache', 'operation', 'tier'], buckets, registers: [theirs] });
    const s = new SeriesHistogram('h_seconds', 'h', ['cache', 'operation', 'tier'], buckets);
    ours.registerMetric(s as unknown as Histogram);
    const labels = { cache: 'c', operation: 'get', tier: 'l1' };
    const fast = s.withLabels(labels);
    for (const v of [0.0005, 0.001, 0.002, 0.05, 0.5, 3]) {
      h.observe(labels, v);
      fast.observe(v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

describe('metrics options', () => {
  it('metrics: false registers nothing; a custom registry gets the series; the registry is left clean on close', async () => {
    const off = new TieredCache({ logger: quiet });
    const before = register.getMetricsAsArray().length;
    expect(attachCacheMetrics(off, { enabled: false })).toBeUndefined();
    expect(register.getMetricsAsArray().length).toBe(before);

    const registry = new Registry();
    const detach = attachCacheMetrics(off, { registry, name: 'custom' });
    await off.set('a', 1);
    await off.get('a');
    const text = await registry.metrics();
    expect(text).toContain('cache_hits_total{cache="custom",tier="l1"} 1');
    expect(text).not.toContain('tier="l2"');
    expect(promtool(text).status).toBe(0);
    detach?.();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    // Attaching again after the registry was emptied (as apps do between tests) works.
    const again = attachCacheMetrics(off, { registry });
    expect(registry.getSingleMetric('cache_hits_total')).toBeDefined();
    again?.();
    await off.close();
  });

  it('two caches with one name (two app instances in one process) are summed, warned about, and outlive each other', async () => {
    const warnings: string[] = [];
    const log = { warn: (m: string) => warnings.push(m), error() {} };
    const a = new TieredCache({ logger: log });
    const b = new TieredCache({ logger: log });
    const registry = new Registry();
    const detachA = attachCacheMetrics(a, { registry, name: 'shared' });
    const detachB = attachCacheMetrics(b, { registry, name: 'shared' });
    expect(warnings).toEqual([expect.stringContaining('another cache in this registry is named "shared"')]);
    await a.set('x', 1);
    await b.set('y', 1);
    await b.set('z', 1);
    for (let i = 0; i < 8; i++) await a.get('x'); // a: 8 hits
    for (let i = 0; i < 8; i++) await b.get('nope'); // b: 8 misses
    let got = series(await registry.metrics());
    expect(got.get('cache_hits_total{cache="shared",tier="l1"}')).toBe(8);
    expect(got.get('cache_misses_total{cache="shared",tier="l1"}')).toBe(8);
    expect(got.get('cache_l1_entries{cache="shared"}')).toBe(3);
    expect(got.get('cache_hit_ratio{cache="shared",tier="overall"}')).toBe(0.5);
    expect(got.get('cache_operation_duration_seconds_count{cache="shared",operation="get",tier="l1"}')).toBe(2);

    detachA?.();
    for (let i = 0; i < 8; i++) await b.get('y');
    got = series(await registry.metrics());
    // b's series survive a's detach: its timings keep arriving.
    expect(got.get('cache_operation_duration_seconds_count{cache="shared",operation="get",tier="l1"}')).toBe(3);
    expect(got.get('cache_l1_entries{cache="shared"}')).toBe(2);
    expect(promtool(await registry.metrics()).status).toBe(0);
    detachB?.();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    await Promise.all([a.close(), b.close()]);
  });

  it('rejects bad metrics options at boot, naming the option', async () => {
    const make = (metrics: unknown) =>
      Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ logger: quiet, metrics: metrics as TieredCacheOptions['metrics'] })] }).compile();
    await expect(make('yes')).rejects.toThrow(/"metrics"/);
    await expect(make({ buckets: [0.1, 0.01] })).rejects.toThrow(/"metrics.buckets"/);
    await expect(make({ registry: {} })).rejects.toThrow(/"metrics.registry"/);
  });
});
