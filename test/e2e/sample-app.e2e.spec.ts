// First: AppModule chooses its database when loaded; this spec runs it in memory.
import '../support/without-database-url';
import { Logger, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { register } from 'prom-client';
import request from 'supertest';
import { CacheManagerService, HttpFastPath, TieredCacheInterceptor } from '../../lib';
import { AppModule } from '../../sample-app/src/app.module';
import type { CacheStatsDto } from '../../sample-app/src/cache-admin/cache-stats.dto';
import { FakeDatabase } from '../../sample-app/src/database/fake-database';
import { PropertiesController } from '../../sample-app/src/properties/properties.controller';
import { expectPromtoolToAccept } from '../support/promtool';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * End to end in this process: the sample app's real AppModule over HTTP (supertest), against a real redis-server,
 * on the in-memory FakeDatabase (AppModule picks its backend when it is loaded, and DATABASE_URL is not set here).
 * The same app as separate processes on PostgreSQL is sample-two-process.e2e.spec.ts.
 * AppModule reads its cache options from the environment (tieredCacheOptionsFromEnv), so REDIS_URL is set
 * before each app is compiled; ADMIN_TOKEN is read by the admin guard on every request.
 */

const ADMIN_TOKEN = 'e2e-admin-token';
// Everything tieredCacheOptionsFromEnv() and the admin guard read: cleared so the machine's environment
// cannot change what the app does here, and restored afterwards.
const isOurs = (k: string) => /^(CACHE_|REDIS_)/.test(k) || k === 'ADMIN_TOKEN';
const savedEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => isOurs(k)));

beforeAll(() => {
  for (const k of Object.keys(process.env)) if (isOurs(k)) delete process.env[k];
  process.env.ADMIN_TOKEN = ADMIN_TOKEN;
});

