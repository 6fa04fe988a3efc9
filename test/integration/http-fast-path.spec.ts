import 'reflect-metadata';
import {
  Controller,
  Get,
  Head,
  Header,
  HttpCode,
  Injectable,
  Module,
  Param,
  Put,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
  type MiddlewareConsumer,
  type NestInterceptor,
  type NestMiddleware,
  type NestModule,
} from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR, HttpAdapterHost } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import type { Observable } from 'rxjs';
import { CacheEvict, CacheManagerService, Cacheable, HttpFastPath, TieredCacheInterceptor, TieredCacheModule, type TieredCacheOptions } from '../../lib';
import { RedisServer } from '../support/redis-server';

const counts: Record<string, number> = {};
const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
const quiet = { warn() {}, error() {} };

@Injectable()
class CountingGuard implements CanActivate {
  canActivate(): boolean {
    bump('guard');
    return true;
  }
}

@Injectable()
class NoopInterceptor implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    bump('noop-interceptor');
    return next.handle();
  }
}

@Controller('fast')
@UseInterceptors(TieredCacheInterceptor)
class FastController {
  @Get('item/:id')
  @Cacheable({ key: 'item:{id}' })
  item(@Param('id') id: string) {
    bump('item');
    return { id, n: counts.item, nested: { list: [1, 'two', null], unicode: 'café €' } };
  }

  @Put('item/:id')
  @CacheEvict({ patterns: ['item:{id}:*'] })
  update(@Param('id') id: string) {
    return { updated: id };
  }

  @Get('text')
  @Cacheable()
  text() {
    bump('text');
    return `plain <b>text</b> ${counts.text}`;
  }

  @Get('number')
  @Cacheable()
  number() {
    bump('number');
    return 42;
  }

  @Get('accepted')
  @HttpCode(202)
  @Cacheable()
  accepted() {
    bump('accepted');
    return { ok: true };
  }

  @Get('public')
  @Cacheable({ public: true })
  publicRoute() {
    bump('public');
    return { n: counts.public };
  }

  @Get('guarded')
  @UseGuards(CountingGuard)
  @Cacheable()
  guarded() {
    bump('guarded');
    return { n: counts.guarded };
  }

  @Get('intercepted')
  @UseInterceptors(NoopInterceptor)
  @Cacheable()
  intercepted() {
    bump('intercepted');
    return { n: counts.intercepted };
  }

  @Get('vary')
  @Cacheable({ vary: ['x-tenant-id'] })
  vary() {
    bump('vary');
    return { n: counts.vary };
  }

  @Get('conditional')
  @Cacheable({ condition: () => true })
  conditional() {
    bump('conditional');
    return { n: counts.conditional };
  }

  @Get('keyfn')
  @Cacheable({ key: () => 'keyfn' })
  keyFn() {
    bump('keyfn');
    return { n: counts.keyfn };
  }

  @Get('header')
  @Header('Cache-Control', 'max-age=60')
  @Cacheable()
  header() {
    bump('header');
    return { n: counts.header };
  }

  @Head('head-only')
  @Cacheable()
  headOnly() {
    bump('head-only');
    return { n: 1 };
  }
}

@Controller('outer')
@UseInterceptors(NoopInterceptor, TieredCacheInterceptor)
class OuterInterceptorController {
  @Get()
  @Cacheable({ keyPrefix: 'outer' })
  get() {
    bump('outer');
    return { n: counts.outer };
  }
}

/** A middleware of another module, registered after the cache module's: skipped by a fast-path hit. */
@Injectable()
class LaterMiddleware implements NestMiddleware {
  use(_req: unknown, _res: unknown, next: () => void): void {
    bump('later-middleware');
    next();
  }
}

@Module({})
class LaterModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(LaterMiddleware).forRoutes('*');
  }
}

async function boot(options: TieredCacheOptions & { isGlobal?: boolean }, extra: { providers?: unknown[]; controllers?: unknown[]; prefix?: string } = {}) {
  const warnings: string[] = [];
  const ref = await Test.createTestingModule({
    imports: [TieredCacheModule.forRoot({ logger: { warn: (m) => warnings.push(m), error() {} }, metrics: false, isGlobal: true, ...options }), LaterModule],
    controllers: (extra.controllers ?? [FastController]) as Array<new (...a: never[]) => unknown>,
    providers: (extra.providers ?? []) as never[],
  }).compile();
  const app = ref.createNestApplication({ logger: false });
  if (extra.prefix) app.setGlobalPrefix(extra.prefix);
  await app.init();
  return { app, warnings, fastPath: app.get(HttpFastPath), cache: app.get(CacheManagerService) };
}

