'use strict';
/**
 * getOrSet against a slow or failing source (docs/resilience.md), each row against the raw
 * lru-cache get floor measured in the same run:
 *
 * 1. Stale hit inside grace: every key is past its TTL, within grace, and its refresh is held in a factory that
 *    does not settle during the run, so every timed call is answered with the stale copy at once (target ≥ 50 %
 *    of the floor). Beside it: the same engine's fresh L1 hit through getOrSet, and bentocache's getOrSet of a
 *    graced entry with a zero soft timeout (its way of answering stale at once), when the peer answers stale.
 * 2. Fail-safe hit: the factory throws; after the first failure the stale copy is kept fresh for
 *    failSafeBackoff, so the timed calls are answered from it without calling the factory (informative).
 *
 * L1 + L2 (Redis at REDIS_URL; bench/run.js sets it, else a private redis-server is started): neither row may
 * touch Redis, and the suite fails if the stats show an L2 lookup during the timed rounds.
 *
 *   npm run build && node --expose-gc bench/resilience.bench.js
 */
const { LRUCache } = require('lru-cache');
const { TieredCache } = require('../dist');
const { runRounds } = require('./core/harness');
const { formatCoreTable } = require('./core/report');
const { startRedis } = require('./core/redis-server');
const { KEYS, makeValue, keys } = require('./core/data');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 120);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const SHORT_TTL = 40;
const quiet = { warn() {}, error() {} };
const k = (i) => keys[i % KEYS];
const never = new Promise(() => undefined);
// One factory for every call, as a decorator passes: the floor allocates nothing per call either.
const hold = () => never;
const log = (m) => process.stderr.write(`[resilience] ${m}\n`);

async function waitUntil(what, check) {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main() {
  const own = process.env.REDIS_URL ? undefined : await startRedis();
  const url = process.env.REDIS_URL ?? own.url;
  const closers = [];
  try {
    const engine = (prefix, resilience) => {
      const c = new TieredCache({ redis: url, keyPrefix: prefix, logger: quiet, l1: { maxEntries: 10_000 }, resilience });
      closers.push(() => c.close());
      return c;
    };
    const stale = engine('bench-stale:', { grace: '1h' });
    const fresh = engine('bench-fresh:', undefined);
    const failing = engine('bench-failsafe:', { grace: '1h', failSafeBackoff: '1h' });
    await Promise.all([stale.connect(), fresh.connect(), failing.connect()]);
    const raw = new LRUCache({ max: 10_000, ttl: 60_000 });
    for (let i = 0; i < KEYS; i++) {
      raw.set(k(i), makeValue(i));
      await stale.getOrSet(k(i), () => makeValue(i), { ttl: SHORT_TTL });
      await fresh.getOrSet(k(i), () => makeValue(i), { ttl: '1h' });
      await failing.getOrSet(k(i), () => makeValue(i), { ttl: SHORT_TTL });
    }
    await waitUntil('the short TTLs to pass', async () => (await stale.get(k(KEYS - 1))) === undefined && (await failing.get(k(KEYS - 1))) === undefined);
    // One call per key starts its refresh, held for good: from then on every call is a stale hit.
    for (let i = 0; i < KEYS; i++) {
      if ((await stale.getOrSet(k(i), () => never)) === undefined) throw new Error('no stale copy served');
      const v = await failing.getOrSet(k(i), () => {
        throw new Error('source down');
      }, { grace: false });
      if (v === undefined) throw new Error('fail-safe served nothing');
    }
    const boom = () => {
      throw new Error('source down');
    };
    const noGrace = Object.freeze({ grace: false });

    const cases = [];
    let g = 'Stale hit inside grace (getOrSet, 1 in flight)';
    cases.push(
      { group: g, name: 'raw lru-cache get (awaited)', floor: true, op: (i) => raw.get(k(i)) },
      { group: g, name: 'ours: getOrSet of a stale copy, refresh in flight', op: (i) => stale.getOrSet(k(i), hold), target: 0.5 },
      { group: g, name: 'ours: getOrSet of a fresh L1 entry, no grace (for reference)', op: (i) => fresh.getOrSet(k(i), hold) },
    );
    const peer = await bentoStale();
    if (peer) {
      closers.push(peer.close);
      cases.push({ group: g, name: 'bentocache getOrSet, grace + timeout 0 (memory only)', op: peer.op });
    }
    g = 'Fail-safe hit: factory throws (getOrSet, 1 in flight)';
    cases.push(
      { group: g, name: 'raw lru-cache get (awaited)', floor: true, op: (i) => raw.get(k(i)) },
      { group: g, name: 'ours: getOrSet, stale copy kept by fail-safe', op: (i) => failing.getOrSet(k(i), boom, noGrace) },
    );

    const before = [stale, failing].map((c) => c.stats());
    log(`${cases.length} cases x ${ROUNDS} rounds x ${SLICE_MS} ms`);
    const results = await runRounds(cases, { rounds: ROUNDS, sliceMs: SLICE_MS, warmupMs: WARMUP_MS });
    const after = [stale, failing].map((c) => c.stats());
    after.forEach((s, j) => {
      const lookups = s.l2.hits + s.l2.misses - (before[j].l2.hits + before[j].l2.misses);
      if (lookups !== 0) throw new Error(`${lookups} L2 lookups during the timed rounds: the rows did not measure L1 answers`);
    });
    const f = after[1].resilience;
    process.stdout.write(
      [
        '### Stale-while-revalidate and fail-safe hits',
        '',
        `L1 + L2 engines, ${KEYS} keys. Warm-up slice per case, then ${ROUNDS} rounds of one ${SLICE_MS} ms slice per case, order rotated each round; "vs floor" = median over rounds of (case ÷ raw lru-cache get in the same round). No L2 lookup during the timed rounds (checked). Fail-safe engine: ${f.failSafe} factory failures answered with a stale copy, ${f.refreshFailures} in all.`,
        '',
        formatCoreTable(results).trimEnd(),
        '',
      ].join('\n') + '\n',
    );
  } finally {
    for (const close of closers.reverse()) await close();
    await own?.stop();
  }
}

/** bentocache answering a graced entry at once (timeout 0), if it does: its row is left out otherwise. */
async function bentoStale() {
  try {
    const { BentoCache, bentostore } = await import('bentocache');
    const { memoryDriver } = await import('bentocache/drivers/memory');
    const bento = new BentoCache({ default: 'mem', stores: { mem: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000, serialize: false })) } });
    const c = bento.use('mem');
    const opts = { ttl: SHORT_TTL, grace: '1h', timeout: 0 };
    for (let i = 0; i < KEYS; i++) await c.getOrSet({ key: k(i), factory: () => makeValue(i), ...opts });
    await new Promise((r) => setTimeout(r, SHORT_TTL * 3));
    const op = (i) => c.getOrSet({ key: k(i), factory: hold, ...opts });
    const v = await Promise.race([op(0), new Promise((r) => setTimeout(() => r(undefined), 200))]);
    if (!v || v.id !== 0) {
      log('bentocache did not answer the graced entry at once: its row is left out');
      await bento.disconnectAll();
      return undefined;
    }
    return { op, close: () => bento.disconnectAll() };
  } catch (err) {
    log(`bentocache row left out: ${err.message}`);
    return undefined;
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
