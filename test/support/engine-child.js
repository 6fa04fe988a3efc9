'use strict';
/**
 * One app instance in a Node process of its own, for tests that need instances in separate processes: a
 * TieredCache from the built package (dist/), driven over IPC by test/support/engine-process.ts. The parent
 * sends { id, op, args }; the child answers { id, ok, value } or { id, ok: false, error }.
 */
const { TieredCache } = require('../../dist');

const options = JSON.parse(process.env.TC_OPTIONS || '{}');
const cache = new TieredCache({ ...options, logger: { warn() {}, error() {} } });
let ticks = 0;
/** Fills held inside their factory until the parent releases them: key → { release(value), result }. */
const held = new Map();
/** Bursts of concurrent getOrSet started by startBurst: key → { runs, open(value), results }. */
const bursts = new Map();
// Counts turns of the event loop: a frozen loop stops counting.
const ticker = setInterval(() => ticks++, 1);

const ops = {
  connect: () => cache.connect(),
  set: (key, value, opts) => cache.set(key, value, opts),
  get: (key) => cache.get(key),
  delete: (key) => cache.delete(key),
  invalidatePattern: (glob) => cache.invalidatePattern(glob),
  invalidateTags: (tags) => cache.invalidateTags(tags),
  flush: () => cache.flush(),
  /** Whether `key` is in this instance's L1 (no L2 read). */
  inL1: (key) => cache.peekLocal(key) !== undefined,
  /** Writes `count` entries `${prefix}${i}` (mset in batches of 1,000). */
  async fill(prefix, count, value) {
    for (let i = 0; i < count; i += 1000) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 1000); j++) batch.push([`${prefix}${j}`, value]);
      await cache.mset(batch);
    }
    return cache.stats().l1.size;
  },
  /** Starts getOrSet(key) with a factory that is held (a latch); resolves once the factory is running. */
  startFill(key, opts) {
    return new Promise((entered) => {
      let release;
      const gate = new Promise((r) => (release = r));
      const result = cache.getOrSet(key, () => {
        entered(true);
        return gate;
      }, opts);
      held.set(key, { release, result });
    });
  },
  /** Lets the held factory of `key` return `value`; resolves to what getOrSet returned to its caller. */
  releaseFill(key, value) {
    const h = held.get(key);
    held.delete(key);
    h.release(value);
    return h.result;
  },
  /**
   * Starts `n` concurrent getOrSet(key) whose factory counts its runs and returns what the parent gives
   * openBurst(key, value): a latch, so the calls overlap however fast the machine. Resolves once they are issued.
   */
  startBurst(key, n, opts) {
    let open;
    const gate = new Promise((r) => (open = r));
    const b = { runs: 0, open, results: undefined };
    const factory = () => {
      b.runs++;
      return gate;
    };
    const calls = [];
    for (let i = 0; i < n; i++) calls.push(cache.getOrSet(key, factory, opts));
    b.results = Promise.allSettled(calls);
    bursts.set(key, b);
    return n;
  },
  /** Factory runs of the burst on `key` so far. */
  burstRuns: (key) => bursts.get(key).runs,
  /** Opens the burst's latch (its factory, if it ran or runs, returns `value`). */
  openBurst(key, value) {
    bursts.get(key).open(value);
    return true;
  },
  /** What the burst's calls returned: { runs, values (distinct, JSON), rejected }. */
  async burstResult(key) {
    const b = bursts.get(key);
    const settled = await b.results;
    const values = [...new Set(settled.filter((s) => s.status === 'fulfilled').map((s) => JSON.stringify(s.value)))];
    return { runs: b.runs, values, rejected: settled.filter((s) => s.status === 'rejected').length };
  },
  stats: () => cache.stats(),
  ping: () => ({ pid: process.pid, ticks }),
  async close() {
    clearInterval(ticker);
    await cache.close();
    setImmediate(() => process.exit(0));
    return true;
  },
};

require('./child-ipc').serveOps(ops);
process.send({ id: 0, ok: true, value: 'started' });
