import { compileGlob, escapeGlob, type GlobMatcher } from './glob';
import { RetryLoop } from './retry-loop';
import { L2_FAILED, type L2Failed, type ScanDeleteResult, type TagPopResult } from './tiers/redis.tier';

/** What the replay needs of the remote tier. */
export interface InvalidationTarget {
  readonly ready: boolean;
  del(pkeys: readonly string[]): Promise<boolean[] | L2Failed>;
  scanDelete(match: string, onKeys?: (pkeys: string[]) => void): Promise<ScanDeleteResult>;
  popTag(tagKey: string, legacyKey: string | undefined, onKeys?: (pkeys: string[]) => void): Promise<TagPopResult>;
  onReady(listener: () => void): void;
}

/** An invalidation that has now reached Redis (cache keys, not physical keys). */
export type LandedInvalidation =
  | { type: 'delete'; keys: string[] }
  | { type: 'pattern'; pattern: string }
  | { type: 'tags'; tags: string[] }
  | { type: 'clear' };

export interface DeferredInvalidationHooks {
  /** Called once per landed invalidation: the engine drops it again everywhere (see `replay`). */
  landed(change: LandedInvalidation): void;
  /** Physical keys a replayed tag invalidation removed, batch by batch (as for a live one). */
  tagKeys(pkeys: string[]): void;
  log(message: string): void;
}

export interface DeferredInvalidationLimits {
  keys: number;
  patterns: number;
  tags: number;
}

export interface DeferredInvalidationStats {
  /** Invalidations waiting to reach Redis: keys + patterns + tags, +1 for a namespace clear. */
  pending: number;
  /** Invalidations that could not reach Redis when made (each key, pattern, tag or clear once). */
  deferred: number;
  /** Deferred invalidations that reached Redis later. */
  replayed: number;
  /** Replay rounds attempted. */
  retries: number;
  /** Times the pending set outgrew its bounds and was collapsed into one namespace clear. */
  overflows: number;
}

const KEY_BATCH = 500;

/**
 * Invalidations (deletes, patterns, tags, clears) that could not reach Redis, kept until they land. Without
 * this a delete made while Redis was unreachable came back once the network healed: every instance dropped its
 * L1 copy and re-read the old value from Redis.
 *
 * - Replayed when a data connection becomes ready and on a timer (100 ms doubling to 5 s), one round at a time;
 *   what fails stays for the next round, what lands is announced again (`hooks.landed`) because reads made
 *   while it was pending may have re-cached the old value on some instance.
 * - While something is pending, reads must not take a value from Redis that it covers (`blocks`): a pending
 *   key or pattern blocks its keys, a pending tag or clear blocks every read (Redis alone knows which keys a tag
 *   holds, and it is not reachable or not yet cleaned).
 * - Newest intent per key wins: a write that reached Redis after a delete was deferred (`written`, with the
 *   sequence number taken when the write was issued) settles it. A write that failed does not: the delete then
 *   lands after it, and the key is a miss rather than the value from before the delete.
 * - Bounded: past a limit the whole set collapses into one namespace clear (over-invalidation is a miss;
 *   dropping an invalidation would be a stale read).
 */
export class DeferredInvalidations {
  /** True when nothing is pending: the one field hot paths read. */
  idle = true;
  readonly #target: InvalidationTarget;
  readonly #prefix: string;
  readonly #tagPrefix: string;
  readonly #legacyTagPrefix: string;
  readonly #limits: DeferredInvalidationLimits;
  readonly #hooks: DeferredInvalidationHooks;
  /** cache key → sequence number of the newest deferred delete. */
  readonly #keys = new Map<string, number>();
  readonly #patterns = new Map<string, { matcher: GlobMatcher; seq: number }>();
  readonly #tags = new Map<string, number>();
  /** Sequence number of a deferred namespace clear; 0 when none. */
  #clearSeq = 0;
  #seq = 0;
  readonly #loop: RetryLoop;
  readonly #n = { deferred: 0, replayed: 0, retries: 0, overflows: 0 };

