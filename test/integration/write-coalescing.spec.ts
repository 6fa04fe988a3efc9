import { TieredCache } from '../../lib';
import { RedisServer } from '../support/redis-server';

const quiet = { warn() {}, error() {} };

/**
 * Commands issued in one tick leave in one socket write (the socket is corked until the next tick). That
 * must not change what any caller sees: replies stay matched to their commands, in order.
 */
describe('L2 write coalescing', () => {
  let redis: RedisServer;
  const caches: TieredCache[] = [];
  beforeAll(async () => (redis = await RedisServer.start()));
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(() => redis.stop());

  const open = async (extra: Record<string, unknown> = {}) => {
    const c = new TieredCache({ redis: redis.url, keyPrefix: 'wc:', bus: false, logger: quiet, ...extra });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  };

  it('keeps every reply with its own command when many calls share one write', async () => {
    const writer = await open({ l1: { enabled: false } });
    const values = Array.from({ length: 500 }, (_, i) => ({ i, body: 'x'.repeat(i % 50) }));
    // All 500 sets in one tick, then all reads in one tick.
    await Promise.all(values.map((v) => writer.set(`k${v.i}`, v)));
    const reader = await open({ l1: { enabled: false } });
    const got = await Promise.all(values.map((v) => reader.get(`k${v.i}`)));
    expect(got).toEqual(values);
    expect(reader.stats().l2.hits).toBe(500);
  });

  it('applies same-tick writes and reads of one key in call order', async () => {
    const c = await open({ l1: { enabled: false } });
    const [, first, , second, removed, third] = await Promise.all([
      c.set('order', 1),
      c.get('order'),
      c.set('order', 2),
      c.get('order'),
      c.delete('order'),
      c.get('order'),
    ]);
    expect([first, second, removed, third]).toEqual([1, 2, 1, undefined]);
  });

  it('promotes with the remaining TTL when GET and PTTL share a write', async () => {
    const writer = await open({ l1: { enabled: false } });
    await writer.set('p', 'v', { ttl: 60_000 });
    const c = await open();
    expect(await Promise.all([c.get('p'), c.get('p')])).toEqual(['v', 'v']);
    expect(c.stats().l2.promotions).toBeGreaterThanOrEqual(1);
    const remaining = c.l1!.remainingTtl('p');
    expect(remaining).toBeGreaterThan(0);
    expect(remaining!).toBeLessThanOrEqual(60_000);
  });

  it('a batch cut off by a dying server fails soft and the next batch goes through after a restart', async () => {
    const c = await open({ l1: { enabled: false } });
    await c.set('before', 'ok');
    const inFlight = Promise.all(Array.from({ length: 200 }, (_, i) => c.get(i % 2 ? 'before' : `none${i}`)));
    await redis.kill();
    const results = await inFlight;
    expect(results.every((r) => r === undefined || r === 'ok')).toBe(true);
    await redis.restart();
    const end = Date.now() + 8000;
    while (!c.l2!.ready && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    expect(await c.set('after', 'ok')).toBe(true);
    expect(await Promise.all([c.get('after'), c.get('after')])).toEqual(['ok', 'ok']);
  });
});
