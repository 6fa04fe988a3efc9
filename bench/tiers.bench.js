'use strict';
/**
 * The tiers below L2 (docs/options.md, "More tiers"), each row against a raw-driver floor measured in the same run:
 *
 * 1. L4 hit: PostgresTier.getEntry vs the raw `pg` pool running the tier's own SELECT as a named prepared
 *    statement, same pool size, 1 and 16 in flight (target ≥ 90 %). Beside it, informative: readFenced (the
 *    statement the engine's read path runs: the key and the namespace's generation) and a whole TieredCache.get
 *    that misses L2 and is answered by L4 (no L1).
 * 2. L3 hit on a 3-master Redis Cluster: RedisTier.getEntry vs ioredis Cluster GET, 1 and 16 in flight
 *    (target ≥ 90 %); beside it, GET + PTTL by hand, auto-pipelined (what getEntry asks; getEntry itself
 *    routes both to the key's master and writes them in one corked write per tick).
 * 3. A value promoted from L4 answers from L1: written to L4 only, read once (the promotion), then timed reads vs
 *    the raw lru-cache get floor, and vs a plain L1 hit of the same engine (held to the core suite's L1-hit
 *    target). The stats must show every timed read as an L1 hit, or the suite fails.
 * 4. getOrSet miss-then-fill through L1 + L2 + L3 (Cluster) + L4 vs a raw GET (nil) + SET on the standalone
 *    Redis; informative, with the same work done by hand on every tier and a two-tier getOrSet beside it.
 *
 * It starts its own PostgreSQL (initdb in a temp dir) and Redis Cluster on free loopback ports, and stops them on
 * every exit path (normal end, error, SIGINT/SIGTERM; a last-resort SIGKILL from the 'exit' handler).
 *
 *   npm run build && REDIS_URL=redis://127.0.0.1:PORT node --expose-gc bench/tiers.bench.js
 *   (bench/run.js sets REDIS_URL; without it a private redis-server is started too)
 *   BENCH_ROUNDS=25 BENCH_SLICE_MS=120 BENCH_WARMUP_MS=300 TIERS_BENCH_GROUPS=<regex on the group>  (optional)
 */
const path = require('node:path');
const { fork } = require('node:child_process');
const { Cluster, Redis } = require('ioredis');
const { LRUCache } = require('lru-cache');
const pg = require('pg');
const { TieredCache } = require('../dist');
const { PostgresTier } = require('../dist/core/tiers/postgres.tier');
const { RedisTier } = require('../dist/core/tiers/redis.tier');
const { RedisConnectionFactory } = require('../dist/core/tiers/redis-connection');
const { resolveRedis } = require('../dist/core/options');
const { runRounds, median } = require('./core/harness');
const { formatCoreTable, serializeResult, deserializeResult } = require('./core/report');
const { startRedis, startRedisCluster } = require('./core/redis-server');
const { PostgresServer } = require('./core/postgres-server');
const { KEYS, TTL_MS, makeValue, keys } = require('./core/data');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 120);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const GROUPS = process.env.TIERS_BENCH_GROUPS ? new RegExp(process.env.TIERS_BENCH_GROUPS, 'i') : undefined;
/** The PostgresTier's default pool; the floor's pool is as large. */
const PG_POOL = 4;
const L1_MAX = 10_000;
const PART = process.env.TIERS_BENCH_PART;
const L1_GROUP = 'L1 hit of a value promoted from L4 (get, 1 in flight)';

const quiet = { warn() {}, error() {} };
const pct = (r) => `${(r * 100).toFixed(0)} %`;
const log = (m) => process.stderr.write(`[tiers] ${m}\n`);
const k = (i) => keys[i % KEYS];
/** Errors of the tiers built by hand; any one fails the suite once its rounds are over. */
const tierErrors = [];
const onTierError = (op, err) => tierErrors.push(`${op}: ${err?.message ?? err}`);
function assertNoTierErrors() {
  if (tierErrors.length) throw new Error(`${tierErrors.length} tier errors during the bench, the first: ${tierErrors[0]}`);
}

// ---------------------------------------------------------------- servers, stopped on every exit path