  constructor(
    target: InvalidationTarget,
    prefix: string,
    tags: { prefix: string; legacyPrefix: string },
    limits: DeferredInvalidationLimits,
    hooks: DeferredInvalidationHooks,
  ) {
    this.#target = target;
    this.#prefix = prefix;
    this.#tagPrefix = tags.prefix;
    this.#legacyTagPrefix = tags.legacyPrefix;
    this.#limits = limits;
    this.#hooks = hooks;
    this.#loop = new RetryLoop(() => this.#replayOnce(), {
      settled: () => this.#changed(),
      failed: (err) => this.#hooks.log(`replaying deferred invalidations failed: ${err instanceof Error ? err.message : String(err)}`),
    });
    target.onReady(() => {
      if (!this.idle) this.#loop.now();
    });
  }

  /** A sequence number for a write about to be issued (see `written`). */
  nextSeq(): number {
    return ++this.#seq;
  }

  addKeys(keys: readonly string[]): void {
    for (const k of keys) {
      this.#keys.delete(k); // re-inserted at the tail: the oldest are replayed first
      this.#keys.set(k, ++this.#seq);
    }
    this.#n.deferred += keys.length;
    if (this.#keys.size > this.#limits.keys) this.#overflow(`${this.#keys.size} keys`);
    this.#changed();
  }

  addPattern(glob: string): void {
    this.#patterns.delete(glob);
    this.#patterns.set(glob, { matcher: compileGlob(glob), seq: ++this.#seq });
    this.#n.deferred++;
    if (this.#patterns.size > this.#limits.patterns) this.#overflow(`${this.#patterns.size} patterns`);
    this.#changed();
  }

  addTags(tags: readonly string[]): void {
    for (const t of tags) {
      this.#tags.delete(t);
      this.#tags.set(t, ++this.#seq);
    }
    this.#n.deferred += tags.length;
    if (this.#tags.size > this.#limits.tags) this.#overflow(`${this.#tags.size} tags`);
    this.#changed();
  }

  addClear(): void {
    this.#clearSeq = ++this.#seq;
    this.#n.deferred++;
    this.#changed();
  }

  /** Redis may still hold a value that this instance invalidated: a read must not take `key` from it. */
  blocks(key: string): boolean {
    if (this.idle) return false;
    if (this.#clearSeq !== 0 || this.#tags.size !== 0 || this.#keys.has(key)) return true;
    for (const p of this.#patterns.values()) if (p.matcher.test(key)) return true;
    return false;
  }

  hasKey(key: string): boolean {
    return !this.idle && this.#keys.has(key);
  }

  /** A write of `key`, issued at `seq`, reached Redis: deletes deferred before it are settled. */
  written(key: string, seq: number): void {
    const s = this.#keys.get(key);
    if (s !== undefined && s < seq) {
      this.#keys.delete(key);
      this.#changed();
    }
  }

  /** Deletes of these keys reached Redis directly: nothing older is left to replay for them. */
  settled(keys: readonly string[]): void {
    if (this.idle) return;
    for (const k of keys) this.#keys.delete(k);
    this.#changed();
  }

  stats(): DeferredInvalidationStats {
    return { pending: this.#pendingCount(), ...this.#n };
  }

  /** Stops the timer and makes one last bounded attempt; resolves to how many invalidations stay unapplied. */
  async close(): Promise<number> {
    await this.#loop.close(() => !this.idle && this.#target.ready);
    return this.#pendingCount();
  }

  #pendingCount(): number {
    return this.#keys.size + this.#patterns.size + this.#tags.size + (this.#clearSeq !== 0 ? 1 : 0);
  }

  #overflow(what: string): void {
    this.#n.overflows++;
    this.#hooks.log(`more deferred invalidations than allowed (${what}); they are replaced by one clear of the namespace`);
    this.#keys.clear();
    this.#patterns.clear();
    this.#tags.clear();
    this.#clearSeq = ++this.#seq;
  }

  #changed(): void {
    this.idle = this.#pendingCount() === 0;
    this.#loop.pending(!this.idle);
  }

  /** One round: clear, then keys, then patterns, then tags. Resolves true when nothing is left. */
  async #replayOnce(): Promise<boolean> {
    const t = this.#target;
    if (this.idle) return true;
    if (!t.ready) return false;
    this.#n.retries++;
    if (this.#clearSeq !== 0) {
      const upTo = this.#seq;
      const r = await t.scanDelete(escapeGlob(this.#prefix) + '*');
      if (r.failedNodes.length > 0) return false;
      // Everything deferred before this walk began is gone with it.
      for (const [k, s] of this.#keys) if (s <= upTo) this.#keys.delete(k);
      for (const [g, p] of this.#patterns) if (p.seq <= upTo) this.#patterns.delete(g);
      for (const [tag, s] of this.#tags) if (s <= upTo) this.#tags.delete(tag);
      if (this.#clearSeq <= upTo) this.#clearSeq = 0;
      this.#n.replayed++;
      this.#hooks.landed({ type: 'clear' });
    }
    const keys = Array.from(this.#keys);
    for (let i = 0; i < keys.length; i += KEY_BATCH) {
      const batch = keys.slice(i, i + KEY_BATCH);
      const r = await t.del(batch.map(([k]) => this.#prefix + k));
      if (r === L2_FAILED) return false;
      // A key deferred again meanwhile keeps its newer entry (that delete may have been made after this one).
      const landed = batch.filter(([k, s]) => this.#keys.get(k) === s).map(([k]) => k);
      for (const k of landed) this.#keys.delete(k);
      if (landed.length > 0) {
        this.#n.replayed += landed.length;
        this.#hooks.landed({ type: 'delete', keys: landed });
      }
    }
    for (const [glob, p] of Array.from(this.#patterns)) {
      const r = await t.scanDelete(escapeGlob(this.#prefix) + glob);
      if (r.failedNodes.length > 0) return false;
      if (this.#patterns.get(glob)?.seq === p.seq) this.#patterns.delete(glob);
      this.#n.replayed++;
      this.#hooks.landed({ type: 'pattern', pattern: glob });
    }
    for (const [tag, s] of Array.from(this.#tags)) {
      const r = await t.popTag(this.#tagPrefix + tag, this.#legacyTagPrefix + tag, (pkeys) => this.#hooks.tagKeys(pkeys));
      if (!r.complete) return false;
      if (this.#tags.get(tag) === s) this.#tags.delete(tag);
      this.#n.replayed++;
      this.#hooks.landed({ type: 'tags', tags: [tag] });
    }
    return this.#pendingCount() === 0;
  }
}
