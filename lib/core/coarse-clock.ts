/**
 * Epoch milliseconds, read at most once per millisecond. Date.now() costs about as much as a whole L1 hit
 * (~70 ns here), and the hit paths that judge an entry's logical expiry (grace, early refresh) would pay it on
 * every call. A reading is kept until a 1 ms timer (unref'd: it never holds the process open) drops it, so a
 * judgement is at most about a millisecond late, or as late as a synchronous stretch that blocks the timer.
 */
let cached = 0;
const drop = (): void => {
  cached = 0;
};

export function coarseNow(): number {
  if (cached === 0) {
    cached = Date.now();
    setTimeout(drop, 1).unref();
  }
  return cached;
}
