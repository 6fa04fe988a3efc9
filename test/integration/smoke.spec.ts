import { TieredCache } from '../../lib';
import { RedisServer } from '../support/redis-server';

describe('smoke', () => {
  let redis: RedisServer;
  beforeAll(async () => (redis = await RedisServer.start()));
  afterAll(() => redis.stop());

  it('round-trips through L2', async () => {
    const a = new TieredCache({ redis: redis.url, logger: { warn() {}, error() {} } });
    await a.connect();
    await a.set('k', { d: new Date(5), m: new Map([[1, 2n]]) });
    const b = new TieredCache({ redis: redis.url });
    await b.connect();
    expect(await b.get('k')).toEqual({ d: new Date(5), m: new Map([[1, 2n]]) });
    expect(b.stats().l2.hits).toBe(1);
    await a.close();
    await b.close();
  });
});
