// The @nestjs/cache-manager API (`nestjs-tiered-cache/compat`) in a fresh ESM Nest 12 app, with only the import
// path changed from what a cache-manager user already has.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Controller, Get, Inject, Injectable, Module, Param, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CACHE_MANAGER, CacheInterceptor, CacheKey, CacheModule, CacheTTL, createCache } from 'nestjs-tiered-cache/compat';

function decorateMethod(cls, name, decorators) {
  let desc = Object.getOwnPropertyDescriptor(cls.prototype, name);
  for (const d of decorators) desc = d(cls.prototype, name, desc) ?? desc;
  Object.defineProperty(cls.prototype, name, desc);
}

test('Nest 12 compat: CacheModule.registerAsync, CACHE_MANAGER with cache-manager 7 semantics', async () => {
  class Repo {
    constructor(cache) {
      this.cache = cache;
    }
  }
  Injectable()(Repo);
  Inject(CACHE_MANAGER)(Repo, undefined, 0);
  class AppModule {}
  Module({ imports: [CacheModule.registerAsync({ useFactory: async () => ({ ttl: 60_000, namespace: 'esm' }) })], providers: [Repo] })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  try {
    const { cache } = app.get(Repo);
    assert.deepEqual(await cache.set('k', { a: 1 }), { a: 1 }, 'set resolves the value');
    assert.deepEqual(await cache.get('k'), { a: 1 });
    const expiry = await cache.ttl('k');
    assert.ok(expiry > Date.now() && expiry <= Date.now() + 60_000, 'ttl() is an absolute expiry in epoch ms');
    let runs = 0;
    const values = await Promise.all([1, 2, 3].map(() => cache.wrap('w', async () => ++runs, 1_000)));
    assert.deepEqual(values, [1, 1, 1]);
    const deleted = [];
    cache.on('mdel', ({ keys }) => deleted.push(...keys));
    await cache.mdel(['k', 'w']);
    assert.deepEqual(await cache.mget(['k', 'w']), [undefined, undefined]);
    assert.deepEqual(deleted, ['k', 'w'], 'an mdel event with its keys, as cache-manager emits');
  } finally {
    await app.close();
  }
});

test('Nest 12 compat: CacheInterceptor with @CacheKey and @CacheTTL on Express 12', async () => {
  let runs = 0;
  class StatsController {
    stats() {
      runs++;
      return { runs };
    }
    one(id) {
      runs++;
      return { id, runs };
    }
  }
  Controller('stats')(StatsController);
  UseInterceptors(CacheInterceptor)(StatsController);
  decorateMethod(StatsController, 'stats', [CacheKey('all-stats'), CacheTTL(30_000), Get()]);
  Param('id')(StatsController.prototype, 'one', 0);
  decorateMethod(StatsController, 'one', [Get(':id')]);
  class AppModule {}
  Module({ imports: [CacheModule.register({ isGlobal: true })], controllers: [StatsController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  try {
    const base = await app.getUrl();
    assert.equal((await fetch(`${base}/stats`)).headers.get('x-cache'), 'MISS');
    const second = await fetch(`${base}/stats`);
    assert.equal(second.headers.get('x-cache'), 'HIT');
    assert.deepEqual(await second.json(), { runs: 1 });
    const cache = app.get(CACHE_MANAGER);
    assert.deepEqual(await cache.get('all-stats'), { runs: 1 }, '@CacheKey names the entry');
    await fetch(`${base}/stats/9`);
    assert.deepEqual(await (await fetch(`${base}/stats/9`)).json(), { id: '9', runs: 2 });
    assert.deepEqual(await cache.get('/stats/9'), { id: '9', runs: 2 }, 'without @CacheKey the key is the URL');
  } finally {
    await app.close();
  }
});

test('Nest 12 compat: createCache without Nest', async () => {
  const cache = createCache({ ttl: 1_000 });
  try {
    await cache.mset([{ key: 'a', value: 1 }, { key: 'b', value: 2, ttl: 5_000 }]);
    assert.deepEqual(await cache.mget(['a', 'b', 'c']), [1, 2, undefined]);
    assert.equal(typeof cache.cacheId(), 'string');
  } finally {
    await cache.disconnect();
  }
});
