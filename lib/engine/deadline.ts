/** Returned instead of a result when an L2 call missed its deadline or could not be sent. */
export const L2_FAILED: unique symbol = Symbol('tiered-cache.l2-failed');
export type L2Failed = typeof L2_FAILED;

interface Pending {
  deadline: number;
  settle: (v: L2Failed) => void;
}

/**
 * Our own deadline around every L2 call (ioredis' commandTimeout can fire and still replay a command later).
 * One sweep timer for all calls, armed only while calls are pending, instead of a setTimeout per call:
 * that keeps the per-call cost to a Set insert. A call settles within timeoutMs + one sweep period.
 */
export class Deadlines {
  private readonly pending = new Set<Pending>();
  private timer: NodeJS.Timeout | undefined;
  private readonly period: number;
  timeouts = 0;

  constructor(readonly timeoutMs: number) {
    this.period = Math.max(2, Math.floor(timeoutMs / 5));
  }

  run<T>(p: Promise<T>, onError: (err: unknown) => void): Promise<T | L2Failed> {
    return new Promise<T | L2Failed>((resolve) => {
      const entry: Pending = { deadline: performance.now() + this.timeoutMs, settle: resolve };
      this.pending.add(entry);
      if (!this.timer) this.arm();
      p.then(
        (v) => {
          this.pending.delete(entry);
          resolve(v);
        },
        (err: unknown) => {
          this.pending.delete(entry);
          onError(err);
          resolve(L2_FAILED);
        },
      );
    });
  }

  close(): void {
    for (const entry of this.pending) entry.settle(L2_FAILED);
    this.pending.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setInterval(() => {
      const now = performance.now();
      for (const entry of this.pending) {
        if (entry.deadline <= now) {
          this.pending.delete(entry);
          this.timeouts++;
          entry.settle(L2_FAILED);
        }
      }
      if (this.pending.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, this.period);
    this.timer.unref();
  }
}
