import { L2_FAILED, type L2Failed, type L2Write } from './tiers/redis.tier';

/** Where a queue writes its batches: the Redis tier, or an adapter over any other tier. */
export interface BatchSink<W> {
  readonly ready: boolean;
  setMany(writes: readonly W[]): Promise<boolean | L2Failed>;
}

/**
 * Write-behind: L2 writes are queued (newest value per key wins), flushed in pipelined batches on an
 * interval and on shutdown. Bounded: past maxQueue the oldest queued write is dropped and counted.
 *
 * With `lost` (the recovery queue, recovery-queue.ts), a batch that fails and a write dropped over maxQueue are
 * handed to it instead of being put back or forgotten: a blind re-flush after an outage could write back what
 * another instance invalidated meanwhile, and a dropped write would leave the tier's older value in place.
 */
export class WriteBehindQueue<W extends L2Write = L2Write> {
  private readonly queue = new Map<string, W>();
  /**
   * The batch being written. A delete, tag or pattern invalidation or clear made while it is in flight takes
   * its writes out of here too, so a batch that fails (or misses its deadline) never puts them back.
   */
  private inFlight: Map<string, W> | undefined;
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;
  flushed = 0;
  dropped = 0;

  constructor(
    private readonly l2: BatchSink<W>,
    private readonly batchSize: number,
    private readonly maxQueue: number,
    flushIntervalMs: number,
    /** A batch reached Redis. */
    private readonly onWritten?: (batch: readonly W[]) => void,
    private readonly lost?: (writes: readonly W[]) => void,
  ) {
    this.timer = setInterval(() => void this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  get length(): number {
    return this.queue.size;
  }

  enqueue(w: W): void {
    this.queue.delete(w.pkey); // re-insert at the tail: the queue stays in write order
    this.queue.set(w.pkey, w);
    while (this.queue.size > this.maxQueue) {
      const [oldest, dropped] = this.queue.entries().next().value as [string, W];
      this.queue.delete(oldest);
      this.dropped++;
      this.lost?.([dropped]);
    }
    if (this.queue.size >= this.batchSize) void this.flush();
  }

  /** Drops queued writes for keys that are being deleted, so a delete is never undone by a late flush. */
  discard(predicate: (w: W) => boolean): number {
    let n = 0;
    for (const [k, w] of this.queue) {
      if (predicate(w)) {
        this.queue.delete(k);
        n++;
      }
    }
    if (this.inFlight) for (const [k, w] of this.inFlight) if (predicate(w)) this.inFlight.delete(k);
    return n;
  }

  discardKey(pkey: string): boolean {
    this.inFlight?.delete(pkey);
    return this.queue.delete(pkey);
  }

  clear(): void {
    this.queue.clear();
    this.inFlight?.clear();
  }

  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.drain().finally(() => (this.flushing = undefined));
    }
    return this.flushing;
  }

  /** Stops the timer and writes out everything queued (each batch bounded by the command deadline). */
  async close(): Promise<number> {
    clearInterval(this.timer);
    await this.flush();
    if (this.queue.size > 0) await this.flush();
    const lost = this.queue.size;
    this.queue.clear();
    return lost;
  }

  private async drain(): Promise<void> {
    while (this.queue.size > 0 && this.l2.ready) {
      const batch: W[] = [];
      const inFlight = new Map<string, W>();
      for (const w of this.queue.values()) {
        batch.push(w);
        inFlight.set(w.pkey, w);
        if (batch.length >= this.batchSize) break;
      }
      for (const w of batch) this.queue.delete(w.pkey);
      this.inFlight = inFlight;
      const ok = await this.l2.setMany(batch);
      this.inFlight = undefined;
      if (ok === L2_FAILED) {
        // Put back (or hand over) what was neither invalidated nor overwritten meanwhile: a newer queued value
        // must win, and a delete made while the batch was out must not be undone by the next flush.
        const left = Array.from(inFlight.values()).filter((w) => !this.queue.has(w.pkey));
        if (this.lost) this.lost(left);
        else for (const w of left) this.queue.set(w.pkey, w);
        return;
      }
      this.flushed += batch.length;
      this.onWritten?.(batch);
    }
  }
}
