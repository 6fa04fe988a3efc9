import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CacheManagerService, TieredCacheHealthIndicator } from '../../lib';
import { bootHealthApp } from '../support/health-app';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

describe('TieredCacheHealthIndicator (Terminus)', () => {
  let redis: RedisServer;
  let app: INestApplication;

  beforeEach(async () => {
    redis = await RedisServer.start();
    app = await bootHealthApp({ redis: { url: redis.url, commandTimeout: 200, connectTimeout: 1000 } });
  });
  afterEach(async () => {
    await app.close();
    await redis.stop();
  });

  it('reports up with L1 and L2 details while Redis answers', async () => {
    const cache = app.get(CacheManagerService);
    await cache.set('a', 1);
    await cache.set('b', 2);

    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.status).toBe('ok');
    const c = res.body.info.cache;
    expect(c.status).toBe('up');
    expect(c.l1).toEqual({ enabled: true, entries: 2, maxEntries: 10_000, utilization: 0.02 });
    expect(c.l2).toMatchObject({ enabled: true, required: false, mode: 'standalone', status: 'up', reachable: true, connection: 'ready' });
    expect(c.l2.pingMs).toEqual(expect.any(Number));
    expect(c.l2.usedMemory).toBeGreaterThan(0);
    expect(c.l2.connectedClients).toBeGreaterThanOrEqual(1);
    expect(c.bus).toEqual({ state: 'subscribed', healthy: true, channel: 'cache:__tc:bus:v1', connection: 'ready', overwrites: 'redis', retryQueue: 0, l1ClearsOnReconnect: 0 });
    expect(c.degraded).toBeUndefined();

    await request(app.getHttpServer()).get('/health/strict').expect(200);
  });

  it('stays up with a degraded L2 when Redis dies, and is down only when L2 is required', async () => {
    await redis.kill();

    // The bus learns of the loss from its own connection's close: poll until it has.
    let c: Record<string, any> = {};
    await waitFor('health shows the bus down', async () => {
      c = (await request(app.getHttpServer()).get('/health').expect(200)).body.info.cache;
      return c.bus.state !== 'subscribed';
    });
    expect(c.status).toBe('up');
    expect(c.l2).toMatchObject({ status: 'degraded', reachable: false });
    expect(c.l2.connection).not.toBe('ready');
    expect(c.bus).toMatchObject({ state: 'down', healthy: false });
    expect(c.bus.connection).not.toBe('ready');
    expect(c.degraded).toEqual([expect.stringMatching(/^L2 unreachable/), 'bus down']);

    const strict = await request(app.getHttpServer()).get('/health/strict').expect(503);
    expect(strict.body.status).toBe('error');
    expect(strict.body.error.cache).toMatchObject({ status: 'down', l2: { status: 'degraded', reachable: false, required: true } });

    // The app keeps serving from L1 meanwhile.
    const cache = app.get(CacheManagerService);
    await cache.set('k', 'v');
    expect(await cache.get('k')).toBe('v');

    // Redis back: the bus re-subscribes (emptying L1, which may have missed changes) and reports it.
    await redis.restart();
    await waitFor(
      'health shows the bus subscribed again',
      async () => (await request(app.getHttpServer()).get('/health').expect(200)).body.info.cache.bus.state === 'subscribed',
      10_000,
    );
    const back = (await request(app.getHttpServer()).get('/health').expect(200)).body.info.cache;
    expect(back.bus).toMatchObject({ state: 'subscribed', healthy: true, connection: 'ready', l1ClearsOnReconnect: 1 });
    expect(back.degraded).toBeUndefined();
  });

  it('answers within its timeout when Redis hangs (SIGSTOP), and recovers when it resumes', async () => {
    redis.pause();
    try {
      const res = await request(app.getHttpServer()).get('/health?timeout=300').expect(200);
      const c = res.body.info.cache;
      expect(c.l2).toMatchObject({ status: 'degraded', reachable: false, connection: 'ready', error: 'no answer within 300ms' });

      const strict = await request(app.getHttpServer()).get('/health/strict?timeout=300').expect(503);
      expect(strict.body.error.cache.l2.error).toBe('no answer within 300ms');
    } finally {
      redis.resume();
    }
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.info.cache.l2).toMatchObject({ status: 'up', reachable: true });
  });

  it('shows registered components and lists what is degraded', async () => {
    const indicator = app.get(TieredCacheHealthIndicator);
    let healthy = true;
    const remove = indicator.registerComponent('search', () => ({ state: healthy ? 'synced' : 'lagging', healthy, index: 'listings' }));

    let res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.info.cache.search).toEqual({ state: 'synced', healthy: true, index: 'listings' });
    expect(res.body.info.cache.bus.state).toBe('subscribed');

    healthy = false;
    res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.info.cache.status).toBe('up');
    expect(res.body.info.cache.degraded).toEqual(['search lagging']);

    remove();
    res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.info.cache.search).toBeUndefined();
    expect(res.body.info.cache.bus.state).toBe('subscribed');
  });

  it('without L1, the bus only publishes and that is healthy', async () => {
    const noL1 = await bootHealthApp({ redis: { url: redis.url, commandTimeout: 200 }, l1: { enabled: false } });
    try {
      const res = await request(noL1.getHttpServer()).get('/health').expect(200);
      expect(res.body.info.cache.bus).toMatchObject({ state: 'publishing' });
      expect(res.body.info.cache.degraded).toBeUndefined();
    } finally {
      await noL1.close();
    }
  });

  it('with the bus off, shows it disabled', async () => {
    const off = await bootHealthApp({ redis: { url: redis.url, commandTimeout: 200 }, bus: false });
    try {
      const res = await request(off.getHttpServer()).get('/health').expect(200);
      expect(res.body.info.cache.bus).toEqual({ state: 'disabled' });
      expect(res.body.info.cache.degraded).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});

describe('TieredCacheHealthIndicator without a reachable Redis at boot', () => {
  it('boots and reports L2 degraded when the Redis host does not answer', async () => {
    // A TEST-NET-1 address (RFC 5737): never routed, so connecting either hangs or fails at once.
    const app = await bootHealthApp({ redis: { url: 'redis://192.0.2.1:6390', connectTimeout: 300, commandTimeout: 100 } });
    try {
      const res = await request(app.getHttpServer()).get('/health?timeout=300').expect(200);
      expect(res.body.info.cache.l2).toMatchObject({ status: 'degraded', reachable: false });
      expect(res.body.info.cache.l2.connection).not.toBe('ready');
      // Never subscribed yet: connecting, and degraded (L1 would miss other instances' changes).
      expect(res.body.info.cache.bus).toMatchObject({ state: 'connecting', healthy: false });
      expect(res.body.info.cache.degraded).toContain('bus connecting');
      await request(app.getHttpServer()).get('/health/strict?timeout=300').expect(503);
    } finally {
      await app.close();
    }
  });

  it('L1-only: up, and down when L2 is required', async () => {
    const app = await bootHealthApp({});
    try {
      const res = await request(app.getHttpServer()).get('/health').expect(200);
      expect(res.body.info.cache.l2).toEqual({ enabled: false, required: false });
      const strict = await request(app.getHttpServer()).get('/health/strict').expect(503);
      expect(strict.body.error.cache.degraded).toEqual(['L2 is not configured']);
    } finally {
      await app.close();
    }
  });
});