/** Every server this process started, registered as soon as it runs (a node of the cluster, a postmaster still booting). */
const servers = [];
let starting = Promise.resolve();
let stopping;
function stopServers() {
  // After the start-up settles: a server still booting would otherwise come up after its stop.
  stopping ??= starting.then(() => Promise.allSettled(servers.map((s) => s.stop())));
  return stopping;
}
if (!PART) {
  process.on('exit', () => {
    // Nothing asynchronous runs here: a signal is synchronous, so no server outlives us.
    for (const s of servers) s.killSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      log(`${sig}: stopping the servers`);
      stopServers().finally(() => process.exit(130));
    });
  }
}

function startServers() {
  const track = (s) => (servers.push(s), s);
  const startPg = async () => {
    const s = track(await PostgresServer.initialize());
    await s.boot();
    return s;
  };
  const all = Promise.allSettled([
    startPg(),
    startRedisCluster({ masters: 3, startNode: (args, port) => startRedis({ args, port }).then(track) }).then(track),
    process.env.REDIS_URL ? undefined : startRedis().then(track),
  ]);
  starting = all.then(() => undefined);
  // Every start settled before anything is thrown: one that failed must not leave another still starting, unstopped.
  return all.then(([pgServer, cluster, redis]) => {
    for (const r of [pgServer, cluster, redis]) if (r.status === 'rejected') throw r.reason;
    return {
      pgUrl: pgServer.value.url,
      pgVersion: pgServer.value.psql('SHOW server_version'),
      nodes: cluster.value.nodes,
      redisUrl: process.env.REDIS_URL ?? redis.value.url,
    };
  });
}

// ---------------------------------------------------------------- cases

function caseList() {
  const cases = [];
  const closers = [];
  const add = (group, name, op, extra = {}) => {
    if (!GROUPS || GROUPS.test(group)) cases.push({ group, name, op, floor: false, inflight: 1, ...extra });
  };
  const floor = (group, name, op, extra = {}) => add(group, name, op, { floor: true, ...extra });
  const close = async () => {
    for (const c of closers.reverse()) await Promise.resolve().then(c).catch(() => undefined);
  };
  return { cases, closers, add, floor, close };
}

async function engine(opts) {
  const c = new TieredCache({ logger: quiet, defaultTtl: TTL_MS, ...opts });
  if (!(await c.connect())) throw new Error(`engine ${opts.keyPrefix}: could not connect`);
  return c;
}

