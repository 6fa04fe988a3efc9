/**
 * `invalidate(key)`: keys are queued (each once) and deleted in batches — when `batchSize` keys are waiting,
 * when the oldest has waited `maxDelay`, and on shutdown. Bounded: past `maxQueue` waiting keys a caller
 * waits for its batch instead of queueing more (back-pressure; an invalidation is never dropped).
 */
export class InvalidationQueue {
  private waiting = new Set<string>();
  private waiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private closed = false;
  queued = 0;
  applied = 0;
  batches = 0;

  constructor(
    private readonly apply: (keys: string[]) => Promise<unknown>,
    private readonly batchSize: number,
    private readonly maxDelay: number,
    private readonly maxQueue = Math.max(10_000, batchSize * 10),
  ) {}

  get length(): number {
    return this.waiting.size;
  }

  /** Resolves once the keys are deleted (callers may also not wait). Never rejects. */
  add(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    if (this.closed) return this.apply([...keys]).then(noop, noop);
    for (const k of keys) {
      if (!this.waiting.has(k)) this.queued++;
      this.waiting.add(k);
    }
    const done = new Promise<void>((r) => this.waiters.push(r));
    if (this.waiting.size >= this.batchSize) void this.drain();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.drain();
      }, this.maxDelay);
      this.timer.unref();
    }
    if (this.waiting.size > this.maxQueue) return this.drain().then(() => done);
    return done;
  }

  /** Applies everything waiting now. */
  flush(): Promise<void> {
    return this.drain();
  }

  /** Applies what is waiting and stops the timer; later calls apply at once. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
  }

  private drain(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.draining) this.draining = this.run().finally(() => (this.draining = undefined));
    return this.draining;
  }

  private async run(): Promise<void> {
    while (this.waiting.size > 0) {
      // Callers waiting now are served once the keys present now are applied.
      const keys = [...this.waiting];
      const waiters = this.waiters;
      this.waiting = new Set();
      this.waiters = [];
      for (let i = 0; i < keys.length; i += this.batchSize) {
        await this.apply(keys.slice(i, i + this.batchSize)).catch(noop);
        this.batches++;
      }
      this.applied += keys.length;
      for (const w of waiters) w();
    }
  }
}

function noop(): void {}
