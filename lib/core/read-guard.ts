/**
 * Stops an L2 read from promoting a value that was invalidated while the read was in flight: B reads the old
 * value from Redis, A's delete lands and B's bus drops the key, then B's reply arrives — without this guard
 * the old value would go back into B's L1 until its TTL. Each read notes an epoch; drops bump it (per key,
 * or for every key on pattern/tag/clear). Bounded: drops are only remembered while reads are in flight,
 * and past `maxTracked` keys it falls back to "everything changed" (a skipped promotion, never a stale one).
 */
export class ReadGuard {
  private epoch = 0;
  private wide = 0;
  private reading = 0;
  private readonly dropped = new Map<string, number>();

  constructor(private readonly maxTracked = 10_000) {}

  begin(): number {
    this.reading++;
    return this.epoch;
  }

  end(): void {
    if (--this.reading === 0) this.dropped.clear();
  }

  dropKey(key: string): void {
    if (this.reading === 0) return;
    this.dropped.set(key, ++this.epoch);
    if (this.dropped.size > this.maxTracked) this.dropAll();
  }

  dropAll(): void {
    if (this.reading === 0) return;
    this.wide = ++this.epoch;
    this.dropped.clear();
  }

  changedSince(key: string, since: number): boolean {
    return this.wide > since || (this.dropped.get(key) ?? 0) > since;
  }
}
