import { ENTRY_NEWER, readHeader, type EntryHeader } from './entry-envelope';
import { RetryLoop } from './retry-loop';
import { L2_FAILED as TIER_FAILED, type L2Failed as TierFailed } from './tiers/deadline';
import type { FillMark } from './tiers/tier';

/** What the queue needs of a write: its key in the tier's namespace, the enveloped payload and its lifetime. */
export interface RecoverableWrite {
  pkey: string;
  payload: string;
  ttl: number;
}

/** What a replay read in the tier: the raw stored value (undefined: none) and the fill mark beside it. */
export interface ReplayRead {
  value: string | undefined;
  /** The key's fence ('' when no delete of it is within the tier's fill window). */
  fence: string;
  generation: string;
}

/** A shared tier as the replay sees it (the engine's Redis tier, or one below it). */
export interface RecoveryTarget<W> {
  readonly ready: boolean;
  /** Called when the tier can answer again; a tier without such an event passes a no-op (the timer retries). */
  onReady(listener: () => void): void;
  /**
   * How old (ms since it was made) a write may be and still be replayed: the tier's fence lifetime less what
   * the read and the store may take. Older writes are replayed as deletes (see RecoveryQueue).
   */
  readonly window: number;
  /** The namespace generation now; the tier creates it when absent (so a tier that lost its data reads a new one). */
  generation(): Promise<string | TierFailed>;
  read(w: W): Promise<ReplayRead | TierFailed>;
  /** The lifetime the tier gives `w` (its own TTL, capped by the call's). */
  ttl(w: W): number;
  /** Stores `w` for `ttl` only if the key still holds `expected` (undefined: nothing) and `mark` still holds. */
  replace(w: W, ttl: number, mark: FillMark, expected: string | undefined): Promise<boolean | TierFailed>;
  /** A delete that fences (fill-fence.ts); false when it could not reach the tier. */
  drop(writes: readonly W[]): Promise<boolean>;
}

export interface RecoveryHooks<W> {
  /** A write pushed out over maxKeys: the key must still be removed from the tier (the caller defers a delete). */
  overflowed(w: W): void;
  /** Writes that reached the tier by replay: other instances may hold the older value in their L1. */
  replayed(writes: readonly W[]): void;
  /** Writes replaced by a delete of their key: dropped everywhere above (and announced). */
  dropped(writes: readonly W[]): void;
  log(message: string): void;
}

export interface RecoveryStats {
  /** Writes waiting for the tier. */
  queued: number;
  /** Queued writes that reached the tier when it was back. */
  replayed: number;
  /** Queued writes replaced by a delete of their key (their replay could not be proven safe). */
  dropped: number;
  /** Queued writes pushed out over `recovery.maxKeys` (their keys are deleted when the tier is back). */
  overflowed: number;
  /** Queued writes made moot: a newer write or an invalidation of the key, here or found in the tier. */
  superseded: number;
}

interface Entry<W> {
  write: W;
  /** Envelope createdAt of the payload (epoch ms). */
  createdAt: number;
  /** performance.now() when the write was made. */
  madeAt: number;
  /** The generation this instance had read before the write was made; undefined when it had none. */
  generation: string | undefined;
  /** Decided: replay as a delete (kept until that delete lands). */
  drop: boolean;
}

const REFRESH_MS = 5_000;

/**
 * RecoveryTarget.window for a tier whose delete fences live `fillWindow` ms: less what one read and one store
 * can take (each bounded by the tier's command deadline) and a second for the two clocks' drift.
 */
export function replayWindow(fillWindow: number, commandTimeout: number): number {
  return Math.max(0, fillWindow - 2 * commandTimeout - 1_000);
}

/**
 * Writes (set, mset, fills, write-behind batches) that failed on a shared tier, or were skipped while it was
 * down, kept and replayed when it is back. Without this the tier keeps the value from before the write, and
 * every other instance reads it.
 *
 * A blind replay is not safe: while the tier was down another instance may have deleted the key or written a
 * newer value, and a late replay would bring back what they removed. So a replay is a compare-and-set in the
 * tier, and it stores only what it can prove is not stale; everything else becomes a fenced delete of the key
 * (a miss is always safe: the next read refills from the source). The proof, per write W made at time t:
 *
 * - No delete of the key reached the tier after t: a delete leaves the key's fence for the fill window, so
 *   when W is younger than the window (`target.window`, which keeps a margin for the read and the store) and
 *   the fence is absent, no delete came after t. Older writes are replayed as deletes.
 * - No pattern, tag or clear invalidation reached the tier after t: each moves the namespace generation (a
 *   counter that only grows; the tier creates it with a random value, so a tier that lost its data reads
 *   another). Every entry carries the generation this instance read *before* t; equal at replay time means
 *   none moved it since. No generation read yet (the tier was never reachable): not proven, deleted.
 * - No newer write: the key is absent, or holds an entry whose envelope createdAt is older than W's; one as
 *   new or newer stays (newest write wins; across instances that orders by their clocks, as createdAt does
 *   everywhere). An older entry is replaced only if it is still exactly what was read.
 *
 * The store checks all of it atomically in the tier (RedisTier.replaceFill, PostgresTier.replaceFenced), so
 * nothing can fall between the check and the write. Queue rules: newest write per key wins; a delete or clear
 * made here (or heard from another instance) discards the queued writes it covers, a pattern or tag invalidation
 * turns them into deletes (`invalidate`); a newer write issued here supersedes the queued one (if it fails too,
 * it is queued in its place). Bounded by maxKeys: the oldest write is pushed out and its key handed to
 * `hooks.overflowed`, which defers a delete of it (those deferred deletes have their own bound, past which they
 * collapse into one namespace clear).
 *
 * Reads are not held off while a write is queued: until the replay lands, the tier answers what every other
 * instance reads too (and a write that only missed its deadline may have landed after all). A replay that lands,
 * or becomes a delete, is then announced, and every instance (this one included) drops its L1 copy of the key.
 */
