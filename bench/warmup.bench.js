'use strict';
/**
 * Cache warm-up throughput (docs/warming.md): keys/s of a 10,000-key TieredCacheWarmup.run in a real Nest
 * application context (TieredCacheModule, L1 + L2 on Redis, write-through), against a raw-ioredis floor doing the
 * same writes in the same run: SET key <JSON> PX <ttl> of the same values, as many in flight as the warm-up's
 * concurrency, each awaited before its worker takes the next key.
 *
 *   - ours, load(): a warmer whose keys() is an async generator and whose load(id) returns { key, value, ttl }
 *     (written with set: codec, entry envelope, L1 and L2).
 *   - ours, @Cacheable method: the same through a @Cacheable provider method (its key template and TTL).
 *   - floor: raw ioredis, same keys and JSON, same number in flight (each SET its own write, as a hand-written
 *     warm-up script would send it); beside it, informative, the same with ioredis' enableAutoPipelining (the
 *     engine coalesces the writes of one tick into one socket write, which a plain client does not).
 *
 * Each case runs once per round, order rotated each round; figures are medians over rounds, "vs floor" the median
 * of the per-round ratios.
 *
 *   npm run build && REDIS_URL=redis://127.0.0.1:PORT node bench/warmup.bench.js
 *   (bench/run.js sets REDIS_URL; without it a private redis-server is started)
 *   WARMUP_BENCH_ROUNDS=7 WARMUP_BENCH_KEYS=10000 WARMUP_BENCH_CONCURRENCY=8,64  (optional)
 */
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { Redis } = require('ioredis');
const { Cacheable, CacheWarmer, TieredCacheModule, TieredCacheWarmup } = require('../dist');
const { median } = require('./core/harness');
const { startRedis } = require('./core/redis-server');
const { makeValue } = require('./core/data');

const ROUNDS = Number(process.env.WARMUP_BENCH_ROUNDS ?? 7);
const KEYS = Number(process.env.WARMUP_BENCH_KEYS ?? 10_000);
const CONCURRENCY = (process.env.WARMUP_BENCH_CONCURRENCY ?? '8,64').split(',').map(Number);
const TTL_MS = 3_600_000;
const log = (m) => process.stderr.write(`[warmup] ${m}\n`);

async function* ids() {
  for (let i = 0; i < KEYS; i++) yield i;
}

class ItemService {
  async get(id) {
    return makeValue(id);
  }
}
{
  const d = Object.getOwnPropertyDescriptor(ItemService.prototype, 'get');
  Cacheable({ key: 'm:{0}', ttl: TTL_MS })(ItemService.prototype, 'get', d);
  Object.defineProperty(ItemService.prototype, 'get', d);
  Injectable()(ItemService);
}

function warmers(concurrency) {
  class LoadWarmer {
    keys() {
      return ids();
    }
    async load(id) {
      return { key: `l:${id}`, value: makeValue(id), ttl: TTL_MS };
    }
  }
  CacheWarmer({ name: 'load', concurrency })(LoadWarmer);
  class MethodWarmer {
    keys() {
      return ids();
    }
  }
  CacheWarmer({ name: 'method', target: ItemService, method: 'get', concurrency })(MethodWarmer);
  return [LoadWarmer, MethodWarmer];
}

/** The floor: `concurrency` workers, each awaiting its SET before taking the next key. */
async function rawWarm(redis, prefix, concurrency) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < KEYS; i = next++) await redis.set(`${prefix}r:${i}`, JSON.stringify(makeValue(i)), 'PX', TTL_MS);
    }),
  );
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return KEYS / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main() {
  let server;
  let url = process.env.REDIS_URL;
  if (!url) {
    server = await startRedis();
    url = server.url;
  }
  const lines = [];
  try {
    for (const concurrency of CONCURRENCY) {
      class AppModule {}
      const prefix = `warm${concurrency}:`;
      Module({
        imports: [TieredCacheModule.forRoot({ redis: url, keyPrefix: prefix, logger: { warn() {}, error() {} }, metrics: false, l1: { maxEntries: KEYS * 3 } })],
        providers: [ItemService, ...warmers(concurrency)],
      })(AppModule);
      const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
      const raw = new Redis(url);
      const pipelined = new Redis(url, { enableAutoPipelining: true });
      const warmup = app.get(TieredCacheWarmup);
      const cases = [
        { name: `ours: TieredCacheWarmup.run, load() entries`, run: async () => check(await warmup.run('load')) },
        { name: `ours: TieredCacheWarmup.run, @Cacheable method`, run: async () => check(await warmup.run('method')) },
        { name: `raw ioredis SET PX, ${concurrency} in flight`, floor: true, run: () => rawWarm(raw, prefix, concurrency) },
        { name: `raw ioredis SET PX, ${concurrency} in flight, enableAutoPipelining`, run: () => rawWarm(pipelined, prefix + 'p', concurrency) },
      ];
      // One unmeasured pass each: JIT, connections, Redis' own allocation for the keys.
      for (const c of cases) await c.run();
      const samples = new Map(cases.map((c) => [c, []]));
      const ratios = new Map(cases.map((c) => [c, []]));
      for (let r = 0; r < ROUNDS; r++) {
        const order = cases.slice(r % cases.length).concat(cases.slice(0, r % cases.length));
        const round = new Map();
        for (const c of order) round.set(c, await timed(c.run));
        const floor = round.get(cases[2]);
        for (const c of cases) {
          samples.get(c).push(round.get(c));
          ratios.get(c).push(round.get(c) / floor);
        }
        log(`concurrency ${concurrency}: round ${r + 1}/${ROUNDS}`);
      }
      const dbsize = await raw.dbsize();
      if (dbsize < KEYS * 4) throw new Error(`expected at least ${KEYS * 4} keys in Redis, found ${dbsize}`);
      for (const c of cases) {
        const s = samples.get(c);
        const fmt = (x) => Math.round(x).toLocaleString('en-US');
        lines.push(`| ${KEYS.toLocaleString('en-US')} keys, concurrency ${concurrency} | ${c.name} | ${fmt(median(s))} | ${fmt(Math.min(...s))}–${fmt(Math.max(...s))} | ${c.floor ? 'floor' : `${(median(ratios.get(c)) * 100).toFixed(0)} %`} |`);
      }
      raw.disconnect();
      pipelined.disconnect();
      await app.close();
    }
  } finally {
    await server?.stop();
  }
  process.stdout.write(
    [
      `### Cache warm-up: keys/s of a ${KEYS.toLocaleString('en-US')}-key run (L1 + L2 write-through, real Redis)`,
      '',
      `One run per case per round, ${ROUNDS} rounds, order rotated; keys/s = median over rounds; "vs floor" = median of the per-round ratios to raw ioredis doing the same SETs (same JSON, same PX, as many in flight).`,
      '',
      '| Run | Case | keys/s | range | vs floor |',
      '|---|---|--:|--:|--:|',
      ...lines,
      '',
    ].join('\n') + '\n',
  );
}

function check(result) {
  if (result.status !== 'completed' || result.keys.ok !== KEYS) throw new Error(`warm-up ${result.warmer} did not warm every key: ${JSON.stringify(result)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
