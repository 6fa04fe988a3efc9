'use strict';

/**
 * Measurement: every case runs for a fixed time slice per round; rounds rotate the case order so machine
 * drift (other processes, thermal, GC of earlier cases) lands on every case alike; the figure is the median
 * over rounds. A case is `{ group, name, floor?, inflight, unit, op(i), after?() }`: `op` is one call
 * (awaited), `inflight` how many callers run it at once.
 */

const now = () => performance.now();

/**
 * The timed loops, compiled once per case (`new Function`), so every case gets its own call site for `c.op`
 * and its own optimized code. With one shared loop the call site turns megamorphic as cases pile up, and
 * how much that costs a case depends on which cases ran before it — the "floor speeds up mid-run" effect
 * seen with a shared loop. Same source for every case: no contender is favoured.
 */
const LOOP_SOURCE = `
  return {
    async sequential(op, i, end, now) {
      let n = 0;
      // Check the clock every 64 calls: performance.now() would otherwise weigh on sub-µs operations.
      for (;;) {
        for (let j = 0; j < 64; j++) await op(i++);
        n += 64;
        if (now() >= end) break;
      }
      return [n, i];
    },
    async concurrent(op, i, end, now, inflight) {
      let n = 0;
      let stop = false;
      const worker = async () => {
        while (!stop) {
          await op(i++);
          n++;
          if ((n & 15) === 0 && now() >= end) stop = true;
        }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
      return [n, i];
    },
  };
`;

function loopsFor(c) {
  if (!c.loops) c.loops = new Function(LOOP_SOURCE)();
  return c.loops;
}

/**
 * Before each slice the young generation is collected, so no case pays for the short-lived garbage of the
 * case before it. Not a full collection (BENCH_GC=full restores it): after a forced full GC this process runs
 * 20–40 % slower for about 250 ms (V8 sweeping and re-committing memory behind it), longer than a slice, so
 * every slice measured that aftermath, and a case that allocates in the old generation (a cache storing
 * values in L1) the most. A real server sees a full GC now and then, not before every burst of requests.
 */
const GC_OPTIONS = process.env.BENCH_GC === 'full' ? undefined : { type: 'minor' };

/** Runs `c.op` for about `ms` milliseconds; returns completed calls per second. */
async function runSlice(c, ms) {
  if (global.gc) global.gc(GC_OPTIONS);
  const inflight = c.inflight ?? 1;
  const loops = loopsFor(c);
  const t0 = now();
  const end = t0 + ms;
  const [n, i] =
    inflight === 1 ? await loops.sequential(c.op, c.cursor ?? 0, end, now) : await loops.concurrent(c.op, c.cursor ?? 0, end, now, inflight);
  c.cursor = i;
  const elapsed = now() - t0;
  if (c.after) await c.after();
  return (n * 1000) / elapsed;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Warm-up (one slice per case, discarded), then `rounds` rounds. A round measures group after group, and
 * a group's cases back to back, so a contender and its floor are always measured within moments of each
 * other; the group order and the order inside each group rotate every round (and reverse every other
 * round), so no case is always first or always right after a heavy one. Per round, each case's ratio to its
 * floor is taken from that same round: slow drift of a loaded machine cancels out of the ratio.
 */
async function runRounds(cases, { rounds, sliceMs, warmupMs, onProgress }) {
  for (const c of cases) await runSlice(c, warmupMs);
  const groups = [...new Set(cases.map((c) => c.group))].map((g) => cases.filter((c) => c.group === g));
  const samples = new Map(cases.map((c) => [c, []]));
  const rotate = (xs, r) => {
    const off = r % xs.length;
    const out = xs.slice(off).concat(xs.slice(0, off));
    return r % 2 === 1 ? out.reverse() : out;
  };
  for (let r = 0; r < rounds; r++) {
    for (const group of rotate(groups, r)) {
      for (const c of rotate(group, r)) samples.get(c).push(await runSlice(c, sliceMs));
    }
    onProgress?.(r + 1, rounds);
  }
  return cases.map((c) => {
    const s = samples.get(c);
    return { c, samples: s, ops: median(s) };
  });
}

module.exports = { runRounds, runSlice, median };
