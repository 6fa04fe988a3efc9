import 'reflect-metadata';
import { Controller, Get, Headers, HttpCode, INestApplication, NotFoundException, Param, Put, Query, Res, UseInterceptors } from '@nestjs/common';
import { Test } from '@nestjs/testing';
type Response = { cookie(name: string, value: string): void };
import request from 'supertest';
import { of, delay } from 'rxjs';
import { CacheEvict, CacheManagerService, Cacheable, TieredCacheInterceptor, TieredCacheModule } from '../../lib';
import { RedisServer } from '../support/redis-server';

const counts: Record<string, number> = {};
const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);

@Controller('properties')
@UseInterceptors(TieredCacheInterceptor)
class PropertiesController {
  @Get('search')
  @Cacheable({ ttl: '1m' })
  search(@Query() q: Record<string, string>) {
    bump('search');
    return { q, n: counts.search };
  }

  @Get('me')
  @Cacheable({ vary: ['authorization'] })
  me(@Headers('authorization') auth: string) {
    bump('me');
    return { user: auth };
  }

  @Get('tenant')
  @Cacheable({ vary: ['x-tenant-id'] })
  tenant(@Headers('x-tenant-id') tenant: string) {
    bump('tenant');
    return { tenant };
  }

  @Get('observable')
  @Cacheable()
  observable() {
    bump('observable');
    return of({ from: 'observable', n: counts.observable }).pipe(delay(5));
  }

  @Get('missing')
  @Cacheable()
  missing() {
    bump('missing');
    throw new NotFoundException('nope');
  }

  @Get('accepted')
  @HttpCode(202)
  @Cacheable()
  accepted() {
    bump('accepted');
    return { ok: true };
  }

  @Get('cookie')
  @Cacheable()
  cookie(@Res({ passthrough: true }) res: Response) {
    bump('cookie');
    res.cookie('session', 'abc');
    return { ok: true };
  }

  @Get('conditional')
  @Cacheable({ condition: (req: { query: { fresh?: string } }) => req.query.fresh !== '1' })
  conditional() {
    bump('conditional');
    return { n: counts.conditional };
  }

  @Get(':id')
  @Cacheable({ key: 'property:{id}' })
  findOne(@Param('id') id: string) {
    bump('findOne');
    return { id, n: counts.findOne };
  }

  @Put(':id')
  @CacheEvict({ patterns: ['property:{id}:*'] })
  update(@Param('id') id: string) {
    return { updated: id };
  }
}

