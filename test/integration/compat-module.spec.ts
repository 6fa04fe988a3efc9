import 'reflect-metadata';
import { Inject, Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import * as NestCacheManager from '@nestjs/cache-manager';
import { Keyv } from 'keyv';
import KeyvRedis from '@keyv/redis';
import { Cacheable } from 'cacheable';
import { Cache, CACHE_MANAGER, CacheModule, type CacheModuleOptions, type CacheOptionsFactory } from '../../lib/compat';
import { redisFixture } from '../support/redis-fixture';
import { waitFor } from '../support/wait-for';

/** CacheModule.register / registerAsync as @nestjs/cache-manager users write them, on the tiered engine. */

const quiet = { warn() {}, error() {} };

@Injectable()
class ConfigService {
  readonly ttl = 42_000;
  redisUrl = '';
}

@Module({ providers: [ConfigService], exports: [ConfigService] })
class ConfigModule {}

/** Injects the cache three ways: by @nestjs/cache-manager's token, by ours (the same string), and by class. */
@Injectable()
class Consumer {
  constructor(
    @Inject(NestCacheManager.CACHE_MANAGER) readonly theirToken: Cache,
    @Inject(CACHE_MANAGER) readonly ourToken: Cache,
    readonly byClass: Cache,
  ) {}
}

@Module({ providers: [Consumer], exports: [Consumer] })
class FeatureModule {}

describe('compat CacheModule', () => {
  const fx = redisFixture();
  let app: TestingModule | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function boot(imports: unknown[], providers: unknown[] = []): Promise<TestingModule> {
    app = await Test.createTestingModule({ imports: imports as never[], providers: providers as never[] }).compile();
    await app.init();
    return app;
  }

  it('register() with no options: an in-process cache whose entries do not expire, injectable by either token and by class', async () => {
    const m = await boot([CacheModule.register()], [Consumer]);
    const c = m.get(Consumer);
    expect(c.ourToken).toBeInstanceOf(Cache);
    expect(c.theirToken).toBe(c.ourToken);
    expect(c.byClass).toBe(c.ourToken);
    await c.ourToken.set('k', 'v');
    await expect(c.byClass.get('k')).resolves.toBe('v');
    await expect(c.ourToken.ttl('k')).resolves.toBeUndefined();
    expect(c.ourToken.tiered.l2).toBeUndefined();
  });

  it('register({ ttl, namespace, tiered: { redis } }) connects at init and closes its connections at shutdown', async () => {
    const m = await boot([CacheModule.register({ ttl: 30_000, namespace: 'mod', tiered: { redis: fx.redis.url, logger: quiet } })]);
    const cache = m.get<Cache>(CACHE_MANAGER);
    expect(cache.tiered.l2?.ready).toBe(true);
    await cache.set('k', 'v');
    expect(await fx.raw.exists('mod:k')).toBe(1);
    const pttl = await fx.raw.pttl('mod:k');
    expect(pttl).toBeGreaterThan(29_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    expect(await fx.raw.client('LIST')).toContain('tiered-cache:data');
    await m.close();
    app = undefined;
    await waitFor('the data connection is gone', async () => !String(await fx.raw.client('LIST')).includes('tiered-cache:data'));
  });

  it('isGlobal: a module that does not import CacheModule injects the cache', async () => {
    const m = await boot([CacheModule.register({ isGlobal: true }), FeatureModule]);
    expect(m.get(Consumer).ourToken).toBeInstanceOf(Cache);
  });

  it('without isGlobal the cache stays inside the modules that import CacheModule', async () => {
    await expect(Test.createTestingModule({ imports: [CacheModule.register(), FeatureModule] }).compile()).rejects.toThrow(/CACHE_MANAGER/);
  });

  it('registerAsync({ imports, inject, useFactory })', async () => {
    const m = await boot([
      CacheModule.registerAsync({
        imports: [ConfigModule],
        inject: [ConfigService],
        useFactory: (config: ConfigService) => ({ ttl: config.ttl, tiered: { redis: fx.redis.url, keyPrefix: 'async:', logger: quiet } }),
      }),
    ]);
    const cache = m.get<Cache>(CACHE_MANAGER);
    const t0 = Date.now();
    await cache.set('k', 1);
    expect((await cache.ttl('k')) as number).toBeGreaterThanOrEqual(t0 + 42_000 - 5);
    expect(await fx.raw.exists('async:k')).toBe(1);
  });

  it('registerAsync({ useClass, extraProviders, isGlobal }): the options class injects what extraProviders give it', async () => {
    @Injectable()
    class Options implements CacheOptionsFactory {
      constructor(private readonly config: ConfigService) {}
      createCacheOptions(): CacheModuleOptions {
        return { ttl: this.config.ttl, namespace: 'cls' };
      }
    }
    const m = await boot([CacheModule.registerAsync({ useClass: Options, extraProviders: [ConfigService], isGlobal: true }), FeatureModule]);
    const cache = m.get(Consumer).ourToken;
    expect(cache.tiered.options.keyPrefix).toBe('cls:');
    const t0 = Date.now();
    await cache.set('k', 1);
    expect((await cache.ttl('k')) as number).toBeGreaterThanOrEqual(t0 + 42_000 - 5);
  });

  it('registerAsync({ imports, useExisting }) with an async createCacheOptions', async () => {
    @Injectable()
    class SharedOptions implements CacheOptionsFactory {
      async createCacheOptions(): Promise<CacheModuleOptions> {
        return { namespace: 'existing', refreshThreshold: 5_000 };
      }
    }
    @Module({ providers: [SharedOptions], exports: [SharedOptions] })
    class OptionsModule {}
    const m = await boot([CacheModule.registerAsync({ imports: [OptionsModule], useExisting: SharedOptions })]);
    expect(m.get<Cache>(CACHE_MANAGER).tiered.options.keyPrefix).toBe('existing:');
  });

  it('two registrations in two modules are two caches', async () => {
    @Injectable()
    class A {
      constructor(@Inject(CACHE_MANAGER) readonly cache: Cache) {}
    }
    @Module({ imports: [CacheModule.register({ namespace: 'a' })], providers: [A], exports: [A] })
    class AModule {}
    @Injectable()
    class B {
      constructor(@Inject(CACHE_MANAGER) readonly cache: Cache) {}
    }
    @Module({ imports: [CacheModule.register({ namespace: 'b' })], providers: [B], exports: [B] })
    class BModule {}
    const m = await boot([AModule, BModule]);
    const a = m.get(A).cache;
    const b = m.get(B).cache;
    expect(a).not.toBe(b);
    await a.set('k', 'a');
    await expect(b.get('k')).resolves.toBeUndefined();
  });

  describe('options that cannot work fail at boot, naming the option', () => {
    const fails = (options: unknown) => Test.createTestingModule({ imports: [CacheModule.register(options as CacheModuleOptions)] }).compile();

    it('`stores` (Keyv stores), saying what to use instead', async () => {
      const err = await fails({ stores: [new Keyv(), new Keyv({ store: new Map() })] }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/"stores" = "Keyv, Keyv"/);
      expect((err as Error).message).toMatch(/tiered: \{ redis: 'redis:\/\/host:6379' \}/);
      expect((err as Error).message).toMatch(/tiered: \{ l1: \{ maxEntries \} \}/);
    });

    it('a KeyvRedis store: the error spells out the tiered.redis option for its URL (password hidden)', async () => {
      // Never connected: KeyvRedis connects on first use, and the boot fails before any.
      const store = new KeyvRedis('redis://app:secret@127.0.0.1:1/0');
      await expect(fails({ stores: [new Keyv({ store })] })).rejects.toThrow("(here: `tiered: { redis: 'redis://app:***@127.0.0.1:1/0' }`)");
      // A Cacheable (primary + secondary) as @nestjs/cache-manager accepts it.
      const cacheable = new Cacheable({ primary: new Keyv(), secondary: new KeyvRedis('redis://127.0.0.1:1'), nonBlocking: true });
      await expect(fails({ stores: cacheable })).rejects.toThrow(/"stores" = "Cacheable".*\(here: `tiered: \{ redis: 'redis:\/\/127\.0\.0\.1:1' \}`\)/);
    });

    it('`stores` from registerAsync too, and the v5 `store` option', async () => {
      await expect(Test.createTestingModule({ imports: [CacheModule.registerAsync({ useFactory: async () => ({ stores: new Keyv() }) as never })] }).compile()).rejects.toThrow(
        /"stores" = "Keyv".*tiered\.redis|Keyv stores are not supported/,
      );
      await expect(fails({ store: 'redis' })).rejects.toThrow(/"store"/);
    });

    it('an unknown option, conflicting options, bad values, and engine options only TieredCacheModule acts on', async () => {
      await expect(fails({ max: 100 })).rejects.toThrow(/"max" = 100: not an option of nestjs-tiered-cache\/compat.*under `tiered`/);
      await expect(fails({ ttl: 1_000, tiered: { defaultTtl: '1m' } })).rejects.toThrow(/"ttl" = 1000: give `ttl` or `tiered.defaultTtl`, not both/);
      await expect(fails({ namespace: 'a', tiered: { keyPrefix: 'b:' } })).rejects.toThrow(/"namespace"/);
      await expect(fails({ ttl: -1 })).rejects.toThrow(/"ttl" = -1/);
      await expect(fails({ refreshThreshold: 'soon' })).rejects.toThrow(/"refreshThreshold"/);
      await expect(fails({ nonBlocking: true, tiered: { writeThrough: true } })).rejects.toThrow(/"nonBlocking"/);
      await expect(fails({ credentialBypass: 'yes' })).rejects.toThrow(/"credentialBypass"/);
      await expect(fails({ tiered: { http: { fastPath: true } } })).rejects.toThrow(/"tiered.http"/);
      await expect(fails({ tiered: { invalidationRules: [] } })).rejects.toThrow(/"tiered.invalidationRules"/);
      // The engine's own checks, by the engine's option name.
      await expect(fails({ tiered: { l1: { maxEntries: -5 } } })).rejects.toThrow(/"l1\.maxEntries" = -5/);
    });
  });

  it('nonBlocking: true with Redis is the engine’s write-behind', async () => {
    const m = await boot([CacheModule.register({ nonBlocking: true, namespace: 'nb', tiered: { redis: fx.redis.url, logger: quiet } })]);
    const cache = m.get<Cache>(CACHE_MANAGER);
    expect(cache.tiered.options.writeBehind).toBeDefined();
    await cache.set('k', 'v');
    await cache.tiered.flush();
    expect(await fx.raw.exists('nb:k')).toBe(1);
  });
});
