import { LRUCache } from 'lru-cache';
import type { GlobMatcher } from './glob';

/** A pattern walk gives the event loop a turn after this much time (checked every WALK_CHECK keys). */
const WALK_SLICE_MS = 1;
const WALK_CHECK = 256;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * L1: an in-process LRU holding live objects (not serialized copies — that is where the speed is).
 * Tags are indexed here only for tagged entries, so untagged entries cost nothing extra.
 */
export class MemoryTier {
  private readonly lru: LRUCache<string, object>;
  private readonly tagsByKey = new Map<string, readonly string[]>();
  private readonly keysByTag = new Map<string, Set<string>>();
  private readonly purgeTimer: NodeJS.Timeout;
  /**
   * Patterns being invalidated right now. A pattern walk yields to the event loop between slices (a hostile or
   * merely costly glob over a large L1 must not freeze the process), so until it is over every key it matches
   * reads as a miss, and no copy of such a key is promoted from below.
   */
  private blocked: GlobMatcher[] | undefined;
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
    if (this.blocked !== undefined && this.isBlocked(key)) {
      this.lru.delete(key);
      return undefined;
    }
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
    if (this.blocked !== undefined && this.isBlocked(key)) return false;
    return this.lru.has(key);
  }

  /** Whether a copy of `key` from a lower tier may be stored now (no invalidation of it is in progress). */
  admits(key: string): boolean {
    return this.blocked === undefined || !this.isBlocked(key);
  }

  /** Blocks the keys `matcher` matches (see `blocked`) until the returned function is called. */
  block(matcher: GlobMatcher): () => void {
    this.blocked = this.blocked === undefined ? [matcher] : [...this.blocked, matcher];
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const rest = (this.blocked ?? []).filter((m) => m !== matcher);
      this.blocked = rest.length === 0 ? undefined : rest;
    };
  }

  private isBlocked(key: string): boolean {
    for (const m of this.blocked as GlobMatcher[]) if (m.test(key)) return true;
    return false;
  }

  remainingTtl(key: string): number | undefined {
    if (!this.lru.has(key)) return undefined;
    const ms = this.lru.getRemainingTTL(key);
    return ms > 0 && Number.isFinite(ms) ? Math.ceil(ms) : undefined;
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  /**
   * Deletes every key `matcher` matches, giving the event loop a turn every WALK_SLICE_MS (a cheap glob over
   * 10,000 keys takes well under that and never yields; each turn costs a pass through the loop's phases).
   * Call it under `block`: keys not reached yet must already read as misses.
   */
  async deleteMatching(matcher: GlobMatcher): Promise<number> {
    const keys = Array.from(this.lru.keys());
    let n = 0;
    let sliceEnd = performance.now() + WALK_SLICE_MS;
    for (let i = 0; i < keys.length; i++) {
      if (i % WALK_CHECK === WALK_CHECK - 1 && performance.now() >= sliceEnd) {
        await nextTurn();
        sliceEnd = performance.now() + WALK_SLICE_MS;
      }
      if (matcher.test(keys[i]) && this.lru.has(keys[i]) && this.lru.delete(keys[i])) n++;
    }
    return n;
  }

  deleteTagged(tags: readonly string[]): number {
    let n = 0;
    for (const tag of tags) {
      const keys = this.keysByTag.get(tag);
      if (!keys) continue;
      // An expired entry waiting for the sweep is no entry: removed, not counted.
      for (const key of Array.from(keys)) {
        const live = this.lru.has(key);
        if (this.lru.delete(key) && live) n++;
      }
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
