'use strict';
/**
 * One heap measurement, alone in its own process (run with --expose-gc): memory retained by 100,000
 * ~200-byte objects held in one contender's in-memory tier. The baseline is taken after the libraries are
 * loaded and before the cache is built, so the cache's own structures count; keys and objects are created
 * inside the measurement, so they count too. Prints one JSON line.
 */
require('reflect-metadata');
const { TTL_MS, makeParsedValue, keyOf } = require('./data');

const N = 100_000;

const builders = {
  async 'raw lru-cache'() {
    const { LRUCache } = require('lru-cache');
    const lru = new LRUCache({ max: N, ttl: TTL_MS });
    return { set: async (k, v) => lru.set(k, v), size: () => lru.size, close() {} };
  },
  async ours() {
    const { TieredCache } = require('../../dist');
    // L1 only: what L1 retains does not depend on whether L2 is there.
    const c = new TieredCache({ defaultTtl: TTL_MS, l1: { maxEntries: N, ttl: TTL_MS } });
    await c.connect();
    return { set: (k, v) => c.set(k, v), size: () => c.stats().l1.size, close: () => c.close() };
  },
  async "ours, l1.protection 'freeze'"() {
    const { TieredCache } = require('../../dist');
    const c = new TieredCache({ defaultTtl: TTL_MS, l1: { maxEntries: N, ttl: TTL_MS, protection: 'freeze' } });
    await c.connect();
    return { set: (k, v) => c.set(k, v), size: () => c.stats().l1.size, close: () => c.close() };
  },
  async 'bentocache (memory, serialize:false)'() {
    const { BentoCache, bentostore } = await import('bentocache');
    const { memoryDriver } = await import('bentocache/drivers/memory');
    const b = new BentoCache({ default: 'm', stores: { m: bentostore().useL1Layer(memoryDriver({ maxItems: N, serialize: false })) } });
    let n = 0;
    return { set: (k, v) => b.set({ key: k, value: v, ttl: TTL_MS }).then(() => n++), size: () => n, close: () => b.disconnectAll() };
  },
  async 'cache-manager (memory Keyv, no serialize, useClone:false)'() {
    const { createCache } = await import('cache-manager');
    const { createKeyv } = await import('cacheable');
    const c = createCache({ stores: [createKeyv({ ttl: TTL_MS, lruSize: N, useClone: false })], ttl: TTL_MS });
    let n = 0;
    return { set: (k, v) => c.set(k, v, TTL_MS).then(() => n++), size: () => n, close: () => c.disconnect() };
  },
  async 'cache-manager (NestJS docs memory Keyv: serialized)'() {
    const { createCache } = await import('cache-manager');
    const { Keyv } = await import('keyv');
    const { CacheableMemory } = await import('cacheable');
    const c = createCache({ stores: [new Keyv({ store: new CacheableMemory({ ttl: TTL_MS, lruSize: N }) })], ttl: TTL_MS });
    let n = 0;
    return { set: (k, v) => c.set(k, v, TTL_MS).then(() => n++), size: () => n, close: () => c.disconnect() };
  },
  async 'cacheable (memory primary, useClone:false)'() {
    const { Cacheable, createKeyv } = await import('cacheable');
    const c = new Cacheable({ primary: createKeyv({ ttl: TTL_MS, lruSize: N, useClone: false }), ttl: TTL_MS });
    let n = 0;
    return { set: (k, v) => c.set(k, v, TTL_MS).then(() => n++), size: () => n, close: () => c.disconnect() };
  },
};

async function settle() {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    global.gc();
  }
}

const used = () => {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, total: m.heapUsed + m.arrayBuffers };
};

async function main() {
  const name = process.argv[2];
  if (!global.gc) throw new Error('run with --expose-gc');
  const build = builders[name];
  if (!build) throw new Error(`unknown heap contender "${name}"`);
  // Load the library code (and let it allocate its module-level state) before the baseline.
  const warm = await build();
  await warm.close();
  await settle();
  const before = used();
  const cache = await build();
  for (let i = 0; i < N; i++) await cache.set(keyOf(i), makeParsedValue(i));
  await settle();
  const after = used();
  const size = cache.size();
  if (size !== N) throw new Error(`${name} holds ${size} entries, expected ${N}`);
  process.stdout.write(JSON.stringify({ name, heap: after.heap - before.heap, total: after.total - before.total }) + '\n');
  await cache.close();
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

module.exports = { names: Object.keys(builders) };