/** Groups 1, 2 and 4: I/O-bound, in this process. */
async function buildIoCases(env) {
  const { cases, closers, add, floor, close } = caseList();
  // Maintenance (sweep, trim) off the clock: one landing in a slice would be noise, not the cost of a read.
  const pgTier = () => ({ name: 'l4', type: 'postgres', postgres: { url: env.pgUrl, maintenanceInterval: '1h' }, ttl: '1h' });
  const l3Redis = { mode: 'cluster', nodes: env.nodes };
  try {
    // ------------------------------------------------------------ 1. L4 hit
    const l4ns = 'bench-l4:';
    // Writes L4 only; promoteAfter out of reach, so no read copies anything up and every read stays an L2 miss and
    // an L4 hit (the per-key count toward it is part of what the row measures).
    const l4Engine = await engine({
      keyPrefix: l4ns,
      tiers: [{ name: 'l2', type: 'redis', redis: env.redisUrl, ttl: '10m' }, { ...pgTier(), promoteAfter: Number.MAX_SAFE_INTEGER }],
    });
    closers.push(() => l4Engine.close());
    for (let i = 0; i < KEYS; i++) await l4Engine.set(k(i), makeValue(i), { tier: 'l4' });
    // Maintenance off the clock: a sweep landing in a slice would be noise, not the tier's read cost.
    const tier4 = new PostgresTier({ url: env.pgUrl, namespace: l4ns, name: 'l4', maintenanceInterval: 3_600_000 }, onTierError);
    closers.push(() => tier4.close());
    if (!(await tier4.connect())) throw new Error('PostgresTier did not connect');
    const pool = new pg.Pool({ connectionString: env.pgUrl, max: PG_POOL });
    closers.push(() => pool.end());
    // The tier's own statement text: the floor runs exactly the query getEntry runs, whatever it becomes.
    const getSql = tier4.sql.get;
    const rawSelect = (key, ns = l4ns) => pool.query({ name: 'floor_get', text: getSql, values: [ns, key] }).then((r) => r.rows[0]);
    for (const inflight of [1, 16]) {
      const g = `L4 hit, PostgreSQL (pool of ${PG_POOL}, ${inflight} in flight)`;
      floor(g, 'raw pg: pool.query of the same SELECT, named prepared statement', (i) => rawSelect(k(i)), { inflight });
      // The floor measured again as a contender: its distance from 100 % is how far noise alone moves a median here.
      if (inflight === 1) add(g, 'control: the floor again', (i) => rawSelect(k(i)), { inflight });
      add(g, 'ours: PostgresTier.getEntry', (i) => tier4.getEntry(k(i)), { inflight, target: 0.9, check: (v) => typeof v?.value === 'string' });
      add(g, 'ours: PostgresTier.readFenced (the engine read path: key + generation, one statement)', (i) => tier4.readFenced(k(i)), {
        inflight,
        check: (v) => typeof v?.entry?.value === 'string',
      });
      add(g, 'ours: TieredCache.get, no L1: L2 miss, then L4 hit (decoded)', (i) => l4Engine.get(k(i)), { inflight, check: (v) => typeof v?.id === 'number' });
    }

    // ------------------------------------------------------------ 2. L3 hit on a Cluster
    const l3ns = 'bench-l3:';
    // As the engine builds a lower Redis tier (lower-tiers.ts buildTier), from the same resolved options.
    const r3 = resolveRedis(l3Redis, 'tiers[2].redis');
    const tier3 = new RedisTier(new RedisConnectionFactory(r3), r3.maxConnections, r3.commandTimeout, r3.connectTimeout, onTierError, r3.socketTimeout, l3ns, 'l3', 60_000);
    closers.push(() => tier3.close());
    if (!(await tier3.connect())) throw new Error('RedisTier (cluster) did not connect');
    const rawCluster = new Cluster(env.nodes);
    const rawClusterAP = new Cluster(env.nodes, { enableAutoPipelining: true });
    closers.push(() => rawCluster.quit(), () => rawClusterAP.quit());
    for (let i = 0; i < KEYS; i++) await rawClusterAP.set(l3ns + k(i), JSON.stringify(makeValue(i)), 'PX', TTL_MS * 10);
    for (const inflight of [1, 16]) {
      const g = `L3 hit, Redis Cluster of 3 masters (${inflight} in flight)`;
      // The raw driver at its best for the load, as the core suite's L2 floors: plain at 1 in flight, auto-pipelined at 16.
      const c = inflight === 1 ? rawCluster : rawClusterAP;
      floor(g, `raw ioredis Cluster GET${inflight === 1 ? '' : ', auto-pipelining'}`, (i) => c.get(l3ns + k(i)), { inflight });
      if (inflight === 1) add(g, 'control: the floor again', (i) => c.get(l3ns + k(i)), { inflight });
      add(g, 'ours: RedisTier.getEntry (GET + PTTL routed to the master, corked per tick, no decode)', (i) => tier3.getEntry(k(i)), {
        inflight,
        target: 0.9,
        check: (v) => typeof v?.value === 'string' && v.ttl > 0,
      });
      add(g, 'raw ioredis Cluster GET + PTTL, auto-pipelining (what getEntry asks, by hand)', (i) => Promise.all([rawClusterAP.get(l3ns + k(i)), rawClusterAP.pttl(l3ns + k(i))]), {
        inflight,
      });
    }

    // ------------------------------------------------------------ 4. four-tier miss-then-fill
    const g = 'getOrSet miss, trivial factory, L1 + L2 + L3 (Cluster) + L4 (1 in flight)';
    let fresh = 0;
    const freshKey = () => `fill:${process.pid}:${++fresh}`;
    // Bus off, own prefix: as the core suite's getOrSet-miss instance (no other instance listens).
    const fill4 = await engine({
      keyPrefix: 'bench-fill4:',
      bus: false,
      tiers: [
        { name: 'l1', type: 'memory', maxEntries: L1_MAX, ttl: '1m' },
        { name: 'l2', type: 'redis', redis: env.redisUrl, ttl: '5m' },
        { name: 'l3', type: 'redis', redis: l3Redis, ttl: '30m' },
        pgTier(),
      ],
    });
    const fill2 = await engine({ keyPrefix: 'bench-fill2:', bus: false, redis: env.redisUrl, l1: { maxEntries: L1_MAX, ttl: TTL_MS } });
    closers.push(() => fill4.close(), () => fill2.close());
    const l2Raw = new Redis(env.redisUrl);
    closers.push(() => l2Raw.quit());
    const handNs = 'bench-hand:';
    const insertSql =
      'INSERT INTO public.tiered_cache (ns, key, value, expires_at) VALUES ($1, $2, $3, now() + $4::float8 * interval \'1 millisecond\') ' +
      'ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at';
    const byHand = async (key, factory) => {
      if ((await l2Raw.get(handNs + key)) !== null) throw new Error('by hand: a fresh key was found in L2');
      if ((await rawCluster.get(handNs + key)) !== null) throw new Error('by hand: a fresh key was found in L3');
      if ((await rawSelect(key, handNs)) !== undefined) throw new Error('by hand: a fresh key was found in L4');
      const s = JSON.stringify(await factory());
      await Promise.all([
        l2Raw.set(handNs + key, s, 'PX', TTL_MS),
        rawCluster.set(handNs + key, s, 'PX', TTL_MS),
        pool.query({ name: 'hand_insert', text: insertSql, values: [handNs, key, s, TTL_MS] }),
      ]);
      return JSON.parse(s);
    };
    const rawGetOrSet = async (key, factory) => {
      const s = await l2Raw.get(key);
      if (s !== null) return JSON.parse(s);
      const v = await factory();
      await l2Raw.set(key, JSON.stringify(v), 'PX', TTL_MS);
      return v;
    };
    const fillCheck = (v) => typeof v?.id === 'number';
    floor(g, 'raw ioredis GET (nil) + SET, standalone Redis', (i) => rawGetOrSet('bench-rawfill:' + freshKey(), () => makeValue(i)), { check: fillCheck, short: 'floor (raw GET + SET)' });
    add(g, 'ours: getOrSet, four tiers', (i) => fill4.getOrSet(freshKey(), () => makeValue(i)), { check: fillCheck, short: 'ours, four tiers' });
    add(g, 'by hand, every tier: L2 GET, L3 GET, L4 SELECT in turn, then the three writes at once', (i) => byHand(freshKey(), () => makeValue(i)), {
      check: fillCheck,
      short: 'by hand, four tiers',
    });
    add(g, 'ours: getOrSet, L1 + L2 only (the core suite’s stack)', (i) => fill2.getOrSet(freshKey(), () => makeValue(i)), { check: fillCheck, short: 'ours, L1 + L2 only' });
    return { cases, close, engines: { l4Engine, fill4 } };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Group 3, sub-microsecond: in a process of its own (TIERS_BENCH_PART=l1), as the core suite runs its in-memory
 * groups, so the JIT feedback of the I/O cases does not tilt it.
 */
async function buildL1Cases(env) {
  const { cases, closers, add, floor, close } = caseList();
  try {
    const e = await engine({
      keyPrefix: 'bench-promote:',
      tiers: [
        { name: 'l1', type: 'memory', maxEntries: L1_MAX, ttl: '10m' },
        { name: 'l2', type: 'redis', redis: env.redisUrl, ttl: '10m' },
        { name: 'l4', type: 'postgres', postgres: { url: env.pgUrl, maintenanceInterval: '1h' }, ttl: '1h', promoteAfter: 1 },
      ],
    });
    closers.push(() => e.close());
    const promoted = (i) => `promoted:${i % KEYS}`;
    const plain = (i) => `plain:${i % KEYS}`;
    for (let i = 0; i < KEYS; i++) {
      await e.set(promoted(i), makeValue(i), { tier: 'l4' });
      await e.set(plain(i), makeValue(i));
    }
    const t0 = e.stats().tiers;
    for (let i = 0; i < KEYS; i++) {
      if (e.peekLocal(promoted(i)) !== undefined) throw new Error(`${promoted(i)} is in L1 before its first read: the write was not to L4 only`);
      const v = await e.get(promoted(i));
      if (v?.id !== i) throw new Error(`${promoted(i)}: the first read returned ${JSON.stringify(v)}`);
      if (e.peekLocal(promoted(i)) === undefined) throw new Error(`${promoted(i)}: read from L4 and not copied into L1 (promoteAfter 1)`);
    }
    const t1 = e.stats().tiers;
    if (t1.l4.hits - t0.l4.hits !== KEYS) throw new Error(`the first reads were ${t1.l4.hits - t0.l4.hits} L4 hits, expected ${KEYS}`);
    const lru = new LRUCache({ max: L1_MAX, ttl: TTL_MS });
    for (let i = 0; i < KEYS; i++) lru.set(keys[i], makeValue(i));
    const g = L1_GROUP;
    // Not an async function: the harness's own `await` is the one await the floor pays, as in the core suite.
    floor(g, 'raw lru-cache get (awaited)', (i) => lru.get(k(i)));
    add(g, 'ours: get of a key written to L4 only, read once since', (i) => e.get(promoted(i)), { check: (v) => typeof v?.id === 'number', short: 'promoted' });
    add(g, 'ours: get of a key set the usual way (a plain L1 hit)', (i) => e.get(plain(i)), { check: (v) => typeof v?.id === 'number', short: 'plain' });
    return { cases, close, engines: { promote: e } };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Fails loudly when a case does not return what it is supposed to (a hit that misses, a fill that returns nothing). */
async function verify(cases) {
  const bad = [];
  for (const c of cases) {
    if (!c.check) continue;
    const v = await c.op(3);
    if (!c.check(v)) bad.push(`${c.group} / ${c.name}: got ${JSON.stringify(v)?.slice(0, 100)}`);
  }
  if (bad.length) throw new Error(`tiers bench: data check failed:\n  ${bad.join('\n  ')}`);
}

const measure = (cases) => runRounds(cases, { rounds: ROUNDS, sliceMs: SLICE_MS, warmupMs: WARMUP_MS });

/** Counters of the tiers, to check what the timed reads were. */
const tierCounts = (c) => Object.fromEntries(Object.entries(c.stats().tiers).map(([name, t]) => [name, { hits: t.hits, misses: t.misses, errors: t.errors }]));

async function l1Part(env) {
  const built = await buildL1Cases(env);
  try {
    if (built.cases.length === 0) return { results: [], sanity: [], notes: [] };
    await verify(built.cases);
    const before = tierCounts(built.engines.promote);
    const results = await measure(built.cases);
    const after = tierCounts(built.engines.promote);
    // Every timed read of the engine must have been an L1 hit: L1 hits grew, and nothing below L1 was asked.
    const grew = after.l1.hits - before.l1.hits;
    const below = ['l2', 'l4'].map((t) => after[t].hits + after[t].misses - before[t].hits - before[t].misses);
    if (grew <= 0 || after.l1.misses !== before.l1.misses || below.some((n) => n !== 0)) {
      throw new Error(`the promoted reads were not all L1 hits: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    }
    // "At L1 speed": the promoted key against a plain L1 hit of the same engine, round by round.
    const promoted = results.find((r) => r.c.short === 'promoted');
    const plain = results.find((r) => r.c.short === 'plain');
    const per = promoted.samples.map((x, i) => x / plain.samples[i]);
    return {
      results: results.map(serializeResult),
      notes: [
        `L1 hit of a promoted value ÷ plain L1 hit of the same engine: ${pct(median(per))} (median of per-round ratios; range ${pct(Math.min(...per))}–${pct(Math.max(...per))}).`,
      ],
      sanity: [`promotion engine, during the timed reads: ${grew.toLocaleString('en-US')} L1 hits, 0 L1 misses, 0 reads of L2 or L4`],
    };
  } finally {
    await built.close();
  }
}

/** Runs the L1 group in a child process (fork of this file); it exits when this process goes away. */
function runL1Child(env) {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [], {
      env: { ...process.env, TIERS_BENCH_PART: 'l1', TIERS_BENCH_ENV: JSON.stringify(env) },
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answered = false;
    child.on('message', (m) => {
      answered = true;
      if (m.error) reject(new Error(`L1 group: ${m.error}`));
      else resolve({ results: m.results.map(deserializeResult), sanity: m.sanity, notes: m.notes });
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (!answered) reject(new Error(`L1 group child exited (${code ?? signal}) without results`));
    });
  });
}

async function childMain() {
  let done = false;
  // The parent owns the servers: if it goes, so does this process.
  process.on('disconnect', () => {
    if (!done) process.exit(1);
    // Everything is closed by now; a handle a library still holds must not keep this process.
    setTimeout(() => process.exit(0), 2_000).unref();
  });
  const env = JSON.parse(process.env.TIERS_BENCH_ENV);
  let answer;
  try {
    answer = await l1Part(env);
    assertNoTierErrors();
  } catch (err) {
    answer = { error: err.stack ?? String(err) };
  }
  process.send(answer, () => {
    done = true;
    process.disconnect();
  });
}

async function main() {
  if (!global.gc) log('without --expose-gc no minor GC runs before each slice (npm run bench passes it)');
  log('starting PostgreSQL and a 3-master Redis Cluster');
  const env = await startServers();
  try {
    log(`PostgreSQL ${env.pgVersion} at ${env.pgUrl.replace(/^.*@/, '')}, cluster ${env.nodes.map((n) => n.port).join('/')}, L2 ${env.redisUrl}`);
    let l1 = { results: [], sanity: [], notes: [] };
    // A signal during the start-up: the servers are being stopped, start nothing more.
    if (stopping) return;
    if (!GROUPS || GROUPS.test(L1_GROUP)) {
      log('L1 group (child process)');
      l1 = await runL1Child(env);
    }
    if (stopping) return;
    log('I/O groups');
    const built = await buildIoCases(env);
    let io;
    let sanity;
    try {
      await verify(built.cases);
      const before4 = tierCounts(built.engines.l4Engine);
      const t0 = Date.now();
      log(`${built.cases.length} cases x ${ROUNDS} rounds x ${SLICE_MS} ms (+ warm-up)`);
      io = await measure(built.cases);
      log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      assertNoTierErrors();
      const after4 = tierCounts(built.engines.l4Engine);
      // The engine's L4 row must have been L4 hits under an L2 miss every time: no L2 hit, no L4 miss.
      const l4Hits = after4.l4.hits - before4.l4.hits;
      if (after4.l2.hits !== before4.l2.hits || after4.l4.misses !== before4.l4.misses || after4.l4.errors !== before4.l4.errors) {
        throw new Error(`the engine's L4 reads were not all L2 misses answered by L4: before ${JSON.stringify(before4)}, after ${JSON.stringify(after4)}`);
      }
      const f = tierCounts(built.engines.fill4);
      const ran = (re) => built.cases.some((c) => re.test(c.group));
      sanity = [];
      if (ran(/^L4 hit/)) {
        sanity.push(`L4 engine, during the timed reads: ${l4Hits.toLocaleString('en-US')} L4 hits, ${(after4.l2.misses - before4.l2.misses).toLocaleString('en-US')} L2 misses, 0 L2 hits, 0 L4 misses or errors`);
      }
      if (ran(/^getOrSet/)) {
        sanity.push(`four-tier fill engine: ${f.l1.misses.toLocaleString('en-US')} L1 misses, L2/L3/L4 hits ${f.l2.hits}/${f.l3.hits}/${f.l4.hits}, errors L3 ${f.l3.errors}, L4 ${f.l4.errors}`);
      }
    } finally {
      await built.close();
    }
    const results = [...l1.results, ...io];
    print(results, env, l1.notes, [...l1.sanity, ...sanity]);
  } finally {
    await stopServers();
  }
}

function print(results, env, notes, sanity) {
  const order = [/^L4 hit.*, 1 in/, /^L4 hit/, /^L3 hit.*\(1 in/, /^L3 hit/, /^L1 hit/, /^getOrSet/];
  const rank = (g) => order.findIndex((re) => re.test(g));
  results.sort((a, b) => rank(a.c.group) - rank(b.c.group));
  const fill = results.filter((r) => /^getOrSet/.test(r.c.group));
  const ms = (r) => (1000 / r.ops).toFixed(2);
  const lines = [
    '### Lower tiers: L3 (Redis Cluster) and L4 (PostgreSQL) hits, promotion to L1, four-tier fill',
    '',
    `PostgreSQL ${env.pgVersion} (private, initdb in a temp dir, fsync off), a 3-master Redis Cluster (private, no replicas), the bench's standalone Redis as L2; all on loopback. ` +
      `Warm-up slice per case, then ${ROUNDS} rounds of one ${SLICE_MS} ms slice per case, group order and order within a group rotated each round; ` +
      '"vs floor" = median over rounds of (case ÷ floor in the same round), "range" = lowest–highest per-round ratio. The L1 group runs in a process of its own.',
    '',
    formatCoreTable(results).trimEnd(),
    '',
  ];
  if (fill.length) {
    lines.push(`Four-tier miss-then-fill, ms per call (1 in flight): ${fill.map((r) => `${r.c.short} ${ms(r)} ms`).join('; ')}.`, '');
  }
  for (const n of notes) lines.push(n, '');
  if (sanity.length) lines.push(`Sanity: ${sanity.join('; ')}.`, '');
  process.stdout.write(lines.join('\n') + '\n');
}

if (PART === 'l1') {
  childMain();
} else {
  main().then(
    () => process.exit(0),
    async (err) => {
      console.error(err);
      await stopServers();
      process.exit(1);
    },
  );
}
