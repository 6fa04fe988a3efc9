import { LRUCache } from 'lru-cache';
import { CacheDecodeError } from './codec';
import type { EngineContext, PreparedWrite } from './engine-context';
import { inflatePayload } from './compression';
import { ENTRY_COMPRESSED, ENTRY_NEWER, pastStaleAt, readHeader, type EntryHeader } from './entry-envelope';
import { fenceKeyOf, type FillSeen } from './fill-fence';
import { GracedEntry } from './get-set/graced-entry';
import type { DeferredInvalidations } from './deferred-invalidations';
import { compressionStats, mean, ratio, type TierStats } from './tier-stats';
import type { LowerTiers } from './lower-tiers';
import { L2_FAILED, type FillLockKeys, type L2Write, type RedisTier } from './tiers/redis.tier';
import type { FillMark } from './tiers/tier';
import { cappedTtl, type Tier } from './tiers/tier';

const TRUE: Promise<boolean> = Promise.resolve(true);

/**
 * A copy a getOrSet may serve instead of waiting for its factory: one past its TTL but within grace (`stale`), or
 * a fresh value past its eager-refresh point.
 */
export interface HeldCopy {
  value: unknown;
  stale: boolean;
  /** When the value was written (epoch ms). */
  createdAt: number;
  /** L2's entry as stored, when it came from there: what the refresh's store replaces (and nothing else). */
  replaces?: string;
  /**
   * Until when this instance may keep it (epoch ms) without outliving what names it in a tag index: the end of
   * the copy it came from; 0 when unknown (fail-safe then serves it, but keeps nothing).
   */
  keepUntil: number;
  tags?: readonly string[];
}

/** A fill's read below L1: the value, or what its stores will be checked against in each tier. */
export interface FillRead {
  /** A fresh value (undefined when there is none). */
  value: unknown;
  /** A stale copy (value undefined), or the fresh value again when it is due for an early refresh. */
  copy?: HeldCopy;
  /** L2's fence and generation; undefined when L2 could not be asked (the fill then keeps its value in L1 only). */
  seen?: FillSeen;
  /** Each lower tier's mark (undefined where it was not asked). */
  marks?: Array<FillMark | undefined>;
  /** The fill lock asked for in this read (get-set/distributed-lock.ts): taken, held by another; undefined: not asked. */
  locked?: boolean;
  /** The tier below L2 whose value this is (undefined: L2's, or no value); tracing says which tier answered. */
  tier?: string;
}

/**
 * The tiers in order, first asked first: the in-process tier on top, the shared Redis tier below it. Reads go
 * down until a tier has the key, a hit is copied up (never outliving what the tier below has left of it), and
 * writes go down from the top. The caller's L1 hit is served before anything here is reached (tiered-cache.ts
 * reads the memory tier itself: that path is a few property loads).
 */
export class CacheStack {
  readonly tiers: ReadonlyArray<Tier<object> | Tier<string>>;
  /** L2 hits per key short of l2.promoteAfter (only when promoteAfter > 1). */
  readonly #promoteCounts: LRUCache<string, number> | undefined;
  readonly #header: EntryHeader = { createdAt: 0, staleAt: -1, flags: 0 };
  /**
   * The codec payload decodeStored() last decoded (decompressed if it was): what an L1 copy of that value
   * weighs. copyToL1 runs right after decodeStored, in the same synchronous stretch.
   */
  #decoded = '';

  constructor(private readonly ctx: EngineContext) {
    const o = ctx.options;
    this.tiers = [ctx.l1, ctx.l2].filter((t): t is NonNullable<typeof t> => t !== undefined);
    if (ctx.l1 && ctx.l2 && o.l2.promoteAfter > 1) this.#promoteCounts = new LRUCache({ max: o.l1.maxEntries });
  }

  // ---------------------------------------------------------------- promotion bookkeeping

  /** Whether an L2 hit of `key` now reaches `l2.promoteAfter` (always, with the default of 1). */
  promotionDue(key: string): boolean {
    const counts = this.#promoteCounts;
    return counts ? (counts.get(key) ?? 0) + 1 >= this.ctx.options.l2.promoteAfter : true;
  }

  /** The key was written or invalidated: its count toward promotion starts again. */
  forget(key: string): void {
    this.#promoteCounts?.delete(key);
  }