const reset = () => {
  for (const k of Object.keys(counts)) delete counts[k];
};

/** Response headers as sent, in order, without Date (which differs by the second). */
function rawHeaders(res: request.Response): string[][] {
  const raw = (res as unknown as { res: { rawHeaders: string[] } }).res.rawHeaders;
  const out: string[][] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() !== 'date') out.push([raw[i], raw[i + 1]]);
  return out;
}

describe('HTTP fast path (real Redis, Express)', () => {
  let redis: RedisServer;
  let app: INestApplication;
  let fastPath: HttpFastPath;
  let cache: CacheManagerService;
  const get = (url: string) => request(app.getHttpServer()).get(url);

  beforeAll(async () => {
    redis = await RedisServer.start();
    ({ app, fastPath, cache } = await boot({ redis: redis.url, http: { fastPath: true } }, { controllers: [FastController, OuterInterceptorController] }));
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
  });
  beforeEach(async () => {
    reset();
    await cache.clear();
    fastPath.reset();
  });

  it('answers an L1 hit before Nest: the handler, guards and later middleware do not run', async () => {
    expect(fastPath.stats().active).toBe(true);
    const miss = await get('/fast/item/1').expect(200);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(counts['later-middleware']).toBe(1);
    const hit = await get('/fast/item/1').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.body).toEqual(miss.body);
    expect(counts.item).toBe(1);
    // LaterModule's middleware runs after ours: not for the fast-path hit.
    expect(counts['later-middleware']).toBe(1);
    expect(fastPath.stats()).toMatchObject({ hits: 1, urls: 1 });
  });

  it.each([
    ['/fast/item/1?b=2&a=1', 200],
    ['/fast/text', 200],
    ['/fast/number', 200],
    ['/fast/accepted', 202],
  ])('answers %s byte for byte as the interceptor HIT does (status, headers, body)', async (url, status) => {
    await get(url).expect(status);
    fastPath.reset(); // the next hit goes through Nest and the interceptor
    const laterBefore = counts['later-middleware'];
    const viaNest = await get(url).expect(status);
    expect(counts['later-middleware']).toBe(laterBefore + 1);
    const hitsBefore = fastPath.stats().hits;
    const viaFastPath = await get(url).expect(status);
    expect(fastPath.stats().hits).toBe(hitsBefore + 1);
    expect(counts['later-middleware']).toBe(laterBefore + 1);
    expect(viaNest.headers['x-cache']).toBe('HIT');
    expect(viaFastPath.status).toBe(viaNest.status);
    expect(viaFastPath.text).toBe(viaNest.text);
    expect(viaFastPath.headers['content-type']).toBe(viaNest.headers['content-type']);
    expect(rawHeaders(viaFastPath)).toEqual(rawHeaders(viaNest));
  });

  it('a public route is answered for requests with credentials too', async () => {
    await get('/fast/public').set('Authorization', 'Bearer a').expect(200);
    const hit = await get('/fast/public').set('Authorization', 'Bearer b').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(counts['later-middleware']).toBe(1);
    expect(fastPath.stats().hits).toBe(1);
  });

  it('a request with credentials to a non-public route goes through Nest (BYPASS, as without the fast path)', async () => {
    await get('/fast/item/1').expect(200);
    for (const [h, v] of [['Authorization', 'Bearer x'], ['Cookie', 'sid=1'], ['Proxy-Authorization', 'Basic x']]) {
      const r = await get('/fast/item/1').set(h, v).expect(200);
      expect(r.headers['x-cache']).toBe('BYPASS');
    }
    expect(counts.item).toBe(4);
    expect(fastPath.stats().hits).toBe(0);
  });

  it('HEAD requests are never answered by the fast path', async () => {
    await get('/fast/item/1').expect(200);
    const head = await request(app.getHttpServer()).head('/fast/item/1').expect(200);
    expect(head.headers['x-cache']).toBe('HIT');
    expect(counts['later-middleware']).toBe(2);
    expect(fastPath.stats().hits).toBe(0);
    await request(app.getHttpServer()).head('/fast/head-only').expect(200);
    await request(app.getHttpServer()).head('/fast/head-only').expect(200);
    expect(fastPath.stats()).toMatchObject({ hits: 0, urls: 1 });
  });

  it.each([
    ['/fast/guarded', 'guarded', 'guard'],
    ['/outer', 'outer', 'noop-interceptor'],
    // Inside TieredCacheInterceptor, so it does not run on a HIT: ineligible all the same (later middleware runs).
    ['/fast/intercepted', 'intercepted', 'later-middleware'],
  ])('never answers %s (%s: its %s runs on every request, hits included)', async (url, route, counter) => {
    for (let i = 0; i < 3; i++) await get(url).expect(200);
    expect(counts[counter]).toBe(3);
    expect(counts[route]).toBe(1);
    expect(counts['later-middleware']).toBe(3);
    expect(fastPath.stats()).toMatchObject({ hits: 0, urls: 0 });
  });

  it.each(['vary', 'conditional', 'keyfn', 'header'])('never answers /fast/%s', async (route) => {
    for (let i = 0; i < 3; i++) await get(`/fast/${route}`).set('X-Tenant-Id', 't1').expect(200);
    expect(counts[route]).toBe(1); // cached by the interceptor as before
    expect(counts['later-middleware']).toBe(3);
    expect(fastPath.stats()).toMatchObject({ hits: 0, urls: 0 });
  });

  it('explains why a route is not eligible', () => {
    const interceptor = new TieredCacheInterceptor(cache, undefined, fastPath);
    expect(interceptor.explainFastPath(FastController, 'item')).toEqual([]);
    expect(interceptor.explainFastPath(FastController, 'guarded')).toEqual(['guards would run (CountingGuard)']);
    expect(interceptor.explainFastPath(FastController, 'intercepted')).toEqual(['other interceptors would run (NoopInterceptor)']);
    expect(interceptor.explainFastPath(FastController, 'vary')).toEqual(['it varies on request headers']);
    expect(interceptor.explainFastPath(FastController, 'conditional')).toEqual(['it has a condition']);
    expect(interceptor.explainFastPath(FastController, 'keyFn')).toEqual(['its key is a function of the request']);
    expect(interceptor.explainFastPath(FastController, 'header')).toEqual(['it sets @Header()']);
    expect(interceptor.explainFastPath(FastController, 'headOnly')).toEqual(['not a @Get() route']);
    expect(interceptor.explainFastPath(FastController, 'update')).toEqual(['no @Cacheable()']);
    expect(new TieredCacheInterceptor(cache, { vary: ['x-tenant-id'] }, fastPath).explainFastPath(FastController, 'item')).toEqual(['it varies on request headers']);
  });

  describe('after invalidation the next GET is a MISS with fresh data', () => {
    const warm = async () => {
      await get('/fast/item/1').expect(200);
      expect((await get('/fast/item/1')).headers['x-cache']).toBe('HIT');
      expect(fastPath.stats().hits).toBe(1);
    };
    const expectFresh = async () => {
      const r = await get('/fast/item/1').expect(200);
      expect(r.headers['x-cache']).toBe('MISS');
      expect(r.body.n).toBe(2);
      expect(fastPath.stats().hits).toBe(1);
    };

    it('CacheManagerService.delete', async () => {
      await warm();
      expect(await cache.delete('item:1:~r%2Ffast%2Fitem%2F1')).toBe(1);
      await expectFresh();
    });

    it('invalidatePattern', async () => {
      await warm();
      await cache.invalidatePattern('item:1:*');
      await expectFresh();
    });

    it('@CacheEvict on a PUT', async () => {
      await warm();
      await request(app.getHttpServer()).put('/fast/item/1').expect(200);
      await expectFresh();
    });
  });
});

