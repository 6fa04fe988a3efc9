// First: AppModule chooses its database when loaded; this spec runs it in memory.
import '../support/without-database-url';
import { type INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { register } from 'prom-client';
import request from 'supertest';
import { CacheManagerService, TieredCacheModule } from '../../lib';
import { CacheAdminModule } from '../../sample-app/src/cache-admin/cache-admin.module';
import { RedisServer } from '../support/redis-server';

describe('sample app: /health, /metrics, /cache/stats', () => {
  let redis: RedisServer;
  let app: INestApplication;

  beforeAll(async () => {
    redis = await RedisServer.start();
    @Module({
      imports: [TieredCacheModule.forRoot({ isGlobal: true, redis: redis.url, logger: { warn() {}, error() {} } }), CacheAdminModule],
    })
    class AppModule {}
    const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = ref.createNestApplication({ logger: false });
    await app.init();
  });
  afterAll(async () => {
    await app.close();
    register.clear();
    await redis.stop();
  });

  it('serves the three endpoints', async () => {
    const cache = app.get(CacheManagerService);
    await cache.set('p:1', { id: 1 });
    for (let i = 0; i < 3; i++) await cache.get('p:1');
    await cache.get('p:2');

    const stats = await request(app.getHttpServer()).get('/cache/stats').expect(200);
    expect(stats.body).toMatchObject({ l1_hits: 3, l1_misses: 1, l1_hit_rate: 75, l2_hits: 0, l2_misses: 1, l2_hit_rate: 0, overall_hit_rate: 75, l1_size: 1, l2_status: 'ready' });

    const health = await request(app.getHttpServer()).get('/health').expect(200);
    expect(health.body.info.cache).toMatchObject({ status: 'up', l2: { status: 'up', mode: 'standalone' } });
    await request(app.getHttpServer()).get('/health/ready').expect(200);

    const metrics = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(metrics.text).toContain('cache_hits_total{cache="cache:",tier="l1"} 3');
    expect(metrics.text).toContain('process_cpu_user_seconds_total');
  });
});
