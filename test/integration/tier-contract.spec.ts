import { Redis } from 'ioredis';
import { resolveOptions } from '../../lib/core/options';
import type { RedisConnectionOptions } from '../../lib/core/tiered-cache-options.interface';
import { MemoryTier } from '../../lib/core/tiers/memory.tier';
import { RedisConnectionFactory } from '../../lib/core/tiers/redis-connection';
import { RedisTier } from '../../lib/core/tiers/redis.tier';
import { TIER_FAILED, type Tier } from '../../lib/core/tiers/tier';
import { describeTierContract } from '../contract/tier-contract';
import { freePort, RedisCluster, RedisSentinelGroup, RedisServer } from '../support/redis-server';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';

/**
 * Every tier implementation against the shared contract (test/contract/tier-contract.ts), each Redis mode against
 * its own real servers (started once per block), then how the Redis tier fails when Redis cannot be reached.
 */

const COMMAND_TIMEOUT = 250;
const MEMORY_MAX_BYTES = 64 * 1024;

/** A fresh namespace per tier. Glob specials in it check that the tier escapes its prefix in SCAN MATCH. */
let prefixes = 0;
const freshPrefix = (): string => `tc[${++prefixes}]*?:`;

/** A Redis tier built the way the engine builds its L2 (lib/core/tiered-cache.ts), connected. */
interface BuiltTier {
  tier: RedisTier;
  errors: Array<{ op: string; err: unknown }>;
}

function buildRedisTier(redis: RedisConnectionOptions, keyPrefix: string): BuiltTier {
  const resolved = resolveOptions({ redis, keyPrefix });
  const r = resolved.redis!;
  const errors: BuiltTier['errors'] = [];
  const tier = new RedisTier(
    new RedisConnectionFactory(r),
    r.maxConnections,
    r.commandTimeout,
    r.connectTimeout,
    (op, err) => errors.push({ op, err }),
    r.socketTimeout,
    resolved.keyPrefix,
    'l2',
  );
  return { tier, errors };
}

/** The contract's setup for a Redis tier over `redis()` (called lazily: servers start in beforeAll). */
function redisSetup(redis: () => RedisConnectionOptions) {
  const built = new Map<Tier<string>, BuiltTier>();
  const open = async (keyPrefix: string): Promise<RedisTier> => {
    const b = buildRedisTier(redis(), keyPrefix);
    built.set(b.tier, b);
    expect(await b.tier.connect()).toBe(true);
    return b.tier;
  };
  return {
    create: () => open(freshPrefix()),
    peer: (t: Tier<string>) => open((t as RedisTier).keyPrefix),
    sample: (i: number) => `payload ${i} · ✓ ключ`,
    destroy: async (t: Tier<string>) => {
      const b = built.get(t);
      built.delete(t);
      await t.close();
      // A healthy server: nothing may have been reported as an error.
      expect(b?.errors.map((e) => `${e.op}: ${String(e.err)}`)).toEqual([]);
    },
    tagIndex: 'sticky' as const,
    afterClose: 'fails' as const,
  };
}

describeTierContract<object>('MemoryTier', {
  create: async () => new MemoryTier(1_000, MEMORY_MAX_BYTES, 60_000, 'l1'),
  sample: (i) => ({ i, name: `value ${i}`, nested: { list: [i, String(i)] } }),
  destroy: (t) => t.close(),
  tagIndex: 'exact',
  afterClose: 'empty',
  maxBytes: MEMORY_MAX_BYTES,
});

describe('RedisTier on a standalone redis-server', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  describeTierContract<string>('RedisTier, standalone (RESP2, 1 connection)', redisSetup(() => ({ url: server.url, commandTimeout: COMMAND_TIMEOUT })));
  describeTierContract<string>(
    'RedisTier, standalone (RESP3, 2 connections)',
    redisSetup(() => ({ url: server.url, commandTimeout: COMMAND_TIMEOUT, protocol: 3, maxConnections: 2 })),
  );
});

