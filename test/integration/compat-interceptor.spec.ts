import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, NotFoundException, Param, Post, Query, Res, StreamableFile, UseInterceptors, type ExecutionContext, type INestApplication, type Type } from '@nestjs/common';
import { APP_INTERCEPTOR, HttpAdapterHost, Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Test } from '@nestjs/testing';
import * as NestCacheManager from '@nestjs/cache-manager';
import request from 'supertest';
import { lastValueFrom, of, type Observable } from 'rxjs';
import { Cache, CACHE_KEY_METADATA, CACHE_MANAGER, CACHE_TTL_METADATA, CacheInterceptor, CacheKey, CacheModule, CacheTTL, type CacheModuleOptions } from '../../lib/compat';
import { redisFixture } from '../support/redis-fixture';
import { waitFor } from '../support/wait-for';

/**
 * The compat CacheInterceptor as @nestjs/cache-manager users use it: URL keys, @CacheKey / @CacheTTL (ours and
 * theirs), subclasses overriding trackBy & co., the credential bypass, one handler run per key, and a delete
 * on one app instance reaching another's in-process tier. Express, real Redis.
 */

const quiet = { warn() {}, error() {} };
const runs: Record<string, number> = {};
const bump = (k: string): number => (runs[k] = (runs[k] ?? 0) + 1);

/** A latch for the `held` route: the handler waits until the test opens it. */
let held: { entered: Promise<void>; enter(): void; gate: Promise<string>; open(v: string): void };
function resetHeld(): void {
  let enter!: () => void;
  let open!: (v: string) => void;
  const entered = new Promise<void>((r) => (enter = r));
  const gate = new Promise<string>((r) => (open = r));
  held = { entered, enter, gate, open };
}

type Response = { status(code: number): unknown; cookie(name: string, value: string): unknown };

@Controller('items')
@UseInterceptors(CacheInterceptor)
@CacheTTL(60_000)
class ItemsController {
  @Get()
  list(@Query() q: Record<string, string>) {
    return { n: bump('list'), q };
  }

  @Get('handler-ttl')
  @CacheTTL(5_000)
  handlerTtl() {
    return { n: bump('handler-ttl') };
  }

  @Get('ttl-fn')
  @CacheTTL((ctx: ExecutionContext) => Number(ctx.switchToHttp().getRequest<{ query: { ttl: string } }>().query.ttl))
  ttlFn() {
    return { n: bump('ttl-fn') };
  }

  @Get('forever')
  @CacheTTL(0)
  forever() {
    return { n: bump('forever') };
  }

  @Get('fixed')
  @CacheKey('fixed-key')
  fixed() {
    return { n: bump('fixed') };
  }

  @Get('by-id/:id')
  @CacheKey((ctx: ExecutionContext) => `item:${ctx.switchToHttp().getRequest<{ params: { id: string } }>().params.id}`)
  byId(@Param('id') id: string) {
    return { id, n: bump('by-id') };
  }

  @Get('theirs')
  @NestCacheManager.CacheKey('their-key')
  @NestCacheManager.CacheTTL(9_000)
  theirs() {
    return { n: bump('theirs') };
  }

  @Post()
  create() {
    return { n: bump('create') };
  }

  @Get('missing')
  missing() {
    bump('missing');
    throw new NotFoundException('nope');
  }

  @Get('failing-status')
  failingStatus(@Res({ passthrough: true }) res: Response) {
    bump('failing-status');
    res.status(503);
    return { degraded: true };
  }

  @Get('cookie')
  cookie(@Res({ passthrough: true }) res: Response) {
    bump('cookie');
    res.cookie('session', 'abc');
    return { ok: true };
  }

  @Get('null')
  nothing() {
    bump('null');
    return null;
  }

  @Get('file')
  file() {
    bump('file');
    return new StreamableFile(Buffer.from('bytes'));
  }

  @Get('held')
  async held() {
    bump('held');
    held.enter();
    return { v: await held.gate };
  }
}

/** A user's subclass: caches per user (the Authorization header is the user here), so it turns the bypass off. */
@Injectable()
class PerUserInterceptor extends CacheInterceptor {
  protected override trackBy(context: ExecutionContext): string | undefined {
    const url = super.trackBy(context) as string | undefined;
    const user = context.switchToHttp().getRequest<{ headers: Record<string, string> }>().headers.authorization;
    return url && user ? `user:${user}:${url}` : undefined;
  }

  protected override bypassesCache(): boolean {
    return false;
  }
}

