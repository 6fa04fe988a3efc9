'use strict';
/**
 * One app instance for bench/staleness.bench.js, in its own process: a TieredCache (L1 + shared Redis + bus)
 * driven over IPC by the parent. Role "writer" changes keys; role "reader" reads one key in a loop (yielding
 * to the event loop between reads, as a server between requests) until it stops returning the old value.
 */
const { TieredCache } = require('../dist');
const { Redis } = require('ioredis');

const now = () => performance.timeOrigin + performance.now();
const prefix = process.env.STALENESS_PREFIX;
const cache = new TieredCache({ redis: process.env.REDIS_URL, keyPrefix: prefix, logger: { warn() {}, error() {} } });
const floorChannel = `${prefix}floor`;
let rawPub;
let rawSub;
let floorSeen;

const handlers = {
  async init() {
    await cache.connect();
    rawPub = new Redis(process.env.REDIS_URL);
    rawSub = new Redis(process.env.REDIS_URL);
    rawSub.on('message', (_c, m) => floorSeen?.(m));
    await rawSub.subscribe(floorChannel);
    return { subscribed: cache.bus?.subscribed === true };
  },

  // ---- writer
  async change({ op, key, value, tag }) {
    const t0 = now();
    if (op === 'set') await cache.set(key, value, tag ? { tags: [tag] } : undefined);
    else if (op === 'delete') await cache.delete(key);
    else if (op === 'tags') await cache.invalidateTags([tag]);
    else if (op === 'floor') await rawPub.publish(floorChannel, String(value));
    return { t0, t1: now() };
  },

  // ---- reader
  /** Reads until the value is `old` and held in L1 (so the next change has something to make stale). */
  async hold({ key, old }) {
    for (let i = 0; i < 10_000; i++) {
      const v = await cache.get(key);
      if (v === old && cache.l1.has(key)) return { ok: true };
      await new Promise((r) => setTimeout(r, 1));
    }
    return { ok: false };
  },

  /** Starts reading; `watching` is sent at once, the result when a read first returns something else than `old`. */
  watch({ key, old }) {
    const staleStarts = [];
    let stop = false;
    const done = (async () => {
      for (;;) {
        const start = now();
        const v = await cache.get(key);
        if (v !== old) return { firstNewAt: now(), staleStarts };
        if (staleStarts.length < 100_000) staleStarts.push(start);
        if (stop) return { firstNewAt: NaN, staleStarts };
        await new Promise((r) => setImmediate(r));
      }
    })();
    const timer = setTimeout(() => (stop = true), 5_000);
    done.finally(() => clearTimeout(timer)).then((r) => process.send({ id: 'watch-result', result: r }));
    return { watching: true };
  },

  /** Floor: one-way latency of a raw PUBLISH between the two processes (no cache involved). */
  floorWatch({ value }) {
    const p = new Promise((resolve) => {
      floorSeen = (m) => {
        if (m === String(value)) resolve({ firstNewAt: now(), staleStarts: [] });
      };
    });
    p.then((r) => process.send({ id: 'watch-result', result: r }));
    return { watching: true };
  },

  async stats() {
    return cache.stats().bus;
  },

  async close() {
    await cache.close();
    rawPub.disconnect();
    rawSub.disconnect();
    return {};
  },
};

process.on('message', async (msg) => {
  try {
    const result = await handlers[msg.cmd](msg.args ?? {});
    process.send({ id: msg.id, result });
    if (msg.cmd === 'close') process.disconnect();
  } catch (err) {
    process.send({ id: msg.id, error: String(err && err.stack || err) });
  }
});
