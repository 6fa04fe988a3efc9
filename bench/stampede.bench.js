'use strict';
/**
 * The 4-process stampede: four app instances (child processes forked by this suite) share one Redis, and a burst
 * fires 250 concurrent getOrSet calls of one missing key in each of them at once (1,000 in all), with a factory
 * that takes ~20 ms and counts its runs. Ours with its cluster-wide fill lock (on by default with Redis) against
 * ours with `lock: false` (single flight per process only) and the peers, each built as the core suite builds
 * them (bench/core/contenders.js, peerKit), every contender in a Redis database and key prefix of its own.
 * Contenders take turns burst by burst, the order rotated every round, so drift of the machine lands on all alike.
 *
 * Fails (exit 1) unless ours, lock on, ran its factory once per burst in the median, or if a call of ours did not
 * get the burst's value.
 *
 *   npm run build && node --expose-gc bench/stampede.bench.js
 *   (bench/run.js sets REDIS_URL; without it a private redis-server is started and stopped on every exit path)
 *   STAMPEDE_BURSTS=20 STAMPEDE_CALLS=250 STAMPEDE_FACTORY_MS=20 STAMPEDE_CONTENDERS=<regex on ours|oursNoLock|bento|cm|cacheable>  (optional)
 */
const { fork } = require('node:child_process');
const { median } = require('./core/harness');

const PROCESSES = 4;
const BURSTS = Number(process.env.STAMPEDE_BURSTS ?? 20);
const WARMUP_BURSTS = 2;
const CALLS = Number(process.env.STAMPEDE_CALLS ?? 250);
const FACTORY_MS = Number(process.env.STAMPEDE_FACTORY_MS ?? 20);
/** Quiet time between bursts: a lock release, a bus message or a peer's background write of one burst must not land in the next. */
const GAP_MS = 30;
/** A burst that takes this long is a hang, not a measurement. */
const BURST_TIMEOUT_MS = 30_000;

/** Databases 10–14: the core suite's are 0–9. Prefixes differ too, as pub/sub and client tracking ignore databases. */
const ALL_CONTENDERS = [
  { id: 'ours', db: 10, name: 'ours: getOrSet (fill lock on, the default)' },
  { id: 'oursNoLock', db: 11, name: 'ours: getOrSet, lock: false (single flight per process)' },
  { id: 'bento', db: 12, name: 'bentocache getOrSet (L1 memory, default serialize:true + L2 redis driver)' },
  { id: 'cm', db: 13, name: 'cache-manager wrap (Keyv memory + @keyv/redis)' },
  { id: 'cacheable', db: 14, name: 'cacheable getOrSet (Keyv memory primary + @keyv/redis secondary)' },
];
const ONLY = process.env.STAMPEDE_CONTENDERS ? new RegExp(process.env.STAMPEDE_CONTENDERS, 'i') : undefined;
// Ours (lock on) always runs: every ratio is to it.
const CONTENDERS = ALL_CONTENDERS.filter((c) => c.id === 'ours' || !ONLY || ONLY.test(c.id));

