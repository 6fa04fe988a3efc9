import { type Cluster, Redis } from 'ioredis';
import { fenceKeyOf, reservedNames } from '../../lib/core/keys/cache-key';
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

/**
 * On a Cluster, reads go around the Cluster client: written straight to the connection of the master the
 * client's slot table names (redis.tier.ts `routes`, cluster-reads.ts), falling back to the Cluster client
 * whenever that cannot be sure. Its own cluster: the last tests hang and kill masters.
 */
describe('RedisTier on a Redis Cluster: reads routed to the masters', () => {
  let cluster: RedisCluster;
  let direct: Redis[];
  let ids: string[];
  const open: BuiltTier[] = [];

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    direct = cluster.nodes.map((n) => new Redis(n.port, n.host, { retryStrategy: () => null }));
    ids = await Promise.all(direct.map((d) => d.call('CLUSTER', 'MYID') as Promise<string>));
  }, 60_000);
  afterEach(async () => {
    jest.restoreAllMocks();
    await Promise.all(open.splice(0).map((b) => b.tier.close()));
  });
  afterAll(async () => {
    for (const d of direct ?? []) d.disconnect();
    await cluster?.stop();
  });

  async function tierFor(keyPrefix: string): Promise<BuiltTier> {
    const b = buildRedisTier({ mode: 'cluster', nodes: cluster.nodes, commandTimeout: COMMAND_TIMEOUT, connectTimeout: 3_000 }, keyPrefix);
    open.push(b);
    expect(await b.tier.connect()).toBe(true);
    return b;
  }

  /** Which master (index into cluster.nodes) serves `pkey`, as the cluster itself says. */
  async function ownerOf(pkey: string, asking = 0): Promise<number> {
    const slot = Number(await direct[asking].call('CLUSTER', 'KEYSLOT', pkey));
    const ranges = (await direct[asking].call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
    const port = ranges.find(([from, to]) => slot >= from && slot <= to)![2][1];
    return cluster.nodes.findIndex((n) => n.port === port);
  }

  /** Counts the commands that went through the Cluster client's own routing (Cluster#sendCommand) instead of around it. */
  function throughClusterClient(tier: RedisTier): () => number {
    const spy = jest.spyOn(tier.client as Cluster, 'sendCommand');
    return () => spy.mock.calls.length;
  }

  /** `cmdstat_<name>` calls on master `i` since its last CONFIG RESETSTAT. */
  async function calls(i: number, name: string): Promise<number> {
    const info = await direct[i].info('commandstats');
    return Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  }

  /** Resolves to what `p` does, or fails the test when it is still pending well past the deadline (a hang, not a slow call). */
  async function bounded<T>(what: string, p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} still pending`)), COMMAND_TIMEOUT * 10)));
    try {
      return await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  it('reads on keys of all 3 masters (hash tags too) return what the Cluster client reads, none of them through the Cluster client', async () => {
    const prefix = 'rt1:';
    const { tier, errors } = await tierFor(prefix);
    const keys = [...Array.from({ length: 30 }, (_, i) => `k${i}`), '{tag}:a', '{tag}:b', 'x{tag}y', 'gone'];
    expect(await tier.setEntries(keys.map((key, i) => ({ key, value: `v${i}`, ttl: 60_000 })))).toBe(true);
    expect(new Set(await Promise.all(keys.map((k) => ownerOf(prefix + k)))).size).toBe(3);
    // A fence (the delete) and a generation (an invalidation that bumps it) for readFenced to report.
    expect(await tier.deleteKeys(['gone'])).toBe(1);
    expect(await tier.deleteTags(['nothing-tagged'])).toEqual({ removed: 0, complete: true });
    const raw = new Redis.Cluster(cluster.nodes);
    try {
      const { fencePrefix, genKey } = reservedNames(prefix);
      const want = await Promise.all(
        [...keys, 'never-written'].map(async (k) => {
          const [value, pttl, fence, generation] = await Promise.all([raw.get(prefix + k), raw.pttl(prefix + k), raw.get(fenceKeyOf(fencePrefix, prefix + k)!), raw.get(genKey)]);
          return { value, pttl, mark: { fence: fence ?? '', generation: generation ?? '' } };
        }),
      );
      expect(want.find((w) => w.mark.fence !== '')).toBeDefined();
      expect(want[0].mark.generation).toBe('1');

      const via = throughClusterClient(tier);
      const all = [...keys, 'never-written'];
      const together = await Promise.all(all.map((k) => tier.getEntry(k)));
      const oneByOne: Array<Awaited<ReturnType<RedisTier['getEntry']>>> = [];
      for (const k of all) oneByOne.push(await tier.getEntry(k));
      const fenced = await Promise.all(all.map((k) => tier.readFenced(k)));
      const plain = await Promise.all(all.map((k) => tier.get(prefix + k)));
      expect(via()).toBe(0);

      all.forEach((k, i) => {
        const { value, pttl, mark } = want[i];
        const entry = value === null ? undefined : { value, ttl: expect.any(Number) };
        expect({ k, entry: together[i] }).toEqual({ k, entry });
        expect({ k, entry: oneByOne[i] }).toEqual({ k, entry });
        expect({ k, fenced: fenced[i] }).toEqual({ k, fenced: { entry, mark } });
        expect({ k, plain: plain[i] }).toEqual({ k, plain: value });
        if (value !== null) {
          const ttl = (together[i] as { ttl: number }).ttl;
          expect(ttl).toBeGreaterThan(0);
          expect(ttl).toBeLessThanOrEqual(pttl);
        }
      });
      expect(errors).toEqual([]);
    } finally {
      raw.disconnect();
    }
  });

  it('a read sent after a write or a delete of its key, even in the same tick, sees it (the same socket per master carries both)', async () => {
    const prefix = 'rt2:';
    const { tier, errors } = await tierFor(prefix);
    const keys = Array.from({ length: 30 }, (_, i) => `d${i}`);
    expect(new Set(await Promise.all(keys.map((k) => ownerOf(prefix + k)))).size).toBe(3);
    for (const key of keys) {
      const wrote = tier.setEntry({ key, value: 'v1', ttl: 60_000 });
      const read = tier.getEntry(key);
      expect(await wrote).toBe(true);
      expect(await read).toMatchObject({ value: 'v1' });
      const deleted = tier.deleteKeys([key]);
      const reads = [tier.getEntry(key), tier.readFenced(key).then((r) => (typeof r === 'symbol' ? r : r.entry)), tier.get(prefix + key)];
      expect(await deleted).toBe(1);
      expect(await Promise.all(reads)).toEqual([undefined, undefined, null]);
      expect(await tier.getEntry(key)).toBeUndefined();
    }
    // All of them at once: writes, reads, deletes, reads, interleaved over the three masters in one tick.
    const wrote = keys.map((key) => tier.setEntry({ key, value: 'v2', ttl: 60_000 }));
    const seen = keys.map((key) => tier.getEntry(key));
    const deleted = keys.map((key) => tier.deleteKeys([key]));
    const after = keys.map((key) => tier.getEntry(key));
    expect(await Promise.all(wrote)).toEqual(keys.map(() => true));
    expect(await Promise.all(seen)).toEqual(keys.map(() => expect.objectContaining({ value: 'v2' })));
    expect(await Promise.all(deleted)).toEqual(keys.map(() => 1));
    expect(await Promise.all(after)).toEqual(keys.map(() => undefined));
    expect(errors).toEqual([]);
  });

  it('a slot migrated to another master: reads follow ASK and then MOVED through the Cluster client, and later reads route to the new master', async () => {
    const prefix = 'rt3:';
    const { tier, errors } = await tierFor(prefix);
    // One hash tag: both keys in one slot.
    const [a, b] = ['{mv}:a', '{mv}:b'];
    expect(await tier.setEntries([a, b].map((key) => ({ key, value: `v${key}`, ttl: 60_000 })))).toBe(true);
    const slot = Number(await direct[0].call('CLUSTER', 'KEYSLOT', prefix + a));
    const from = await ownerOf(prefix + a);
    const to = (from + 1) % 3;
    expect(await tier.getEntry(a)).toMatchObject({ value: `v${a}` });
    const via = throughClusterClient(tier);

    // Mid-migration: `a` has moved (its old master answers ASK), `b` is still served where it was.
    await direct[to].call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[from]);
    await direct[from].call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids[to]);
    await direct[from].call('MIGRATE', '127.0.0.1', cluster.nodes[to].port, '', 0, 5_000, 'KEYS', prefix + a);
    expect(await tier.getEntry(a)).toEqual({ value: `v${a}`, ttl: expect.any(Number) });
    const asked = via();
    expect(asked).toBeGreaterThan(0);
    expect(await tier.getEntry(b)).toEqual({ value: `v${b}`, ttl: expect.any(Number) });
    expect(via()).toBe(asked);

    // The rest of the slot moves, and every master is told the slot's new owner.
    const rest = (await direct[from].call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
    expect(rest).toContain(prefix + b);
    await direct[from].call('MIGRATE', '127.0.0.1', cluster.nodes[to].port, '', 0, 5_000, 'KEYS', ...rest);
    for (const i of [to, from, 3 - to - from]) await direct[i].call('CLUSTER', 'SETSLOT', slot, 'NODE', ids[to]);
    await waitFor('every master knows the new owner', async () => (await Promise.all([0, 1, 2].map((i) => ownerOf(prefix + a, i)))).every((o) => o === to));

    // The tier's slot table still names the old master: its MOVED reply sends the read through the Cluster client.
    expect(await tier.getEntry(b)).toEqual({ value: `v${b}`, ttl: expect.any(Number) });
    expect(via()).toBeGreaterThan(asked);

    // The generation readFenced also reads may live on a master this tier has not talked to yet: its pool
    // connection is still lazy ('wait'), and that first read goes through the Cluster client, which connects it.
    expect(await tier.readFenced(b)).toMatchObject({ entry: { value: `v${b}` } });

    // From then on reads go straight to the new master, and nothing reaches the old one.
    await Promise.all([from, to].map((i) => direct[i].config('RESETSTAT')));
    const settled = via();
    for (let i = 0; i < 10; i++) {
      expect(await tier.getEntry(a)).toMatchObject({ value: `v${a}` });
      expect(await tier.readFenced(b)).toMatchObject({ entry: { value: `v${b}` } });
    }
    expect(via()).toBe(settled);
    expect(await calls(to, 'get')).toBeGreaterThanOrEqual(20);
    expect(await calls(to, 'pttl')).toBe(20);
    expect(await calls(from, 'pttl')).toBe(0);
    expect(await direct[from].info('errorstats')).not.toMatch(/MOVED|ASK/);
    // The move left writes and deletes of the slot working too.
    expect(await tier.deleteKeys([a])).toBe(1);
    expect(await tier.getEntry(a)).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('a hung master (SIGSTOP): reads of its keys resolve TIER_FAILED at their deadline (one missed deadline each), the other masters answer', async () => {
    const prefix = 'rt4:';
    const { tier, errors } = await tierFor(prefix);
    const keys = Array.from({ length: 30 }, (_, i) => `h${i}`);
    expect(await tier.setEntries(keys.map((key) => ({ key, value: 'v', ttl: 60_000 })))).toBe(true);
    const owners = await Promise.all(keys.map((k) => ownerOf(prefix + k)));
    const hung = owners[0];
    const onHung = keys.filter((_, i) => owners[i] === hung);
    const elsewhere = keys.filter((_, i) => owners[i] !== hung);
    // Routed once already: the master's connection is adopted and its queue watched.
    expect(await tier.getEntry(onHung[0])).toMatchObject({ value: 'v' });
    const missed = tier.deadlines.timeouts;
    cluster.pause(hung);
    try {
      const [stuck, answered] = await bounded(
        'reads during the hang',
        Promise.all([Promise.all(onHung.map((k) => tier.getEntry(k))), Promise.all(elsewhere.map((k) => tier.getEntry(k)))]),
      );
      expect(stuck).toEqual(onHung.map(() => TIER_FAILED));
      expect(answered).toEqual(elsewhere.map(() => expect.objectContaining({ value: 'v' })));
      expect(tier.deadlines.timeouts - missed).toBe(onHung.length);
      expect(await bounded('a fenced read during the hang', Promise.resolve(tier.readFenced(onHung[1] ?? onHung[0])))).toBe(TIER_FAILED);
    } finally {
      cluster.resume(hung);
    }
    await waitFor('the master answers again', async () => (await tier.getEntry(onHung[0])) !== TIER_FAILED);
    expect(await Promise.all(onHung.map((k) => tier.getEntry(k)))).toEqual(onHung.map(() => expect.objectContaining({ value: 'v' })));
    // Missed deadlines are counted, not reported.
    expect(errors).toEqual([]);
  });

  // Last in this block: it kills a master of this block's cluster.
  it('a killed master: reads of its keys resolve TIER_FAILED without hanging, before and after the pool drops it; the other masters answer', async () => {
    const prefix = 'rt5:';
    const { tier } = await tierFor(prefix);
    const keys = Array.from({ length: 30 }, (_, i) => `x${i}`);
    expect(await tier.setEntries(keys.map((key) => ({ key, value: 'v', ttl: 60_000 })))).toBe(true);
    const owners = await Promise.all(keys.map((k) => ownerOf(prefix + k)));
    const dead = owners[0];
    const onDead = keys.filter((_, i) => owners[i] === dead);
    const elsewhere = keys.filter((_, i) => owners[i] !== dead);
    expect(await Promise.all(keys.map((k) => tier.getEntry(k)))).toEqual(keys.map(() => expect.objectContaining({ value: 'v' })));
    await cluster.kill(dead);
    // At once, while the tier may still hold the dead master's connection, and the other masters still serve.
    const [gone, answered] = await bounded('reads right after the kill', Promise.all([Promise.all(onDead.map((k) => tier.getEntry(k))), Promise.all(elsewhere.map((k) => tier.getEntry(k)))]));
    expect(gone).toEqual(onDead.map(() => TIER_FAILED));
    expect(answered).toEqual(elsewhere.map(() => expect.objectContaining({ value: 'v' })));
    const client = tier.client as Cluster;
    await waitFor('the pool dropped the dead master', () => client.nodes('master').length === 2);
    expect(await bounded('reads once it is dropped', Promise.all(onDead.map((k) => tier.getEntry(k))))).toEqual(onDead.map(() => TIER_FAILED));
    expect(await bounded('fenced reads once it is dropped', Promise.all(onDead.map((k) => tier.readFenced(k))))).toEqual(onDead.map(() => TIER_FAILED));
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
