import { ConsoleLogger, Logger, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheManagerService, TieredCache, TieredCacheModule, type TieredCacheOptions } from '../../lib';
import { PostgresServer } from '../support/postgres-server';
import { RedisSentinelGroup, RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * The cache's messages: through Nest's Logger (context `TieredCache`) in the Nest module unless the options give
 * a logger; every Redis or database error is one of ours, naming the tier and the operation, rate-limited; and
 * nothing of ioredis' own reaches the console, even when a server dies under the cache.
 */

interface Line {
  level: string;
  message: string;
  context: string | undefined;
}

/** A Nest LoggerService that keeps what it is given. */
class CapturingLogger implements LoggerService {
  readonly lines: Line[] = [];
  private push(level: string, message: unknown, params: unknown[]): void {
    const context = params.length > 0 && typeof params[params.length - 1] === 'string' ? (params[params.length - 1] as string) : undefined;
    this.lines.push({ level, message: String(message), context });
  }
  log(message: unknown, ...params: unknown[]): void {
    this.push('log', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.push('warn', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.push('error', message, params);
  }
  ours(): Line[] {
    return this.lines.filter((l) => l.context === 'TieredCache');
  }
  matching(re: RegExp): Line[] {
    return this.ours().filter((l) => re.test(l.message));
  }
}

/** Everything written to the console or stderr while it is installed (what ioredis prints goes there). */
function captureConsole(): { printed: string[]; restore(): void } {
  const printed: string[] = [];
  const spies = [
    jest.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(' '))),
    jest.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(' '))),
    jest.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(' '))),
  ];
  const write = process.stderr.write.bind(process.stderr);
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
    printed.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write);
  return {
    printed,
    restore: () => {
      for (const s of spies) s.mockRestore();
      stderr.mockRestore();
    },
  };
}

