import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { TieredCache, TieredCacheOptionsError, type TieredCacheOptions } from '../../lib';
import { EngineProcess } from '../support/engine-process';
import { RedisCluster, RedisSentinelGroup, RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';
import { warm } from '../support/l1-helpers';

/**
 * `redis: { client }`: the app's own ioredis client (standalone or Cluster) shared with the cache, against real
 * servers. The cache sends its commands through it, duplicates it for the connections it needs besides (the
 * bus subscriber), and lets go of it on close: still connected, still working, nothing of ours left on the
 * server. Invalidations travel between an instance on a borrowed client and one configured the usual way, in
 * another process. Run `npm run build` first (the other process runs dist/).
 */

const quiet = { warn() {}, error() {} };

function collecting(): { logger: { warn(m: string): void; error(m: string): void }; lines: string[] } {
  const lines: string[] = [];
  return { lines, logger: { warn: (m) => void lines.push(m), error: (m) => void lines.push(m) } };
}

/** CLIENT LIST of a server as rows of name → field. */
async function clientList(conn: Redis): Promise<Array<Record<string, string>>> {
  const text = (await conn.call('CLIENT', 'LIST')) as string;
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}

const ours = (rows: Array<Record<string, string>>): string[] => rows.map((r) => r.name).filter((n) => n.includes('tiered-cache'));

describe('redis: { client } — boot validation', () => {
  // Lazy: these clients never connect.
  const lazy: Array<Redis | Cluster> = [];
  const client = (opts: RedisOptions = {}): Redis => {
    const c = new Redis({ lazyConnect: true, port: 1, ...opts });
    lazy.push(c);
    return c;
  };
  afterAll(() => lazy.forEach((c) => c.disconnect()));

  const refused = (options: TieredCacheOptions): TieredCacheOptionsError => {
    try {
      new TieredCache({ logger: quiet, ...options });
    } catch (err) {
      expect(err).toBeInstanceOf(TieredCacheOptionsError);
      return err as TieredCacheOptionsError;
    }
    throw new Error('expected the options to be refused');
  };

  it.each([
    ['url', { url: 'redis://127.0.0.1:6390' }],
    ['sentinels', { sentinels: [{ host: '127.0.0.1', port: 26390 }] }],
    ['name', { name: 'mymaster' }],
    ['nodes', { nodes: [{ host: '127.0.0.1', port: 7000 }] }],
    ['clusterOptions', { clusterOptions: {} }],
    ['host', { host: '127.0.0.1' }],
    ['port', { port: 6390 }],
    ['password', { password: 'secret' }],
    ['db', { db: 2 }],
  ])('client together with %s: an error naming that option', (key, extra) => {
    const err = refused({ redis: { client: client(), ...extra } as unknown as TieredCacheOptions['redis'] });
    expect(err.option).toBe(`redis.${key}`);
    expect(err.message).toContain('the client');
    expect(err.message).not.toContain('secret');
  });

  it('a client that is not an ioredis instance: a clear error naming redis.client', () => {
    const plain = refused({ redis: { client: { get() {} } } as unknown as TieredCacheOptions['redis'] });
    expect(plain.option).toBe('redis.client');
    expect(plain.message).toMatch(/expected an ioredis Redis or Cluster instance/);
    // Shaped like one but from another copy of the package (what a second ioredis in node_modules gives).
    const lookalike = { sendCommand() {}, duplicate() {}, options: {} };
    const other = refused({ redis: { client: lookalike } as unknown as TieredCacheOptions['redis'] });
    expect(other.option).toBe('redis.client');
    expect(other.message).toMatch(/another copy of ioredis/);
  });

  it('a mode that does not match the client: an error naming redis.mode', () => {
    const err = refused({ redis: { client: client(), mode: 'cluster' } });
    expect(err.option).toBe('redis.mode');
    expect(err.message).toContain('standalone');
  });

  it('a client with keyPrefix is refused, with the fix in the message', () => {
    const err = refused({ redis: { client: client({ keyPrefix: 'app:' }) } });
    expect(err.option).toBe('redis.client');
    expect(err.message).toMatch(/keyPrefix/);
    expect(err.message).toContain("keyPrefix: 'app:cache:'");
    // Also for a Cluster client (its keyPrefix can come in redisOptions) and for a tier below L2.
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true, redisOptions: { keyPrefix: 'app:' } });
    lazy.push(cluster);
    expect(refused({ redis: { client: cluster } }).message).toMatch(/keyPrefix/);
    const lower = refused({
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: { client: client() } },
        { name: 'l3', type: 'redis', redis: { client: client(), url: 'redis://127.0.0.1:6390' } as unknown as string },
      ],
    });
    expect(lower.option).toBe('tiers.l3.redis.url');
  });

  it('the client itself as redis (not inside { client }): an error saying how to pass it', () => {
    const err = refused({ redis: client() as unknown as TieredCacheOptions['redis'] });
    expect(err.option).toBe('redis');
    expect(err.message).toContain('redis: { client }');
  });

  it('our own options still apply with a client, and are validated as usual', () => {
    const err = refused({ redis: { client: client(), commandTimeout: -1 } });
    expect(err.option).toBe('redis.commandTimeout');
  });
});

