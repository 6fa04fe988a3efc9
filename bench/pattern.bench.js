'use strict';
/**
 * Pattern invalidation of an L1 of 10,000 keys: TieredCache.invalidatePattern (L1 only, so Redis' SCAN does
 * not drown the L1 walk) against a floor measured in the same run, a hand-rolled walk over a raw lru-cache that
 * tests each key with a precompiled anchored RegExp and deletes the matches (what the engine did before it
 * matched L1 keys by Redis' own glob rules). Each round refills both caches (not timed), then times one
 * invalidation each, interleaved; medians over rounds.
 *
 *   node bench/pattern.bench.js                     (after `npm run build`)
 *   BENCH_DIST=/path/to/other/dist node bench/pattern.bench.js   (the same cases against another build)
 *   BENCH_ROUNDS=40, BENCH_CASES=<regex on the case name> (optional; an old build needs BENCH_CASES='^(?!hostile)')
 */
const path = require('node:path');
const { LRUCache } = require('lru-cache');
const { TieredCache } = require(process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : '../dist');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const KEYS = 10_000;
const quiet = { warn() {}, error() {} };

const userKey = (i) => `user:${i}:profile`;
const longKey = (i) => 'a'.repeat(34) + String(i).padStart(6, '0');

/** Name, the glob, the RegExp a hand-rolled walk would use, the keys, how many match. */
const CASES = [
  { name: 'prefix `user:1*`', glob: 'user:1*', re: /^user:1/, key: userKey, matches: 1_111 },
  { name: 'wildcards `user:*[05]:profile`', glob: 'user:*[05]:profile', re: /^user:.*[05]:profile$/, key: userKey, matches: 2_000 },
  { name: 'hostile `*a` ×14 + `*b` (40-char keys)', glob: '*a'.repeat(14) + '*b', re: null, key: longKey, matches: 0 },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const engine = new TieredCache({ l1: { maxEntries: KEYS * 2 }, logger: quiet });
  await engine.connect();
  const floor = new LRUCache({ max: KEYS * 2, ttl: 60_000 });
  const value = { id: 1, name: 'x'.repeat(32) };
  const rows = [];
  const only = process.env.BENCH_CASES ? new RegExp(process.env.BENCH_CASES) : undefined;
  for (const c of CASES.filter((x) => !only || only.test(x.name))) {
    const keys = Array.from({ length: KEYS }, (_, i) => c.key(i));
    const ours = [];
    const raw = [];
    for (let r = 0; r < ROUNDS + 2; r++) {
      for (const k of keys) floor.set(k, value);
      await engine.mset(keys.map((k) => [k, value]));
      const t0 = performance.now();
      const removed = await engine.invalidatePattern(c.glob);
      const t1 = performance.now();
      if (removed !== c.matches) throw new Error(`${c.name}: removed ${removed}, expected ${c.matches}`);
      let n = 0;
      if (c.re) {
        const t2 = performance.now();
        for (const k of Array.from(floor.keys())) if (c.re.test(k) && floor.delete(k)) n++;
        raw.push(performance.now() - t2);
        if (n !== c.matches) throw new Error(`${c.name}: floor removed ${n}`);
      }
      if (r >= 2) ours.push(t1 - t0); // two warm-up rounds
      await engine.clear();
      floor.clear();
    }
    const o = median(ours);
    const f = c.re ? median(raw.slice(2)) : NaN;
    rows.push(`| ${c.name} | ${c.matches} | ${o.toFixed(3)} | ${c.re ? f.toFixed(3) : 'n/a (the RegExp backtracks for seconds)'} | ${c.re ? (o / f).toFixed(2) + '×' : '–'} |`);
  }
  await engine.close();
  console.log(`Pattern invalidation of ${KEYS.toLocaleString('en-US')} L1 keys, ${ROUNDS} rounds (median ms per call)${process.env.BENCH_DIST ? `, build ${process.env.BENCH_DIST}` : ''}\n`);
  console.log('| pattern | removed | invalidatePattern ms | floor: lru-cache walk + RegExp ms | vs floor |');
  console.log('|---|--:|--:|--:|--:|');
  for (const r of rows) console.log(r);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
