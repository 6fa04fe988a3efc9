import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Param, UseInterceptors, type INestApplication } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { Registry } from 'prom-client';
import request from 'supertest';
import {
  CacheDecoratorError,
  CacheEvict,
  CacheManagerService,
  CachePut,
  CacheRegistry,
  HttpFastPath,
  Cacheable,
  InjectCache,
  InvalidationStrategyFor,
  PropertyInvalidationStrategy,
  TIERED_CACHE,
  TieredCacheHealthIndicator,
  TieredCacheInterceptor,
  TieredCacheModule,
  getCacheHealthIndicatorToken,
  getCacheToken,
  type InvalidationStrategy,
  type TieredCacheOptions,
} from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';
import { Redis } from 'ioredis';

const quiet = { warn() {}, error() {} };

@Injectable()
class ConfigService {
  get(name: string): string {
    return { SESSIONS_PREFIX: 'sess:', SESSIONS_L1: '7' }[name] ?? '';
  }
}
@Module({ providers: [ConfigService], exports: [ConfigService] })
class ConfigModule {}

/** Methods of the default cache and of 'scores', on one provider. */
@Injectable()
class PropertyService {
  detailRuns = 0;
  scoreRuns = 0;

  @Cacheable({ key: 'property:{id}' })
  async detail(id: string): Promise<string> {
    this.detailRuns++;
    return `detail ${id} #${this.detailRuns}`;
  }

  @Cacheable({ cache: 'scores', key: 'score:{id}', tags: ['scores'] })
  async score(id: string): Promise<number> {
    this.scoreRuns++;
    return 100 + this.scoreRuns;
  }

  @CachePut({ cache: 'scores', key: 'score:{id}' })
  async rescore(id: string, value: number): Promise<number> {
    return value;
  }

  // One write reaching two caches: wrapped once (by the scores cache, its first @CacheEvict's), evicting in both.
  @CacheEvict({ keys: ['property:{id}'] })
  @CacheEvict({ cache: 'scores', keys: ['score:{id}'] })
  async update(id: string): Promise<string> {
    return `updated ${id}`;
  }
}

/** A feature module that imports neither root module (not global): forFeature gives it the caches. */
@Injectable()
class LeaderboardService {
  constructor(
    @InjectCache('scores') readonly scores: CacheManagerService,
    @InjectCache() readonly byDecorator: CacheManagerService,
    readonly byType: CacheManagerService,
  ) {}
}
@Module({ imports: [TieredCacheModule.forFeature('scores', 'default')], providers: [LeaderboardService], exports: [LeaderboardService] })
class LeaderboardModule {}

/** Runs for 'score.*' against the scores cache only. */
@Injectable()
@InvalidationStrategyFor('score.*', { cache: 'scores' })
class ScoreEventsStrategy implements InvalidationStrategy {
  readonly seen: string[] = [];
  supports(): boolean {
    return true;
  }
  invalidate(event: string, payload: { id: string }, cache: CacheManagerService): Promise<number> {
    this.seen.push(cache.name);
    return cache.delete(`score:${payload.id}`);
  }
}

/** The same events, against the default cache. */
@Injectable()
@InvalidationStrategyFor('score.*')
class DefaultScoreEventsStrategy implements InvalidationStrategy {
  readonly seen: string[] = [];
  supports(): boolean {
    return true;
  }
  invalidate(event: string, payload: { id: string }, cache: CacheManagerService): Promise<number> {
    this.seen.push(cache.name);
    return cache.delete(`mirror:${payload.id}`);
  }
}

@Controller('r')
@UseInterceptors(TieredCacheInterceptor)
class RoutesController {
  runs = 0;
  @Get('score/:id')
  @Cacheable({ cache: 'scores', key: 'http-score:{id}' })
  score(@Param('id') id: string): { id: string; run: number } {
    return { id, run: ++this.runs };
  }