describe('redis: { client } — standalone', () => {
  let redis: RedisServer;
  let raw: Redis;
  const apps: Redis[] = [];
  const caches: TieredCache[] = [];
  const procs: EngineProcess[] = [];
  let n = 0;

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url, { connectionName: 'test-raw' });
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await Promise.all(procs.splice(0).map((p) => p.stop()));
    await Promise.all(apps.splice(0).map((a) => a.quit().catch(() => a.disconnect())));
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  function appClient(opts: RedisOptions = {}): Redis {
    const c = new Redis(redis.url, { connectionName: `app-${++n}`, ...opts });
    apps.push(c);
    return c;
  }

  async function cache(client: Redis, extra: Partial<TieredCacheOptions> = {}): Promise<TieredCache> {
    const c = new TieredCache({ redis: { client, commandTimeout: 300 }, keyPrefix: `byo${n}:`, logger: quiet, ...extra });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  it("the cache works on the app's client: its commands go through it, only the bus subscriber is a connection of ours", async () => {
    const app = appClient();
    const c = await cache(app);
    await c.set('user:1', { name: 'Ann' }, { tags: ['users'] });
    expect(JSON.stringify(await raw.get(`byo${n}:user:1`))).toContain('Ann');
    expect(c.l2?.client).toBe(app);
    c.l1?.clear();
    expect(await c.get('user:1')).toEqual({ name: 'Ann' });
    expect(c.stats().l2.hits).toBe(1);
    await c.set('p:1', 1);
    await c.set('p:2', 2);
    expect(await c.invalidatePattern('p:*')).toBe(2);
    expect(await c.invalidateTags('users')).toBe(1);
    expect(await raw.exists(`byo${n}:user:1`, `byo${n}:p:1`)).toBe(0);
    // No data connection of ours: the cache's commands went through the app's client.
    expect(ours(await clientList(raw))).toEqual(['tiered-cache:bus-sub']);
    const appRow = (await clientList(raw)).find((r) => r.name === `app-${n}`);
    // CLIENT TRACKING for the bus is on the connection that carries the cache's writes: the app's.
    expect(appRow?.flags).toContain('t');
  });

  it('a lazyConnect client is connected by connect(); one still connecting is waited for', async () => {
    const lazy = appClient({ lazyConnect: true });
    const keyPrefix = `byo${n}:`;
    expect(lazy.status).toBe('wait');
    const a = await cache(lazy, { keyPrefix });
    expect(lazy.status).toBe('ready');
    expect(a.bus?.subscribed).toBe(true);
    const connecting = appClient();
    expect(connecting.status).toBe('connecting');
    const b = await cache(connecting, { keyPrefix });
    expect(connecting.status).toBe('ready');
    await b.set('k', 'v');
    expect(await a.get('k')).toBe('v');
  });

  it('invalidations travel both ways between an instance on a borrowed client and one configured the usual way, in another process', async () => {
    const a = await cache(appClient());
    const prefix = `byo${n}:`;
    const b = await EngineProcess.start({ redis: redis.url, keyPrefix: prefix });
    procs.push(b);
    await b.call('connect');
    // B's value read into A's L1 (once A has heard of B's write, so that notice cannot drop the copy after); B
    // overwrites it: A drops its copy (Redis announces it, tracking on the app's client).
    const tracked = a.stats().bus.trackedKeys;
    await b.call('set', 'k', 'one');
    await waitFor("A hears of B's write", () => a.stats().bus.trackedKeys > tracked);
    await warm(a, 'k', 'one');
    await b.call('set', 'k', 'two');
    await waitFor("A drops its copy of B's overwrite", () => a.peekLocal('k') === undefined);
    expect(await a.get('k')).toBe('two');
    // A's value in B's L1; A deletes it: B drops it.
    await a.set('m', 'mine');
    expect(await b.call('get', 'm')).toBe('mine');
    expect(await b.call('inL1', 'm')).toBe(true);
    await a.delete('m');
    await waitFor("B drops A's delete", async () => (await b.call('inL1', 'm')) === false);
    expect(await b.call('get', 'm')).toBeUndefined();
    // B's delete reaches A.
    await warm(a, 'k', 'two');
    await b.call('delete', 'k');
    await waitFor("A drops B's delete", () => a.peekLocal('k') === undefined);
  });

  it("close() leaves the app's client connected and working as it came; no connection of ours remains", async () => {
    const app = appClient();
    const errorListeners = app.listenerCount('error');
    const c = await cache(app);
    await c.set('k', 'v');
    expect(app.listenerCount('error')).toBeGreaterThan(errorListeners);
    caches.splice(caches.indexOf(c), 1);
    await c.close();
    expect(app.status).toBe('ready');
    expect(await app.set('after-close', '1')).toBe('OK');
    expect(await app.get('after-close')).toBe('1');
    expect(app.listenerCount('error')).toBe(errorListeners);
    expect(app.listenerCount('ready')).toBe(0);
    // CLIENT TRACKING (ours) is off again on the app's connection.
    const info = (await app.call('CLIENT', 'TRACKINGINFO')) as unknown[];
    expect(info[1]).toEqual(['off']);
    await waitFor('no connection of ours left on the server', async () => ours(await clientList(raw)).length === 0);
    expect((await clientList(raw)).some((r) => r.name === `app-${n}`)).toBe(true);
  });

  it("with Redis down, cache calls settle and leave nothing in the app client's offline queue; the cache recovers with the client", async () => {
    const app = appClient(); // offline queue on, 20 retries per request: ioredis' defaults
    const c = await cache(app, { l1: { enabled: false } });
    await c.set('k', 'v');
    await redis.kill();
    await waitFor('the app client notices', () => app.status !== 'ready');
    expect(await c.get('k')).toBeUndefined();
    await expect(c.set('k2', 'v2')).resolves.toEqual(expect.any(Boolean));
    await expect(c.delete('k')).resolves.toEqual(expect.any(Number));
    const offline = (app as unknown as { offlineQueue: { length: number } }).offlineQueue;
    expect(offline.length).toBe(0);
    await redis.restart();
    await waitFor('the app client is back', () => app.status === 'ready', 10_000);
    await waitFor('the cache writes through it again', async () => (await c.set('k3', 'v3')) && (await raw.get(`byo${n}:k3`)) !== null, 10_000);
    expect(await c.get('k3')).toBe('v3');
  });

  it('two caches given the same client (named caches): the second gets a data connection of its own, said once; each hears the other, and closing one leaves the other intact', async () => {
    const app = appClient();
    const keyPrefix = `byo${n}:`;
    const log = collecting();
    const a = await cache(app, { keyPrefix });
    const b = await cache(app, { keyPrefix, logger: log.logger });
    expect(a.l2?.client).toBe(app);
    expect(b.l2?.client).not.toBe(app);
    expect(log.lines.filter((l) => l.includes('already the data connection of another cache'))).toHaveLength(1);
    // Each tracks on its own connection: B's overwrite reaches A's L1, and A's reaches B's.
    const heardA = a.stats().bus.trackedKeys;
    await b.set('k', 'one');
    await waitFor("A hears of B's write", () => a.stats().bus.trackedKeys > heardA);
    await warm(a, 'k', 'one');
    await b.set('k', 'two');
    await waitFor("A drops B's overwrite", () => a.peekLocal('k') === undefined);
    const heardB = b.stats().bus.trackedKeys;
    await a.set('j', 'one');
    await waitFor("B hears of A's write", () => b.stats().bus.trackedKeys > heardB);
    await warm(b, 'j', 'one');
    // B closes: A's tracking on the app's client is untouched.
    caches.splice(caches.indexOf(b), 1);
    await b.close();
    await warm(a, 'k', 'two');
    await raw.set(`${keyPrefix}k`, 'not the envelope');
    await waitFor("A still hears of other clients' writes", () => a.peekLocal('k') === undefined);
  });

  it('a client the cache cannot use as it is (auto-pipelining): said once at boot, a data connection of ours duplicated from it, the client left alone', async () => {
    const app = appClient({ enableAutoPipelining: true });
    const log = collecting();
    const c = await cache(app, { logger: log.logger });
    expect(log.lines.filter((l) => l.includes('enableAutoPipelining'))).toHaveLength(1);
    expect(c.l2?.client).not.toBe(app);
    await c.set('k', 'v');
    expect(await raw.get(`byo${n}:k`)).not.toBeNull();
    expect(ours(await clientList(raw)).sort()).toEqual(['tiered-cache:bus-sub', 'tiered-cache:data']);
    caches.splice(caches.indexOf(c), 1);
    await c.close();
    await waitFor('no connection of ours left', async () => ours(await clientList(raw)).length === 0);
    expect(await app.ping()).toBe('PONG');
  });
});

