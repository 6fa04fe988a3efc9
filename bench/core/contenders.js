'use strict';
require('reflect-metadata');
const { Redis } = require('ioredis');
const { LRUCache } = require('lru-cache');
const { NestFactory } = require('@nestjs/core');
const { Module } = require('@nestjs/common');
const { TieredCacheModule, CacheManagerService } = require('../../dist');
const { KEYS, TTL_MS, makeValue, keys } = require('./data');

/**
 * Every contender of the core suite, built once and kept for the whole run. Each library gets its own Redis
 * databases, so nothing collides and a flush never touches another library's data:
 * read/write data in DB `read`, the getOrSet-miss cases in DB `miss` (flushed after every slice).
 */
const DB = {
  ours: { read: 0, miss: 5 },
  raw: { read: 1, miss: 6 },
  bento: { read: 2, miss: 7 },
  cm: { read: 3, miss: 8 },
  cacheable: { read: 4, miss: 9 },
};
const L1_MAX = 10_000;
const SINGLE_FLIGHT_CALLERS = 1000;
const MGET_SIZE = 100;

const dbUrl = (url, db) => `${url}/${db}`;

/** A real Nest application context with TieredCacheModule.forRoot(opts); CacheManagerService taken from it. */
async function bootOurs(opts) {
  class BenchAppModule {}
  Module({ imports: [TieredCacheModule.forRoot(opts)] })(BenchAppModule);
  const app = await NestFactory.createApplicationContext(BenchAppModule, { logger: false });
  return { app, cache: app.get(CacheManagerService) };
}

function oursOptions(url, db, extra = {}) {
  return {
    redis: dbUrl(url, db),
    keyPrefix: 'bench:',
    defaultTtl: TTL_MS,
    ...extra,
    l1: { maxEntries: L1_MAX, ttl: TTL_MS, ...extra.l1 },
  };
}

const mgetWindow = (i) => {
  const start = (i * MGET_SIZE) % KEYS;
  return keys.slice(start, start + MGET_SIZE);
};
// Precomputed so slicing is not part of any case.
const mgetWindows = Array.from({ length: KEYS / MGET_SIZE }, (_, i) => mgetWindow(i));

/**
 * The peers' building blocks, configured as the core suite measures them (its TTL and L1 size; memory tiers keep
 * live objects), for every suite that sets the peers against ours. Each Redis connection made through it is closed
 * by one of `closers`. The `*Tiered(db)` builders are the L1 + Redis stack of the getOrSet cases.
 */
async function peerKit(url, closers) {
  const { BentoCache, bentostore } = await import('bentocache');
  const { memoryDriver } = await import('bentocache/drivers/memory');
  const { redisDriver } = await import('bentocache/drivers/redis');
  const { createCache } = await import('cache-manager');
  const { Keyv } = await import('keyv');
  const { Cacheable, CacheableMemory, createKeyv: createMemoryKeyv } = await import('cacheable');
  const { createKeyv } = await import('@keyv/redis');
  const bentoRedis = (db) => redisDriver({ connection: { host: '127.0.0.1', port: Number(new URL(url).port), db } });
  const bentoMem = (serialize) => memoryDriver({ maxItems: L1_MAX, serialize });
  // The comparable memory tier: live objects, no Keyv serialization, no clone on read (what ours does by default).
  const memKeyv = () => createMemoryKeyv({ ttl: TTL_MS, lruSize: L1_MAX, useClone: false });
  const redisKeyv = (db) => {
    const k = createKeyv(dbUrl(url, db));
    closers.push(() => k.disconnect());
    return k;
  };
  return {
    BentoCache,
    bentostore,
    createCache,
    Cacheable,
    CacheableMemory,
    Keyv,
    createMemoryKeyv,
    bentoRedis,
    bentoMem,
    memKeyv,
    redisKeyv,
    // A store for `new BentoCache({ stores })`; serialize:false keeps live objects in L1, as ours does.
    bentoTiered: (db) => bentostore().useL1Layer(bentoMem(false)).useL2Layer(bentoRedis(db)),
    cmTiered: (db) => createCache({ stores: [memKeyv(), redisKeyv(db)], ttl: TTL_MS }),
    cacheableTiered: (db) => new Cacheable({ primary: memKeyv(), secondary: redisKeyv(db), ttl: TTL_MS }),
  };
}

