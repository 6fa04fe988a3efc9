import { Registry } from 'prom-client';
import { attachCacheMetrics, TieredCache, TieredCacheHealthIndicator } from '../../lib';
import { promtool } from '../support/promtool';
import { RedisServer } from '../support/redis-server';

/** hitRateTarget per tier: judged over windows of lookups after a warm-up, reported by stats, health and a metric. */

const quiet = { warn() {}, error() {} };

describe('hit-rate targets', () => {
  let redis: RedisServer;
  const caches: TieredCache[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  async function cache(options: ConstructorParameters<typeof TieredCache>[0]): Promise<TieredCache> {
    const c = new TieredCache({ logger: quiet, ...options });
    caches.push(c);
    await c.connect();
    return c;
  }

  it('not judged during the warm-up; a window below the target reports degraded, the next one above it clears it', async () => {
    const c = await cache({ keyPrefix: 'hr1:', l1: { hitRateTarget: { ratio: 0.8, window: 10 } } });
    const health = new TieredCacheHealthIndicator(c);
    for (let i = 0; i < 9; i++) await c.get(`absent-${i}`);
    // 9 lookups, all misses: still the warm-up.
    expect(c.stats().tiers.l1.target).toEqual({ ratio: 0.8, window: 10, windowRatio: null, met: null });
    expect((await health.details()).degraded).toBeUndefined();

    await c.get('absent-9');
    await c.set('k', 1);
    expect((await health.details()).hitRateTargets).toEqual({ l1: { ratio: 0.8, window: 10, windowRatio: 0, met: false } });
    expect((await health.details()).degraded).toEqual(['tier l1 hit ratio 0 % over its last 10+ lookups, below its target 80 %']);

    // Nine hits and one miss since that judgement: 90 %.
    for (let i = 0; i < 9; i++) expect(await c.get('k')).toBe(1);
    await c.get('absent-10');
    const details = await health.details();
    expect(details.hitRateTargets?.l1).toEqual({ ratio: 0.8, window: 10, windowRatio: 0.9, met: true });
    expect(details.degraded).toBeUndefined();
    // Fewer than `window` lookups since: the verdict stands.
    await c.get('absent-11');
    expect(c.stats().tiers.l1.target?.met).toBe(true);
  });

  it('each tier is judged on its own lookups: L1 meets its target while L2 misses its own', async () => {
    const c = await cache({
      keyPrefix: 'hr2:',
      redis: redis.url,
      l1: { hitRateTarget: 0.5 },
      l2: { hitRateTarget: { ratio: 0.7, window: 5 } },
    });
    // L2 sees only L1's misses: 5 absent keys, all missing in Redis too.
    for (let i = 0; i < 5; i++) await c.get(`absent-${i}`);
    const t = c.stats().tiers;
    expect(t.l1.target).toMatchObject({ ratio: 0.5, window: 1000, met: null });
    expect(t.l2.target).toMatchObject({ windowRatio: 0, met: false });
    const details = await new TieredCacheHealthIndicator(c).details();
    expect(details.degraded).toEqual([expect.stringMatching(/^tier l2 hit ratio 0 % .* below its target 70 %$/)]);
    // No target: no verdict.
    const plain = await cache({ keyPrefix: 'hr3:', redis: redis.url });
    expect(plain.stats().tiers.l1.target).toBeUndefined();
    expect((await new TieredCacheHealthIndicator(plain).details()).hitRateTargets).toBeUndefined();
  });

  it('a tier named in `tiers` carries its target under its name; cache_hit_rate_target_met reports it and promtool accepts the output', async () => {
    const c = await cache({
      keyPrefix: 'hr4:',
      tiers: [
        { name: 'near', type: 'memory', hitRateTarget: { ratio: 0.5, window: 4 } },
        { name: 'shared', type: 'redis', redis: redis.url, hitRateTarget: { ratio: 0.5, window: 1_000 } },
      ],
    });
    const registry = new Registry();
    const detach = attachCacheMetrics(c, { registry, name: 'named' });
    try {
      await c.set('k', 1);
      for (let i = 0; i < 4; i++) await c.get('k');
      const text = await registry.metrics();
      expect(text).toContain('cache_hit_rate_target_met{cache="named",tier="near"} 1');
      // The targets themselves, for dashboards; 'shared' is still warming up: no verdict yet.
      expect(text).toContain('cache_hit_rate_target_ratio{cache="named",tier="near"} 0.5');
      expect(text).toContain('cache_hit_rate_target_ratio{cache="named",tier="shared"} 0.5');
      expect(text).not.toMatch(/cache_hit_rate_target_met\{[^}]*tier="shared"/);
      expect(promtool(text).status).toBe(0);
    } finally {
      detach?.();
    }
  });

  it.each([
    [{ l1: { hitRateTarget: 1.5 } }, 'l1.hitRateTarget'],
    [{ l1: { hitRateTarget: { ratio: 0 } } }, 'l1.hitRateTarget.ratio'],
    [{ l1: { hitRateTarget: { ratio: 0.8, window: 0 } } }, 'l1.hitRateTarget.window'],
    [{ tiers: [{ name: 'm', type: 'memory' as const }, { name: 'r', type: 'redis' as const, redis: 'redis://127.0.0.1:1', hitRateTarget: '85%' as unknown as number }] }, 'tiers[1].hitRateTarget'],
  ])('a bad target fails at boot naming the option (%#)', (options, option) => {
    expect(() => new TieredCache({ logger: quiet, ...options })).toThrow(expect.objectContaining({ name: 'TieredCacheOptionsError', option }));
  });
});