describe('redis: { client } — RESP3 and a tier below L2', () => {
  let l2: RedisServer;
  let l3: RedisServer;
  let raw2: Redis;
  let raw3: Redis;
  const apps: Redis[] = [];
  const caches: TieredCache[] = [];

  beforeAll(async () => {
    [l2, l3] = await Promise.all([RedisServer.start(), RedisServer.start()]);
    raw2 = new Redis(l2.url);
    raw3 = new Redis(l3.url);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const a of apps.splice(0)) a.disconnect();
  });
  afterAll(async () => {
    raw2.disconnect();
    raw3.disconnect();
    await Promise.all([l2.stop(), l3.stop()]);
  });

  it('a RESP3 client is used as it is: reads, tags, patterns and the bus (the subscriber stays RESP2 for tracking)', async () => {
    const app = new Redis(l2.url, { protocol: 3 });
    apps.push(app);
    const a = new TieredCache({ redis: { client: app }, keyPrefix: 'r3:', logger: quiet });
    const b = new TieredCache({ redis: l2.url, keyPrefix: 'r3:', logger: quiet });
    caches.push(a, b);
    expect(await a.connect()).toBe(true);
    expect(await b.connect()).toBe(true);
    expect(a.l2?.client).toBe(app);
    await a.set('t:1', { v: 1 }, { tags: ['t'] });
    await a.set('t:2', { v: 2 }, { tags: ['t'] });
    expect(await b.get('t:1')).toEqual({ v: 1 });
    expect(await a.invalidateTags('t')).toBe(2);
    await a.set('p:1', 1);
    expect(await a.invalidatePattern('p:*')).toBe(1);
    const tracked = a.stats().bus.trackedKeys;
    await b.set('k', 'one');
    await waitFor("A hears of B's write", () => a.stats().bus.trackedKeys > tracked);
    await warm(a, 'k', 'one');
    await b.set('k', 'two');
    await waitFor("A drops its copy of B's overwrite", () => a.peekLocal('k') === undefined);
    expect(await a.get('k')).toBe('two');
  });

  it("a borrowed client for an L3 Redis tier: read through it, and left connected with nothing of ours on its server", async () => {
    const app3 = new Redis(l3.url, { connectionName: 'app-l3' });
    apps.push(app3);
    const c = new TieredCache({
      keyPrefix: 'low:',
      logger: quiet,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: l2.url },
        { name: 'l3', type: 'redis', redis: { client: app3, commandTimeout: 300 } },
      ],
    });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    await c.set('k', 'deep');
    expect(await raw3.get('low:k')).not.toBeNull();
    expect(ours(await clientList(raw3))).toEqual([]);
    // Gone from L1 and L2 (as after an eviction): read back from L3 through the app's client.
    c.l1?.clear();
    await raw2.del('low:k');
    expect(await c.get('k')).toBe('deep');
    expect(c.stats().tiers.l3.hits).toBe(1);
    caches.splice(caches.indexOf(c), 1);
    await c.close();
    expect(await app3.get('low:k')).not.toBeNull();
    expect((await clientList(raw3)).some((r) => r.name === 'app-l3')).toBe(true);
  });
});