  @Get('detail/:id')
  @Cacheable({ key: 'http-detail:{id}' })
  detail(@Param('id') id: string): { id: string; run: number } {
    return { id, run: ++this.runs };
  }
}

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cache: TieredCacheHealthIndicator,
  ) {}
  @Get()
  @HealthCheck()
  all() {
    return this.health.check([() => this.cache.isHealthyAll('cache')]);
  }
  @Get('strict')
  @HealthCheck()
  strict() {
    return this.health.check([() => this.cache.isHealthyAll('cache', { requireL2: true })]);
  }
}

/** The default cache, 'scores' (forRoot) and 'sessions' (forRootAsync, L1 only), each with its own options. */
function cacheModules(url: string, registry: Registry, extra: { scores?: TieredCacheOptions } = {}) {
  return [
    // The named caches come first, so their explorers run first: the default cache's methods must still be its own.
    TieredCacheModule.forRoot({
      name: 'scores',
      redis: url,
      logger: quiet,
      defaultTtl: '10m',
      l1: { maxEntries: 100 },
      metrics: { registry },
      invalidationRules: [{ event: 'lead.scored', keys: ['lead:{id}'] }],
      ...extra.scores,
    }),
    TieredCacheModule.forRootAsync({
      name: 'sessions',
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        keyPrefix: config.get('SESSIONS_PREFIX'),
        l1: { maxEntries: Number(config.get('SESSIONS_L1')) },
        logger: quiet,
        metrics: { registry },
      }),
    }),
    TieredCacheModule.forRoot({ redis: url, logger: quiet, metrics: { registry }, invalidationRules: [{ event: 'lead.scored', keys: ['lead-default:{id}'] }] }),
  ];
}

async function bootApp(url: string, registry: Registry): Promise<INestApplication> {
  @Module({
    imports: [EventEmitterModule.forRoot({ wildcard: true }), TerminusModule.forRoot({ logger: false }), ...cacheModules(url, registry), LeaderboardModule],
    providers: [
      PropertyService,
      ScoreEventsStrategy,
      DefaultScoreEventsStrategy,
      PropertyInvalidationStrategy.withLayout({ detail: 'pd:{propertyId}', list: false, tag: false }, { cache: 'scores' }),
    ],
    controllers: [RoutesController, HealthController],
  })
  class AppModule {}
  const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}

/** `name{label="v",…}` → value, labels sorted. */
async function series(registry: Registry): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of await registry.getMetricsAsJSON()) {
    for (const v of m.values) {
      const labels = Object.entries(v.labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => `${k}="${x}"`)
        .join(',');
      out.set(`${(v as { metricName?: string }).metricName ?? m.name}{${labels}}`, v.value);
    }
  }
  return out;
}

async function scan(raw: Redis, match: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out.sort();
}