async function buildContenders(url) {
  const closers = [];
  const admin = {};
  for (const lib of Object.values(DB)) {
    for (const db of Object.values(lib)) {
      admin[db] = new Redis(dbUrl(url, db), { lazyConnect: true });
      await admin[db].connect();
      closers.push(() => admin[db].quit());
    }
  }
  const flush = (db) => admin[db].flushdb();

  // ------------------------------------------------------------------ raw floors
  const lru = new LRUCache({ max: L1_MAX, ttl: TTL_MS });
  const rawPlain = new Redis(dbUrl(url, DB.raw.read));
  const rawAP = new Redis(dbUrl(url, DB.raw.read), { enableAutoPipelining: true });
  const rawMissPlain = new Redis(dbUrl(url, DB.raw.miss));
  const rawMissAP = new Redis(dbUrl(url, DB.raw.miss), { enableAutoPipelining: true });
  for (const c of [rawPlain, rawAP, rawMissPlain, rawMissAP]) closers.push(() => c.quit());
  const rawSingleFlight = new Map();
  const raw = {
    l1Get: (k) => lru.get(k),
    async getParsed(client, k) {
      const s = await client.get(k);
      return s === null ? undefined : JSON.parse(s);
    },
    set: (client, k, v) => client.set(k, JSON.stringify(v), 'PX', TTL_MS),
    async getOrSet(client, k, factory) {
      const s = await client.get(k);
      if (s !== null) return JSON.parse(s);
      const v = await factory();
      await client.set(k, JSON.stringify(v), 'PX', TTL_MS);
      return v;
    },
    // The least a single-flight getOrSet can do: one Map lookup per caller, one GET, one SET.
    singleFlight(client, k, factory) {
      let p = rawSingleFlight.get(k);
      if (p) return p;
      p = raw.getOrSet(client, k, factory).finally(() => rawSingleFlight.delete(k));
      rawSingleFlight.set(k, p);
      return p;
    },
  };

  // ------------------------------------------------------------------ ours (through Nest)
  const ours = {};
  for (const [name, opts] of Object.entries({
    // `tiered` runs as shipped, invalidation bus on: its writes publish to the other instances. The other
    // instances here would be those other instances, subscribed in this same process: their bus is off so
    // one process does not pay for decoding and applying its own broadcasts N times over.
    tiered: oursOptions(url, DB.ours.read),
    clone: oursOptions(url, DB.ours.read, { keyPrefix: 'bench-clone:', bus: false, l1: { protection: 'clone' } }),
    freeze: oursOptions(url, DB.ours.read, { keyPrefix: 'bench-freeze:', bus: false, l1: { protection: 'freeze' } }),
    l2only: oursOptions(url, DB.ours.read, { bus: false, l1: { enabled: false } }),
    // Its own prefix: tracking is not per database, so a shared prefix would announce its writes to `tiered`.
    miss: oursOptions(url, DB.ours.miss, { keyPrefix: 'bench-miss:', bus: false }),
  })) {
    const { app, cache } = await bootOurs(opts);
    ours[name] = cache;
    closers.push(() => app.close());
  }

  const kit = await peerKit(url, closers);
  const { bentostore, bentoMem, bentoRedis, memKeyv, redisKeyv, createCache, Cacheable } = kit;

  // ------------------------------------------------------------------ bentocache
  const bento = new kit.BentoCache({
    default: 'tiered',
    ttl: TTL_MS,
    stores: {
      // serialize:false keeps live objects in L1, as ours does; the library default (true) is measured too.
      tiered: kit.bentoTiered(DB.bento.read),
      tieredDefault: bentostore().useL1Layer(bentoMem(undefined)).useL2Layer(bentoRedis(DB.bento.read)),
      l2only: bentostore().useL2Layer(bentoRedis(DB.bento.read)),
      miss: kit.bentoTiered(DB.bento.miss),
    },
  });
  closers.push(() => bento.disconnectAll());
  const bentoStores = {
    tiered: bento.use('tiered'),
    tieredDefault: bento.use('tieredDefault'),
    l2only: bento.use('l2only'),
    miss: bento.use('miss'),
  };

  // ------------------------------------------------------------------ cache-manager v7 + Keyv + @keyv/redis
  // The NestJS docs' memory store for cache-manager: Keyv serializes every value, CacheableMemory clones on read.
  const docsMemKeyv = () => new kit.Keyv({ store: new kit.CacheableMemory({ ttl: TTL_MS, lruSize: L1_MAX }) });
  // Cacheable's own default primary: no serialization, clone on read.
  const defaultMemKeyv = () => kit.createMemoryKeyv({ ttl: TTL_MS, lruSize: L1_MAX });
  const cmRead = redisKeyv(DB.cm.read);
  const cm = {
    tiered: createCache({ stores: [memKeyv(), cmRead], ttl: TTL_MS }),
    tieredDefault: createCache({ stores: [docsMemKeyv(), cmRead], ttl: TTL_MS }),
    l2only: createCache({ stores: [cmRead], ttl: TTL_MS }),
    miss: kit.cmTiered(DB.cm.miss),
  };

  // ------------------------------------------------------------------ cacheable
  const cbRead = redisKeyv(DB.cacheable.read);
  const cb = {
    tiered: new Cacheable({ primary: memKeyv(), secondary: cbRead, ttl: TTL_MS }),
    tieredDefault: new Cacheable({ primary: defaultMemKeyv(), secondary: cbRead, ttl: TTL_MS }),
    // Cacheable always reads its primary first; a Redis primary is how it runs without a memory tier.
    l2only: new Cacheable({ primary: cbRead, ttl: TTL_MS }),
    miss: kit.cacheableTiered(DB.cacheable.miss),
  };

  // ------------------------------------------------------------------ data: 1,000 keys per library
  for (let i = 0; i < KEYS; i++) {
    const k = keys[i];
    lru.set(k, makeValue(i));
    await raw.set(rawPlain, k, makeValue(i));
    await ours.tiered.set(k, makeValue(i));
    await ours.clone.set(k, makeValue(i));
    await ours.freeze.set(k, makeValue(i));
    await bentoStores.tiered.set({ key: k, value: makeValue(i), ttl: TTL_MS });
    await bentoStores.tieredDefault.set({ key: k, value: makeValue(i), ttl: TTL_MS });
    await cm.tiered.set(k, makeValue(i), TTL_MS);
    await cm.tieredDefault.set(k, makeValue(i), TTL_MS);
    await cb.tiered.set(k, makeValue(i), TTL_MS);
    await cb.tieredDefault.set(k, makeValue(i), TTL_MS);
  }

  // ------------------------------------------------------------------ cases
  const k = (i) => keys[i % KEYS];
  let fresh = 0; // getOrSet-miss keys are never reused, in any library
  const freshKey = () => `miss:${++fresh}`;
  const cases = [];
  const add = (group, name, op, extra = {}) => cases.push({ group, name, op, floor: false, inflight: 1, ...extra });
  const floor = (group, name, op, extra = {}) => add(group, name, op, { floor: true, ...extra });

  let g = 'L1 hit (get, 1 in flight)';
  // Not an async function: the harness's own `await` is the one await the floor pays.
  floor(g, 'raw lru-cache get (awaited)', (i) => raw.l1Get(k(i)));
  add(g, 'ours: CacheManagerService.get', (i) => ours.tiered.get(k(i)), { ours: true, target: 0.6 });
  add(g, "ours: get, l1.protection 'clone'", (i) => ours.clone.get(k(i)), { ours: true });
  add(g, 'bentocache (L1 serialize:false)', (i) => bentoStores.tiered.get({ key: k(i) }));
  add(g, 'bentocache (default: serialize:true)', (i) => bentoStores.tieredDefault.get({ key: k(i) }));
  add(g, 'cache-manager (memory Keyv: no serialize, useClone:false)', (i) => cm.tiered.get(k(i)));
  add(g, 'cache-manager (NestJS docs memory Keyv: serialize + clone)', (i) => cm.tieredDefault.get(k(i)));
  add(g, 'cacheable (primary useClone:false)', (i) => cb.tiered.get(k(i)));
  add(g, 'cacheable (default primary: useClone:true)', (i) => cb.tieredDefault.get(k(i)));

  for (const inflight of [1, 100]) {
    g = `L2 hit (get, L1 off, ${inflight} in flight)`;
    if (inflight === 1) {
      floor(g, 'raw ioredis GET + JSON.parse', (i) => raw.getParsed(rawPlain, k(i)));
      add(g, 'control: the floor again (how far a ratio strays from 100 % by noise alone)', (i) => raw.getParsed(rawPlain, k(i)));
    }
    else floor(g, 'raw ioredis GET + JSON.parse, auto-pipelining', (i) => raw.getParsed(rawAP, k(i)), { inflight });
    add(g, 'ours: get (l1.enabled:false)', (i) => ours.l2only.get(k(i)), { inflight, ours: true, target: inflight === 1 ? 0.9 : 1.0 });
    add(g, 'bentocache (L2 layer only)', (i) => bentoStores.l2only.get({ key: k(i) }), { inflight });
    add(g, 'cache-manager (Keyv redis store only)', (i) => cm.l2only.get(k(i)), { inflight });
    add(g, 'cacheable (Keyv redis as primary)', (i) => cb.l2only.get(k(i)), { inflight });
  }

  g = 'write-through set (L1 + L2, 1 in flight)';
  floor(g, 'raw ioredis SET (JSON.stringify, PX)', (i) => raw.set(rawPlain, k(i), makeValue(i)));
  add(g, 'ours: set', (i) => ours.tiered.set(k(i), makeValue(i)), { ours: true, target: 0.9 });
  add(g, 'control: the floor again (how far a ratio strays from 100 % by noise alone)', (i) => raw.set(rawPlain, k(i), makeValue(i)));
  add(g, "ours: set, l1.protection 'freeze', bus off", (i) => ours.freeze.set(k(i), makeValue(i)), { ours: true });
  add(g, 'bentocache', (i) => bentoStores.tiered.set({ key: k(i), value: makeValue(i), ttl: TTL_MS }));
  add(g, 'cache-manager', (i) => cm.tiered.set(k(i), makeValue(i), TTL_MS));
  add(g, 'cacheable', (i) => cb.tiered.set(k(i), makeValue(i), TTL_MS));

  g = 'getOrSet miss, trivial factory (1 in flight)';
  const missAfter = (db) => ({ after: () => flush(db) });
  floor(g, 'raw ioredis GET (nil) + SET', (i) => raw.getOrSet(rawMissPlain, freshKey(), () => makeValue(i)), missAfter(DB.raw.miss));
  add(g, 'ours: getOrSet', (i) => ours.miss.getOrSet(freshKey(), () => makeValue(i)), { ours: true, target: 0.75, ...missAfter(DB.ours.miss) });
  // The cluster-wide fill lock (on by default) costs the miss path a script read and a release: this row without it.
  add(g, 'ours: getOrSet, lock: false', (i) => ours.miss.getOrSet(freshKey(), () => makeValue(i), { lock: false }), { ours: true, ...missAfter(DB.ours.miss) });
  add(g, 'bentocache getOrSet', (i) => bentoStores.miss.getOrSet({ key: freshKey(), factory: () => makeValue(i), ttl: TTL_MS }), missAfter(DB.bento.miss));
  add(g, 'cache-manager wrap', (i) => cm.miss.wrap(freshKey(), () => makeValue(i), TTL_MS), missAfter(DB.cm.miss));
  add(g, 'cacheable getOrSet', (i) => cb.miss.getOrSet(freshKey(), async () => makeValue(i), { ttl: TTL_MS }), missAfter(DB.cacheable.miss));

  g = `mget of ${MGET_SIZE} keys from L2 (L1 off)`;
  const w = (i) => mgetWindows[i % mgetWindows.length];
  floor(g, 'raw ioredis MGET + JSON.parse each', async (i) => {
    const rows = await rawPlain.mget(...w(i));
    return rows.map((s) => (s === null ? undefined : JSON.parse(s)));
  });
  add(g, 'ours: mget (l1.enabled:false)', (i) => ours.l2only.mget(w(i)), { ours: true });
  add(g, 'bentocache (no mget: Promise.all of get)', (i) => Promise.all(w(i).map((key) => bentoStores.l2only.get({ key }))));
  add(g, 'cache-manager mget (redis store only)', (i) => cm.l2only.mget(w(i)));
  add(g, 'cacheable getMany (redis primary)', (i) => cb.l2only.getMany(w(i)));

  g = `mget of ${MGET_SIZE} keys, all L1 hits`;
  floor(g, 'raw lru-cache get x100 (awaited once)', (i) => w(i).map(raw.l1Get));
  add(g, 'ours: mget', (i) => ours.tiered.mget(w(i)), { ours: true });
  add(g, 'bentocache (no mget: Promise.all of get)', (i) => Promise.all(w(i).map((key) => bentoStores.tiered.get({ key }))));
  add(g, 'cache-manager mget', (i) => cm.tiered.mget(w(i)));
  add(g, 'cacheable getMany', (i) => cb.tiered.getMany(w(i)));

  g = `${SINGLE_FLIGHT_CALLERS} concurrent getOrSet on one missing key`;
  const burst = (call) => {
    const c = { runs: 0, bursts: 0 };
    c.op = (i) => {
      const key = freshKey();
      c.bursts++;
      const factory = () => {
        c.runs++;
        return makeValue(i);
      };
      const all = new Array(SINGLE_FLIGHT_CALLERS);
      for (let j = 0; j < SINGLE_FLIGHT_CALLERS; j++) all[j] = call(key, factory);
      return Promise.all(all);
    };
    return c;
  };
  const sf = (group, name, call, db, extra) => {
    const b = burst(call);
    cases.push({ group, name, floor: false, inflight: 1, unit: 'burst', ...missAfter(db), ...extra, op: b.op, factoryRuns: () => b.runs / Math.max(1, b.bursts) });
  };
  sf(g, 'hand-rolled single-flight over raw GET + SET', (key, f) => raw.singleFlight(rawMissAP, key, f), DB.raw.miss, { floor: true });
  sf(g, 'ours: getOrSet', (key, f) => ours.miss.getOrSet(key, f), DB.ours.miss, { ours: true });
  sf(g, 'bentocache getOrSet', (key, f) => bentoStores.miss.getOrSet({ key, factory: f, ttl: TTL_MS }), DB.bento.miss);
  sf(g, 'cache-manager wrap', (key, f) => cm.miss.wrap(key, f, TTL_MS), DB.cm.miss);
  sf(g, 'cacheable getOrSet', (key, f) => cb.miss.getOrSet(key, async () => f(), { ttl: TTL_MS }), DB.cacheable.miss);

  const close = async () => {
    for (const c of closers.reverse()) await Promise.resolve().then(c).catch(() => undefined);
  };
  return { cases, close, ours };
}

/** Fails loudly when a read case does not return the data it is supposed to hit. */
async function verify(cases) {
  const bad = [];
  for (const c of cases) {
    if (!/hit|mget/.test(c.group)) continue;
    const v = await c.op(3);
    const ok = Array.isArray(v) ? v.length === MGET_SIZE && v.every((x) => x && typeof x.id === 'number') : v && typeof v.id === 'number';
    if (!ok) bad.push(`${c.group} / ${c.name}: got ${JSON.stringify(v)?.slice(0, 80)}`);
  }
  if (bad.length) throw new Error(`benchmark data check failed:\n  ${bad.join('\n  ')}`);
}

module.exports = { buildContenders, peerKit, verify, DB, L1_MAX, SINGLE_FLIGHT_CALLERS, MGET_SIZE };
