import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { bootHealthApp } from '../support/health-app';
import { RedisSentinelGroup } from '../support/redis-server';
import { waitFor } from '../support/wait-for';
import { heardMarker, warm } from '../support/l1-helpers';

/**
 * The cache against a real Sentinel setup (master, replica, one Sentinel), started by the harness: the
 * connection found through Sentinel, and a failover after the master is killed.
 */

const quiet = { warn() {}, error() {} };
const COMMAND_TIMEOUT = 300;

describe('Redis Sentinel', () => {
  let group: RedisSentinelGroup;
  const open: TieredCache[] = [];

  function sentinelRedis() {
    return { mode: 'sentinel' as const, sentinels: group.sentinels, name: group.name, commandTimeout: COMMAND_TIMEOUT, connectTimeout: 3_000 };
  }

  async function cache(opts: Partial<TieredCacheOptions>): Promise<TieredCache> {
    const c = new TieredCache({ redis: sentinelRedis(), logger: quiet, ...opts });
    open.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** B has applied every announcement Redis made before now (a marker published afterwards reaches B after them). */
  async function heard(b: TieredCache, masterPort: number): Promise<void> {
    const pub = new Redis(masterPort, '127.0.0.1');
    try {
      await heardMarker(pub, 'fo:__tc:bus:v1', b);
    } finally {
      pub.disconnect();
    }
  }

  beforeAll(async () => {
    group = await RedisSentinelGroup.start();
  }, 60_000);
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await group?.stop();
  });

  it('finds the master through Sentinel: reads and writes land on it; health reports mode sentinel', async () => {
    const c = await cache({ keyPrefix: 's1:', bus: false });
    expect(c.l2!.mode).toBe('sentinel');
    await c.set('k', { n: 1 });
    expect(await c.mset({ a: 1, b: 2 })).toBe(2);
    await c.set('t', 3, { tags: ['grp'] });
    c.l1!.clear();
    expect(await c.get('k')).toEqual({ n: 1 });
    expect(await c.mget(['a', 'b', 'missing'])).toEqual([1, 2, undefined]);
    expect(await c.invalidateTags('grp')).toBe(1);
    expect(await c.invalidatePattern('a*')).toBe(1);

    const master = new Redis(group.master.port, '127.0.0.1');
    try {
      expect(await master.exists('s1:k', 's1:b')).toBe(2);
      expect(await master.exists('s1:a', 's1:t')).toBe(0);
    } finally {
      master.disconnect();
    }

    let app: INestApplication | undefined;
    try {
      app = await bootHealthApp({ redis: sentinelRedis(), keyPrefix: 'h:' });
      const res = await request(app.getHttpServer()).get('/health/strict').expect(200);
      expect(res.body.info.cache.l2).toMatchObject({ mode: 'sentinel', status: 'up', reachable: true, connection: 'ready' });
      expect(res.body.info.cache.bus).toMatchObject({ state: 'subscribed', overwrites: 'redis' });
    } finally {
      await app?.close();
    }
  });

  // Last: it kills the master of this block's group.
  it('the master dies: no call throws or waits past its deadline; after the failover both instances use the promoted replica, and overwrites reach L1 again', async () => {
    const a = await cache({ keyPrefix: 'fo:' });
    const b = await cache({ keyPrefix: 'fo:' });
    await a.set('k', 'v1');
    await heard(b, group.master.port);
    await warm(b, 'k', 'v1');

    const failover = group.failover();
    let done = false;
    void failover.finally(() => (done = true));
    let calls = 0;
    let slowest = 0;
    while (!done) {
      for (const c of [a, b]) {
        const t0 = Date.now();
        await c.get('k'); // resolves (a value or a miss), never rejects
        await c.set('other', calls);
        slowest = Math.max(slowest, Date.now() - t0);
        calls += 2;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await failover;
    expect(calls).toBeGreaterThan(0);
    // Two calls, each bounded by the deadline plus a sweep period; generous for a loaded machine.
    expect(slowest).toBeLessThan(2 * (COMMAND_TIMEOUT + 100) + 1_000);

    // Both reconnect through Sentinel to the promoted replica; B's bus was cut off, so its L1 was emptied.
    const state = () =>
      JSON.stringify([a, b].map((c) => ({ l2: c.l2!.status, bus: c.bus!.state, subscribed: c.bus!.subscribed, overwrites: c.stats().bus.overwrites })));
    await waitFor('both caches write to the new master again', async () => {
      await a.set('probe', 1);
      await b.set('probe', 2);
      return a.l2!.ready && b.l2!.ready && b.bus!.subscribed === true && b.stats().bus.overwrites === 'redis' && a.stats().bus.overwrites === 'redis';
    }, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}; state: ${state()}`);
    });
    expect(b.stats().bus.l1ClearsOnReconnect).toBeGreaterThanOrEqual(1);

    await a.set('k', 'v2');
    const promoted = new Redis(group.replica.port, '127.0.0.1');
    try {
      expect(await promoted.get('fo:k')).toContain('v2');
    } finally {
      promoted.disconnect();
    }
    await heard(b, group.replica.port);
    await warm(b, 'k', 'v2');
    await a.set('k', 'v3');
    await waitFor('B drops k: Redis tracking on the new master announced the overwrite', () => !b.l1!.has('k'));
    expect(await b.get('k')).toBe('v3');
  });
});