describe('named caches: several TieredCacheModule.forRoot({ name }) in one app', () => {
  let redis: RedisServer;
  let raw: Redis;
  let registry: Registry;
  let app: INestApplication;
  let def: CacheManagerService;
  let scores: CacheManagerService;
  let sessions: CacheManagerService;

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
    registry = new Registry();
    app = await bootApp(redis.url, registry);
    def = app.get(CacheManagerService);
    scores = app.get(getCacheToken('scores'));
    sessions = app.get(getCacheToken('sessions'));
  });
  afterAll(async () => {
    await app.close();
    raw.disconnect();
    await redis.stop();
  });

  it('each cache has its own options and namespace; the unnamed one stays the default', async () => {
    expect(def.name).toBe('default');
    expect(app.get(getCacheToken())).toBe(def);
    expect(app.get(getCacheToken('default'))).toBe(def);
    expect(app.get(TIERED_CACHE)).toBe(def.engine);
    expect([def.name, scores.name, sessions.name]).toEqual(['default', 'scores', 'sessions']);
    expect(new Set([def, scores, sessions]).size).toBe(3);

    expect(def.engine.options.keyPrefix).toBe('cache:');
    expect(def.engine.options.defaultTtl).toBe(3_600_000);
    // A named cache's keyPrefix defaults to "<name>:".
    expect(scores.engine.options.keyPrefix).toBe('scores:');
    expect(scores.engine.options.defaultTtl).toBe(600_000);
    expect(scores.engine.options.l1.maxEntries).toBe(100);
    // forRootAsync: options from the factory, name from the module definition.
    expect(sessions.engine.options.keyPrefix).toBe('sess:');
    expect(sessions.engine.options.l1.maxEntries).toBe(7);
    expect(sessions.stats().l2.enabled).toBe(false);

    await def.set('same', 'in default');
    await scores.set('same', 'in scores');
    await sessions.set('same', 'in sessions');
    expect(await def.get('same')).toBe('in default');
    expect(await scores.get('same')).toBe('in scores');
    expect(await sessions.get('same')).toBe('in sessions');
    expect(await raw.exists('cache:same', 'scores:same')).toBe(2);
    expect(await raw.exists('sess:same')).toBe(0);
    expect(def.engine.bus!.channel).not.toBe(scores.engine.bus!.channel);
  });

  it('@InjectCache(name) and forFeature: a feature module gets the root caches without importing them', () => {
    const board = app.get(LeaderboardService);
    expect(board.scores).toBe(scores);
    expect(board.byDecorator).toBe(def);
    expect(board.byType).toBe(def);
    expect(app.get(getCacheHealthIndicatorToken('scores')).cacheName).toBe('scores');
    expect(app.get(TieredCacheHealthIndicator).cacheName).toBe('default');
  });

  it('decorators are served by the cache they name, each method wrapped once', async () => {
    const svc = app.get(PropertyService);
    const before = { def: def.stats().overall, scores: scores.stats().overall };

    expect(await svc.score('1')).toBe(101);
    expect(await svc.score('1')).toBe(101);
    expect(svc.scoreRuns).toBe(1);
    // Two lookups in scores, none in the default cache: one wrapper, the scores cache's.
    expect(scores.stats().overall.hits + scores.stats().overall.misses - (before.scores.hits + before.scores.misses)).toBe(2);
    expect(def.stats().overall.hits + def.stats().overall.misses).toBe(before.def.hits + before.def.misses);
    expect(await scores.get('score:1')).toBe(101);
    expect(await def.get('score:1')).toBeUndefined();

    expect(await svc.detail('1')).toBe('detail 1 #1');
    expect(await svc.detail('1')).toBe('detail 1 #1');
    expect(await def.get('property:1')).toBe('detail 1 #1');
    expect(await scores.get('property:1')).toBeUndefined();

    expect(await svc.rescore('1', 7)).toBe(7);
    expect(await scores.get('score:1')).toBe(7);
    expect(await def.get('score:1')).toBeUndefined();

    // One method, @CacheEvict()s on two caches.
    await def.set('score:1', 'default copy');
    expect(await svc.update('1')).toBe('updated 1');
    expect(await def.get('property:1')).toBeUndefined();
    expect(await scores.get('score:1')).toBeUndefined();
    expect(await def.get('score:1')).toBe('default copy');
  });

  it("invalidating one cache leaves the other's entries, in L1 and in Redis", async () => {
    for (const c of [def, scores]) {
      await c.set('iso:a', c.name, { tags: ['t'] });
      await c.set('iso:b', c.name, { tags: ['t'] });
      await c.set('iso:c', c.name);
    }
    await def.delete('iso:a');
    await def.invalidateTags(['t']);
    await def.invalidatePattern('iso:*');
    expect(await def.get('iso:b')).toBeUndefined();
    expect(await def.get('iso:c')).toBeUndefined();
    for (const k of ['iso:a', 'iso:b', 'iso:c']) {
      expect(scores.engine.peekLocal(k)).toBe('scores');
      expect(await raw.exists(`scores:${k}`)).toBe(1);
    }
    await def.set('iso:d', 'default');
    await scores.clear();
    expect(await scores.get('iso:a')).toBeUndefined();
    expect(await def.get('iso:d')).toBe('default');
    expect(await raw.exists('cache:iso:d')).toBe(1);
  });

  it('event rules and strategies run against their own cache', async () => {
    const events = app.get(EventEmitter2);
    const scoped = app.get(ScoreEventsStrategy);
    const unscoped = app.get(DefaultScoreEventsStrategy);
    for (const c of [def, scores]) {
      await c.set('score:e1', c.name);
      await c.set('mirror:e1', c.name);
      await c.set('lead:e1', c.name);
      await c.set('lead-default:e1', c.name);
      await c.set('pd:e1', c.name);
    }

    await events.emitAsync('score.updated', { id: 'e1' });
    expect(scoped.seen).toEqual(['scores']);
    expect(unscoped.seen).toEqual(['default']);
    expect(await scores.get('score:e1')).toBeUndefined();
    expect(await def.get('score:e1')).toBe('default');
    expect(await def.get('mirror:e1')).toBeUndefined();
    expect(await scores.get('mirror:e1')).toBe('scores');

    // invalidationRules belong to the cache whose options hold them.
    await events.emitAsync('lead.scored', { id: 'e1' });
    expect(await scores.get('lead:e1')).toBeUndefined();
    expect(await def.get('lead:e1')).toBe('default');
    expect(await def.get('lead-default:e1')).toBeUndefined();
    expect(await scores.get('lead-default:e1')).toBe('scores');

    // A ready-made strategy pointed at a named cache (withLayout(layout, { cache })).
    await events.emitAsync('property.updated', { propertyId: 'e1' });
    expect(await scores.get('pd:e1')).toBeUndefined();
    expect(await def.get('pd:e1')).toBe('default');
  });

  it('routes pick their cache with @Cacheable({ cache }) under one TieredCacheInterceptor', async () => {
    const http = request(app.getHttpServer());
    const first = await http.get('/r/score/9').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const again = await http.get('/r/score/9').expect(200);
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.body).toEqual(first.body);
    expect(await scan(raw, 'scores:http-score:9*')).toHaveLength(1);
    expect(await scan(raw, 'cache:http-score:*')).toEqual([]);

    await http.get('/r/detail/9').expect(200);
    expect((await http.get('/r/detail/9').expect(200)).headers['x-cache']).toBe('HIT');
    expect(await scan(raw, 'cache:http-detail:9*')).toHaveLength(1);
    expect(await scan(raw, 'scores:http-detail:*')).toEqual([]);
  });

  it('metrics: one set of series in the registry, labelled by cache', async () => {
    await def.get('m:1');
    await scores.get('m:1');
    await sessions.get('m:1');
    const s = await series(registry);
    // The default cache keeps the label it had (its keyPrefix); named caches are labelled by name.
    expect(s.get('cache_misses_total{cache="cache:",tier="l1"}')).toBeGreaterThan(0);
    expect(s.get('cache_misses_total{cache="scores",tier="l1"}')).toBeGreaterThan(0);
    expect(s.get('cache_misses_total{cache="sessions",tier="l1"}')).toBeGreaterThan(0);
    expect(s.get('cache_l1_max_entries{cache="scores"}')).toBe(100);
    expect(s.get('cache_l1_max_entries{cache="sessions"}')).toBe(7);
    expect(s.get('cache_l2_up{cache="scores"}')).toBe(1);
    expect(s.has('cache_l2_up{cache="sessions"}')).toBe(false);
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    const caches = new Set([...s.keys()].map((k) => /cache="([^"]*)"/.exec(k)?.[1]).filter((x) => x !== undefined));
    expect([...caches].sort()).toEqual(['cache:', 'scores', 'sessions']);
  });

  it('health: isHealthyAll reports each cache under its own key; isHealthy keeps its shape', async () => {
    const indicator = app.get(TieredCacheHealthIndicator);
    const one = await indicator.isHealthy('cache');
    expect(Object.keys(one)).toEqual(['cache']);
    expect(one.cache).toMatchObject({ status: 'up', l2: { enabled: true, status: 'up' }, bus: { channel: 'cache:__tc:bus:v1' } });

    const named = await indicator.isHealthy('s', { cache: 'scores' });
    expect(named.s).toMatchObject({ status: 'up', l1: { maxEntries: 100 }, bus: { channel: 'scores:__tc:bus:v1' } });
    await expect(indicator.isHealthy('x', { cache: 'nope' })).rejects.toThrow(/"cache" = "nope".*caches: 'default', 'scores', 'sessions'/);

    const body = (await request(app.getHttpServer()).get('/health').expect(200)).body;
    expect(Object.keys(body.info).sort()).toEqual(['cache', 'cache.scores', 'cache.sessions']);
    expect(body.info['cache.scores']).toMatchObject({ status: 'up', l2: { status: 'up' } });
    expect(body.info['cache.sessions']).toMatchObject({ status: 'up', l1: { maxEntries: 7 }, l2: { enabled: false } });

    // Each cache is judged on its own: only the L1-only one is down when L2 is required.
    const strict = (await request(app.getHttpServer()).get('/health/strict').expect(503)).body;
    expect(Object.keys(strict.error)).toEqual(['cache.sessions']);
    expect(Object.keys(strict.info).sort()).toEqual(['cache', 'cache.scores']);
  });
});

