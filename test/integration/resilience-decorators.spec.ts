import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Param, UseInterceptors, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { Redis } from 'ioredis';
import { CacheManagerService, Cacheable, TieredCacheInterceptor, TieredCacheModule } from '../../lib';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * The resilience options per method and per route: @Cacheable({ grace, timeout, ttl: fn }) on a provider method
 * and on a controller route behave as getOrSet with those options, and a bad value fails the boot naming the
 * decorator.
 */

const quiet = { warn() {}, error() {} };

/** The source behind the cached methods: what it answers, and whether it is down or hung. */
const source = {
  value: 'v1',
  calls: 0,
  down: false,
  hung: undefined as Promise<void> | undefined,
  async read(): Promise<string> {
    this.calls++;
    if (this.hung) await this.hung;
    if (this.down) throw new Error('source down');
    return this.value;
  },
};

@Injectable()
class ScoreService {
  @Cacheable({ key: 'score:{id}', ttl: 40, grace: '1h', failSafeBackoff: '1h' })
  async score(id: string): Promise<string> {
    return `${id}:${await source.read()}`;
  }

  @Cacheable({ key: 'quote:{id}', ttl: '1h', timeout: { hard: 30 } })
  async quote(id: string): Promise<string> {
    return `${id}:${await source.read()}`;
  }

  @Cacheable({ key: 'adaptive:{id}', ttl: (r: { final: boolean }) => (r.final ? '1h' : '2s') })
  async status(id: string, final: boolean): Promise<{ id: string; final: boolean }> {
    return { id, final };
  }
}

@Controller('items')
@UseInterceptors(TieredCacheInterceptor)
class ItemsController {
  @Get(':id')
  @Cacheable({ key: 'item:{id}', ttl: (body: { final: boolean }) => (body.final ? '1h' : '2s') })
  item(@Param('id') id: string) {
    return { id, final: id.startsWith('f') };
  }

  @Get('quote/:id')
  @Cacheable({ key: 'hq:{id}', ttl: 40, grace: '1h', timeout: { soft: 20, hard: 30 } })
  async quote(@Param('id') id: string) {
    return { id, v: await source.read() };
  }
}

describe('resilience options on decorators and routes (real Redis)', () => {
  let redis: RedisServer;
  let raw: Redis;
  let app: INestApplication;
  let service: ScoreService;
  let cache: CacheManagerService;

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
    @Module({
      imports: [TieredCacheModule.forRoot({ redis: redis.url, keyPrefix: 'dec:', logger: quiet })],
      providers: [ScoreService],
      controllers: [ItemsController],
    })
    class AppModule {}
    const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = ref.createNestApplication({ logger: false });
    await app.init();
    service = app.get(ScoreService);
    cache = app.get(CacheManagerService);
  });
  afterAll(async () => {
    await app?.close();
    raw.disconnect();
    await redis.stop();
  });
  beforeEach(() => {
    source.value = 'v1';
    source.calls = 0;
    source.down = false;
    source.hung = undefined;
  });

  it('@Cacheable({ grace }): past the TTL the stale result is returned at once and refreshed in the background', async () => {
    expect(await service.score('a')).toBe('a:v1');
    await waitFor('past its TTL', async () => (await cache.get('score:a')) === undefined);
    source.value = 'v2';
    let open!: () => void;
    source.hung = new Promise((r) => (open = r));
    expect(await service.score('a')).toBe('a:v1');
    open();
    source.hung = undefined;
    await waitFor('refreshed', async () => (await cache.get('score:a')) === 'a:v2');
    expect(await service.score('a')).toBe('a:v2');
  });

  it('@Cacheable({ grace }): with the source down the stale result keeps being served and the source is left alone', async () => {
    expect(await service.score('b')).toBe('b:v1');
    await waitFor('past its TTL', async () => (await cache.get('score:b')) === undefined);
    source.down = true;
    const before = source.calls;
    for (let i = 0; i < 5; i++) expect(await service.score('b')).toBe('b:v1');
    await waitFor('the refresh failed', () => cache.stats().resilience.refreshFailures >= 1);
    for (let i = 0; i < 5; i++) expect(await service.score('b')).toBe('b:v1');
    expect(source.calls - before).toBe(1);
  });

  it('@Cacheable({ timeout: { hard } }): a hung source gives the caller a timeout error, and its late result is cached', async () => {
    let open!: () => void;
    source.hung = new Promise((r) => (open = r));
    await expect(service.quote('q')).rejects.toThrow(/timeout\.hard/);
    open();
    await waitFor('the late result is cached', async () => (await cache.get('quote:q')) === 'q:v1');
    expect(await service.quote('q')).toBe('q:v1');
  });

  it('@Cacheable({ ttl: fn }) on a method gets the result, on a route the response body', async () => {
    await service.status('x', true);
    await service.status('y', false);
    expect(await raw.pttl('dec:adaptive:x')).toBeGreaterThan(3_000_000);
    expect(await raw.pttl('dec:adaptive:y')).toBeLessThanOrEqual(2_000);
    await request(app.getHttpServer()).get('/items/f1').expect(200);
    await request(app.getHttpServer()).get('/items/d1').expect(200);
    const keys = await raw.keys('dec:item:*');
    const ttls = Object.fromEntries(await Promise.all(keys.map(async (k) => [k.slice(-2), await raw.pttl(k)] as const)));
    expect(ttls.f1).toBeGreaterThan(3_000_000);
    expect(ttls.d1).toBeLessThanOrEqual(2_000);
  });

  it('a route with grace and timeouts: a hung handler gets 504 without a stale copy, and the stale response with one', async () => {
    const http = request(app.getHttpServer());
    let open!: () => void;
    source.hung = new Promise((r) => (open = r));
    await http.get('/items/quote/h').expect(504);
    open();
    source.hung = undefined;
    const [key] = await waitForKey('dec:hq:h*');
    await waitFor('the late response is cached', async () => (await cache.get(key.slice('dec:'.length))) !== undefined);
    expect((await http.get('/items/quote/h').expect(200)).body).toEqual({ id: 'h', v: 'v1' });
    await waitFor('past its TTL', async () => (await cache.get(key.slice('dec:'.length))) === undefined);
    source.value = 'v2';
    source.hung = new Promise((r) => (open = r));
    // Stale within grace: answered at once (X-Cache HIT), refreshed behind it.
    const stale = await http.get('/items/quote/h').expect(200);
    expect(stale.body).toEqual({ id: 'h', v: 'v1' });
    expect(stale.headers['x-cache']).toBe('HIT');
    open();
    source.hung = undefined;
    await waitFor('refreshed', async () => (await http.get('/items/quote/h')).body.v === 'v2');
  });

  async function waitForKey(glob: string): Promise<string[]> {
    let found: string[] = [];
    await waitFor(`a key matching ${glob}`, async () => (found = await raw.keys(glob)).length > 0);
    return found;
  }

  it('a bad resilience option on @Cacheable fails where the decorator is applied, naming the method and the option', () => {
    expect(() => {
      @Injectable()
      class Bad {
        @Cacheable({ eagerRefresh: 3 })
        async m(): Promise<number> {
          return 1;
        }
      }
      return Bad;
    }).toThrow(/Bad\.m.*eagerRefresh/);
    expect(() => {
      @Injectable()
      class BadLock {
        @Cacheable({ lock: 'yes' as never })
        async m(): Promise<number> {
          return 1;
        }
      }
      return BadLock;
    }).toThrow(/BadLock\.m.*lock/);
  });
});