afterAll(() => {
  for (const k of Object.keys(process.env)) if (isOurs(k)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  // Each cache's metrics leave prom-client's global registry when its app closes; what is left is
  // prom-client's default metrics, registered once when CacheAdminModule (PrometheusModule.register()) was loaded.
  register.clear();
});

/**
 * Boots the sample app on `redisUrl`. With `db`, that FakeDatabase object replaces the app's own: two apps in this
 * process given the same one share their data, as instances on one PostgreSQL do (a FakeDatabase is otherwise
 * private to its app).
 */
async function bootSampleApp(redisUrl: string, db?: FakeDatabase): Promise<INestApplication> {
  process.env.REDIS_URL = redisUrl;
  const builder = Test.createTestingModule({ imports: [AppModule] });
  if (db) builder.overrideProvider(FakeDatabase).useValue(db);
  const app = (await builder.compile()).createNestApplication({ logger: false });
  await app.init();
  return app;
}

const http = (app: INestApplication) => request(app.getHttpServer());

async function cacheStats(app: INestApplication): Promise<CacheStatsDto> {
  return (await http(app).get('/cache/stats').expect(200)).body as CacheStatsDto;
}

/** `name{labels} value` lines of the cache's own series, as a map. */
function cacheSeries(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(cache_[a-z0-9_]+(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

describe('sample app, one instance (real Redis)', () => {
  let redis: RedisServer;
  let app: INestApplication;
  let db: FakeDatabase;

  beforeAll(async () => {
    redis = await RedisServer.start();
    app = await bootSampleApp(redis.url);
    db = app.get(FakeDatabase);
  });

  afterAll(async () => {
    await app?.close();
    await redis?.stop();
  });

  it('GET /properties/:id answers MISS, then HIT with the same body, querying the database once', async () => {
    const before = db.queries;

    const first = await http(app).get('/properties/1').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body).toMatchObject({ id: '1', tenantId: 'globex', address: '1 Market Street', price: 251_000 });

    const second = await http(app).get('/properties/1').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);

    expect(db.queries).toBe(before + 1);
  });

  it('GET /properties/:id is eligible for the HTTP fast path, which answers its L1 hits', async () => {
    const fastPath = app.get(HttpFastPath);
    expect(new TieredCacheInterceptor(app.get(CacheManagerService), undefined, fastPath).explainFastPath(PropertiesController, 'findOne')).toEqual([]);
    await http(app).get('/properties/4').expect(200);
    const hits = fastPath.stats().hits;
    const hit = await http(app).get('/properties/4').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(fastPath.stats().hits).toBe(hits + 1);
  });

  it('GET /cache/stats has the original design’s shape and counts the requests made', async () => {
    const before = await cacheStats(app);
    expect(before).toEqual({
      l1_hits: expect.any(Number),
      l1_misses: expect.any(Number),
      l1_hit_rate: expect.any(Number),
      l2_hits: expect.any(Number),
      l2_misses: expect.any(Number),
      l2_hit_rate: expect.any(Number),
      overall_hit_rate: expect.any(Number),
      l1_size: expect.any(Number),
      l1_max_size: 10_000,
      l1_utilization: expect.any(Number),
      l1_evictions: 0,
      l2_status: 'ready',
      l2_errors: 0,
      l2_timeouts: 0,
      l2_pending_invalidations: 0,
      promotions: expect.any(Number),
      average_latency_ms: expect.any(Number),
      write_behind_queue: 0,
    });

    // A new property, twice. The first request misses twice in each tier: the HTTP response cache and the
    // service's @Cacheable('property:detail:{id}') underneath it. The second is one L1 hit.
    await http(app).get('/properties/7').expect(200);
    await http(app).get('/properties/7').expect(200);

    const after = await cacheStats(app);
    expect(after.l1_hits - before.l1_hits).toBe(1);
    expect(after.l1_misses - before.l1_misses).toBe(2);
    expect(after.l2_hits - before.l2_hits).toBe(0);
    expect(after.l2_misses - before.l2_misses).toBe(2);
    expect(after.l1_size - before.l1_size).toBe(2);

    // Rates are percentages with one decimal, computed from the counts.
    const pct = (hits: number, misses: number) => Math.round((hits / (hits + misses)) * 1000) / 10;
    expect(after.l1_hit_rate).toBe(pct(after.l1_hits, after.l1_misses));
    expect(after.l2_hit_rate).toBe(pct(after.l2_hits, after.l2_misses));
    expect(after.overall_hit_rate).toBeGreaterThan(0);
    expect(after.overall_hit_rate).toBeLessThanOrEqual(100);
    expect(after.l1_utilization).toBe(Math.round((after.l1_size / after.l1_max_size) * 100 * 10) / 10);
  });

  it('POST /cache/invalidate is refused without the admin token, and invalidates by pattern and by tags with it', async () => {
    await http(app).post('/cache/invalidate').send({ pattern: '*' }).expect(401);
    await http(app).post('/cache/invalidate').set('x-admin-token', 'wrong-token-of-same-len').send({ pattern: '*' }).expect(401);
    await http(app).post('/cache/invalidate').set('x-admin-token', ADMIN_TOKEN).send({}).expect(400);

    await http(app).get('/properties/3').expect(200);
    expect((await http(app).get('/properties/3').expect(200)).headers['x-cache']).toBe('HIT');
    const before = db.queries;

    // By pattern: only the HTTP response cache; the service's entry underneath still answers.
    const byPattern = await http(app).post('/cache/invalidate').set('x-admin-token', ADMIN_TOKEN).send({ pattern: 'http:property:*' }).expect(200);
    expect(byPattern.body.invalidated).toBeGreaterThanOrEqual(1);
    const afterPattern = await http(app).get('/properties/3').expect(200);
    expect(afterPattern.headers['x-cache']).toBe('MISS');
    expect(db.queries).toBe(before);

    // By tag: both layers are tagged property:{id}, so both go and the database is asked again.
    const byTag = await http(app).post('/cache/invalidate').set('x-admin-token', ADMIN_TOKEN).send({ tags: ['property:3'] }).expect(200);
    expect(byTag.body).toEqual({ invalidated: 2 });
    const afterTag = await http(app).get('/properties/3').expect(200);
    expect(afterTag.headers['x-cache']).toBe('MISS');
    expect(afterTag.body).toEqual(afterPattern.body);
    expect(db.queries).toBe(before + 1);
  });

  it('GET /metrics passes `promtool check metrics` and agrees with /cache/stats', async () => {
    await http(app).get('/properties/2').expect(200);
    await http(app).get('/properties/2').expect(200);

    const stats = await cacheStats(app);
    const res = await http(app).get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.text;

    expectPromtoolToAccept(text);

    const s = cacheSeries(text);
    const c = 'cache="realestate:"';
    expect(s.get(`cache_hits_total{${c},tier="l1"}`)).toBe(stats.l1_hits);
    expect(s.get(`cache_misses_total{${c},tier="l1"}`)).toBe(stats.l1_misses);
    expect(s.get(`cache_hits_total{${c},tier="l2"}`)).toBe(stats.l2_hits);
    expect(s.get(`cache_misses_total{${c},tier="l2"}`)).toBe(stats.l2_misses);
    expect(s.get(`cache_l1_entries{${c}}`)).toBe(stats.l1_size);
    expect(s.get(`cache_l2_up{${c}}`)).toBe(1);
    for (const source of ['api', 'event', 'bus', 'tag', 'pattern']) {
      expect(s.get(`cache_invalidations_total{${c},source="${source}"}`)).toEqual(expect.any(Number));
    }
    expect(text).toContain('# TYPE cache_operation_duration_seconds histogram');
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('GET /health: up with Redis; L2 degraded but still up without it (/health/ready 503); up again after a restart', async () => {
    await http(app).get('/properties/5').expect(200);
    const up = await http(app).get('/health').expect(200);
    expect(up.body.status).toBe('ok');
    expect(up.body.info.cache).toMatchObject({
      status: 'up',
      l1: { enabled: true, maxEntries: 10_000 },
      l2: { enabled: true, required: false, mode: 'standalone', status: 'up', reachable: true, connection: 'ready' },
    });
    expect(up.body.info.cache.l1.entries).toBeGreaterThan(0);
    expect(up.body.info.cache.l2.pingMs).toEqual(expect.any(Number));
    expect(up.body.info.cache.degraded).toBeUndefined();
    const ready = await http(app).get('/health/ready').expect(200);
    expect(ready.body.info.cache.l2).toMatchObject({ required: true, status: 'up' });

    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      await redis.kill();

      let health: request.Response | undefined;
      await waitFor('/health to see Redis gone', async () => {
        health = await http(app).get('/health').expect(200);
        return health.body.info.cache.l2.connection !== 'ready' && health.body.info.cache.bus.state !== 'subscribed';
      });
      expect(health!.body.status).toBe('ok');
      expect(health!.body.info.cache).toMatchObject({ status: 'up', l2: { status: 'degraded', reachable: false }, bus: { state: 'down' } });
      expect(health!.body.info.cache.degraded).toEqual([expect.stringMatching(/^L2 unreachable/), 'bus down']);

      const notReady = await http(app).get('/health/ready').expect(503);
      expect(notReady.body.status).toBe('error');
      expect(notReady.body.error.cache).toMatchObject({ status: 'down', l2: { status: 'degraded', reachable: false, required: true } });

      // Meanwhile L1 still serves what it holds.
      const served = await http(app).get('/properties/5').expect(200);
      expect(served.headers['x-cache']).toBe('HIT');
      expect(served.body.id).toBe('5');
      expect((await cacheStats(app)).l2_status).not.toBe('ready');

      await redis.restart();
      await waitFor('/health/ready to pass again', async () => (await http(app).get('/health/ready')).status === 200, 15_000);
      await waitFor('the bus to subscribe again', async () => (await http(app).get('/health')).body.info.cache.bus.state === 'subscribed');
    } finally {
      warn.mockRestore();
    }
    const back = await http(app).get('/health').expect(200);
    expect(back.body.info.cache).toMatchObject({ status: 'up', l2: { status: 'up', reachable: true, connection: 'ready' } });
    expect(back.body.info.cache.degraded).toBeUndefined();
    expect((await cacheStats(app)).l2_status).toBe('ready');
  });
});

describe('sample app, two instances in this process behind a load balancer (one Redis, one shared FakeDatabase object)', () => {
  let redis: RedisServer;
  let a: INestApplication;
  let b: INestApplication;
  const db = new FakeDatabase();

  beforeAll(async () => {
    redis = await RedisServer.start();
    a = await bootSampleApp(redis.url, db);
    // The cache logs through Nest's Logger (context TieredCache).
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      b = await bootSampleApp(redis.url, db);
      // Both instances live in this one process and registry: their metrics are summed, and B says so.
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('another cache in this registry is named "realestate:"'));
    } finally {
      warn.mockRestore();
    }
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('PUT on instance A makes instance B serve the new property and the new tenant list (invalidation over the bus)', async () => {
    const q0 = db.queries;
    // Warm both instances: A computes, B is answered from Redis (L2), then from its own L1.
    expect((await http(a).get('/properties/2').expect(200)).headers['x-cache']).toBe('MISS');
    expect((await http(a).get('/properties/2').expect(200)).headers['x-cache']).toBe('HIT');
    const stale = await http(b).get('/properties/2').expect(200);
    expect(stale.headers['x-cache']).toBe('HIT');
    expect(stale.body.price).toBe(252_000);
    expect((await http(b).get('/properties/2').expect(200)).headers['x-cache']).toBe('HIT');
    for (const tenantId of ['acme', 'globex']) {
      expect((await http(a).get('/properties').query({ tenantId }).expect(200)).headers['x-cache']).toBe('MISS');
      expect((await http(b).get('/properties').query({ tenantId }).expect(200)).headers['x-cache']).toBe('HIT');
      expect((await http(b).get('/properties').query({ tenantId }).expect(200)).headers['x-cache']).toBe('HIT');
    }
    expect(db.queries).toBe(q0 + 3);
    const bStats = await cacheStats(b);
    expect(bStats).toMatchObject({ l2_hits: 3, promotions: 3, l1_hits: 3 });

    // Property 2 belongs to tenant acme. The update emits property.updated on A.
    const updated = await http(a).put('/properties/2').send({ price: 999_000, state: 'under_offer' }).expect(200);
    expect(updated.body).toMatchObject({ id: '2', tenantId: 'acme', price: 999_000, state: 'under_offer' });
    const q1 = db.queries;

    // B learns of it from Redis (its tracking notices of A's UNLINKs, then A's bus messages). Reads made while
    // those are still arriving may be over-invalidated (a fill marked stale is not stored), which would cost an
    // extra database query and make the counts below racy: wait until B has heard everything A published.
    const engineA = a.get(CacheManagerService).engine;
    const engineB = b.get(CacheManagerService).engine;
    await engineA.bus!.drain();
    await waitFor('B to apply everything A published', () => engineB.stats().bus.received >= engineA.stats().bus.published);
    let fresh: request.Response | undefined;
    await waitFor('instance B to serve the updated property', async () => {
      fresh = await http(b).get('/properties/2').expect(200);
      return fresh.body.price === 999_000;
    });
    expect(fresh!.headers['x-cache']).toBe('MISS');
    expect(fresh!.body).toEqual(updated.body);
    const again = await http(b).get('/properties/2').expect(200);
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.body).toEqual(updated.body);

    const inAcmeList = (res: request.Response) => (res.body as Array<{ id: string; price: number }>).find((p) => p.id === '2')?.price;
    let acme: request.Response | undefined;
    await waitFor("instance B to serve acme's updated list", async () => {
      acme = await http(b).get('/properties').query({ tenantId: 'acme' }).expect(200);
      return inAcmeList(acme) === 999_000;
    });
    expect(acme!.headers['x-cache']).toBe('MISS');
    // The other tenant's response is dropped too (tag properties:list), but its service-level list
    // (pattern properties:list:{tenantId}:*) was not touched: no database query for it.
    await waitFor("instance B to drop globex's cached response", async () => {
      const globex = await http(b).get('/properties').query({ tenantId: 'globex' }).expect(200);
      return globex.headers['x-cache'] === 'MISS';
    });
    expect(db.queries).toBe(q1 + 2);

    // A dropped its own copies at once, and now finds B's fresh ones in Redis.
    const onA = await http(a).get('/properties/2').expect(200);
    expect(onA.headers['x-cache']).toBe('HIT');
    expect(onA.body).toEqual(updated.body);
    expect(inAcmeList(await http(a).get('/properties').query({ tenantId: 'acme' }).expect(200))).toBe(999_000);
    expect(db.queries).toBe(q1 + 2);
  });

  it('both instances serve /metrics although they share this process’s registry (each series once, promtool passes)', async () => {
    // In production each instance has its own process and registry. Here both caches register in the same
    // one: the library shares one set of metric families per registry, so nothing is registered twice.
    // (Both caches get the label cache="realestate:" from their keyPrefix, so their series are merged here.)
    for (const app of [a, b]) {
      const text = (await http(app).get('/metrics').expect(200)).text;
      expectPromtoolToAccept(text);
      const series = text.split('\n').filter((l) => l.startsWith('cache_')).map((l) => l.slice(0, l.lastIndexOf(' ')));
      expect(series).toContain('cache_hits_total{cache="realestate:",tier="l1"}');
      expect(new Set(series).size).toBe(series.length);
    }
  });
});