describe('redis: { client } — Cluster', () => {
  let cluster: RedisCluster;
  let direct: Redis[];
  const caches: TieredCache[] = [];
  const procs: EngineProcess[] = [];
  let app: Cluster;

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    direct = cluster.nodes.map((nd) => new Redis(nd.port, nd.host));
    app = new Cluster(cluster.nodes, { redisOptions: { connectionName: 'app' } });
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await app?.quit();
    await Promise.all((direct ?? []).map((d) => d.quit()));
    await cluster?.stop();
  });

  it("the cache works on the app's Cluster client, invalidations reach an instance configured the usual way (another process), and close() leaves the client working with nothing of ours on any node", async () => {
    const a = new TieredCache({ redis: { client: app, commandTimeout: 300, connectTimeout: 3_000 }, keyPrefix: 'bc:', logger: quiet });
    caches.push(a);
    expect(await a.connect()).toBe(true);
    expect(a.l2?.mode).toBe('cluster');
    expect(a.l2?.client).toBe(app);
    const b = await EngineProcess.start({ redis: { mode: 'cluster', nodes: cluster.nodes, commandTimeout: 300, connectTimeout: 3_000 }, keyPrefix: 'bc:' });
    procs.push(b);
    expect(await b.call('connect')).toBe(true);
    await waitFor('B is subscribed', async () => (await b.call<{ bus: { subscribed: boolean } }>('stats')).bus.subscribed);

    // Keys on every master: pattern deletes walk them all through the borrowed client.
    await b.call('fill', 'p:', 30, 'v');
    expect(await b.call('inL1', 'p:7')).toBe(true);
    expect(await a.invalidatePattern('p:*')).toBe(30);
    await waitFor("B drops what A's pattern removed", async () => (await b.call('inL1', 'p:7')) === false);
    expect(await b.call('get', 'p:7')).toBeUndefined();

    // An overwrite by B reaches A's L1 (published on the bus: no tracking on a Cluster), and A's delete B's. A
    // reads B's first write once it has heard of it, so that message cannot drop the copy after.
    const received = a.stats().bus.received;
    await b.call('set', 'k', 'one');
    await waitFor("A hears of B's write", () => a.stats().bus.received > received);
    await warm(a, 'k', 'one');
    await b.call('set', 'k', 'two');
    await waitFor("A drops its copy of B's overwrite", () => a.peekLocal('k') === undefined);
    expect(await a.get('k')).toBe('two');
    expect(await b.call('get', 'k')).toBe('two');
    expect(await b.call('inL1', 'k')).toBe(true);
    await a.delete('k');
    await waitFor("B drops A's delete", async () => (await b.call('inL1', 'k')) === false);

    // B's connections are named as ours are: B goes first.
    procs.splice(0);
    await b.stop();
    const onNodes = async (): Promise<string[]> => (await Promise.all(direct.map((d) => clientList(d)))).flatMap(ours);
    await waitFor("B's connections are gone", async () => (await onNodes()).length > 0 && !(await onNodes()).some((x) => x.includes('data')));
    expect((await onNodes()).length).toBeGreaterThan(0);
    caches.splice(caches.indexOf(a), 1);
    await a.close();
    expect(app.status).toBe('ready');
    expect(await app.set('after-close', '1')).toBe('OK');
    expect(await app.get('after-close')).toBe('1');
    expect(app.listenerCount('node error')).toBe(0);
    await waitFor('no connection of ours left on any node', async () => (await onNodes()).length === 0);
  });
});

