import { Redis } from 'ioredis';
import { Client } from 'pg';
import { Registry } from 'prom-client';
import { attachCacheMetrics, TieredCache, TieredCacheHealthIndicator, type TieredCacheOptions } from '../../lib';
import type { TierStats } from '../../lib/core/tier-stats';
import { PostgresServer } from '../support/postgres-server';
import { RedisCluster, RedisSentinelGroup, RedisServer } from '../support/redis-server';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';

/**
 * The circuit breaker of each remote tier, against real servers that hang: a SIGSTOPped Redis (L2), a Redis
 * behind a proxy that swallows every byte (a lower tier), a SIGSTOPped PostgreSQL (a lower tier). What is
 * asserted is behaviour: the breaker's state, that skipped calls are counted and the cache still answers (from
 * the source or L1), the health details and the metric; then the server is back and the tier is used again.
 * No timing assertions: calls that waited on a dead server would show as timeouts, not as skips.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

let redis: RedisServer;
let lowerRedis: RedisServer;
let pg: PostgresServer;
let raw: Redis;
const caches: TieredCache[] = [];
const proxies: TcpProxy[] = [];
const detachers: Array<() => void> = [];

beforeAll(async () => {
  [redis, lowerRedis, pg] = await Promise.all([RedisServer.start(), RedisServer.start(), PostgresServer.start()]);
  raw = new Redis(redis.url);
}, 60_000);
afterEach(async () => {
  // A test that failed mid-hang: nothing below could close against a stopped server.
  redis.resume(); // SIGCONT: harmless when it runs
  if (pg.isPaused) pg.resume();
  for (const d of detachers.splice(0)) d();
  await Promise.all(caches.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});
afterAll(async () => {
  raw?.disconnect();
  await Promise.all([redis?.stop(), lowerRedis?.stop(), pg?.stop()]);
});

async function cache(options: TieredCacheOptions): Promise<TieredCache> {
  const c = new TieredCache({ logger: quiet, ...options });
  caches.push(c);
  await c.connect();
  return c;
}

function breakerOf(c: TieredCache, tier: string): NonNullable<TierStats['breaker']> {
  const b = c.stats().tiers[tier]?.breaker;
  if (!b) throw new Error(`tier ${tier} reports no breaker`);
  return b;
}

/** The cache's breaker series from a registry of its own, as `name{tier}` → value. */
async function breakerSeries(registry: Registry): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^(cache_circuit_breaker_[a-z_]+)\{cache="[^"]*",tier="([^"]+)"\} (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}{${m[2]}}`, Number(m[3]));
  }
  return out;
}

function metricsOf(c: TieredCache): Registry {
  const registry = new Registry();
  const detach = attachCacheMetrics(c, { registry, name: 'breaker' });
  if (detach) detachers.push(detach);
  return registry;
}

/** Misses every tier that answers, so each call asks the hung one once (and then the source). */
async function missesUntilOpen(c: TieredCache, tier: string): Promise<void> {
  await waitFor(`the ${tier} breaker opens`, async () => {
    expect(await c.getOrSet(`miss:${++seq}`, () => 'from source')).toBe('from source');
    return breakerOf(c, tier).state !== 'closed';
  }, 20_000);
}

describe('circuit breaker: L2 Redis hung (SIGSTOP)', () => {
  it('after `failures` timeouts L2 is skipped at once (counted, not timed out), reads answer from L1 and the source; resumed, the half-open probe closes it and L2 answers again', async () => {
    const prefix = `cb${++seq}:`;
    const c = await cache({ redis: { url: redis.url, commandTimeout: 100, breaker: { failures: 3, window: '1m', openFor: '300ms' } }, keyPrefix: prefix, bus: false });
    const registry = metricsOf(c);
    await c.set('warm', 'in L1');
    expect(breakerOf(c, 'l2')).toEqual({ state: 'closed', opened: 0, skipped: 0 });

    redis.pause();
    await missesUntilOpen(c, 'l2');
    expect(breakerOf(c, 'l2').opened).toBeGreaterThanOrEqual(1);
    expect(c.stats().l2.timeouts).toBeGreaterThanOrEqual(3);

    // Each L1 miss asks L2 once: every one of them is now a skip, whatever the breaker does meanwhile (a probe
    // that times out re-opens it). They all resolve: a skipped call waits on nothing.
    const skipped = breakerOf(c, 'l2').skipped;
    const reads = await Promise.all(Array.from({ length: 20 }, (_, i) => c.get(`absent:${i}`)));
    expect(reads).toEqual(new Array(20).fill(undefined));
    expect(breakerOf(c, 'l2').skipped).toBe(skipped + 20);
    expect(await c.getOrSet('fill', () => 'computed')).toBe('computed');
    // L1 still answers what it holds, and the fill went into it (L2 could not be asked for its fence).
    expect(await c.get('warm')).toBe('in L1');
    expect(await c.get('fill')).toBe('computed');
    expect(breakerOf(c, 'l2').state).toMatch(/open$/);

    const health = await new TieredCacheHealthIndicator(c).details({ timeout: 300 });
    expect(health.l2).toMatchObject({ status: 'degraded', breaker: expect.stringMatching(/open$/), connection: 'ready' });
    expect(health.degraded).toEqual(expect.arrayContaining([expect.stringMatching(/^L2 circuit breaker (half-)?open/)]));
    const during = await breakerSeries(registry);
    expect(during.get('cache_circuit_breaker_state{l2}')).toBeGreaterThanOrEqual(1);
    expect(during.get('cache_circuit_breaker_opens_total{l2}')).toBeGreaterThanOrEqual(1);
    expect(during.get('cache_circuit_breaker_skipped_total{l2}')).toBeGreaterThanOrEqual(skipped + 20);

    redis.resume();
    // Nothing closes it but its probe (the connection never dropped): calls drive it there.
    await waitFor('the probe closes the breaker', async () => {
      await c.get(`drive:${++seq}`);
      return breakerOf(c, 'l2').state === 'closed';
    }, 15_000);
    await raw.set(`${prefix}written-elsewhere`, (await raw.get(`${prefix}warm`)) as string);
    const hits = c.stats().l2.hits;
    expect(await c.get('written-elsewhere')).toBe('in L1');
    expect(c.stats().l2.hits).toBe(hits + 1);
    expect((await new TieredCacheHealthIndicator(c).details()).l2).toMatchObject({ status: 'up', reachable: true, breaker: 'closed' });
    expect((await breakerSeries(registry)).get('cache_circuit_breaker_state{l2}')).toBe(0);
  });

  it('a delete made while L2 is skipped reaches Redis and the other instance once the breaker closes: no instance reads the old value back', async () => {
    const prefix = `cb${++seq}:`;
    const options: TieredCacheOptions = { redis: { url: redis.url, commandTimeout: 100, breaker: { failures: 3, window: '1m', openFor: '300ms' } }, keyPrefix: prefix };
    const [a, b] = await Promise.all([cache(options), cache(options)]);
    await waitFor('both subscribed', () => a.bus?.subscribed === true && b.bus?.subscribed === true);
    await a.set('k', 'old');
    expect(await b.get('k')).toBe('old'); // and now in B's L1

    redis.pause();
    await missesUntilOpen(a, 'l2');
    await a.delete('k');
    // Neither Redis nor the bus could be told: the delete waits in A's deferred set, its message in the bus outbox.
    expect(a.stats().l2.pendingInvalidations).toBe(1);
    expect(await a.get('k')).toBeUndefined();

    redis.resume();
    await waitFor('the probe closes the breaker', async () => {
      await a.get(`drive:${++seq}`);
      return breakerOf(a, 'l2').state === 'closed';
    }, 15_000);
    await waitFor('the deferred delete landed', () => a.stats().l2.pendingInvalidations === 0, 15_000);
    expect(await raw.exists(`${prefix}k`)).toBe(0);
    await waitFor('B dropped its copy', async () => (await b.get('k')) === undefined, 15_000);
    expect(await a.get('k')).toBeUndefined();
  });

  it('breaker: false leaves every call to its own deadline (timeouts, no skips, no breaker in stats)', async () => {
    const c = await cache({ redis: { url: redis.url, commandTimeout: 100, breaker: false }, keyPrefix: `cb${++seq}:`, l1: { enabled: false }, bus: false });
    redis.pause();
    try {
      for (let i = 0; i < 6; i++) expect(await c.get(`k${i}`)).toBeUndefined();
      expect(c.stats().l2.timeouts).toBe(6);
      expect(c.stats().tiers.l2.breaker).toBeUndefined();
    } finally {
      redis.resume();
    }
  });
});

describe('circuit breaker: a lower Redis tier black-holed', () => {
  it('L3 opens on its timeouts while L2 stays closed; reads go on from L2 and the source; the connection re-established closes it at once and L3 answers again', async () => {
    const proxy = await TcpProxy.start(lowerRedis.port);
    proxies.push(proxy);
    const c = await cache({
      keyPrefix: `cb${++seq}:`,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: redis.url },
        // Open for an hour: only the reconnect's handshake (succeeded()) can close it within the test.
        { name: 'l3', type: 'redis', redis: { url: proxy.url, commandTimeout: 100 }, breaker: { failures: 3, openFor: '1h' } },
      ],
    });
    const registry = metricsOf(c);
    await c.set('both', 'v');
    await waitFor('the bus subscribed', () => c.bus?.subscribed === true);

    // Black-holed without a cut: the connection stays "ready", every command waits for its deadline.
    proxy.blackhole = true;
    await missesUntilOpen(c, 'l3');
    expect(breakerOf(c, 'l3')).toMatchObject({ state: 'open', opened: 1 });
    expect(breakerOf(c, 'l2')).toEqual({ state: 'closed', opened: 0, skipped: 0 });

    // The misses above ran one after the other: none is still out, and from here nothing times out.
    const skipped = breakerOf(c, 'l3').skipped;
    const timeouts = c.stats().tiers.l3.timeouts;
    expect(await Promise.all(Array.from({ length: 10 }, (_, i) => c.getOrSet(`fresh:${i}`, () => 'source')))).toEqual(new Array(10).fill('source'));
    expect(breakerOf(c, 'l3').skipped).toBeGreaterThanOrEqual(skipped + 10);
    expect(c.stats().tiers.l3.timeouts).toBe(timeouts);
    expect(await c.get('both')).toBe('v');

    const health = await new TieredCacheHealthIndicator(c).details({ timeout: 300 });
    expect(health.tiers?.l3).toEqual({ kind: 'redis', ok: false, status: 'breaker open', breaker: 'open' });
    expect(health.l2).toMatchObject({ status: 'up', breaker: 'closed' });
    expect(health.degraded).toEqual(['tier l3 breaker open']);
    const during = await breakerSeries(registry);
    expect(during.get('cache_circuit_breaker_state{l3}')).toBe(2);
    expect(during.get('cache_circuit_breaker_state{l2}')).toBe(0);
    expect(during.get('cache_circuit_breaker_opens_total{l3}')).toBe(1);

    // Back: the dropped connection reconnects, and its handshake answered closes the breaker.
    proxy.blackhole = false;
    proxy.cut();
    await waitFor('the reconnect closes the L3 breaker', () => breakerOf(c, 'l3').state === 'closed', 15_000);
    expect(await c.set('deep', 'from l3', { tier: 'l3' })).toBe(true);
    const hits = c.stats().tiers.l3.hits;
    expect(await c.get('deep')).toBe('from l3');
    expect(c.stats().tiers.l3.hits).toBe(hits + 1);
    expect((await c.lowerTierHealth()).l3).toMatchObject({ ok: true, breaker: 'closed' });
    expect((await breakerSeries(registry)).get('cache_circuit_breaker_state{l3}')).toBe(0);
  });
});

describe('circuit breaker: a PostgreSQL tier hung (SIGSTOP)', () => {
  it('L4 opens on its missed deadlines and is skipped at once; getOrSet answers from the source; a delete made meanwhile lands once it closes; resumed, L4 is probed, closes and answers again', async () => {
    const prefix = `cb${++seq}:`;
    const c = await cache({
      keyPrefix: prefix,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: redis.url },
        {
          name: 'l4',
          type: 'postgres',
          postgres: { url: pg.url, commandTimeout: 300, connectTimeout: 1_000, maintenanceInterval: '1h' },
          breaker: { failures: 3, window: '1m', openFor: '500ms' },
        },
      ],
    });
    await waitFor('L4 up', () => c.stats().tiers.l4.ready, 20_000);
    const registry = metricsOf(c);
    await c.set('k', 'v');
    await c.set('doomed', 'old');
    const sql = new Client({ connectionString: pg.url });
    sql.on('error', () => undefined);
    await sql.connect();
    const inL4 = async (key: string): Promise<boolean> =>
      (await sql.query('SELECT 1 FROM public.tiered_cache WHERE ns = $1 AND key = $2 AND value IS NOT NULL', [prefix, key])).rowCount === 1;
    expect(await inL4('doomed')).toBe(true);

    pg.pause();
    await missesUntilOpen(c, 'l4');
    expect(breakerOf(c, 'l4').opened).toBeGreaterThanOrEqual(1);
    expect(c.stats().tiers.l4.timeouts).toBeGreaterThanOrEqual(3);

    const skipped = breakerOf(c, 'l4').skipped;
    const fills = await Promise.all(Array.from({ length: 10 }, (_, i) => c.getOrSet(`pg-miss:${i}`, () => `source ${i}`)));
    expect(fills).toEqual(Array.from({ length: 10 }, (_, i) => `source ${i}`));
    // Each fill's read down the tiers asks L4 once; whatever else they send (their stores) is skipped too.
    expect(breakerOf(c, 'l4').skipped).toBeGreaterThanOrEqual(skipped + 10);
    expect(await c.get('k')).toBe('v');
    // Skipped in L4, so deferred there (and retried); the tiers that answer lose it now.
    expect(await c.delete('doomed')).toBeGreaterThanOrEqual(0);
    expect(await c.get('doomed')).toBeUndefined();

    const health = await new TieredCacheHealthIndicator(c).details({ timeout: 300 });
    // Down or skipped, depending on whether the pool has noticed the hang yet; the breaker is never closed here.
    expect(health.tiers?.l4).toMatchObject({ kind: 'postgres', ok: false });
    expect(health.degraded).toEqual(expect.arrayContaining([expect.stringMatching(/^tier l4 /)]));
    expect((await breakerSeries(registry)).get('cache_circuit_breaker_opens_total{l4}')).toBeGreaterThanOrEqual(1);

    pg.resume();
    await waitFor('L4 closes again', async () => {
      await c.getOrSet(`drive:${++seq}`, () => 'x');
      return breakerOf(c, 'l4').state === 'closed' && c.stats().tiers.l4.ready;
    }, 20_000);
    expect(await c.set('deep', 'from l4', { tier: 'l4' })).toBe(true);
    const hits = c.stats().tiers.l4.hits;
    expect(await c.get('deep')).toBe('from l4');
    expect(c.stats().tiers.l4.hits).toBe(hits + 1);
    expect((await c.lowerTierHealth()).l4).toMatchObject({ ok: true, status: 'ready', breaker: 'closed' });
    expect((await breakerSeries(registry)).get('cache_circuit_breaker_state{l4}')).toBe(0);
    try {
      await waitFor('the deferred delete reached L4', async () => !(await inL4('doomed')), 20_000);
    } finally {
      await sql.end().catch(() => undefined);
    }
    expect(await c.get('doomed')).toBeUndefined();
  }, 60_000);
});

describe('circuit breaker: L2 on a Redis Cluster, one master hung (SIGSTOP)', () => {
  let cluster: RedisCluster;
  let seeds: Redis[];

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    seeds = cluster.nodes.map((n) => new Redis(n.port, n.host));
  }, 60_000);
  afterAll(async () => {
    for (const s of seeds ?? []) s.disconnect();
    await cluster?.stop();
  });

  /** The index of the master serving `pkey`'s slot. */
  async function ownerOf(pkey: string): Promise<number> {
    const slot = Number(await seeds[0].call('CLUSTER', 'KEYSLOT', pkey));
    const slots = (await seeds[0].call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
    const port = slots.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
    return cluster.nodes.findIndex((n) => n.port === port);
  }

  it("one breaker for the whole tier: the hung master's timeouts open it and the routed reads of every master are skipped; resumed, its probe closes it", async () => {
    const prefix = `cbc${++seq}:`;
    const c = await cache({
      redis: { mode: 'cluster', nodes: cluster.nodes, commandTimeout: 100, connectTimeout: 3_000, breaker: { failures: 3, window: '1m', openFor: '200ms' } },
      keyPrefix: prefix,
      l1: { enabled: false },
      bus: false,
    });
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const owners = await Promise.all(keys.map((k) => ownerOf(prefix + k)));
    const hung = owners[0];
    const onHung = keys.filter((_, i) => owners[i] === hung);
    const elsewhere = keys.filter((_, i) => owners[i] !== hung);
    // Written and routed once (a fresh client may still be learning the slots): each master's connection is
    // adopted before the hang.
    await waitFor('every key written and read back', async () => {
      await c.mset(keys.map((k) => [k, k] as const));
      return (await Promise.all(keys.map((k) => c.get(k)))).every((v, i) => v === keys[i]);
    }, 15_000);
    expect(breakerOf(c, 'l2').opened).toBe(0);

    // Resumed within the cluster's node timeout (2 s): no slot moves, only the breaker reacts.
    cluster.pause(hung);
    let skipped: number;
    try {
      for (const k of onHung.slice(0, 3)) expect(await c.get(k)).toBeUndefined();
      expect(breakerOf(c, 'l2').state).not.toBe('closed');
      skipped = breakerOf(c, 'l2').skipped;
      expect(await Promise.all(elsewhere.map((k) => c.get(k)))).toEqual(elsewhere.map(() => undefined));
      expect(breakerOf(c, 'l2').skipped).toBe(skipped + elsewhere.length);
    } finally {
      cluster.resume(hung);
    }
    await waitFor('the probe closes the breaker', async () => {
      await c.get(elsewhere[0]);
      return breakerOf(c, 'l2').state === 'closed';
    }, 15_000);
    expect(await Promise.all(keys.map((k) => c.get(k)))).toEqual(keys);
  }, 60_000);
});

describe('circuit breaker: L2 through Sentinel, the master hung (SIGSTOP) and failed over', () => {
  it("the hung master's timeouts open the breaker; the reconnect to the promoted replica closes it at once, without waiting out openFor", async () => {
    // One test: the group (whose master it fails over) is its own.
    const group = await RedisSentinelGroup.start();
    try {
      await failedOver(group);
    } finally {
      await Promise.all(caches.splice(0).map((c) => c.close()));
      await group.stop();
    }
  }, 90_000);

  async function failedOver(group: RedisSentinelGroup): Promise<void> {
    const prefix = `cbs${++seq}:`;
    const c = await cache({
      redis: { mode: 'sentinel', sentinels: group.sentinels, name: group.name, commandTimeout: 100, connectTimeout: 3_000, breaker: { failures: 3, openFor: '1h' } },
      keyPrefix: prefix,
      l1: { enabled: false },
      bus: false,
    });
    await c.set('k', 'v');
    const replica = new Redis(group.replica.port, '127.0.0.1');
    try {
      await waitFor('the replica has the key', async () => (await replica.get(`${prefix}k`)) !== null);
    } finally {
      replica.disconnect();
    }

    // Stays stopped: Sentinel fails it over; SIGKILL (in finally) takes a stopped process too.
    group.master.pause();
    try {
      await missesUntilOpen(c, 'l2');
      const skipped = breakerOf(c, 'l2').skipped;
      expect(await c.get('k')).toBeUndefined();
      expect(breakerOf(c, 'l2').skipped).toBe(skipped + 1);
      // Open for an hour: only the new connection's handshake can close it.
      await waitFor('the failover closes the breaker', () => breakerOf(c, 'l2').state === 'closed', 30_000);
      expect(group.masterPort()).toBe(group.replica.port);
      expect(await c.get('k')).toBe('v');
      expect(await c.set('after', 'failover')).toBe(true);
      expect(await c.get('after')).toBe('failover');
      expect(breakerOf(c, 'l2').opened).toBe(1);
    } finally {
      await group.master.kill();
    }
  }
});