describe('RedisTier through Sentinel', () => {
  let group: RedisSentinelGroup;
  beforeAll(async () => {
    group = await RedisSentinelGroup.start();
  }, 60_000);
  afterAll(async () => {
    await group?.stop();
  });

  describeTierContract<string>(
    'RedisTier, Sentinel',
    redisSetup(() => ({ mode: 'sentinel', sentinels: group.sentinels, name: group.name, commandTimeout: COMMAND_TIMEOUT, connectTimeout: 3_000 })),
  );
});

describe('RedisTier on a Redis Cluster', () => {
  let cluster: RedisCluster;
  const clusterRedis = (): RedisConnectionOptions => ({ mode: 'cluster', nodes: cluster.nodes, commandTimeout: COMMAND_TIMEOUT, connectTimeout: 3_000 });
  beforeAll(async () => {
    cluster = await RedisCluster.start();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  describeTierContract<string>('RedisTier, Cluster', redisSetup(clusterRedis));

  it('a pattern delete walks every master: keys spread over all of them are all removed', async () => {
    const { tier, errors } = buildRedisTier(clusterRedis(), 'spread:');
    const direct = cluster.nodes.map((n) => new Redis(n.port, n.host));
    try {
      expect(await tier.connect()).toBe(true);
      const keys = Array.from({ length: 40 }, (_, i) => `k:${i}`);
      expect(await tier.setEntries(keys.map((key, i) => ({ key, value: `v${i}`, ttl: 60_000, tags: [`t${i % 3}`] })))).toBe(true);
      const perNode = await Promise.all(direct.map((d) => d.keys('spread:k:*').then((k) => k.length)));
      expect(perNode.every((n) => n > 0)).toBe(true);
      expect(perNode.reduce((a, b) => a + b, 0)).toBe(keys.length);
      expect(await tier.deletePattern('k:*')).toEqual({ removed: keys.length, complete: true });
      const left = await Promise.all(direct.map((d) => d.keys('spread:k:*').then((k) => k.length)));
      expect(left).toEqual(direct.map(() => 0));
      expect(errors).toEqual([]);
    } finally {
      await tier.close();
      await Promise.all(direct.map((d) => d.quit()));
    }
  });
});

describe('RedisTier when Redis cannot be reached', () => {
  const FAIL_TIMEOUT = 100;
  /** "Within the command deadline": the sweep settles a call within timeout + timeout/5; this bound proves bounded, not fast. */
  const BOUND = FAIL_TIMEOUT * 10;

  let server: RedisServer;
  const open: RedisTier[] = [];

  async function tierOn(url: string, expectConnected = true): Promise<BuiltTier> {
    const b = buildRedisTier({ url, commandTimeout: FAIL_TIMEOUT, connectTimeout: 500 }, freshPrefix());
    open.push(b.tier);
    expect(await b.tier.connect()).toBe(expectConnected);
    return b;
  }

  /** Runs `fn`, failing (instead of hanging) past BOUND; resolves to its result and how long it took. */
  async function bounded<T>(what: string, fn: () => Promise<T>): Promise<[T, number]> {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} still pending after ${BOUND} ms`)), BOUND)));
    try {
      const r = await Promise.race([fn(), late]);
      return [r, performance.now() - t0];
    } finally {
      clearTimeout(timer);
    }
  }

  /** Every method: resolves (never rejects) within the bound to TIER_FAILED, or to an incomplete removal. */
  async function expectEveryCallFails(tier: RedisTier): Promise<number> {
    const calls: Array<[string, () => Promise<unknown>, unknown]> = [
      ['getEntry', () => Promise.resolve(tier.getEntry('k')), TIER_FAILED],
      ['getEntries', () => Promise.resolve(tier.getEntries(['k', 'j'])), TIER_FAILED],
      ['setEntry', () => Promise.resolve(tier.setEntry({ key: 'k', value: 'v2', ttl: 60_000, tags: ['t'] })), TIER_FAILED],
      ['setEntries', () => Promise.resolve(tier.setEntries([{ key: 'j', value: 'v', ttl: 60_000 }])), TIER_FAILED],
      ['deleteKeys', () => Promise.resolve(tier.deleteKeys(['k'])), TIER_FAILED],
      ['ttlOf', () => Promise.resolve(tier.ttlOf('k')), TIER_FAILED],
      ['deletePattern', () => tier.deletePattern('*'), { removed: 0, complete: false }],
      ['deleteTags', () => Promise.resolve(tier.deleteTags(['t'])), { removed: 0, complete: false }],
    ];
    let slowest = 0;
    for (const [name, call, expected] of calls) {
      const [r, ms] = await bounded(name, call);
      expect({ name, r }).toEqual({ name, r: expected });
      slowest = Math.max(slowest, ms);
    }
    const [h] = await bounded('health', () => tier.health());
    expect(h.ok).toBe(false);
    return slowest;
  }

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a hung connection (packets swallowed): every call resolves TIER_FAILED or complete:false within its deadline, then recovers', async () => {
    const proxy = await TcpProxy.start(server.port);
    try {
      const { tier, errors } = await tierOn(proxy.url);
      expect(await tier.setEntry({ key: 'k', value: 'v', ttl: 60_000, tags: ['t'] })).toBe(true);
      proxy.blackhole = true;
      expect(tier.ready).toBe(true); // the socket is open: only the deadline can tell
      const slowest = await expectEveryCallFails(tier);
      expect(slowest).toBeGreaterThanOrEqual(FAIL_TIMEOUT * 0.9); // these did wait for their deadline
      expect(tier.deadlines.timeouts).toBeGreaterThan(0);
      // Deadline misses are not errors to report.
      expect(errors.filter((e) => e.op !== 'connection')).toEqual([]);
      // The network comes back with a connection reset: the tier reconnects and answers again.
      proxy.blackhole = false;
      proxy.cut();
      await waitFor('the tier to reconnect', async () => tier.ready && (await tier.health()).ok);
      // What the calls above did is unknown (TIER_FAILED: "could not ask"); ioredis re-sends a dropped socket's
      // unanswered commands once reconnected, so some of them may land now. Fresh keys only from here.
      expect(await tier.setEntry({ key: 'after', value: 'v', ttl: 60_000, tags: ['t-after'] })).toBe(true);
      expect(await tier.getEntry('after')).toMatchObject({ value: 'v' });
      expect(await tier.deleteTags(['t-after'])).toEqual({ removed: 1, complete: true });
    } finally {
      await proxy.stop();
    }
  });

  it('a server that died: every call fails without waiting (nothing is queued), and the tier reconnects when it is back', async () => {
    const { tier } = await tierOn(server.url);
    expect(await tier.setEntry({ key: 'k', value: 'v', ttl: 60_000 })).toBe(true);
    await server.kill();
    await waitFor('the tier to notice', () => !tier.ready);
    // No connection to send on: the calls fail without waiting for their deadline.
    expect(await expectEveryCallFails(tier)).toBeLessThan(FAIL_TIMEOUT);
    await server.restart();
    await waitFor('the tier to reconnect', async () => tier.ready && (await tier.health()).ok, 10_000);
    // A restarted server is empty.
    expect(await tier.getEntry('k')).toBeUndefined();
    expect(await tier.setEntry({ key: 'k', value: 'v', ttl: 60_000 })).toBe(true);
    expect(await tier.getEntry('k')).toMatchObject({ value: 'v' });
  });

  it('a Redis never reachable: connect() resolves false, the tier is not ready, and every call fails', async () => {
    const port = await freePort();
    const { tier } = await tierOn(`redis://127.0.0.1:${port}`, false);
    expect(tier.ready).toBe(false);
    expect(await expectEveryCallFails(tier)).toBeLessThan(FAIL_TIMEOUT);
  });
});
