import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheManagerService, TIERED_CACHE, TieredCache, TieredCacheModule, tieredCacheOptionsFromEnv } from '../../lib';
import { RedisServer, freePort } from '../support/redis-server';

const quiet = { warn() {}, error() {} };

@Injectable()
class ConfigService {
  get(name: string): string | undefined {
    return { CACHE_KEY_PREFIX: 'cfg:', CACHE_L1_TTL: '30' }[name];
  }
}

@Module({ providers: [ConfigService], exports: [ConfigService] })
class ConfigModule {}

describe('TieredCacheModule', () => {
  let redis: RedisServer;
  let raw: Redis;
  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  it('zero configuration: forRoot() gives an L1-only CacheManagerService', async () => {
    const mod = await Test.createTestingModule({ imports: [TieredCacheModule.forRoot({})] }).compile();
    const app = await mod.init();
    const cache = app.get(CacheManagerService);
    await cache.set('k', 1);
    expect(await cache.get('k')).toBe(1);
    expect(cache.stats().l2.enabled).toBe(false);
    expect(app.get(TIERED_CACHE)).toBeInstanceOf(TieredCache);
    await app.close();
  });

  it('forRoot with a Redis URL uses L2 and connects on init', async () => {
    const app = await (await Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ redis: redis.url, keyPrefix: 'mod:', logger: quiet })] }).compile()).init();
    const cache = app.get(CacheManagerService);
    expect(cache.engine.l2!.ready).toBe(true);
    await cache.set('k', 'v');
    expect(await raw.get('mod:k')).toContain('v');
    expect(await raw.client('LIST')).toContain('tiered-cache:data');
    await app.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(await raw.client('LIST')).not.toContain('tiered-cache:data');
  });

  it('forRootAsync with imports/inject/useFactory and the env helper', async () => {
    const app = await (
      await Test.createTestingModule({
        imports: [
          TieredCacheModule.forRootAsync({
            imports: [ConfigModule],
            inject: [ConfigService],
            useFactory: (config: ConfigService) => ({
              ...tieredCacheOptionsFromEnv({ REDIS_URL: redis.url, CACHE_KEY_PREFIX: config.get('CACHE_KEY_PREFIX'), CACHE_L1_TTL: config.get('CACHE_L1_TTL') }),
              logger: quiet,
            }),
            isGlobal: true,
          }),
        ],
      }).compile()
    ).init();
    const cache = app.get(CacheManagerService);
    expect(cache.engine.options.keyPrefix).toBe('cfg:');
    expect(cache.engine.options.l1.ttl).toBe(30_000);
    await cache.set('x', 1);
    expect(await raw.exists('cfg:x')).toBe(1);
    await app.close();
  });

  it('invalid options fail at boot with a message naming the option and value', async () => {
    await expect(Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ l1: { maxEntries: -5 } })] }).compile()).rejects.toThrow(
      /"l1\.maxEntries" = -5/,
    );
    await expect(
      Test.createTestingModule({ imports: [TieredCacheModule.forRootAsync({ useFactory: () => ({ redis: 'localhost:6379' }) })] }).compile(),
    ).rejects.toThrow(/"redis\.url"/);
  });

  it('boots with Redis down (connect bounded) and keeps serving from L1', async () => {
    const app = await (
      await Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ redis: { url: `redis://127.0.0.1:${await freePort()}`, connectTimeout: 200 }, logger: quiet })] }).compile()
    ).init();
    const cache = app.get(CacheManagerService);
    await cache.set('k', 1);
    expect(await cache.getOrSet('k', () => 2)).toBe(1);
    await app.close();
  });

  it('flushes the write-behind queue on application shutdown', async () => {
    const app = await (
      await Test.createTestingModule({
        imports: [TieredCacheModule.forRoot({ redis: redis.url, keyPrefix: 'wbmod:', writeBehind: { flushInterval: '1h' }, logger: quiet })],
      }).compile()
    ).init();
    const cache = app.get(CacheManagerService);
    await cache.mset(Array.from({ length: 50 }, (_, i) => [`k${i}`, i] as const));
    expect(await raw.exists('wbmod:k0')).toBe(0);
    await app.close();
    expect(await raw.exists(...Array.from({ length: 50 }, (_, i) => `wbmod:k${i}`))).toBe(50);
  });
});