const log = (m) => process.stderr.write(`[stampede] ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Wall-clock ms with sub-ms resolution, comparable across processes on one machine. */
const now = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------- child: one app instance of every contender

async function childMain() {
  const url = process.env.STAMPEDE_REDIS_URL;
  let built;
  // The parent owns the servers and the run: if it goes, this process goes too.
  process.on('disconnect', () => process.exit(built ? 0 : 1));
  const handlers = {
    async init() {
      built = await buildInstances(url);
      return { pid: process.pid };
    },
    burst: ({ id, key }) => burst(built.calls[id], key),
    lockStats: () => built.lockStats(),
    async close() {
      await built.close();
      return true;
    },
  };
  process.on('message', async ({ seq, cmd, args }) => {
    try {
      process.send({ seq, result: await handlers[cmd](args) });
    } catch (err) {
      process.send({ seq, error: String(err?.stack ?? err) });
    }
  });
}

async function buildInstances(url) {
  const { TieredCache } = require('../dist');
  const { peerKit, L1_MAX } = require('./core/contenders');
  const { TTL_MS } = require('./core/data');
  const closers = [];
  const close = async () => {
    for (const c of closers.reverse()) await Promise.resolve().then(c).catch(() => undefined);
  };
  try {
    const db = Object.fromEntries(ALL_CONTENDERS.map((c) => [c.id, c.db]));
    const quiet = { warn() {}, error() {} };
    // As shipped (bus on, lock on): the bus is how a waiting instance hears that the holder's value is stored.
    const ours = (id, extra) =>
      new TieredCache({ redis: `${url}/${db[id]}`, keyPrefix: `stampede-${id}:`, defaultTtl: TTL_MS, l1: { maxEntries: L1_MAX, ttl: TTL_MS }, logger: quiet, ...extra });
    const oursLock = ours('ours');
    const oursNoLock = ours('oursNoLock', { lock: false });
    for (const c of [oursLock, oursNoLock]) {
      closers.push(() => c.close());
      if (!(await c.connect())) throw new Error(`pid ${process.pid}: ours could not connect to ${url}`);
    }
    const kit = await peerKit(url, closers);
    // Bentocache's default L1 (serialize:true), not the core suite's serialize:false: in 1.6.1 that one copies an L2
    // hit into L1 still serialized, the next read of it throws while holding the key's lock, and every other caller
    // of the key in that process waits forever. An L2 hit is what a process that comes second gets here.
    const bentoStore = kit.bentostore().useL1Layer(kit.bentoMem(undefined)).useL2Layer(kit.bentoRedis(db.bento));
    const bento = new kit.BentoCache({ default: 'miss', ttl: TTL_MS, stores: { miss: bentoStore } });
    closers.push(() => bento.disconnectAll());
    const cm = kit.cmTiered(db.cm);
    const cb = kit.cacheableTiered(db.cacheable);
    return {
      calls: {
        ours: (key, f) => oursLock.getOrSet(key, f),
        oursNoLock: (key, f) => oursNoLock.getOrSet(key, f),
        bento: (key, f) => bento.getOrSet({ key, factory: f, ttl: TTL_MS }),
        cm: (key, f) => cm.wrap(key, f, TTL_MS),
        cacheable: (key, f) => cb.getOrSet(key, f, { ttl: TTL_MS }),
      },
      lockStats: () => oursLock.stats().lock,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** CALLS concurrent calls of `key`, all fired in one tick; the factory's runs and when the last call settled. */
async function burst(call, key) {
  let runs = 0;
  const factory = () => {
    runs++;
    return new Promise((resolve) => setTimeout(() => resolve({ key, by: process.pid }), FACTORY_MS));
  };
  let lastAt = 0;
  let wrong = 0;
  let errors = 0;
  let firstError;
  const settle = (v) => {
    lastAt = now();
    if (v?.key !== key) wrong++;
  };
  const fail = (err) => {
    lastAt = now();
    errors++;
    firstError ??= String(err?.message ?? err);
  };
  const startedAt = now();
  const all = new Array(CALLS);
  for (let j = 0; j < CALLS; j++) all[j] = Promise.resolve().then(() => call(key, factory)).then(settle, fail);
  await Promise.all(all);
  return { runs, startedAt, lastAt, wrong, errors, firstError };
}

// ---------------------------------------------------------------- parent: the children, the server, the rounds

const children = [];
let server;
let stopping;
/** Set on SIGINT/SIGTERM/SIGHUP: the run's failures from then on are the stop's doing, not worth reporting. */
let signalled = false;
/** The shared Redis, without a database: each contender appends its own. */
let url;

/** Every child asked to close its caches, then gone; the private server stopped last (the children use it). */
function stopAll() {
  stopping ??= Promise.allSettled(children.map((c) => c.stop())).then(() => server?.stop());
  return stopping;
}

function spawnChild() {
  const proc = fork(__filename, [], {
    env: { ...process.env, STAMPEDE_CHILD: '1', STAMPEDE_REDIS_URL: url },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map();
  let exited = false;
  const gone = new Promise((resolve) => proc.once('exit', resolve));
  proc.on('message', (m) => {
    const p = pending.get(m.seq);
    if (!p) return;
    pending.delete(m.seq);
    clearTimeout(p.timer);
    if (m.error) p.reject(new Error(`child ${proc.pid}: ${m.error}`));
    else p.resolve(m.result);
  });
  proc.once('exit', (code, signal) => {
    exited = true;
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`child ${proc.pid} exited (${code ?? signal})`));
    }
    pending.clear();
  });
  proc.on('error', () => undefined);
  const call = (cmd, args, timeoutMs = BURST_TIMEOUT_MS) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error(`child ${proc.pid} is gone`));
      const id = ++seq;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`child ${proc.pid}: ${cmd} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer });
      proc.send({ seq: id, cmd, args });
    });
  const signal = (sig) => {
    if (!exited) proc.kill(sig);
  };
  return {
    call,
    /** Closes the child's connections when it still answers, SIGTERM else, SIGKILL when it hangs on. */
    async stop() {
      if (exited) return;
      await call('close', undefined, 5_000).catch(() => undefined);
      if (proc.connected) proc.disconnect();
      const t1 = setTimeout(() => signal('SIGTERM'), 2_000);
      const t2 = setTimeout(() => signal('SIGKILL'), 4_000);
      await gone;
      clearTimeout(t1);
      clearTimeout(t2);
    },
    killSync: () => signal('SIGKILL'),
  };
}