describe('HTTP fast path: global guards and interceptors, global prefix (L1 only)', () => {
  @Controller('g')
  class GController {
    @Get()
    @Cacheable({ keyPrefix: 'g' })
    get() {
      bump('g');
      return { n: counts.g };
    }
  }

  beforeEach(reset);

  it('APP_GUARD makes every route ineligible', async () => {
    const { app, fastPath } = await boot(
      { http: { fastPath: true } },
      { controllers: [GController], providers: [{ provide: APP_INTERCEPTOR, useClass: TieredCacheInterceptor }, { provide: APP_GUARD, useClass: CountingGuard }] },
    );
    for (let i = 0; i < 3; i++) await request(app.getHttpServer()).get('/g').expect(200);
    expect([counts.g, counts.guard, fastPath.stats().hits]).toEqual([1, 3, 0]);
    await app.close();
  });

  it('app.useGlobalGuards and another global interceptor make every route ineligible', async () => {
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ logger: quiet, metrics: false, http: { fastPath: true } })],
      controllers: [GController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: TieredCacheInterceptor }],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    app.useGlobalGuards(new CountingGuard());
    app.useGlobalInterceptors(new NoopInterceptor());
    await app.init();
    for (let i = 0; i < 3; i++) await request(app.getHttpServer()).get('/g').expect(200);
    // NoopInterceptor comes after the cache interceptor, so it runs on the MISS only; it still makes the route ineligible.
    expect([counts.g, counts.guard, counts['noop-interceptor'], app.get(HttpFastPath).stats().hits]).toEqual([1, 3, 1, 0]);
    await app.close();
  });

  it('a global TieredCacheInterceptor with a global prefix is fast-pathed', async () => {
    const { app, fastPath } = await boot({ http: { fastPath: true } }, { controllers: [GController], providers: [{ provide: APP_INTERCEPTOR, useClass: TieredCacheInterceptor }], prefix: 'api' });
    for (let i = 0; i < 3; i++) expect((await request(app.getHttpServer()).get('/api/g').expect(200)).body).toEqual({ n: 1 });
    expect(fastPath.stats().hits).toBe(2);
    await app.close();
  });
});