describe('TieredCacheInterceptor (real Redis, Express)', () => {
  let redis: RedisServer;
  let app: INestApplication;

  beforeAll(async () => {
    redis = await RedisServer.start();
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ redis: redis.url, logger: { warn() {}, error() {} }, isGlobal: true })],
      controllers: [PropertiesController],
    }).compile();
    app = ref.createNestApplication();
    await app.init();
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
  });
  beforeEach(async () => {
    for (const k of Object.keys(counts)) delete counts[k];
    await app.get(CacheManagerService).clear();
  });

  it('serves the second GET from the cache with X-Cache: HIT', async () => {
    const first = await request(app.getHttpServer()).get('/properties/search?city=Austin&beds=3').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await request(app.getHttpServer()).get('/properties/search?city=Austin&beds=3').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
    expect(counts.search).toBe(1);
  });

  it('keys on the full query string (order aside)', async () => {
    await request(app.getHttpServer()).get('/properties/search?city=Austin&beds=3').expect(200);
    const reordered = await request(app.getHttpServer()).get('/properties/search?beds=3&city=Austin');
    expect(reordered.headers['x-cache']).toBe('HIT');
    const other = await request(app.getHttpServer()).get('/properties/search?city=Austin&beds=4');
    expect(other.headers['x-cache']).toBe('MISS');
    expect(other.body.q).toEqual({ city: 'Austin', beds: '4' });
    expect(counts.search).toBe(2);
  });

  it('keys without vary are readable and glob-safe; with vary, header values never appear in a key', async () => {
    await request(app.getHttpServer()).get('/properties/search?city=*&beds=3').expect(200);
    await request(app.getHttpServer()).get('/properties/me').set('Authorization', 'Bearer secret-token').expect(200);
    const cache = app.get(CacheManagerService).engine;
    const client = cache.l2!.client as unknown as { scan(...a: string[]): Promise<[string, string[]]> };
    const [, all] = await client.scan('0', 'MATCH', '*', 'COUNT', '1000');
    const keys = all.map((k) => k.slice(cache.options.keyPrefix.length));
    const search = keys.find((k) => k.startsWith('http:PropertiesController.search:~r'));
    expect(search).toBe('http:PropertiesController.search:~r%2Fproperties%2Fsearch%3Fbeds%3D3%26city%3D%2A');
    expect(keys.some((k) => k.startsWith('http:PropertiesController.me:~r~h'))).toBe(true);
    expect(keys.filter((k) => k.includes('secret'))).toEqual([]);
    const reread = await request(app.getHttpServer()).get('/properties/search?beds=3&city=*');
    expect(reread.headers['x-cache']).toBe('HIT');
  });

  it("never serves one user's response to another (vary: authorization)", async () => {
    const alice = await request(app.getHttpServer()).get('/properties/me').set('Authorization', 'Bearer alice');
    const bob = await request(app.getHttpServer()).get('/properties/me').set('Authorization', 'Bearer bob');
    expect(alice.body).toEqual({ user: 'Bearer alice' });
    expect(bob.body).toEqual({ user: 'Bearer bob' });
    expect(bob.headers['x-cache']).toBe('MISS');
    const alice2 = await request(app.getHttpServer()).get('/properties/me').set('Authorization', 'Bearer alice');
    expect(alice2.headers['x-cache']).toBe('HIT');
    expect(alice2.body).toEqual({ user: 'Bearer alice' });
    expect(counts.me).toBe(2);
  });

  it("never serves one tenant's response to another (vary: x-tenant-id)", async () => {
    const t1 = await request(app.getHttpServer()).get('/properties/tenant').set('X-Tenant-Id', 't1');
    const t2 = await request(app.getHttpServer()).get('/properties/tenant').set('X-Tenant-Id', 't2');
    const none = await request(app.getHttpServer()).get('/properties/tenant');
    expect([t1.body, t2.body, none.body]).toEqual([{ tenant: 't1' }, { tenant: 't2' }, {}]);
    const t1again = await request(app.getHttpServer()).get('/properties/tenant').set('X-Tenant-Id', 't1');
    expect(t1again.headers['x-cache']).toBe('HIT');
    expect(t1again.body).toEqual({ tenant: 't1' });
  });

  it('does not cache requests with credentials the route does not vary on', async () => {
    const a = await request(app.getHttpServer()).get('/properties/search?x=1').set('Authorization', 'Bearer alice');
    const b = await request(app.getHttpServer()).get('/properties/search?x=1').set('Authorization', 'Bearer bob');
    expect([a.headers['x-cache'], b.headers['x-cache']]).toEqual(['BYPASS', 'BYPASS']);
    const c = await request(app.getHttpServer()).get('/properties/search?x=1').set('Cookie', 'sid=1');
    expect(c.headers['x-cache']).toBe('BYPASS');
    expect(counts.search).toBe(3);
    // ...and an anonymous request is not served what an authenticated one produced.
    const anon = await request(app.getHttpServer()).get('/properties/search?x=1');
    expect(anon.headers['x-cache']).toBe('MISS');
  });

  it('caches handlers that return Observables', async () => {
    await request(app.getHttpServer()).get('/properties/observable').expect(200);
    const hit = await request(app.getHttpServer()).get('/properties/observable').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.body).toEqual({ from: 'observable', n: 1 });
    expect(counts.observable).toBe(1);
  });

  it('never caches errors', async () => {
    await request(app.getHttpServer()).get('/properties/missing').expect(404);
    const again = await request(app.getHttpServer()).get('/properties/missing').expect(404);
    expect(again.headers['x-cache']).toBeUndefined();
    expect(counts.missing).toBe(2);
  });

  it('replays the cached 2xx status', async () => {
    await request(app.getHttpServer()).get('/properties/accepted').expect(202);
    const hit = await request(app.getHttpServer()).get('/properties/accepted').expect(202);
    expect(hit.headers['x-cache']).toBe('HIT');
  });

  it('never caches a response that sets a cookie', async () => {
    await request(app.getHttpServer()).get('/properties/cookie').expect(200);
    const again = await request(app.getHttpServer()).get('/properties/cookie').expect(200);
    expect(again.headers['x-cache']).toBe('MISS');
    expect(again.headers['set-cookie']).toBeDefined();
    expect(counts.cookie).toBe(2);
  });

  it('honours condition', async () => {
    await request(app.getHttpServer()).get('/properties/conditional');
    await request(app.getHttpServer()).get('/properties/conditional?fresh=1');
    const hit = await request(app.getHttpServer()).get('/properties/conditional');
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(counts.conditional).toBe(2);
  });

  it('templated keys from route params; @CacheEvict on a PUT drops every variant', async () => {
    await request(app.getHttpServer()).get('/properties/p1');
    await request(app.getHttpServer()).get('/properties/p1?fields=id');
    await request(app.getHttpServer()).get('/properties/p2');
    expect((await request(app.getHttpServer()).get('/properties/p1')).headers['x-cache']).toBe('HIT');
    await request(app.getHttpServer()).put('/properties/p1').expect(200);
    expect((await request(app.getHttpServer()).get('/properties/p1')).headers['x-cache']).toBe('MISS');
    expect((await request(app.getHttpServer()).get('/properties/p1?fields=id')).headers['x-cache']).toBe('MISS');
    expect((await request(app.getHttpServer()).get('/properties/p2')).headers['x-cache']).toBe('HIT');
  });

  it('a glob character in a param cannot evict other entities', async () => {
    await request(app.getHttpServer()).get('/properties/p1');
    await request(app.getHttpServer()).put('/properties/*').expect(200);
    expect((await request(app.getHttpServer()).get('/properties/p1')).headers['x-cache']).toBe('HIT');
  });

  it('does not cache non-GET methods', async () => {
    await request(app.getHttpServer()).put('/properties/p1').expect(200);
    const r = await request(app.getHttpServer()).put('/properties/p1').expect(200);
    expect(r.headers['x-cache']).toBeUndefined();
  });
});

