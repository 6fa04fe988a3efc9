'use strict';
// @Cacheable provider-method hit vs CacheManagerService.get, both L1 hits, in one Nest app.
// Interleaved rounds, median ops/s of each; target: the decorator reaches >= 80% of get.
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TieredCacheModule, CacheManagerService, Cacheable } = require('../dist');

const ROUNDS = Number(process.env.BENCH_ROUNDS || 15);
const OPS = Number(process.env.BENCH_OPS || 200_000);

class PropertyService {
  async findById(id) {
    return { id, name: 'property ' + id };
  }
  async search(tenant, filter) {
    return [{ tenant, filter }];
  }
}
for (const name of ['findById', 'search']) {
  const d = Object.getOwnPropertyDescriptor(PropertyService.prototype, name);
  Cacheable({ ttl: '1h' })(PropertyService.prototype, name, d);
  Object.defineProperty(PropertyService.prototype, name, d);
}
Injectable()(PropertyService);

async function main() {
  const redis = process.env.REDIS_URL;
  class AppModule {}
  Module({ imports: [TieredCacheModule.forRoot({ redis, logger: { warn() {}, error() {} } })], providers: [PropertyService] })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const cache = app.get(CacheManagerService);
  const svc = app.get(PropertyService);
  await cache.set('property:42', { id: 42, name: 'property 42' });
  await svc.findById(42); // miss: fills L1 (and L2)
  await svc.findById(42);
  if (cache.stats().l1.hits < 1) throw new Error('decorator path is not hitting L1');

  async function viaGet(n) {
    for (let i = 0; i < n; i++) await cache.get('property:42');
  }
  async function viaDecorator(n) {
    for (let i = 0; i < n; i++) await svc.findById(42);
  }
  // Two arguments, one an object: the default key encodes the object canonically (no memo), as for a search method.
  async function viaDigest(n) {
    for (let i = 0; i < n; i++) await svc.search('tenant-1', { city: 'Austin', beds: 3 });
  }
  async function rate(fn) {
    const t0 = process.hrtime.bigint();
    await fn(OPS);
    return OPS / (Number(process.hrtime.bigint() - t0) / 1e9);
  }
  await viaGet(OPS);
  await viaDecorator(OPS);
  await viaDigest(OPS);
  const get = [];
  const dec = [];
  const dig = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (global.gc) global.gc();
    if (r % 2 === 0) {
      get.push(await rate(viaGet));
      dec.push(await rate(viaDecorator));
      dig.push(await rate(viaDigest));
    } else {
      dig.push(await rate(viaDigest));
      dec.push(await rate(viaDecorator));
      get.push(await rate(viaGet));
    }
  }
  await app.close();
  const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const g = med(get);
  const d = med(dec);
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  const ratio = d / g;
  console.log('### Decorators (L1 hit, median of ' + ROUNDS + ' interleaved rounds × ' + OPS.toLocaleString('en-US') + ' calls)\n');
  console.log('| path | ops/s | ratio to `CacheManagerService.get` | target |');
  console.log('|---|---:|---:|---:|');
  console.log(`| \`CacheManagerService.get\` (L1 hit) | ${fmt(g)} | 1.00 | reference |`);
  console.log(`| \`@Cacheable\` service method, one id (L1 hit) | ${fmt(d)} | ${ratio.toFixed(2)} | ≥ 0.80 ${ratio >= 0.8 ? '✓' : '✗'} |`);
  const k = med(dig);
  console.log(`| \`@Cacheable\` service method, string + object args, canonical-content key (L1 hit) | ${fmt(k)} | ${(k / g).toFixed(2)} | (info) |`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