describe('HTTP fast path: off by default, options', () => {
  beforeEach(reset);

  it('without the option every request goes through Nest as before', async () => {
    const { app, fastPath } = await boot({});
    await request(app.getHttpServer()).get('/fast/item/1').expect(200);
    const hit = await request(app.getHttpServer()).get('/fast/item/1').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(counts['later-middleware']).toBe(2);
    expect(fastPath.stats()).toEqual({ active: false, hits: 0, urls: 0 });
    await app.close();
  });

  it('an invalid value fails at boot naming the option (forRoot and forRootAsync)', async () => {
    await expect(
      Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ logger: quiet, metrics: false, http: { fastPath: 'yes' as unknown as boolean } })] }).compile(),
    ).rejects.toThrow(/"http\.fastPath" = "yes"/);
    await expect(
      Test.createTestingModule({ imports: [TieredCacheModule.forRootAsync({ useFactory: () => ({ logger: quiet, metrics: false, http: { fastPath: true, fastPathMaxUrls: 0 } }) })] }).compile(),
    ).rejects.toThrow(/"http\.fastPathMaxUrls" = 0/);
    await expect(
      Test.createTestingModule({ imports: [TieredCacheModule.forRootAsync({ useFactory: () => ({ logger: quiet, metrics: false, http: true as unknown as { fastPath: boolean } }) })] }).compile(),
    ).rejects.toThrow(/"http" = true/);
  });

  it('forRootAsync turns it on too; the index is bounded by fastPathMaxUrls', async () => {
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRootAsync({ useFactory: () => ({ logger: quiet, metrics: false, http: { fastPath: true, fastPathMaxUrls: 2 } }), isGlobal: true })],
      controllers: [FastController],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    const fastPath = app.get(HttpFastPath);
    for (const id of ['1', '2', '3']) await request(app.getHttpServer()).get(`/fast/item/${id}`).expect(200);
    expect(fastPath.stats()).toMatchObject({ active: true, urls: 2 });
    // The oldest URL was forgotten: served by Nest (a HIT there), and remembered again.
    await request(app.getHttpServer()).get('/fast/item/1').expect(200);
    expect(fastPath.stats().hits).toBe(0);
    await request(app.getHttpServer()).get('/fast/item/1').expect(200);
    expect(fastPath.stats().hits).toBe(1);
    expect(counts.item).toBe(3);
    await app.close();
  });

  it('registers its middleware for all routes without a warning from Nest', async () => {
    const logged: string[] = [];
    const record = (m: unknown) => void logged.push(String(m));
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ logger: { warn: record, error: record }, metrics: false, http: { fastPath: true } })],
      controllers: [FastController],
    }).compile();
    const app = ref.createNestApplication({ logger: { log() {}, warn: record, error: record, debug() {}, verbose() {}, fatal: record } });
    await app.init();
    await request(app.getHttpServer()).get('/fast/item/1').expect(200);
    expect((await request(app.getHttpServer()).get('/fast/item/1').expect(200)).headers['x-cache']).toBe('HIT');
    expect(app.get(HttpFastPath).stats().hits).toBe(1);
    await app.close();
    expect(logged).toEqual([]);
  });

  it('on another HTTP adapter it logs one warning and stays off', async () => {
    const warnings: string[] = [];
    const logger = { warn: (message: string) => void warnings.push(message), error: (message: string) => void warnings.push(message) };
    const ref = await Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ logger, metrics: false, http: { fastPath: true } })] }).compile();
    const fastPath = ref.get(HttpFastPath);
    let applied = false;
    const consumer = { apply: () => ((applied = true), { forRoutes: () => consumer }) } as unknown as MiddlewareConsumer;
    new TieredCacheModule(fastPath, { httpAdapter: { getType: () => 'fastify' } } as unknown as HttpAdapterHost).configure(consumer);
    expect(applied).toBe(false);
    expect(fastPath.stats().active).toBe(false);
    expect(warnings).toEqual([expect.stringContaining('Express only')]);
    await ref.close();
  });
});