async function parentMain() {
  process.on('exit', () => {
    // Nothing asynchronous runs here; a signal is synchronous, so no child or server outlives us.
    for (const c of children) c.killSync();
    server?.killSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      signalled = true;
      log(`${sig}: stopping the children and servers`);
      stopAll().finally(() => process.exit(130));
    });
  }
  url = process.env.REDIS_URL;
  if (!url) {
    const { startRedis } = require('./core/redis-server');
    server = await startRedis();
    url = server.url;
  }
  url = url.replace(/\/\d*$/, '');
  for (let i = 0; i < PROCESSES; i++) children.push(spawnChild());
  const pids = await Promise.all(children.map((c) => c.call('init')));
  log(`${PROCESSES} instances up (pids ${pids.map((p) => p.pid).join(', ')}); ${WARMUP_BURSTS} warm-up + ${BURSTS} bursts per contender`);

  // One run's keys are its own: nothing a previous run left in these databases (TTL 1 min) is ever read.
  const run = `${process.pid}-${Date.now().toString(36)}`;
  const samples = Object.fromEntries(CONTENDERS.map((c) => [c.id, []]));
  for (let round = 0; round < WARMUP_BURSTS + BURSTS; round++) {
    const order = CONTENDERS.map((_, i) => CONTENDERS[(i + round) % CONTENDERS.length]);
    if (round % 2) order.reverse();
    for (const c of order) {
      const key = `burst:${run}:${c.id}:${round}`;
      const replies = await Promise.all(children.map((ch) => ch.call('burst', { id: c.id, key }))).catch((err) => {
        throw new Error(`${c.name}, burst ${round}: ${err.message}`);
      });
      if (round >= WARMUP_BURSTS) samples[c.id].push(summariseBurst(replies));
      await sleep(GAP_MS);
    }
  }
  const lock = (await Promise.all(children.map((c) => c.call('lockStats')))).reduce((sum, s) => {
    for (const [k, v] of Object.entries(s)) if (typeof v === 'number') sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }, {});
  return report(samples, lock);
}

function summariseBurst(replies) {
  return {
    runs: replies.reduce((s, r) => s + r.runs, 0),
    ms: Math.max(...replies.map((r) => r.lastAt)) - Math.min(...replies.map((r) => r.startedAt)),
    wrong: replies.reduce((s, r) => s + r.wrong, 0),
    errors: replies.reduce((s, r) => s + r.errors, 0),
    firstError: replies.find((r) => r.firstError)?.firstError,
  };
}

