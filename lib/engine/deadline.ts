/** Returned instead of a result when an L2 call missed its deadline or could not be sent. */
export const L2_FAILED: unique symbol = Symbol('tiered-cache.l2-failed');
export type L2Failed = typeof L2_FAILED;

export interface DeadlineHooks<C> {
  /** A call's promise rejected (`op` is what run() was given). */
  onError(op: string, err: unknown): void;
  /** A call missed its deadline; `sentAt` is when it started (performance.now()). */
  onTimeout?(context: C, sentAt: number): void;
}

interface Pending<C> {
  deadline: number;
  settle: (v: L2Failed) => void;
  context: C;
}

/**
 * Our own deadline around every L2 call (ioredis' commandTimeout can fire and still replay a command later).
 * One sweep timer for all calls, armed only while calls are pending, instead of a setTimeout per call:
 * that keeps the per-call cost to a Set insert. A call settles within timeoutMs + one sweep period.
 */
export class Deadlines<C = undefined> {
  private readonly pending = new Set<Pending<C>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly period: number;
  timeouts = 0;

  constructor(
    readonly timeoutMs: number,
    private readonly hooks: DeadlineHooks<C>,
  ) {
    this.period = Math.max(2, Math.floor(timeoutMs / 5));
  }

  /** Calls in flight (not yet answered, failed or timed out). */
  get inFlight(): number {
    return this.pending.size;
  }

  run<T>(p: Promise<T>, op: string, context: C): Promise<T | L2Failed> {
    return new Promise<T | L2Failed>((resolve) => {
      const entry: Pending<C> = { deadline: performance.now() + this.timeoutMs, settle: resolve, context };
      this.pending.add(entry);
      if (!this.timer) this.arm();
      p.then(
        (v) => {
          this.pending.delete(entry);
          resolve(v);
        },
        (err: unknown) => {
          this.pending.delete(entry);
          this.hooks.onError(op, err);
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
          this.hooks.onTimeout?.(entry.context, entry.deadline - this.timeoutMs);
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
