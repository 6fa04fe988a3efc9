// A fresh CommonJS NestJS 11 app using the package installed from its packed tarball.
require('reflect-metadata');
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { Controller, Get, Injectable, Module, Param, UseInterceptors } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { CacheManagerService, Cacheable, TieredCacheInterceptor, TieredCacheModule } = require('nestjs-tiered-cache');

/** Applies decorators the way TypeScript's emitted code does (this file is plain JavaScript). */
function decorateMethod(cls, name, decorators) {
  let desc = Object.getOwnPropertyDescriptor(cls.prototype, name);
  for (const d of decorators) desc = d(cls.prototype, name, desc) ?? desc;
  Object.defineProperty(cls.prototype, name, desc);
}

test('Nest 11: the installed package is the packed one, with its entry points and nothing deeper', () => {
  const installed = join(__dirname, 'node_modules', 'nestjs-tiered-cache');
  const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  assert.equal(require('nestjs-tiered-cache/package.json').version, pkg.version);
  assert.equal(JSON.parse(readFileSync(join(__dirname, 'node_modules', '@nestjs', 'core', 'package.json'), 'utf8')).version.split('.')[0], '11');
  assert.equal(typeof require('nestjs-tiered-cache/core').TieredCache, 'function');
  assert.throws(() => require('nestjs-tiered-cache/dist/core/tiered-cache'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
  // The tarball ships its license, and source maps whose sources are embedded (the .ts files are not shipped).
  assert.match(readFileSync(join(installed, 'LICENSE'), 'utf8'), /MIT License/);
  const map = JSON.parse(readFileSync(join(installed, 'dist', 'core', 'tiered-cache.js.map'), 'utf8'));
  assert.equal(map.sources.length, map.sourcesContent.length);
  assert.match(map.sourcesContent[0], /class TieredCache/);
});

test('Nest 11: TieredCacheModule boots and CacheManagerService works (L1-only)', async () => {
  class AppModule {}
  Module({ imports: [TieredCacheModule.forRoot({ keyPrefix: 'compat11:' })] })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const cache = app.get(CacheManagerService);
  await cache.set('k', { when: new Date(0) });
  assert.deepEqual(await cache.get('k'), { when: new Date(0) });
  let runs = 0;
  const results = await Promise.all([1, 2, 3].map(() => cache.getOrSet('f', async () => ++runs)));
  assert.deepEqual(results, [1, 1, 1]);
  await app.close();
});

test('Nest 11: invalid options fail at boot naming the option', async () => {
  class BadModule {}
  Module({ imports: [TieredCacheModule.forRoot({ l1: { maxEntries: -1 } })] })(BadModule);
  await assert.rejects(NestFactory.createApplicationContext(BadModule, { logger: false, abortOnError: false }), /l1\.maxEntries/);
});

test('Nest 11: @Cacheable on a provider method runs it once; a cached route answers HIT', async () => {
  let runs = 0;
  class PropertyService {
    async findById(id) {
      runs++;
      return { id, loadedAt: runs };
    }
  }
  Injectable()(PropertyService);
  decorateMethod(PropertyService, 'findById', [Cacheable({ key: 'property:{id}', ttl: '1m' })]);
  let routeRuns = 0;
  class PropertiesController {
    findOne(id) {
      routeRuns++;
      return { id, routeRuns };
    }
  }
  Controller('properties')(PropertiesController);
  UseInterceptors(TieredCacheInterceptor)(PropertiesController);
  Param('id')(PropertiesController.prototype, 'findOne', 0);
  decorateMethod(PropertiesController, 'findOne', [Cacheable({ keyPrefix: 'http:property', ttl: '1m' }), Get(':id')]);
  class AppModule {}
  Module({ imports: [TieredCacheModule.forRoot({})], providers: [PropertyService], controllers: [PropertiesController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  try {
    const svc = app.get(PropertyService);
    const results = await Promise.all(Array.from({ length: 20 }, () => svc.findById('7')));
    assert.equal(runs, 1);
    assert.deepEqual(results[19], { id: '7', loadedAt: 1 });
    const base = await app.getUrl();
    const first = await fetch(`${base}/properties/3`);
    assert.equal(first.headers.get('x-cache'), 'MISS');
    const second = await fetch(`${base}/properties/3`);
    assert.equal(second.headers.get('x-cache'), 'HIT');
    assert.deepEqual(await second.json(), { id: '3', routeRuns: 1 });
  } finally {
    await app.close();
  }
});
