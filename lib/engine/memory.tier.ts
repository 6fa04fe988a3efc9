import { LRUCache } from 'lru-cache';

/**
 * L1: an in-process LRU holding live objects (not serialized copies — that is where the speed is).
 * Tags are indexed here only for tagged entries, so untagged entries cost nothing extra.
 */
export class MemoryTier {
  private readonly lru: LRUCache<string, object>;
  private readonly tagsByKey = new Map<string, readonly string[]>();
  private readonly keysByTag = new Map<string, Set<string>>();
  private readonly purgeTimer: NodeJS.Timeout;
  evictions = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number | undefined,
    cleanupIntervalMs: number,
  ) {
    this.lru = new LRUCache<string, object>({
      max: maxEntries,
      ...(maxBytes ? { maxSize: maxBytes, sizeCalculation: () => 1 } : {}),
      // A per-entry ttl is always passed; lru-cache needs ttl tracking switched on for that.
      ttl: 1,
      dispose: (_value, key, reason) => {
        if (reason === 'evict') this.evictions++;
        if (this.tagsByKey.size !== 0) this.untag(key);
      },
    });
    // One sweep timer instead of lru-cache's ttlAutopurge, which arms a timer per entry.
    this.purgeTimer = setInterval(() => this.lru.purgeStale(), cleanupIntervalMs);
    this.purgeTimer.unref();
  }

  get(key: string): object | undefined {
    return this.lru.get(key);
  }

  set(key: string, value: object, ttlMs: number, tags: readonly string[] | undefined, sizeBytes: number): void {
    this.lru.set(key, value, this.maxBytes ? { ttl: ttlMs, size: Math.max(1, sizeBytes) } : { ttl: ttlMs });
    if (tags && tags.length > 0 && this.lru.has(key)) {
      this.tagsByKey.set(key, tags);
      for (const tag of tags) {
        let keys = this.keysByTag.get(tag);
        if (!keys) this.keysByTag.set(tag, (keys = new Set()));
        keys.add(key);
      }
    }
  }

  has(key: string): boolean {
    return this.lru.has(key);
  }

  remainingTtl(key: string): number | undefined {
    if (!this.lru.has(key)) return undefined;
    const ms = this.lru.getRemainingTTL(key);
    return ms > 0 && Number.isFinite(ms) ? Math.ceil(ms) : undefined;
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  deleteMatching(re: RegExp): number {
    let n = 0;
    for (const key of Array.from(this.lru.keys())) {
      if (re.test(key) && this.lru.delete(key)) n++;
    }
    return n;
  }

  deleteTagged(tags: readonly string[]): number {
    let n = 0;
    for (const tag of tags) {
      const keys = this.keysByTag.get(tag);
      if (!keys) continue;
      for (const key of Array.from(keys)) if (this.lru.delete(key)) n++;
      this.keysByTag.delete(tag);
    }
    return n;
  }

  clear(): number {
    const n = this.lru.size;
    this.lru.clear();
    this.tagsByKey.clear();
    this.keysByTag.clear();
    return n;
  }

  keys(): IterableIterator<string> {
    return this.lru.keys();
  }

  get size(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize ?? 0;
  }

  close(): void {
    clearInterval(this.purgeTimer);
    this.clear();
  }

  private untag(key: string): void {
    const tags = this.tagsByKey.get(key);
    if (!tags) return;
    this.tagsByKey.delete(key);
    for (const tag of tags) {
      const keys = this.keysByTag.get(tag);
      if (!keys) continue;
      keys.delete(key);
      if (keys.size === 0) this.keysByTag.delete(tag);
    }
  }
}