function report(samples, lock) {
  const total = PROCESSES * CALLS;
  const oursMs = samples.ours.map((s) => s.ms);
  const rows = CONTENDERS.map((c) => {
    const s = samples[c.id];
    const runs = s.map((x) => x.runs);
    const ms = s.map((x) => x.ms);
    const wrong = s.reduce((n, x) => n + x.wrong, 0);
    const errors = s.reduce((n, x) => n + x.errors, 0);
    return {
      c,
      runsMedian: median(runs),
      runsMax: Math.max(...runs),
      msMedian: median(ms),
      msMin: Math.min(...ms),
      msMax: Math.max(...ms),
      // Burst by burst against ours in the same round, as the other suites' ratios.
      vsOurs: median(ms.map((m, i) => m / oursMs[i])),
      wrong,
      errors,
      firstError: s.find((x) => x.firstError)?.firstError,
    };
  });
  const f1 = (x) => x.toFixed(1);
  const got = (r) =>
    r.wrong + r.errors === 0 ? `all ${(BURSTS * total).toLocaleString('en-US')}` : `**${r.wrong} wrong, ${r.errors} failed** of ${(BURSTS * total).toLocaleString('en-US')}`;
  const lines = [
    `### The ${PROCESSES}-process stampede: factory runs per burst of ${total.toLocaleString('en-US')} concurrent getOrSet misses of one key`,
    '',
    `${PROCESSES} Node processes share one Redis, each holding one instance of every contender (each in its own database and key prefix). ` +
      `A burst: every process fires ${CALLS} concurrent getOrSet calls of the same missing key at once (${total.toLocaleString('en-US')} in all), with a factory that ` +
      `takes ${FACTORY_MS} ms (setTimeout) and counts its runs. ${WARMUP_BURSTS} warm-up and ${BURSTS} measured bursts per contender, contenders in turn burst by burst, ` +
      `order rotated each round (reversed every other), ${GAP_MS} ms apart. Duration: from the first process firing to the last of the ${total.toLocaleString('en-US')} calls resolving; ` +
      `"vs ours" = median over rounds of (duration ÷ ours, lock on, in the same round). A factory of its own in each process is ${PROCESSES} runs; single flight across processes is 1.`,
    '',
    '| Contender | factory runs per burst, median | max | burst duration, median | range | vs ours | calls that got the value |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${r.c.name} | ${r.runsMedian} | ${r.runsMax} | ${f1(r.msMedian)} ms | ${f1(r.msMin)}–${f1(r.msMax)} ms | ${r.c.id === 'ours' ? '–' : `${r.vsOurs.toFixed(2)}x`} | ${got(r)} |`,
    ),
    '',
    "Bentocache runs with its default L1 (serialize:true): with the core suite's serialize:false, 1.6.1 keeps an L2 hit in L1 still serialized, " +
      "and the next read of it throws inside getOrSet while holding the key's in-process lock, so a process that finds another's value in L2 never " +
      "answers the rest of its burst.",
    '',
    `Ours' fill lock over the run (all ${PROCESSES} instances, warm-up included): ${lock.acquired} taken, ${lock.waited} waits, ${lock.received} ended with the holder's value, ` +
      `${lock.timedOut} timed out, ${lock.fallbacks} fallbacks to per-process single flight.`,
    '',
  ];
  for (const r of rows) if (r.firstError) lines.push(`First error of ${r.c.name}: \`${r.firstError.slice(0, 200)}\``, '');
  process.stdout.write(lines.join('\n') + '\n');
  const problems = [];
  const ours = rows.find((r) => r.c.id === 'ours');
  if (ours.runsMedian !== 1) problems.push(`ours (lock on) ran its factory ${ours.runsMedian} times per burst in the median, expected 1`);
  for (const r of rows) if (r.c.id.startsWith('ours') && r.wrong + r.errors) problems.push(`${r.c.name}: ${r.wrong} calls got a wrong value, ${r.errors} failed`);
  return problems;
}

if (process.env.STAMPEDE_CHILD) {
  childMain();
} else {
  parentMain().then(
    async (problems) => {
      await stopAll();
      for (const p of problems) process.stderr.write(`stampede bench: ${p}\n`);
      process.exit(problems.length ? 1 : 0);
    },
    async (err) => {
      if (signalled) return;
      process.stderr.write(`stampede bench failed: ${err?.stack ?? err}\n`);
      await stopAll();
      process.exit(1);
    },
  );
}
