import { Redis } from 'ioredis';
import type { TieredCache } from '../../lib';
import type { EngineProcess } from './engine-process';
import { RedisServer } from './redis-server';
import type { TcpProxy } from './tcp-proxy';

export interface RedisFixture {
  readonly redis: RedisServer;
  /** A plain client, to look at what Redis holds. */
  readonly raw: Redis;
  /** What a test starts here is closed after it. */
  readonly caches: TieredCache[];
  readonly procs: EngineProcess[];
  readonly proxies: TcpProxy[];
}

/** One redis-server for the describe block it is called in; every cache, process and proxy a test leaves is closed after it. */
export function redisFixture(): RedisFixture {
  let redis: RedisServer | undefined;
  let raw: Redis | undefined;
  const caches: TieredCache[] = [];
  const procs: EngineProcess[] = [];
  const proxies: TcpProxy[] = [];
  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await Promise.all(procs.splice(0).map((p) => p.stop()));
    await Promise.all(proxies.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    raw?.disconnect();
    await redis?.stop();
  });
  return {
    get redis() {
      return redis as RedisServer;
    },
    get raw() {
      return raw as Redis;
    },
    caches,
    procs,
    proxies,
  };
}