export class RecoveryQueue<W extends RecoverableWrite> {
  /** True when nothing is queued: the one field hot paths read. */
  idle = true;
  readonly #queue = new Map<string, Entry<W>>();
  readonly #target: RecoveryTarget<W>;
  readonly #maxKeys: number;
  readonly #batchSize: number;
  readonly #hooks: RecoveryHooks<W>;
  readonly #header: EntryHeader = { createdAt: 0, staleAt: -1, flags: 0 };
  /**
   * The last two generations read, each with when its reply came in (performance.now()). The tier read it at
   * some moment before that: a write made after `at` may be checked against it, one made earlier only against
   * the one before (or, with none, not at all).
   */
  #generation: { value: string; at: number } | undefined;
  #previous: { value: string; at: number } | undefined;
  #refreshing: Promise<void> | undefined;
  #lastRefresh = -Infinity;
  readonly #loop: RetryLoop;
  readonly #n = { replayed: 0, dropped: 0, overflowed: 0, superseded: 0 };

  constructor(target: RecoveryTarget<W>, limits: { maxKeys: number; batchSize: number }, hooks: RecoveryHooks<W>) {
    this.#target = target;
    this.#maxKeys = limits.maxKeys;
    this.#batchSize = limits.batchSize;
    this.#hooks = hooks;
    this.#loop = new RetryLoop(() => this.#replayOnce(), {
      settled: () => this.#changed(),
      failed: (err) => this.#hooks.log(`replaying queued writes failed: ${err instanceof Error ? err.message : String(err)}`),
    });
    target.onReady(() => {
      // The generation first: writes that fail from now on compare against one read after the tier came back.
      void this.refresh().then(() => {
        if (!this.idle) this.#loop.now();
      });
    });
  }

  /**
   * Reads the tier's generation: what writes queued from now on are checked against. Bounded by the tier's
   * deadline; a failure leaves the previous one (read earlier, so still a safe thing to compare against).
   */
  refresh(): Promise<void> {
    if (this.#loop.closed || !this.#target.ready) return Promise.resolve();
    if (!this.#refreshing) {
      this.#lastRefresh = performance.now();
      this.#refreshing = this.#target.generation().then((g) => {
        this.#refreshing = undefined;
        if (g === TIER_FAILED) return;
        this.#previous = this.#generation;
        this.#generation = { value: g, at: performance.now() };
      });
    }
    return this.#refreshing;
  }

  /** A write that did not reach the tier. */
  enqueue(w: W): void {
    if (this.#loop.closed) return;
    // Stale time passes for a generation that is never re-read: refreshed now and then (it must precede the
    // writes that use it, so it only ever helps later ones).
    if (performance.now() - this.#lastRefresh > REFRESH_MS) void this.refresh();
    const createdAt = readHeader(w.payload, this.#header) > 0 ? this.#header.createdAt : 0;
    // Both clocks tick in whole ms here: a millisecond earlier, so that the guess never comes out late.
    const madeAt = performance.now() - Math.max(0, Date.now() - createdAt) - 1;
    const old = this.#queue.get(w.pkey);
    if (old !== undefined) {
      // Newest write per key wins (write-behind may hand over a batch older than a write already queued).
      this.#n.superseded++;
      if (old.createdAt > createdAt) return;
      this.#queue.delete(w.pkey);
    }
    this.#queue.set(w.pkey, { write: w, createdAt, madeAt, generation: this.#generationBefore(madeAt), drop: false });
    while (this.#queue.size > this.#maxKeys) {
      const [pkey, oldest] = this.#queue.entries().next().value as [string, Entry<W>];
      this.#queue.delete(pkey);
      this.#n.overflowed++;
      this.#hooks.overflowed(oldest.write);
      this.#hooks.log(`more queued writes than recovery.maxKeys (${this.#maxKeys}); the oldest is replaced by a delete of its key`);
    }
    this.#changed();
  }

  /** The newest generation read before `madeAt` (undefined: none was). */
  #generationBefore(madeAt: number): string | undefined {
    const g = this.#generation;
    if (g !== undefined && g.at <= madeAt) return g.value;
    const p = this.#previous;
    return p !== undefined && p.at <= madeAt ? p.value : undefined;
  }

  /**
   * A newer write of this key was issued, or the key was deleted: the queued write is out of date (a new write
   * that fails too is queued in its place; a delete that fails is DeferredInvalidations' to replay).
   */
  supersede(pkey: string): void {
    if (this.#queue.delete(pkey)) {
      this.#n.superseded++;
      this.#changed();
    }
  }

  /**
   * A pattern or tag invalidation covers these writes: it came after them, so they are replayed as deletes of
   * their keys instead. Not simply forgotten: the tier still holds the value from before each write, which a tag
   * invalidation does not reach (that value was not written with the tag).
   */
  invalidate(predicate: (w: W) => boolean): void {
    if (this.idle) return;
    for (const e of this.#queue.values()) if (predicate(e.write)) e.drop = true;
  }

  clear(): void {
    this.#n.superseded += this.#queue.size;
    this.#queue.clear();
    this.#changed();
  }

  stats(): RecoveryStats {
    return { queued: this.#queue.size, ...this.#n };
  }

  /** Stops the timers and makes one last bounded attempt; resolves to how many writes are left unreplayed. */
  async close(): Promise<number> {
    await this.#loop.close(() => !this.idle && this.#target.ready);
    const left = this.#queue.size;
    this.#queue.clear();
    this.idle = true;
    return left;
  }

  #changed(): void {
    this.idle = this.#queue.size === 0;
    this.#loop.pending(!this.idle);
  }

  /** One round, batch by batch in queue order. Resolves true when nothing is left. */
  async #replayOnce(): Promise<boolean> {
    while (this.#queue.size > 0) {
      if (!this.#target.ready) return false;
      const batch: Array<Entry<W>> = [];
      for (const e of this.#queue.values()) {
        batch.push(e);
        if (batch.length >= this.#batchSize) break;
      }
      const outcomes = await Promise.all(batch.map((e) => this.#replayOne(e)));
      const stored: W[] = [];
      const drops: Array<Entry<W>> = [];
      let failed = false;
      batch.forEach((e, i) => {
        const o = outcomes[i];
        if (o === TIER_FAILED) failed = true;
        else if (o === 'drop') {
          e.drop = true;
          drops.push(e);
        } else if (this.#settle(e)) {
          if (o === 'stored') {
            this.#n.replayed++;
            stored.push(e.write);
          } else this.#n.superseded++;
        }
      });
      if (stored.length > 0) this.#hooks.replayed(stored);
      // One that a newer write or an invalidation here took out meanwhile is that one's business now.
      const live = drops.filter((e) => this.#queue.get(e.write.pkey) === e);
      if (live.length > 0) {
        const writes = live.map((e) => e.write);
        if (!(await this.#target.drop(writes))) return false;
        for (const e of live) if (this.#settle(e)) this.#n.dropped++;
        this.#hooks.dropped(writes);
      }
      if (failed) return false;
    }
    return true;
  }

  /** Takes a replayed entry out, unless a newer write or an invalidation already replaced or removed it. */
  #settle(e: Entry<W>): boolean {
    if (this.#queue.get(e.write.pkey) !== e) return false;
    this.#queue.delete(e.write.pkey);
    return true;
  }

  async #replayOne(e: Entry<W>): Promise<'stored' | 'newer' | 'drop' | TierFailed> {
    if (e.drop || e.generation === undefined) return 'drop';
    const age = performance.now() - e.madeAt;
    const ttl = Math.floor(this.#target.ttl(e.write) - age);
    // Past the window a delete's fence may have expired: the absence of one proves nothing any more.
    if (age >= this.#target.window || ttl <= 0) return 'drop';
    const r = await this.#target.read(e.write);
    if (r === TIER_FAILED) return r;
    if (r.fence !== '' || r.generation !== e.generation) return 'drop';
    if (r.value !== undefined && this.#createdAtOf(r.value) >= e.createdAt) return 'newer';
    // The entry may have been replaced or invalidated here while the read was out.
    if (e.drop) return 'drop';
    if (this.#queue.get(e.write.pkey) !== e) return 'newer';
    const ok = await this.#target.replace(e.write, ttl, { fence: '', generation: e.generation }, r.value);
    if (ok === TIER_FAILED) return ok;
    // Refused: the key moved between the read and the store. Unless a newer write of ours did that, it is
    // someone else's move, and a delete is what is safe.
    return ok ? 'stored' : this.#queue.get(e.write.pkey) === e ? 'drop' : 'newer';
  }

  /** createdAt of a stored value; an entry this reader cannot date (legacy, corrupt) counts as older, a newer format as newer. */
  #createdAtOf(raw: string): number {
    const at = readHeader(raw, this.#header);
    if (at > 0) return this.#header.createdAt;
    return at === ENTRY_NEWER ? Number.MAX_SAFE_INTEGER : -1;
  }
}
