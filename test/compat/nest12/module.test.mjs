// An ESM NestJS 12 app loading the CommonJS build of nestjs-tiered-cache.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CacheManagerService, TieredCacheModule } from 'nestjs-tiered-cache';

test('Nest 12: TieredCacheModule boots and CacheManagerService works (L1-only)', async () => {
  const nestMajor = JSON.parse((await import('node:fs')).readFileSync(new URL('./node_modules/@nestjs/core/package.json', import.meta.url), 'utf8')).version.split('.')[0];
  assert.equal(nestMajor, '12');
  class AppModule {}
  Module({ imports: [TieredCacheModule.forRoot({ keyPrefix: 'compat:' })] })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const cache = app.get(CacheManagerService);
  await cache.set('k', { when: new Date(0) });
  assert.deepEqual(await cache.get('k'), { when: new Date(0) });
  let runs = 0;
  const results = await Promise.all([1, 2, 3].map(() => cache.getOrSet('f', async () => ++runs)));
  assert.deepEqual(results, [1, 1, 1]);
  await app.close();
});

test('Nest 12: invalid options fail at boot naming the option', async () => {
  class BadModule {}
  Module({ imports: [TieredCacheModule.forRoot({ l1: { maxEntries: -1 } })] })(BadModule);
  await assert.rejects(NestFactory.createApplicationContext(BadModule, { logger: false, abortOnError: false }), /l1\.maxEntries/);
});

test('Nest 12: @Cacheable on a provider method runs the method once', async () => {
  const { Injectable } = await import('@nestjs/common');
  const { Cacheable } = await import('nestjs-tiered-cache');
  let runs = 0;
  class PropertyService {
    async findById(id) {
      runs++;
      return { id, loadedAt: runs };
    }
  }
  Injectable()(PropertyService);
  const desc = Object.getOwnPropertyDescriptor(PropertyService.prototype, 'findById');
  Object.defineProperty(PropertyService.prototype, 'findById', Cacheable({ key: 'property:{id}', ttl: '1m' })(PropertyService.prototype, 'findById', desc) ?? desc);
  class AppModule {}
  Module({ imports: [TieredCacheModule.forRoot({})], providers: [PropertyService] })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const svc = app.get(PropertyService);
  const results = await Promise.all(Array.from({ length: 20 }, () => svc.findById('7')));
  assert.equal(runs, 1);
  assert.deepEqual(results[19], { id: '7', loadedAt: 1 });
  assert.deepEqual(await svc.findById('8'), { id: '8', loadedAt: 2 });
  assert.equal(await app.get(CacheManagerService).has('property:7'), true);
  await app.close();
});

test('Nest 12: TieredCacheHealthIndicator with Terminus 12', async () => {
  const { Controller } = await import('@nestjs/common');
  const { TerminusModule, HealthCheckService } = await import('@nestjs/terminus');
  const { TieredCacheHealthIndicator } = await import('nestjs-tiered-cache');
  class AppModule {}
  Module({ imports: [TerminusModule, TieredCacheModule.forRoot({})] })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const health = app.get(HealthCheckService);
  const indicator = app.get(TieredCacheHealthIndicator);
  const result = await health.check([() => indicator.isHealthy('cache')]);
  assert.equal(result.status, 'ok');
  assert.equal(result.details.cache.status, 'up');
  assert.equal(result.details.cache.l1.enabled, true);
  await assert.rejects(health.check([() => indicator.isHealthy('cache', { requireL2: true })]));
  await app.close();
  void Controller;
});

test('Nest 12 + Express: a @Cacheable controller route is cached, and http.fastPath answers its L1 hits', async () => {
  const { Controller, Get, Param, UseInterceptors } = await import('@nestjs/common');
  const { Cacheable, TieredCacheInterceptor, HttpFastPath } = await import('nestjs-tiered-cache');
  let runs = 0;
  class PropertiesController {
    findOne(id) {
      runs++;
      return { id, runs };
    }
  }
  // The decorators as TypeScript would apply them (this file is plain ESM).
  Controller('properties')(PropertiesController);
  UseInterceptors(TieredCacheInterceptor)(PropertiesController);
  Param('id')(PropertiesController.prototype, 'findOne', 0);
  let desc = Object.getOwnPropertyDescriptor(PropertiesController.prototype, 'findOne');
  for (const d of [Cacheable({ keyPrefix: 'http:property', ttl: '1m' }), Get(':id')]) desc = d(PropertiesController.prototype, 'findOne', desc) ?? desc;
  Object.defineProperty(PropertiesController.prototype, 'findOne', desc);
  class AppModule {}
  Module({ imports: [TieredCacheModule.forRoot({ keyPrefix: 'compat-http:', http: { fastPath: true } })], controllers: [PropertiesController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  try {
    const base = await app.getUrl();
    const first = await fetch(`${base}/properties/7`);
    assert.equal(first.headers.get('x-cache'), 'MISS');
    assert.deepEqual(await first.json(), { id: '7', runs: 1 });
    const second = await fetch(`${base}/properties/7`);
    assert.equal(second.headers.get('x-cache'), 'HIT');
    assert.deepEqual(await second.json(), { id: '7', runs: 1 });
    assert.equal(runs, 1);
    assert.deepEqual(app.get(HttpFastPath).stats(), { active: true, hits: 1, urls: 1 });
  } finally {
    await app.close();
  }
});