  forgetAll(): void {
    this.#promoteCounts?.clear();
  }

  // ---------------------------------------------------------------- reads down

  /** The read below L1: Redis, unless an invalidation of the key is still waiting to reach it. */
  async readBelow(key: string): Promise<unknown> {
    const ctx = this.ctx;
    // Below L2, a hit is copied up with fenced stores: the read must take L2's fill mark on the way down.
    if (ctx.lower !== undefined) return (await this.readForFill(key)).value;
    const l2 = ctx.l2 as RedisTier;
    const deferred = ctx.deferred as DeferredInvalidations;
    if (!deferred.idle && deferred.blocks(key)) {
      // What Redis holds is what was invalidated.
      ctx.n.l2Misses++;
      return undefined;
    }
    const pkey = ctx.prefix + key;
    if (ctx.l1 !== undefined && this.promotionDue(key)) {
      const since = ctx.readGuard.begin();
      try {
        const r = await l2.getWithPttl(pkey);
        if (r === L2_FAILED) {
          ctx.n.l2Misses++;
          return undefined;
        }
        return this.accept(key, r[0], r[1], since);
      } finally {
        ctx.readGuard.end();
      }
    }
    const payload = await l2.get(pkey);
    if (payload === L2_FAILED) {
      ctx.n.l2Misses++;
      return undefined;
    }
    return this.accept(key, payload, undefined);
  }

  /** readBelow, and the name of the tier that answered (undefined on a miss): what a traced get reports. */
  async readBelowFrom(key: string): Promise<{ value: unknown; tier: string | undefined }> {
    const l2 = this.ctx.l2 as RedisTier;
    if (this.ctx.lower === undefined) {
      const value = await this.readBelow(key);
      return { value, tier: value === undefined ? undefined : l2.name };
    }
    const r = await this.readForFill(key);
    return { value: r.value, tier: r.value === undefined ? undefined : (r.tier ?? l2.name) };
  }

