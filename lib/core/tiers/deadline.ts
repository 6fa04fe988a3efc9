/** Returned instead of a result when an L2 call missed its deadline or could not be sent. */
export const L2_FAILED: unique symbol = Symbol('tiered-cache.l2-failed');
export type L2Failed = typeof L2_FAILED;

/** The rejection a stamped command gets when its deadline passes (or the tier closes); never reported as an error. */
export const DEADLINE_MISSED = new Error('tiered-cache: L2 deadline missed');

export interface DeadlineHooks<C> {
  /**
   * A call's promise rejected (`op` is what run() was given). `late`: after the call had already missed its
   * deadline (its caller got L2_FAILED then, and the miss was counted in `timeouts`).
   */
  onError(op: string, err: unknown, late: boolean): void;
  /** A call missed its deadline; `sentAt` is when it started (performance.now()). */
  onTimeout?(context: C, sentAt: number): void;
}

interface Pending<C> {
  deadline: number;
  settle: (v: L2Failed) => void;
  context: C;
}

/** The part of an ioredis Command a stamped deadline needs. */
export interface StampedCommand {
  /** performance.now() by which a reply must have arrived; set by whoever sent the command. */
  tcDeadline?: number;
  isSettled: boolean;
  reject(err: Error): void;
}

/** A client's queue of sent, unanswered commands, in send order (ioredis' `commandQueue`). */
export interface CommandQueue {
  readonly length: number;
  peekAt(index: number): { command: StampedCommand } | undefined;
}

/**
 * Our own deadline around every L2 call (ioredis' commandTimeout can fire and still replay a command later).
 * One sweep timer for all calls, armed only while calls are pending, instead of a setTimeout per call.
 *
 * Two kinds of call: a promise handed to run() (wrapped, tracked in a Set), and the hot paths' commands,
 * which carry their deadline on the command itself (`tcDeadline`) and are found by walking the client's own
 * queue of unanswered commands: no wrapper promise, no bookkeeping per call. Either settles within
 * timeoutMs + one sweep period.
 */
export class Deadlines<C = undefined> {
  private readonly pending = new Set<Pending<C>>();
  private readonly queues: Array<{ queue: () => CommandQueue | undefined; context: C }> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly period: number;
  timeouts = 0;

  constructor(
    readonly timeoutMs: number,
    private readonly hooks: DeadlineHooks<C>,
  ) {
    this.period = Math.max(2, Math.floor(timeoutMs / 5));
  }

  /** Wrapped calls in flight (not yet answered, failed or timed out). */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Registers a client whose stamped commands this sweep enforces; returns what stops watching it (a client that went away). */
  watch(queue: () => CommandQueue | undefined, context: C): () => void {
    const entry = { queue, context };
    this.queues.push(entry);
    return () => {
      const i = this.queues.indexOf(entry);
      if (i >= 0) this.queues.splice(i, 1);
    };
  }

  /** Call after sending a stamped command: makes sure a sweep will look at it. */
  ensureArmed(): void {
    if (!this.timer) this.arm();
  }

  /** `deadline`: one already running (performance.now() based), e.g. a retry's, which must not get a fresh one. */
  run<T>(p: Promise<T>, op: string, context: C, deadline = performance.now() + this.timeoutMs): Promise<T | L2Failed> {
    return new Promise<T | L2Failed>((resolve) => {
      const entry: Pending<C> = { deadline, settle: resolve, context };
      this.pending.add(entry);
      if (!this.timer) this.arm();
      p.then(
        (v) => {
          this.pending.delete(entry);
          resolve(v);
        },
        (err: unknown) => {
          const late = !this.pending.delete(entry);
          this.hooks.onError(op, err, late);
          resolve(L2_FAILED);
        },
      );
    });
  }

  /** A call this sweep did not end missed its deadline all the same (a client's or server's own timeout, set to the same bound, came first). */
  countTimeout(): void {
    this.timeouts++;
  }

  close(): void {
    for (const entry of this.pending) entry.settle(L2_FAILED);
    this.pending.clear();
    for (const { queue } of this.queues) {
      const q = queue();
      if (!q) continue;
      for (let i = 0; i < q.length; i++) {
        const cmd = q.peekAt(i)?.command;
        if (cmd && cmd.tcDeadline !== undefined && !cmd.isSettled) cmd.reject(DEADLINE_MISSED);
      }
    }
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setInterval(() => this.sweep(), this.period);
    this.timer.unref();
  }

  private sweep(): void {
    const now = performance.now();
    for (const entry of this.pending) {
      if (entry.deadline <= now) {
        this.pending.delete(entry);
        this.timeouts++;
        entry.settle(L2_FAILED);
        this.hooks.onTimeout?.(entry.context, entry.deadline - this.timeoutMs);
      }
    }
    let queued = 0;
    for (const { queue, context } of this.queues) {
      const q = queue();
      if (!q) continue;
      queued += q.length;
      // Stamped deadlines grow in send order: stop at the first one still in the future.
      for (let i = 0; i < q.length; i++) {
        const cmd = q.peekAt(i)?.command;
        if (!cmd || cmd.tcDeadline === undefined || cmd.isSettled) continue;
        if (cmd.tcDeadline > now) break;
        this.timeouts++;
        cmd.reject(DEADLINE_MISSED);
        this.hooks.onTimeout?.(context, cmd.tcDeadline - this.timeoutMs);
      }
    }
    if (this.pending.size === 0 && queued === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
