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
  stats: () => cache.stats(),
  ping: () => ({ pid: process.pid, ticks }),
  async close() {
    clearInterval(ticker);
    await cache.close();
    setImmediate(() => process.exit(0));
    return true;
  },
};

process.on('message', async ({ id, op, args }) => {
  try {
    const value = await ops[op](...(args || []));
    process.send({ id, ok: true, value: value === undefined ? null : value, undef: value === undefined });
  } catch (err) {
    process.send({ id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ id: 0, ok: true, value: 'started' });