  /** The L1 misses of an mget, read from Redis in one round trip; fills `out` at the `missing` positions. */
  async readManyBelow<T>(keys: readonly string[], out: Array<T | undefined>, missing: number[]): Promise<Array<T | undefined>> {
    const ctx = this.ctx;
    const promote = ctx.l1 !== undefined;
    const deferred = ctx.deferred as DeferredInvalidations;
    if (!deferred.idle) {
      const open = missing.filter((i) => !deferred.blocks(keys[i]));
      ctx.n.l2Misses += missing.length - open.length;
      if (open.length === 0) return out;
      missing = open;
    }
    const since = ctx.readGuard.begin();
    try {
      const pkeys = new Array<string>(missing.length);
      for (let j = 0; j < missing.length; j++) pkeys[j] = ctx.prefix + keys[missing[j]];
      const rows = await (ctx.l2 as RedisTier).mget(pkeys, promote);
      if (rows === L2_FAILED) {
        ctx.n.l2Misses += missing.length;
        return out;
      }
      for (let j = 0; j < missing.length; j++) {
        const row = rows[j];
        const key = keys[missing[j]];
        // As get does: with promoteAfter > 1 a hit short of the count is counted (no pttl), not copied up.
        const due = promote && this.promotionDue(key);
        out[missing[j]] = this.accept(key, row[0], due ? row[1] : undefined, since) as T | undefined;
      }
      const lower = ctx.lower;
      if (lower !== undefined) {
        // Values found below L2 are returned, not copied up: copies need the fill marks a single get reads.
        const still = missing.filter((i) => out[i] === undefined);
        if (still.length > 0) {
          const rows = await lower.readMany(still.map((i) => keys[i]));
          still.forEach((i, j) => {
            const row = rows[j];
            if (row === undefined) return;
            const value = this.decodeStored(keys[i], row.value, (k) => void lower.deleteKeys([k]), 'the tiers below L2') as T | undefined;
            if (!pastStaleAt(this.#header.staleAt)) out[i] = value;
          });
        }
      }
      return out;
    } finally {
      ctx.readGuard.end();
    }
  }

  /**
   * A fill's read below L1: the value when there is one, else what its store will be checked against
   * (fill-fence.ts). `seen` is undefined when Redis could not be asked (unreachable, or an invalidation of the
   * key still waiting to reach it): the fill then keeps its value in L1 only. `lock`: the fill lock to take in
   * the same call when the key is missing, where Redis can (RedisTier.locksInRead); `locked` tells the outcome.
   */
  async readForFill(key: string, eagerRefresh = 0, lock?: FillLockKeys): Promise<FillRead> {
    const ctx = this.ctx;
    const deferred = ctx.deferred as DeferredInvalidations;
    if (!deferred.idle && deferred.blocks(key)) {
      ctx.n.l2Misses++;
      return { value: undefined };
    }
    const startedAt = performance.now();
    const pkey = ctx.prefix + key;
    const promote = ctx.l1 !== undefined && this.promotionDue(key);
    const lower = ctx.lower;
    const since = promote || lower ? ctx.readGuard.begin() : -1;
    try {
      const l2 = ctx.l2 as RedisTier;
      const fenceKey = fenceKeyOf(ctx.reserved.fencePrefix, pkey);
      const locking = lock !== undefined && fenceKey !== undefined && l2.locksInRead;
      const r = locking ? await l2.readForFillLocking(pkey, fenceKey, ctx.reserved.genKey, promote, lock) : await l2.readForFill(pkey, fenceKey, ctx.reserved.genKey, promote);
      const seen = r === L2_FAILED ? undefined : { fence: r[2], generation: r[3], startedAt };
      const locked = locking && r !== L2_FAILED ? (r as [unknown, unknown, unknown, unknown, boolean | undefined])[4] : undefined;
      if (r === L2_FAILED) ctx.n.l2Misses++;
      else {
        const found = this.acceptForFill(key, r[0], promote ? r[1] : undefined, since, eagerRefresh);
        if (found !== undefined) {
          found.seen = seen;
          found.locked = locked;
          // A stale copy in L2 may still be fresh below it (a longer-lived tier): only a plain miss goes down.
          if (found.value !== undefined || lower === undefined) return found;
          const below = await this.readLower(lower, key, seen, since);
          return below.value !== undefined ? below : { ...below, copy: found.copy, locked };
        }
      }
      if (lower === undefined) return { value: undefined, seen, locked };
      const below = await this.readLower(lower, key, seen, since);
      below.locked = locked;
      return below;
    } finally {
      if (since >= 0) ctx.readGuard.end();
    }
  }

  /**
   * L2 missed: down the lower tiers. A hit due for promotion is copied into each tier above it, L2 included, by
   * fenced stores (each refused if an invalidation reached that tier since this read passed it) and into L1 as an
   * L2 hit is. The copies go in the background: the caller has its value.
   */
  private async readLower(lower: LowerTiers, key: string, seen: FillSeen | undefined, since: number): Promise<FillRead> {
    const ctx = this.ctx;
    const r = await lower.read(key);
    const hit = r.hit ?? r.stale;
    if (hit === undefined) return { value: undefined, seen, marks: r.marks };
    const value = this.decodeStored(key, hit.payload, (k) => void lower.deleteKeys([k]), `tier ${lower.levels[hit.level].tier.name}`);
    if (value === undefined) return { value: undefined, seen, marks: r.marks };
    const { staleAt, createdAt } = this.#header;
    if (pastStaleAt(staleAt)) {
      // Past this tier's TTL, within its grace: not copied up (a refresh replaces it), served by getOrSet alone.
      return { value: undefined, seen, marks: r.marks, copy: { value, stale: true, createdAt, keepUntil: 0 } };
    }
    const tier = lower.levels[hit.level].tier.name;
    if (hit.due && !ctx.closed) {
      void lower.promote(key, hit, r.marks);
      const l2Ttl = cappedTtl(ctx.options.l2.ttl, hit.ttl);
      if (seen !== undefined && l2Ttl > 0 && !ctx.flights.isStale(key)) {
        const pkey = ctx.prefix + key;
        void (ctx.l2 as RedisTier).storeFill({ pkey, payload: hit.payload, ttl: l2Ttl }, fenceKeyOf(ctx.reserved.fencePrefix, pkey), ctx.reserved.genKey, seen);
      }
      this.copyToL1(key, value, hit.ttl, since, staleAt, createdAt);
    }
    return { value, tier };
  }

  /**
   * An L2 reply: unwraps the entry envelope, decodes, counts the hit or miss, and copies the value up into L1
   * when `pttl` is given (undefined: not due for promotion yet, the hit is counted toward it).
   */
  accept(key: string, payload: string | null, pttl: number | undefined, since = -1): unknown {
    const ctx = this.ctx;
    const n = ctx.n;
    const value = payload === null ? undefined : this.decodeStored(key, payload, this.#dropL2, 'Redis');
    const { staleAt, createdAt } = this.#header;
    // A copy past its TTL is kept for getOrSet (grace), and is a miss to every other read.
    if (value === undefined || pastStaleAt(staleAt)) {
      n.l2Misses++;
      return undefined;
    }
    n.l2Hits++;
    if (pttl !== undefined) this.copyToL1(key, value, pttl, since, staleAt, createdAt);
    else this.countTowardPromotion(key);
    return value;
  }

  private countTowardPromotion(key: string): void {
    const ctx = this.ctx;
    if (ctx.l1 && !ctx.closed && ctx.l1Trusted) this.#promoteCounts?.set(key, (this.#promoteCounts.get(key) ?? 0) + 1);
  }

  /**
   * accept() for a fill: a fresh value, a stale copy (past its TTL, within grace: counted as a stale hit), or a
   * fresh value due for an early refresh (at `eagerRefresh` of its lifetime, 0: never); undefined for a miss.
   */
  private acceptForFill(key: string, payload: string | null, pttl: number | undefined, since: number, eagerRefresh: number): FillRead | undefined {
    const n = this.ctx.n;
    const value = payload === null ? undefined : this.decodeStored(key, payload, this.#dropL2, 'Redis');
    if (value === undefined) {
      n.l2Misses++;
      return undefined;
    }
    const { staleAt, createdAt } = this.#header;
    if (staleAt < 0) {
      n.l2Hits++;
      if (pttl !== undefined) this.copyToL1(key, value, pttl, since, -1, 0);
      else this.countTowardPromotion(key);
      return { value };
    }
    const now = Date.now();
    const stale = now >= staleAt;
    if (stale) n.resilience.staleHits++;
    else n.l2Hits++;
    // A stale copy goes into L1 too (as stale): the next calls there are answered at L1 speed while it refreshes.
    if (pttl !== undefined) this.copyToL1(key, value, pttl, since, staleAt, createdAt);
    else if (!stale) this.countTowardPromotion(key);
    const due = !stale && eagerRefresh > 0 && now >= createdAt + eagerRefresh * (staleAt - createdAt);
    if (!stale && !due) return { value };
    const copy: HeldCopy = {
      value,
      stale,
      createdAt,
      replaces: payload as string,
      keepUntil: pttl !== undefined && pttl > 0 ? now + pttl : 0,
    };
    return stale ? { value: undefined, copy } : { value, copy };
  }

  /** An L2 hit's garbage is removed so the next read refills it. */
  readonly #dropL2 = (key: string): void => void this.ctx.l2?.del([this.ctx.prefix + key]);

  /**
   * Copies a value read below L1 into it, for at most what the tier it came from has left (`remaining`; -1: no
   * expiry there; 0: it expires within this millisecond), unless an invalidation of the key came after the read.
   */
  private copyToL1(key: string, value: unknown, remaining: number, since: number, staleAt: number, createdAt: number): void {
    const ctx = this.ctx;
    const l1 = ctx.l1;
    if (!l1 || ctx.closed || !ctx.l1Trusted) return;
    let ttl = cappedTtl(ctx.options.l1.ttl, remaining);
    let stored: unknown;
    if (staleAt >= 0 && ttl > 0) {
      // L1's own TTL bounds the fresh part; the copy is kept through what is left of the grace below it.
      const now = Date.now();
      const freshLeft = Math.max(0, staleAt - now);
      const fresh = Math.min(ctx.options.l1.ttl, freshLeft);
      ttl = remaining === -1 ? fresh + ctx.options.l1.ttl : Math.min(remaining, fresh + Math.max(0, remaining - freshLeft));
      stored = new GracedEntry(ctx.protection.toStored(value), createdAt, now + fresh, staleAt);
      l1.graced = true;
    }
    if (ttl > 0 && !ctx.flights.isStale(key) && !(since >= 0 && ctx.readGuard.changedSince(key, since)) && l1.admits(key)) {
      l1.set(key, (stored ?? ctx.protection.toStored(value)) as object, ttl, undefined, this.l1SizeOf(this.#decoded));
      this.#promoteCounts?.delete(key);
      ctx.n.promotions++;
    }
  }

  /**
   * A stored payload (the entry envelope around the codec's output): the value, or undefined for a miss — an
   * entry in a newer format (a rolling deploy: left in place for the instances that read it), garbage (removed
   * through `drop`), or null without cacheNullValues. `where` names the store in the log.
   */
  private decodeStored(key: string, payload: string, drop: (key: string) => void, where: string): unknown {
    const ctx = this.ctx;
    const h = this.#header;
    // readHeader leaves `h` as it was for anything but a current envelope: no logical expiry unless it says so.
    h.staleAt = -1;
    h.createdAt = 0;
    // Where the codec's payload starts (entry-envelope.ts): 0 for an entry written before the envelope.
    const at = readHeader(payload, h);
    if (at === ENTRY_NEWER) {
      ctx.n.newerEntries++;
      ctx.log('warn', 'entry-version', `entry under "${key}" is in a newer format than this version reads: treated as a miss and left in ${where}`);
      return undefined;
    }
    let value: unknown;
    try {
      if (at < 0) throw new CacheDecodeError('malformed entry header');
      let body = at > 0 ? payload.slice(at) : payload;
      // The uncompressed size limit bounds what a compressed entry may expand to.
      if (at > 0 && (h.flags & ENTRY_COMPRESSED) !== 0) body = inflatePayload(body, h.flags, ctx.options.maxValueBytes);
      this.#decoded = body;
      value = ctx.options.codec.decode(body);
    } catch (err) {
      this.corrupt(key, err);
      drop(key);
      return undefined;
    }
    return value === undefined || (value === null && !ctx.options.cacheNullValues) ? undefined : value;
  }

  private corrupt(key: string, err: unknown): void {
    this.ctx.n.corrupt++;
    this.ctx.log('warn', 'corrupt', `undecodable payload under "${key}" treated as a miss and deleted (${(err as Error).message})`);
  }

  // ---------------------------------------------------------------- writes down

  /**
   * Writes a prepared value down the stack: Redis first (through, behind, or over a pending delete), then L1.
   * The L2 write leaves first and everything after it overlaps its round trip; nothing else runs in between,
   * so the order is invisible to every other caller. `l1Only`: a fill that could not ask Redis what to check
   * its store against keeps its value here only. Resolves when the write-through reply is in.
   */
  writeDown(w: PreparedWrite, value: unknown, l1Only: boolean): Promise<boolean> {
    const ctx = this.ctx;
    let written: Promise<boolean> | undefined;
    if (ctx.l2 && !l1Only) {
      const deferred = ctx.deferred as DeferredInvalidations;
      // This write is newer than one queued for replay; if it fails too, it is queued in its place.
      if (ctx.recovery !== undefined && !ctx.recovery.idle) ctx.recovery.supersede(w.pkey);
      if (!deferred.idle && deferred.hasKey(w.key)) written = this.writeOverDeferred(w, deferred);
      else if (ctx.writeBehind) ctx.writeBehind.enqueue(w);
      else written = ctx.l2.set(w, ctx.recovery && this.lostL2);
      if (ctx.lower) {
        const below = ctx.lower.write([w]);
        written = written ? Promise.all([written, below]).then(() => true) : below.then(() => true);
      }
    }
    this.writeL1(w, value);
    return written ?? TRUE;
  }

  /** The L1 part of a write (also what a fenced fill does once Redis took its value). */
  writeL1(w: PreparedWrite, value: unknown): void {
    const l1 = this.ctx.l1;
    if (l1) {
      const stored = this.ctx.protection.toStored(value);
      if (w.staleAt === undefined) l1.set(w.key, stored, w.l1Ttl, w.tags, w.bytes);
      else {
        l1.graced = true;
        l1.set(w.key, new GracedEntry(stored, w.createdAt, w.createdAt + w.l1Fresh, w.staleAt), w.l1Ttl, w.tags, w.bytes);
      }
    }
    this.#promoteCounts?.delete(w.key);
  }

  /** Many writes: L1 first (so the caller's next read sees them), then Redis in one round trip. */
  async writeManyDown(writes: ReadonlyArray<PreparedWrite & { value: unknown }>): Promise<void> {
    const ctx = this.ctx;
    for (const w of writes) this.writeL1(w, w.value);
    if (!ctx.l2 || writes.length === 0) return;
    const deferred = ctx.deferred as DeferredInvalidations;
    const seq = deferred.idle ? 0 : deferred.nextSeq();
    if (seq !== 0) for (const w of writes) if (deferred.hasKey(w.key)) w.seq = seq;
    const recovery = ctx.recovery;
    if (recovery !== undefined && !recovery.idle) for (const w of writes) recovery.supersede(w.pkey);
    const below = ctx.lower?.write(writes);
    if (ctx.writeBehind) for (const w of writes) ctx.writeBehind.enqueue(w);
    else {
      const r = await ctx.l2.setMany(writes);
      if (r === L2_FAILED) this.lostL2Many(writes);
      else if (seq !== 0) for (const w of writes) deferred.written(w.key, seq);
    }
    await below;
  }

  /**
   * A write that did not reach Redis: kept for replay (recovery-queue.ts). Only what the replay needs: an mset's
   * writes also carry the live value, which the queue must not keep alive.
   */
  readonly lostL2 = (w: L2Write): void => {
    this.ctx.recovery?.enqueue({ pkey: w.pkey, payload: w.payload, ttl: w.ttl, tagKeys: w.tagKeys });
  };

  lostL2Many(writes: readonly L2Write[]): void {
    for (const w of writes) this.lostL2(w);
  }

  /**
   * A write of a key whose delete is still waiting to reach Redis. It settles that delete only if it lands
   * itself (newest intent wins); if it fails too, the delete is replayed after it and the key becomes a miss
   * rather than the value from before the delete.
   */
  private writeOverDeferred(w: PreparedWrite, deferred: DeferredInvalidations): Promise<boolean> {
    w.seq = deferred.nextSeq();
    if (this.ctx.writeBehind) {
      this.ctx.writeBehind.enqueue(w);
      return TRUE;
    }
    const seq = w.seq;
    return (this.ctx.l2 as RedisTier).setMany([w]).then((r) => {
      if (r !== L2_FAILED) deferred.written(w.key, seq);
      else this.lostL2(w);
      return true as const;
    });
  }

  // ---------------------------------------------------------------- stats

  /** stats().tiers: every tier by name, in stack order. */
  tierStats(): Record<string, TierStats> {
    const { n, l1, l2 } = this.ctx;
    const out: Record<string, TierStats> = {};
    if (l1) {
      out[l1.name] = { kind: 'memory', level: 0, hits: n.l1Hits, misses: n.l1Misses, hitRatio: ratio(n.l1Hits, n.l1Misses), promotions: n.promotions, errors: 0, size: l1.size, ready: true, meanLatencyMs: mean(n.l1LatencyTotal, n.l1LatencySamples) };
    }
    if (l2) {
      out[l2.name] = { kind: 'redis', level: l1 ? 1 : 0, hits: n.l2Hits, misses: n.l2Misses, hitRatio: ratio(n.l2Hits, n.l2Misses), promotions: 0, errors: n.l2Errors, timeouts: l2.deadlines.timeouts, ready: l2.ready, meanLatencyMs: mean(n.belowLatencyTotal, n.belowLatencySamples) };
      const c = compressionStats(l2.compressor);
      if (c) out[l2.name].compression = c;
      const b = l2.breaker.stats();
      if (b) out[l2.name].breaker = b;
    }
    if (this.ctx.lower) Object.assign(out, this.ctx.lower.stats(l1 ? 2 : 1));
    return out;
  }

  /** What an L1 entry weighs against l1.maxBytes: its codec payload's UTF-8 size (only computed when that limit is set). */
  private l1SizeOf(body: string): number {
    // The codec's part only: sizes never count the envelope's header (write-path.ts sizes a write the same way).
    return this.ctx.options.l1.maxBytes === undefined ? body.length : Buffer.byteLength(body, 'utf8');
  }
}