describe('logging', () => {
  let redis: RedisServer;
  let raw: Redis;
  let n = 0;
  const apps: Array<{ close(): Promise<void> }> = [];
  const caches: TieredCache[] = [];
  const clients: Redis[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  async function cleanup(): Promise<void> {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    Logger.overrideLogger(new ConsoleLogger());
  }
  afterEach(cleanup);
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  async function nestApp(options: TieredCacheOptions): Promise<{ cache: CacheManagerService; logs: CapturingLogger }> {
    const logs = new CapturingLogger();
    const mod = await Test.createTestingModule({ imports: [TieredCacheModule.forRoot({ metrics: false, ...options })] }).compile();
    mod.useLogger(logs);
    const app = await mod.init();
    apps.push(app);
    return { cache: app.get(CacheManagerService), logs };
  }

  /** A key Redis holds as a list: every GET of it is refused (WRONGTYPE), a Redis error the cache must log. */
  async function wrongType(prefix: string, key: string): Promise<void> {
    await raw.del(prefix + key);
    await raw.lpush(prefix + key, 'x');
  }

  it("with no logger option the Nest module logs through Nest's Logger, context TieredCache, naming the tier and the operation", async () => {
    const prefix = `lg${++n}:`;
    const { cache, logs } = await nestApp({ redis: redis.url, keyPrefix: prefix, l1: { enabled: false } });
    await wrongType(prefix, 'k');
    expect(await cache.get('k')).toBeUndefined();
    const lines = logs.matching(/get failed/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', context: 'TieredCache' });
    expect(lines[0].message).toMatch(/^L2 redis tier "l2": get failed: WRONGTYPE/);
  });

  it('a burst of failures gives one line per kind, not one per failure', async () => {
    const prefix = `lg${++n}:`;
    const { cache, logs } = await nestApp({ redis: redis.url, keyPrefix: prefix, l1: { enabled: false } });
    await wrongType(prefix, 'k');
    for (let i = 0; i < 200; i++) expect(await cache.get('k')).toBeUndefined();
    expect(cache.stats().l2.errors).toBeGreaterThanOrEqual(200);
    expect(logs.matching(/get failed/)).toHaveLength(1);
    expect(logs.ours()).toHaveLength(1);
  });

  it('a custom logger option is still used, and Nest gets nothing of it', async () => {
    const prefix = `lg${++n}:`;
    const mine: string[] = [];
    const { cache, logs } = await nestApp({ redis: redis.url, keyPrefix: prefix, l1: { enabled: false }, logger: { warn: (m) => void mine.push(m), error: (m) => void mine.push(m) } });
    await wrongType(prefix, 'k');
    expect(await cache.get('k')).toBeUndefined();
    expect(mine.filter((m) => /^L2 redis tier "l2": get failed: WRONGTYPE/.test(m))).toHaveLength(1);
    expect(logs.ours()).toHaveLength(0);
  });

  it('a Nest Logger instance (or any LoggerService) can be the logger option as it is', async () => {
    const prefix = `lg${++n}:`;
    const logs = new CapturingLogger();
    const { cache } = await nestApp({ redis: redis.url, keyPrefix: prefix, l1: { enabled: false }, logger: logs });
    await wrongType(prefix, 'k');
    expect(await cache.get('k')).toBeUndefined();
    expect(logs.lines.filter((l) => /get failed: WRONGTYPE/.test(l.message))).toHaveLength(1);
  });

  it('an invalid logger option fails at boot naming it', () => {
    expect(() => new TieredCache({ logger: { warn() {} } as unknown as TieredCacheOptions['logger'] })).toThrow(/"logger"/);
  });

  it('the engine alone logs to the console, prefixed [tiered-cache]', async () => {
    const prefix = `lg${++n}:`;
    const out = captureConsole();
    try {
      const c = new TieredCache({ redis: redis.url, keyPrefix: prefix, l1: { enabled: false } });
      caches.push(c);
      await c.connect();
      await wrongType(prefix, 'k');
      expect(await c.get('k')).toBeUndefined();
      expect(out.printed.filter((p) => p.startsWith('[tiered-cache] L2 redis tier "l2": get failed: WRONGTYPE'))).toHaveLength(1);
    } finally {
      out.restore();
    }
  });

  describe('a Redis server killed under the cache', () => {
    let victim: RedisServer;
    beforeEach(async () => {
      victim = await RedisServer.start();
    });
    afterEach(async () => {
      await cleanup();
      await victim.stop();
    });

    it('Nest app: connection and bus errors are ours (tier, operation), bounded, and ioredis prints nothing', async () => {
      const out = captureConsole();
      try {
        const { cache, logs } = await nestApp({ redis: { url: victim.url, commandTimeout: 200 }, keyPrefix: `lg${++n}:` });
        await cache.set('k', 'v');
        await victim.kill();
        await waitFor('the data connection error is logged', () => logs.matching(/^L2 redis tier "l2": connection failed: /).length > 0);
        await waitFor('the bus subscriber error is logged', () => logs.matching(/^L2 redis tier "l2": bus subscriber connection failed: /).length > 0);
        for (let i = 0; i < 50; i++) {
          await cache.get(`miss:${i}`);
          await cache.set(`w:${i}`, i);
          await cache.delete(`w:${i}`);
        }
        // Reconnect attempts keep failing: one line per kind all the same.
        expect(logs.matching(/connection failed/)).toHaveLength(2);
        expect(logs.ours().length).toBeLessThan(12);
        for (const l of logs.ours()) expect(l.message).toMatch(/^L2 redis tier "l2": /);
        expect(out.printed.filter((p) => /ioredis|Unhandled error/.test(p))).toEqual([]);
        await victim.restart();
        await waitFor('the cache reconnects', () => cache.engine.l2!.ready, 10_000);
      } finally {
        out.restore();
      }
    });

    it("a borrowed client without an error listener of its own: its errors are ours while the cache holds it (ioredis would print them)", async () => {
      const out = captureConsole();
      try {
        const app = new Redis(victim.url);
        clients.push(app);
        expect(app.listenerCount('error')).toBe(0);
        const logs: string[] = [];
        const c = new TieredCache({ redis: { client: app }, keyPrefix: `lg${++n}:`, logger: { warn: (m) => void logs.push(m), error: (m) => void logs.push(m) } });
        caches.push(c);
        expect(await c.connect()).toBe(true);
        await victim.kill();
        await waitFor("the app client's error is logged as ours", () => logs.some((m) => /^L2 redis tier "l2": connection failed: .*ECONNREFUSED/.test(m)));
        expect(out.printed.filter((p) => /ioredis|Unhandled error/.test(p))).toEqual([]);
        // Up again before the cache lets go of the client: from then on its errors are the app's.
        await victim.restart();
        await waitFor('the app client is back', () => app.status === 'ready', 10_000);
      } finally {
        out.restore();
      }
    });
  });

  describe('tiers below L2', () => {
    let l3: RedisServer;
    let pg: PostgresServer;
    beforeAll(async () => {
      [l3, pg] = await Promise.all([RedisServer.start(), PostgresServer.start()]);
    });
    afterAll(async () => {
      await Promise.all([l3?.stop(), pg?.stop()]);
    });

    it('an L3 Redis and an L4 PostgreSQL that die: messages name each tier and the operation, nothing raw is printed', async () => {
      const out = captureConsole();
      try {
        const { cache, logs } = await nestApp({
          keyPrefix: `lg${++n}:`,
          tiers: [
            { name: 'local', type: 'memory' },
            { name: 'shared', type: 'redis', redis: redis.url },
            { name: 'warm', type: 'redis', redis: { url: l3.url, commandTimeout: 200 } },
            { name: 'archive', type: 'postgres', postgres: { url: pg.url, commandTimeout: 500, connectTimeout: 500 } },
          ],
        });
        await cache.set('k', 'v');
        await Promise.all([l3.kill(), pg.kill()]);
        await waitFor('L3 is logged', () => logs.matching(/^L3 redis tier "warm": connection failed: /).length > 0, 10_000);
        for (let i = 0; i < 30; i++) await cache.get(`miss:${i}`);
        await waitFor('L4 is logged', () => logs.matching(/^L4 postgres tier "archive": \w+ failed: /).length > 0, 10_000);
        expect(logs.matching(/^L3 redis tier "warm": connection failed/)).toHaveLength(1);
        expect(out.printed.filter((p) => /ioredis|Unhandled error|pg-pool|Connection terminated/.test(p))).toEqual([]);
        await Promise.all([l3.restart(), pg.restart()]);
      } finally {
        out.restore();
      }
    });
  });

  describe('Sentinel', () => {
    let group: RedisSentinelGroup;
    beforeAll(async () => {
      group = await RedisSentinelGroup.start();
    });
    afterAll(async () => {
      await group?.stop();
    });

    it("the Sentinel dying under the failover detector: ours (tier, operation), nothing printed by ioredis", async () => {
      const out = captureConsole();
      try {
        const logs: string[] = [];
        const c = new TieredCache({
          // The detector tries a lost Sentinel again after a minute by default: at once here.
          redis: { mode: 'sentinel', sentinels: group.sentinels, name: group.name, commandTimeout: 300, redisOptions: { sentinelReconnectStrategy: () => 50 } },
          keyPrefix: `lg${++n}:`,
          logger: { warn: (m) => void logs.push(m), error: (m) => void logs.push(m) },
        });
        caches.push(c);
        expect(await c.connect()).toBe(true);
        // The failover detector subscribes to the Sentinel once the data connection is up.
        const l2 = c.l2!.client as Redis;
        const sentinel = new Redis(group.sentinels[0].port, '127.0.0.1');
        try {
          await waitFor('the failover detector is subscribed', async () => /sub=1/.test((await sentinel.call('CLIENT', 'LIST')) as string));
        } finally {
          sentinel.disconnect();
        }
        await group.killSentinel();
        await waitFor("the failover detector's lost Sentinel is logged", () => logs.some((m) => /^L2 redis tier "l2": sentinel failed: failover detector connection to Sentinel /.test(m)), 10_000);
        expect(l2.status).toBe('ready');
        await c.set('k', 'v');
        expect(await c.get('k')).toBe('v');
        expect(out.printed.filter((p) => /ioredis|Unhandled error/.test(p))).toEqual([]);
      } finally {
        out.restore();
      }
    });
  });
});