describe('named caches across app instances', () => {
  let redis: RedisServer;
  beforeAll(async () => (redis = await RedisServer.start()));
  afterAll(() => redis.stop());

  it("an invalidation of a named cache on A reaches that cache's L1 on B (another process) and no other", async () => {
    const registry = new Registry();
    const app = await bootApp(redis.url, registry);
    const B = await EngineProcess.fork('nest-app-child.js', {
      caches: { scores: { redis: redis.url, defaultTtl: '10m' }, default: { redis: redis.url } },
    });
    try {
      const def = app.get(CacheManagerService);
      const scores = app.get<CacheManagerService>(getCacheToken('scores'));
      await waitFor('B subscribed on both caches', async () => (await B.call<boolean>('subscribed', 'scores')) && (await B.call<boolean>('subscribed', 'default')));
      await waitFor('A subscribed on both caches', () => def.engine.bus!.subscribed && scores.engine.bus!.subscribed);

      // B writes the same key in both caches (its own writes land in its L1s; Redis does not echo them back to it).
      await B.call('set', 'default', 'x', 'default v1');
      await B.call('set', 'scores', 'x', 'scores v1');
      expect(await B.call('inL1', 'default', 'x')).toBe(true);
      expect(await B.call('inL1', 'scores', 'x')).toBe(true);
      expect(await def.get('x')).toBe('default v1');
      expect(await scores.get('x')).toBe('scores v1');

      // An overwrite on A: B's scores copy goes, its default copy of the same key stays.
      await scores.set('x', 'scores v2');
      await waitFor("B's scores L1 drops x after the overwrite", async () => !(await B.call<boolean>('inL1', 'scores', 'x')));
      expect(await B.call('inL1', 'default', 'x')).toBe(true);
      expect(await B.call('get', 'scores', 'x')).toBe('scores v2');
      expect(await B.call('inL1', 'scores', 'x')).toBe(true);

      await scores.delete('x');
      await waitFor("B's scores L1 drops x", async () => !(await B.call<boolean>('inL1', 'scores', 'x')));
      expect(await B.call('inL1', 'default', 'x')).toBe(true);
      expect(await B.call('get', 'default', 'x')).toBe('default v1');
      expect(await B.call('get', 'scores', 'x')).toBeUndefined();

      // Tags and clear() of the scores cache on A: the same on B's scores L1 only.
      for (const name of ['default', 'scores']) {
        await B.call('set', name, 't1', name, { tags: ['shared-tag'] });
        await B.call('set', name, 't2', name);
      }
      expect(await B.call('inL1', 'scores', 't1')).toBe(true);
      await scores.invalidateTags(['shared-tag']);
      await waitFor("B's scores L1 drops the tagged entry", async () => !(await B.call<boolean>('inL1', 'scores', 't1')));
      expect(await B.call('inL1', 'default', 't1')).toBe(true);
      await scores.clear();
      await waitFor("B's scores L1 is emptied by clear()", async () => !(await B.call<boolean>('inL1', 'scores', 't2')));
      expect(await B.call('inL1', 'default', 't2')).toBe(true);
      expect(await B.call('get', 'default', 't1')).toBe('default');

      // And back: B's default-cache delete reaches A's default L1 only.
      await scores.set('y', 'scores y');
      await def.set('y', 'default y');
      expect(scores.engine.peekLocal('y')).toBe('scores y');
      await B.call('delete', 'default', 'y');
      await waitFor("A's default L1 drops y", () => def.engine.peekLocal('y') === undefined);
      expect(scores.engine.peekLocal('y')).toBe('scores y');
    } finally {
      await B.stop();
      await app.close();
    }
  });

  it('two apps in one process each have their own registry: the same names do not clash', async () => {
    const a = await bootApp(redis.url, new Registry());
    const b = await bootApp(redis.url, new Registry());
    try {
      const sa = a.get<CacheManagerService>(getCacheToken('scores'));
      const sb = b.get<CacheManagerService>(getCacheToken('scores'));
      expect(sa).not.toBe(sb);
      await sa.set('two-apps', 1);
      await waitFor('b reads it through L2', async () => (await sb.get('two-apps')) === 1);
      await sa.delete('two-apps');
      await waitFor("b's scores L1 drops it", () => sb.engine.peekLocal('two-apps') === undefined);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('named caches: configuration', () => {
  let redis: RedisServer;
  beforeAll(async () => (redis = await RedisServer.start()));
  afterAll(() => redis.stop());

  /** Compiles and inits; closes whatever booted. Resolves to the error, or undefined. */
  async function bootError(imports: unknown[], providers: unknown[] = [], controllers: unknown[] = []): Promise<Error | undefined> {
    @Module({ imports: imports as [], providers: providers as [], controllers: controllers as [] })
    class AppModule {}
    let app: INestApplication | undefined;
    try {
      const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
      app = ref.createNestApplication({ logger: false });
      await app.init();
      return undefined;
    } catch (err) {
      return err as Error;
    } finally {
      await app?.close();
    }
  }

  it('a name used twice fails at boot, naming it (also for two unnamed forRoot)', async () => {
    const err = await bootError([
      TieredCacheModule.forRoot({ name: 'scores', logger: quiet, metrics: false }),
      TieredCacheModule.forRoot({ name: 'scores', logger: quiet, metrics: false, defaultTtl: '1m' }),
    ]);
    expect(err?.message).toMatch(/"name" = "scores": this app already has cache 'scores'/);
    const twice = await bootError([TieredCacheModule.forRoot({ logger: quiet, metrics: false }), TieredCacheModule.forRoot({ logger: quiet, metrics: false, defaultTtl: '1m' })]);
    expect(twice?.message).toMatch(/"name" = "default": this app already has the default cache/);
  });

  it('a decorator naming an unknown cache fails at boot, naming the method and the cache', async () => {
    @Injectable()
    class Typo {
      @Cacheable({ cache: 'scroes' })
      async find(id: string): Promise<string> {
        return id;
      }
    }
    const err = await bootError([TieredCacheModule.forRoot({ name: 'scores', logger: quiet, metrics: false }), TieredCacheModule.forRoot({ logger: quiet, metrics: false })], [Typo]);
    expect(err).toBeInstanceOf(CacheDecoratorError);
    expect(err?.message).toMatch(/^Typo\.find is cached in cache 'scroes', which this app does not register \(caches: 'default', 'scores'\)/);

    @Injectable()
    class EvictTypo {
      @CacheEvict({ cache: 'nope', keys: ['k'] })
      async write(): Promise<void> {}
    }
    expect((await bootError([TieredCacheModule.forRoot({ logger: quiet, metrics: false })], [EvictTypo]))?.message).toMatch(/EvictTypo\.write is cached in cache 'nope'/);

    // Only named caches: a method without `cache` names the default cache, which is missing.
    @Injectable()
    class NoDefault {
      @Cacheable()
      async find(id: string): Promise<string> {
        return id;
      }
    }
    expect((await bootError([TieredCacheModule.forRoot({ name: 'only', logger: quiet, metrics: false })], [NoDefault]))?.message).toMatch(
      /NoDefault\.find is cached in the default cache, which this app does not register \(caches: 'only'\)/,
    );

    @Controller('t')
    @UseInterceptors(TieredCacheInterceptor)
    class RouteTypo {
      @Get()
      @Cacheable({ cache: 'nope' })
      get(): string {
        return 'x';
      }
    }
    expect((await bootError([TieredCacheModule.forRoot({ logger: quiet, metrics: false })], [], [RouteTypo]))?.message).toMatch(/RouteTypo\.get is cached in cache 'nope'/);
  });

  it('a strategy or forFeature naming an unknown cache fails at boot', async () => {
    @Injectable()
    @InvalidationStrategyFor('x.*', { cache: 'nope' })
    class Lost implements InvalidationStrategy {
      supports(): boolean {
        return true;
      }
      async invalidate(): Promise<number> {
        return 0;
      }
    }
    expect((await bootError([TieredCacheModule.forRoot({ logger: quiet, metrics: false })], [Lost]))?.message).toMatch(/Lost invalidates cache 'nope', which this app does not register/);

    @Module({ imports: [TieredCacheModule.forFeature('nope')] })
    class Feature {}
    expect((await bootError([TieredCacheModule.forRoot({ name: 'scores', logger: quiet, metrics: false }), Feature]))?.message).toMatch(
      /"forFeature" = "nope": this app registers no such cache \(caches: 'scores'\)/,
    );
  });

  it('caches with a shared tier and overlapping key prefixes fail at boot; in-memory ones may share a prefix', async () => {
    const same = await bootError([
      TieredCacheModule.forRoot({ redis: redis.url, keyPrefix: 'x:', logger: quiet, metrics: false }),
      TieredCacheModule.forRoot({ name: 'b', redis: redis.url, keyPrefix: 'x:', logger: quiet, metrics: false }),
    ]);
    expect(same?.message).toMatch(/"keyPrefix" = "x:": .*the default cache.*cache 'b'.*"x:" and "x:" are the same/);
    const nested = await bootError([
      TieredCacheModule.forRoot({ redis: redis.url, keyPrefix: 'app:', logger: quiet, metrics: false }),
      TieredCacheModule.forRoot({ name: 'b', redis: redis.url, keyPrefix: 'app:b:', logger: quiet, metrics: false }),
    ]);
    expect(nested?.message).toMatch(/"keyPrefix" = "app:": the default cache and cache 'b' .*"app:" and "app:b:" overlap/);
    // A named cache called 'cache' defaults to the default cache's prefix.
    expect(
      (await bootError([TieredCacheModule.forRoot({ redis: redis.url, logger: quiet, metrics: false }), TieredCacheModule.forRoot({ name: 'cache', redis: redis.url, logger: quiet, metrics: false })]))?.message,
    ).toMatch(/"keyPrefix" = "cache:"/);
    expect(
      await bootError([TieredCacheModule.forRoot({ keyPrefix: 'm:', logger: quiet, metrics: false }), TieredCacheModule.forRoot({ name: 'b', keyPrefix: 'm:', logger: quiet, metrics: false })]),
    ).toBeUndefined();
  });

  it('a bad name fails where forRoot is called; the HTTP fast path is refused on a named cache', async () => {
    expect(() => TieredCacheModule.forRoot({ name: 'a b' })).toThrow(/"name" = "a b": expected a cache name/);
    expect(() => TieredCacheModule.forRootAsync({ name: '', useFactory: () => ({}) })).toThrow(/"name" = ""/);
    expect(() => getCacheToken('a:b')).toThrow(/"getCacheToken" = "a:b"/);
    expect(() => Cacheable({ cache: 'x y' })).not.toThrow();
    expect(() => {
      class Bad {
        @Cacheable({ cache: 'x y' })
        async m(): Promise<number> {
          return 1;
        }
      }
      return Bad;
    }).toThrow(/"@Cacheable\(\) on Bad\.m cache" = "x y"/);
    expect((await bootError([TieredCacheModule.forRoot({ name: 'scores', http: { fastPath: true }, logger: quiet, metrics: false })]))?.message).toMatch(
      /"http\.fastPath" = true: cache 'scores' is a named cache; the HTTP fast path serves the default cache only/,
    );
  });

  it('a global named cache does not shadow the default cache injected by type', async () => {
    @Injectable()
    class Consumer {
      constructor(
        readonly byType: CacheManagerService,
        @InjectCache('g') readonly g: CacheManagerService,
      ) {}
    }
    @Module({ providers: [Consumer], exports: [Consumer] })
    class Feature {}
    @Module({
      imports: [
        TieredCacheModule.forRootAsync({ name: 'g', isGlobal: true, useFactory: () => ({ logger: quiet, metrics: false }) }),
        TieredCacheModule.forRoot({ isGlobal: true, logger: quiet, metrics: false }),
        Feature,
      ],
    })
    class AppModule {}
    const app = await (await Test.createTestingModule({ imports: [AppModule] }).compile()).init();
    try {
      const c = app.get(Consumer);
      expect(c.byType.name).toBe('default');
      expect(c.g.name).toBe('g');
      expect(c.g.engine.options.keyPrefix).toBe('g:');
      expect(app.get(CacheManagerService).name).toBe('default');
    } finally {
      await app.close();
    }
  });

  it("the HTTP fast path answers the default cache's routes only", async () => {
    @Controller('fp')
    @UseInterceptors(TieredCacheInterceptor)
    class FastRoutes {
      runs = 0;
      @Get('default')
      @Cacheable({ key: 'fp-default' })
      def(): { run: number } {
        return { run: ++this.runs };
      }
      @Get('named')
      @Cacheable({ cache: 'scores', key: 'fp-named' })
      named(): { run: number } {
        return { run: ++this.runs };
      }
    }
    @Module({
      imports: [
        TieredCacheModule.forRoot({ name: 'scores', logger: quiet, metrics: false }),
        TieredCacheModule.forRoot({ logger: quiet, metrics: false, http: { fastPath: true } }),
      ],
      controllers: [FastRoutes],
    })
    class AppModule {}
    const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({ logger: false });
    await app.init();
    try {
      const fastPath = app.get(HttpFastPath);
      const interceptor = new TieredCacheInterceptor(app.get(CacheManagerService), undefined, fastPath, app.get(CacheRegistry));
      expect(interceptor.explainFastPath(FastRoutes, 'def')).toEqual([]);
      expect(interceptor.explainFastPath(FastRoutes, 'named')).toEqual(["it is served by cache 'scores'; the fast path serves the default cache only"]);
      for (let i = 0; i < 3; i++) {
        await request(app.getHttpServer()).get('/fp/default').expect(200);
        await request(app.getHttpServer()).get('/fp/named').expect(200);
      }
      // The default route's URL is answered before routing; the named route's goes through the interceptor.
      expect(fastPath.stats()).toMatchObject({ active: true, urls: 1 });
      expect(fastPath.stats().hits).toBeGreaterThan(0);
      expect(app.get(FastRoutes).runs).toBe(2);
      // The named route's two HITs came from the scores cache's L1.
      expect(app.get<CacheManagerService>(getCacheToken('scores')).stats().l1.hits).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('an app may register named caches only', async () => {
    @Injectable()
    class OnlyNamed {
      runs = 0;
      constructor(@InjectCache('a') readonly a: CacheManagerService) {}
      @Cacheable({ cache: 'a', key: 'k:{0}' })
      async find(id: string): Promise<number> {
        return ++this.runs;
      }
    }
    @Controller('n')
    @UseInterceptors(TieredCacheInterceptor)
    class NamedRoutes {
      runs = 0;
      @Get()
      @Cacheable({ cache: 'a', key: 'route' })
      get(): { run: number } {
        return { run: ++this.runs };
      }
    }
    @Module({ imports: [TieredCacheModule.forRoot({ name: 'a', logger: quiet, metrics: false })], providers: [OnlyNamed], controllers: [NamedRoutes] })
    class AppModule {}
    const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({ logger: false });
    await app.init();
    try {
      const svc = app.get(OnlyNamed);
      expect(await svc.find('1')).toBe(1);
      expect(await svc.find('1')).toBe(1);
      expect(await svc.a.get('k:1')).toBe(1);
      await request(app.getHttpServer()).get('/n').expect(200);
      expect((await request(app.getHttpServer()).get('/n').expect(200)).headers['x-cache']).toBe('HIT');
      const indicator = app.get<TieredCacheHealthIndicator>(getCacheHealthIndicatorToken('a'));
      expect(Object.keys(await indicator.isHealthyAll())).toEqual(['cache.a']);
    } finally {
      await app.close();
    }
  });
});
