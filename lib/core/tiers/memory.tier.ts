import { LRUCache } from 'lru-cache';
import { compileGlob, type GlobMatcher } from '../glob';
import type { Tier, TierCapabilities, TierEntry, TierHealth, TierRemoval, TierWrite } from './tier';

const MEMORY_CAPABILITIES: TierCapabilities = Object.freeze({ shared: false, persistent: false, tags: true, patterns: true, byteBound: true, fences: false });

/** A pattern walk gives the event loop a turn after this much time (checked every WALK_CHECK keys). */
const WALK_SLICE_MS = 1;
const WALK_CHECK = 256;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * L1: an in-process LRU holding live objects (not serialized copies — that is where the speed is).
 * Tags are indexed here only for tagged entries, so untagged entries cost nothing extra.
 */
export class MemoryTier implements Tier<object> {
  readonly kind = 'memory' as const;
  readonly capabilities = MEMORY_CAPABILITIES;
  readonly ready = true;
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
  /**
   * Some entry was written as a GracedEntry (with a logical expiry): readers must unwrap what they get. Never
   * reset: until the first such write, the hot read paths skip the check.
   */
  graced = false;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number | undefined,
    cleanupIntervalMs: number,
    readonly name = 'l1',
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

  /** The tags L1 indexes `key` under (undefined: none). */
  tagsOf(key: string): readonly string[] | undefined {
    return this.tagsByKey.get(key);
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

  // ---------------------------------------------------------------- the Tier contract
  // The engine's hot paths call the synchronous methods above; the stack and the contract suite use these.

  getEntry(key: string): TierEntry<object> | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    return { value, ttl: this.remainingMs(key) };
  }

  getEntries(keys: readonly string[]): Array<TierEntry<object> | undefined> {
    return keys.map((k) => this.getEntry(k));
  }

  setEntry(w: TierWrite<object>): boolean {
    // A key's tags are those of its latest write. lru-cache disposes (and so untags) the old entry only when the
    // value changes: the same object written again would otherwise keep every tag it had.
    if (this.tagsByKey.has(w.key)) this.untag(w.key);
    this.set(w.key, w.value, w.ttl, w.tags, w.bytes ?? 1);
    // A value larger than maxBytes on its own is refused by lru-cache.
    return this.lru.has(w.key);
  }

  setEntries(writes: ReadonlyArray<TierWrite<object>>): boolean {
    let all = true;
    for (const w of writes) all = this.setEntry(w) && all;
    return all;
  }

  deleteKeys(keys: readonly string[]): number {
    let n = 0;
    for (const k of keys) {
      const live = this.lru.has(k);
      if (this.lru.delete(k) && live) n++;
    }
    return n;
  }

  async deletePattern(glob: string): Promise<TierRemoval> {
    const matcher = compileGlob(glob);
    const release = this.block(matcher);
    try {
      return { removed: await this.deleteMatching(matcher), complete: true };
    } finally {
      release();
    }
  }

  deleteTags(tags: readonly string[]): TierRemoval {
    return { removed: this.deleteTagged(tags), complete: true };
  }

  ttlOf(key: string): number | undefined {
    if (!this.has(key)) return undefined;
    return this.remainingMs(key);
  }

  /**
   * Remaining lifetime of a live entry, in whole ms, never more than was written; -1 without expiry. Not remainingTtl(): lru-cache's getRemainingTTL measures age against a
   * cached clock reading (refreshed by a timer, so as old as the current macrotask) while writes are stamped with a
   * fresh one, so right after a write it reports more than the ttl (5,004 ms for a 5,000 ms write was seen), and
   * near the end it reaches 0 while the entry still reads as live (which `?? -1` turned into "no expiry").
   * info() measures with a fresh clock; liveness stays with get/has, so that every method agrees on it.
   */
  private remainingMs(key: string): number {
    const info = this.lru.info(key);
    if (info === undefined || info.ttl === undefined) return -1;
    // Whether an entry is live is lru-cache's call (get/has, on its cached clock), so that every method agrees on
    // it; one it still holds with under 1 ms left on a fresh clock reads as 1 ms.
    return Math.max(1, Math.floor(info.ttl));
  }

  health(): Promise<TierHealth> {
    return Promise.resolve({ ok: true, status: 'memory' });
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