/** A subclass with its own constructor, methods and header hook, as apps write them. */
@Injectable()
class TunedInterceptor extends CacheInterceptor {
  readonly headers: unknown[] = [];
  protected override allowedMethods = ['GET', 'POST'];

  constructor(@Inject(CACHE_MANAGER) cache: Cache, reflector: Reflector) {
    super(cache, reflector);
  }

  protected override isRequestCacheable(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<{ query: Record<string, string> }>();
    return super.isRequestCacheable(context) && req.query.nocache === undefined;
  }

  protected override setHeadersWhenHttp(context: ExecutionContext, value: unknown): void {
    this.headers.push(value ?? null);
    super.setHeadersWhenHttp(context, value);
  }

  members(): boolean[] {
    return [this.cacheManager instanceof Cache, this.reflector instanceof Reflector, this.httpAdapterHost instanceof HttpAdapterHost];
  }
}

@Controller('per-user')
@UseInterceptors(PerUserInterceptor)
class PerUserController {
  @Get()
  me(@Query('x') x: string) {
    return { n: bump('per-user'), x };
  }
}

@Controller('tuned')
@UseInterceptors(TunedInterceptor)
class TunedController {
  @Get()
  get() {
    return { n: bump('tuned-get') };
  }

  @Post()
  post() {
    return { n: bump('tuned-post') };
  }
}

/** @nestjs/cache-manager's own interceptor, with our decorators, on our module. */
@Controller('their-interceptor')
@UseInterceptors(NestCacheManager.CacheInterceptor)
class TheirInterceptorController {
  @Get()
  @CacheKey('ours-on-theirs')
  @CacheTTL(8_000)
  get() {
    return { n: bump('their-interceptor') };
  }
}

/** No @UseInterceptors: the app registers CacheInterceptor globally. */
@Controller('global')
class GlobalController {
  @Get()
  get() {
    return { n: bump('global') };
  }
}