describe('redis: { client } — Sentinel', () => {
  let group: RedisSentinelGroup;
  beforeAll(async () => {
    group = await RedisSentinelGroup.start();
  });
  afterAll(async () => {
    await group?.stop();
  });

  it("a Sentinel client is used as it is (mode from the client), its subscriber found through Sentinel too, and left connected at close", async () => {
    const app = new Redis({ sentinels: group.sentinels, name: group.name, connectionName: 'app-sentinel' });
    try {
      const a = new TieredCache({ redis: { client: app, commandTimeout: 300 }, keyPrefix: 'bs:', logger: quiet });
      const b = new TieredCache({ redis: { mode: 'sentinel', sentinels: group.sentinels, name: group.name, commandTimeout: 300 }, keyPrefix: 'bs:', logger: quiet });
      try {
        expect(await a.connect()).toBe(true);
        expect(await b.connect()).toBe(true);
        expect(a.l2?.mode).toBe('sentinel');
        expect(a.l2?.client).toBe(app);
        await a.set('k', 'v');
        expect(await b.get('k')).toBe('v');
        expect(b.peekLocal('k')).toBe('v');
        await a.delete('k');
        await waitFor("B drops A's delete", () => b.peekLocal('k') === undefined);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
      expect(app.status).toBe('ready');
      expect(await app.set('after-close', '1')).toBe('OK');
      const master = new Redis(group.masterPort(), '127.0.0.1');
      try {
        await waitFor('no connection of ours left on the master', async () => !((await master.call('CLIENT', 'LIST')) as string).includes('tiered-cache'));
      } finally {
        master.disconnect();
      }
    } finally {
      app.disconnect();
    }
  });
});