@Controller('global')
class GlobalController {
  @Get('cached')
  @Cacheable({ keyPrefix: 'global-cached' })
  cached() {
    bump('g-cached');
    return { n: counts['g-cached'] };
  }

  @Get('plain')
  plain() {
    bump('g-plain');
    return { n: counts['g-plain'] };
  }
}

describe('TieredCacheInterceptor as a global interceptor (L1 only)', () => {
  let app: INestApplication;
  beforeAll(async () => {
    const { APP_INTERCEPTOR } = await import('@nestjs/core');
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ isGlobal: true })],
      controllers: [GlobalController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: TieredCacheInterceptor }],
    }).compile();
    app = ref.createNestApplication();
    await app.init();
  });
  afterAll(() => app.close());

  it('caches decorated handlers only', async () => {
    await request(app.getHttpServer()).get('/global/cached');
    const hit = await request(app.getHttpServer()).get('/global/cached');
    expect(hit.headers['x-cache']).toBe('HIT');
    await request(app.getHttpServer()).get('/global/plain');
    const plain = await request(app.getHttpServer()).get('/global/plain');
    expect(plain.headers['x-cache']).toBeUndefined();
    expect(plain.body).toEqual({ n: 2 });
  });
});

describe('a decorated route handler the interceptor never sees', () => {
  @Controller('forgotten')
  class ForgottenController {
    @Get()
    @Cacheable({ keyPrefix: 'forgotten' })
    get() {
      return { ok: true };
    }
  }

  @Controller('method-level')
  class MethodLevelController {
    @Get()
    @Cacheable({ keyPrefix: 'method-level' })
    @UseInterceptors(TieredCacheInterceptor)
    get() {
      return { ok: true };
    }
  }

  async function boot(setup: { controllers: Array<new () => unknown>; appInterceptor?: boolean; useGlobal?: boolean }): Promise<string[]> {
    const warnings: string[] = [];
    const { APP_INTERCEPTOR } = await import('@nestjs/core');
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ isGlobal: true, logger: { warn: (m) => warnings.push(m), error() {} } })],
      controllers: setup.controllers,
      providers: setup.appInterceptor ? [{ provide: APP_INTERCEPTOR, useClass: TieredCacheInterceptor }] : [],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    if (setup.useGlobal) app.useGlobalInterceptors(new TieredCacheInterceptor(app.get(CacheManagerService)));
    await app.init();
    await app.close();
    return warnings.filter((w) => w.includes('will do nothing'));
  }

  it('is named in a warning at bootstrap', async () => {
    expect(await boot({ controllers: [ForgottenController, MethodLevelController] })).toEqual([
      expect.stringContaining('ForgottenController.get'),
    ]);
  });

  it('is not warned about when the interceptor is on the method, global via APP_INTERCEPTOR or useGlobalInterceptors', async () => {
    expect(await boot({ controllers: [MethodLevelController] })).toEqual([]);
    expect(await boot({ controllers: [ForgottenController], appInterceptor: true })).toEqual([]);
    expect(await boot({ controllers: [ForgottenController], useGlobal: true })).toEqual([]);
  });
});