describe('compat CacheInterceptor (Express, real Redis)', () => {
  const fx = redisFixture();
  const apps: INestApplication[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    for (const k of Object.keys(runs)) delete runs[k];
  });

  async function start(options: CacheModuleOptions = {}, controllers: Type[] = [ItemsController], providers: unknown[] = []): Promise<{ app: INestApplication; cache: Cache; http: () => ReturnType<typeof request> }> {
    const ref = await Test.createTestingModule({
      imports: [CacheModule.register({ namespace: 'http', ...options, tiered: { redis: fx.redis.url, logger: quiet, ...options.tiered } })],
      controllers,
      providers: providers as never[],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    apps.push(app);
    const cache = app.get<Cache>(CACHE_MANAGER);
    await cache.clear();
    return { app, cache, http: () => request(app.getHttpServer()) };
  }

  it('caches a GET under its URL: MISS, then HIT; the controller TTL applies; the key is what cache.get/del take', async () => {
    const { cache, http } = await start();
    const t0 = Date.now();
    const first = await http().get('/items?a=1').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await http().get('/items?a=1').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
    expect(runs.list).toBe(1);
    await expect(cache.get('/items?a=1')).resolves.toEqual({ n: 1, q: { a: '1' } });
    expect((await cache.ttl('/items?a=1')) as number).toBeGreaterThanOrEqual(t0 + 60_000 - 5);
    expect((await cache.ttl('/items?a=1')) as number).toBeLessThanOrEqual(Date.now() + 60_000);
    expect(await fx.raw.exists('http:/items?a=1')).toBe(1);
    // A different query string is a different key (as in @nestjs/cache-manager: the URL as sent).
    expect((await http().get('/items?a=2')).headers['x-cache']).toBe('MISS');
    await cache.del('/items?a=1');
    expect((await http().get('/items?a=1')).headers['x-cache']).toBe('MISS');
    expect(runs.list).toBe(3);
  });

  it('@CacheTTL on the handler wins over the controller; a function of the context; 0 = no expiry', async () => {
    const { cache, http } = await start();
    const t0 = Date.now();
    await http().get('/items/handler-ttl').expect(200);
    const handler = (await cache.ttl('/items/handler-ttl')) as number;
    expect(handler).toBeGreaterThanOrEqual(t0 + 5_000 - 5);
    expect(handler).toBeLessThanOrEqual(Date.now() + 5_000);
    await http().get('/items/ttl-fn?ttl=7000').expect(200);
    const fn = (await cache.ttl('/items/ttl-fn?ttl=7000')) as number;
    expect(fn).toBeGreaterThanOrEqual(t0 + 7_000 - 5);
    expect(fn).toBeLessThanOrEqual(Date.now() + 7_000);
    await http().get('/items/forever').expect(200);
    await expect(cache.get('/items/forever')).resolves.toEqual({ n: 1 });
    await expect(cache.ttl('/items/forever')).resolves.toBeUndefined();
  });

  it('@CacheKey: a fixed key, a function of the context, and @nestjs/cache-manager’s decorators on our interceptor', async () => {
    const { cache, http } = await start();
    await http().get('/items/fixed').expect(200);
    expect((await http().get('/items/fixed')).headers['x-cache']).toBe('HIT');
    await expect(cache.get('fixed-key')).resolves.toEqual({ n: 1 });
    await http().get('/items/by-id/7').expect(200);
    await expect(cache.get('item:7')).resolves.toEqual({ id: '7', n: 1 });
    const t0 = Date.now();
    await http().get('/items/theirs').expect(200);
    await expect(cache.get('their-key')).resolves.toEqual({ n: 1 });
    const expires = (await cache.ttl('their-key')) as number;
    expect(expires).toBeGreaterThanOrEqual(t0 + 9_000 - 5);
    expect(expires).toBeLessThanOrEqual(Date.now() + 9_000);
  });

  it('our decorators write the metadata keys @nestjs/cache-manager reads, and its interceptor runs on our module', async () => {
    expect(NestCacheManager.CACHE_KEY_METADATA).toBe(CACHE_KEY_METADATA);
    expect(NestCacheManager.CACHE_TTL_METADATA).toBe(CACHE_TTL_METADATA);
    expect(NestCacheManager.CACHE_MANAGER).toBe(CACHE_MANAGER);
    const { cache, http } = await start({}, [TheirInterceptorController]);
    const t0 = Date.now();
    await http().get('/their-interceptor').expect(200);
    expect((await http().get('/their-interceptor')).headers['x-cache']).toBe('HIT');
    expect(runs['their-interceptor']).toBe(1);
    await expect(cache.get('ours-on-theirs')).resolves.toEqual({ n: 1 });
    expect((await cache.ttl('ours-on-theirs')) as number).toBeGreaterThanOrEqual(t0 + 8_000 - 5);
  });

  it('only GET is cached by default; errors, non-2xx, cookies, null and files are answered but not stored', async () => {
    const { cache, http } = await start();
    await http().post('/items').expect(201);
    await http().post('/items').expect(201);
    expect(runs.create).toBe(2);
    await http().get('/items/missing').expect(404);
    await http().get('/items/missing').expect(404);
    expect(runs.missing).toBe(2);
    await http().get('/items/failing-status').expect(503);
    expect((await http().get('/items/failing-status').expect(503)).headers['x-cache']).toBe('MISS');
    await http().get('/items/cookie').expect(200);
    expect((await http().get('/items/cookie')).headers['x-cache']).toBe('MISS');
    await http().get('/items/null').expect(200);
    await http().get('/items/null').expect(200);
    await http().get('/items/file').expect(200);
    expect(String((await http().get('/items/file').buffer(true).expect(200)).body)).toBe('bytes');
    expect([runs['failing-status'], runs.cookie, runs.null, runs.file]).toEqual([2, 2, 2, 2]);
    await expect(cache.mget(['/items/failing-status', '/items/cookie', '/items/null', '/items/file'])).resolves.toEqual([undefined, undefined, undefined, undefined]);
  });

  it('a request with credentials is not cached (X-Cache: BYPASS), and is not served what anonymous requests cached', async () => {
    const { cache, http } = await start();
    await http().get('/items').expect(200);
    const withAuth = await http().get('/items').set('Authorization', 'Bearer alice').expect(200);
    expect(withAuth.headers['x-cache']).toBe('BYPASS');
    expect(withAuth.body.n).toBe(2);
    const withCookie = await http().get('/items?c=1').set('Cookie', 'sid=1').expect(200);
    expect(withCookie.headers['x-cache']).toBe('BYPASS');
    await expect(cache.get('/items?c=1')).resolves.toBeUndefined();
    expect(runs.list).toBe(3);
  });

  it('credentialBypass: false caches them; a list names the headers that bypass', async () => {
    const off = await start({ credentialBypass: false });
    await off.http().get('/items').set('Authorization', 'Bearer alice').expect(200);
    expect((await off.http().get('/items').set('Authorization', 'Bearer bob')).headers['x-cache']).toBe('HIT');
    await off.app.close();
    apps.splice(apps.indexOf(off.app), 1);
    const some = await start({ credentialBypass: ['x-api-key'] });
    expect((await some.http().get('/items?k=1').set('X-Api-Key', 'k')).headers['x-cache']).toBe('BYPASS');
    await some.http().get('/items?k=1').set('Authorization', 'Bearer alice').expect(200);
    expect((await some.http().get('/items?k=1').set('Authorization', 'Bearer alice')).headers['x-cache']).toBe('HIT');
  });

  it('concurrent identical requests run the handler once; the others are HITs', async () => {
    const { http } = await start();
    resetHeld();
    const calls = Array.from({ length: 5 }, () => http().get('/items/held').then((r) => r));
    await held.entered;
    held.open('once');
    const responses = await Promise.all(calls);
    expect(responses.map((r) => r.body)).toEqual(Array(5).fill({ v: 'once' }));
    expect(runs.held).toBe(1);
    expect(responses.map((r) => r.headers['x-cache']).sort()).toEqual(['HIT', 'HIT', 'HIT', 'HIT', 'MISS']);
  });

  it('a subclass overriding trackBy (per-user keys) and bypassesCache', async () => {
    const { cache, http } = await start({}, [PerUserController], [PerUserInterceptor]);
    const alice = await http().get('/per-user?x=1').set('Authorization', 'alice').expect(200);
    expect(alice.headers['x-cache']).toBe('MISS');
    expect((await http().get('/per-user?x=1').set('Authorization', 'bob')).headers['x-cache']).toBe('MISS');
    const again = await http().get('/per-user?x=1').set('Authorization', 'alice');
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.body).toEqual(alice.body);
    await expect(cache.get('user:alice:/per-user?x=1')).resolves.toEqual(alice.body);
    // No user: trackBy returns undefined, nothing is cached.
    await http().get('/per-user?x=1').expect(200);
    await http().get('/per-user?x=1').expect(200);
    expect(runs['per-user']).toBe(4);
  });

  it('a subclass with its own constructor, allowedMethods, isRequestCacheable and setHeadersWhenHttp', async () => {
    const { app, http } = await start({}, [TunedController], [TunedInterceptor]);
    await http().post('/tuned').expect(201);
    expect((await http().post('/tuned')).headers['x-cache']).toBe('HIT');
    await http().get('/tuned?nocache=1').expect(200);
    await http().get('/tuned?nocache=1').expect(200);
    expect([runs['tuned-post'], runs['tuned-get']]).toEqual([1, 2]);
    const interceptor = await app.resolve(TunedInterceptor);
    expect(interceptor.members()).toEqual([true, true, true]);
  });

  it('registered globally (APP_INTERCEPTOR)', async () => {
    const { http } = await start({}, [GlobalController], [{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }]);
    await http().get('/global').expect(200);
    expect((await http().get('/global')).headers['x-cache']).toBe('HIT');
    expect(runs.global).toBe(1);
  });

  it("a delete on one app instance reaches the other's in-process copy (two apps sharing Redis)", async () => {
    const a = await start();
    const b = await start();
    await b.http().get('/items').expect(200);
    await waitFor("B's L1 serves /items", async () => {
      await b.cache.get('/items');
      return b.cache.tiered.peekLocal('/items') !== undefined;
    });
    expect((await b.http().get('/items')).headers['x-cache']).toBe('HIT');
    await a.cache.del('/items');
    await waitFor("B's L1 lost /items", () => b.cache.tiered.peekLocal('/items') === undefined);
    const after = await b.http().get('/items');
    expect(after.headers['x-cache']).toBe('MISS');
    expect(runs.list).toBe(2);
  });

  it('outside HTTP (a microservice or WebSocket handler): the @CacheKey key, cache-aside', async () => {
    const { cache } = await start();
    class Handlers {
      @CacheKey('rpc-key')
      @CacheTTL(20_000)
      handle(): void {}
      plain(): void {}
    }
    const interceptor = new CacheInterceptor(cache, new Reflector());
    const rpc = (method: 'handle' | 'plain') => {
      const ctx = new ExecutionContextHost([{ data: 1 }, {}], Handlers, Handlers.prototype[method]);
      ctx.setType('rpc');
      return ctx;
    };
    let calls = 0;
    const next = { handle: (): Observable<unknown> => of({ answer: ++calls }) };
    await expect(lastValueFrom(await interceptor.intercept(rpc('handle'), next))).resolves.toEqual({ answer: 1 });
    await waitFor('the answer is stored', async () => (await cache.get('rpc-key')) !== undefined);
    await expect(lastValueFrom(await interceptor.intercept(rpc('handle'), next))).resolves.toEqual({ answer: 1 });
    await expect(lastValueFrom(await interceptor.intercept(rpc('plain'), next))).resolves.toEqual({ answer: 2 });
    expect(calls).toBe(2);
  });
});
