import { LRUCache } from 'lru-cache';
import type { SetOptions, TieredCacheOptions } from '../interfaces/tiered-cache-options.interface';
import { CacheDecodeError } from './codec';
import { DeferredInvalidations, type InvalidationTarget, type LandedInvalidation } from './deferred-invalidations';
import { fenceKeyOf, type FillSeen } from './fill-fence';
import { parseCallTtl } from './duration';
import { CacheSerializationError } from './errors';
import { compileGlob, escapeGlob, type GlobMatcher } from './glob';
import { MemoryTier } from './memory.tier';
import { ReadGuard } from './read-guard';
import { fanOut, invalidationCount, type CacheObserver, type CacheOperation, type CacheTier, type InvalidationSource } from './observer';
import { resolveOptions, type ResolvedOptions } from './options';
import { RedisConnectionFactory } from './redis-connection';
import { L2_FAILED, RedisTier, type L2Write, type ScanDeleteResult } from './redis.tier';
import { ratio, type CacheStats } from './stats';
import { WriteBehindQueue } from './write-behind-queue';
import { DISABLED_BUS_STATS, InvalidationBus } from '../invalidation/invalidation-bus';
import { InvalidationQueue } from '../invalidation/invalidation-queue';
import { InvalidationCounters } from '../invalidation/invalidation-stats';

/**
 * What changed locally: the invalidation bus (and metrics) listen to this. `replay`: an invalidation that
 * could not reach Redis when it was made and has reached it now; announced again so that every instance drops
 * what it may have re-read meanwhile, and not counted again.
 */
export type CacheChange =
  /** `byTag`: keys removed as part of a tag invalidation (already counted as one; metrics skip them). */
  | { type: 'delete'; keys: string[]; byTag?: true; replay?: true }
  | { type: 'overwrite'; keys: string[] }
  | { type: 'pattern'; pattern: string; replay?: true }
  | { type: 'tags'; tags: string[]; replay?: true }
  | { type: 'clear'; replay?: true };

/** What `invalidatePattern(glob, { detailed: true })` resolves to. */
export interface PatternInvalidationReport {
  /** Entries removed: the larger of the L1 and the Redis count. */
  removed: number;
  /** Every tier was walked to the end (on a Cluster: every master). */
  complete: boolean;
  /**
   * Redis nodes (`host:port`) whose walk failed; `['all']` when Redis was not reachable at all; `['generation']`
   * when every node was walked but the namespace generation that fences running fills could not be moved.
   */
  failedNodes: string[];
  /** The pattern was kept and is replayed on Redis until it lands (see stats().l2.pendingInvalidations). */
  deferred: boolean;
}

interface Prepared extends L2Write {
  key: string;
  l1Ttl: number;
  tags: readonly string[] | undefined;
  /** UTF-8 size of the payload (what maxValueBytes and l1.maxBytes count). */
  bytes: number;
  /** Intent sequence number, set when a deferred delete of this key is pending (see DeferredInvalidations). */
  seq?: number;
}

const DEFERRED_LIMITS = { keys: 10_000, patterns: 100, tags: 1_000 };

interface Flight {
  promise: Promise<unknown>;
  /** Set when the key is invalidated while the factory runs: its result is returned but not cached. */
  stale: boolean;
}

const TRUE: Promise<boolean> = Promise.resolve(true);
const FALSE: Promise<boolean> = Promise.resolve(false);

// lru-cache cannot hold null/undefined; null results (when cached) are stored as this marker.
const NULL_MARKER = Object.freeze({ __tieredCacheNull: true });
const RESERVED = '__tc:';
const SAMPLE_MASK = 7;

/**
 * The cache engine: L1 (in-process LRU) in front of L2 (Redis). Free of Nest so it can be unit-tested and
 * benchmarked alone. Nothing here throws because of Redis: L2 failures are misses, counted and logged.
 */
export class TieredCache {
  readonly options: ResolvedOptions;
  readonly l1: MemoryTier | undefined;
  readonly l2: RedisTier | undefined;
  private readonly writeBehind: WriteBehindQueue<Prepared> | undefined;
  /** Invalidations that could not reach Redis, replayed until they land; undefined without L2. */
  private readonly deferred: DeferredInvalidations | undefined;
  private readonly promoteCounts: LRUCache<string, number> | undefined;
  private readonly inflight = new Map<string, Flight>();
  private readonly listeners: Array<(change: CacheChange) => void> = [];
  private readonly logThrottle = new Map<string, number>();
  private readonly prefix: string;
  private readonly cloneOnRead: boolean;
  /** Tag indexes: sorted sets scored by expiry (`__tc:tagz:`); `__tc:tag:` holds the plain sets of earlier versions. */
  private readonly tagPrefix: string;
  private readonly legacyTagPrefix: string;
  /** Fill fences (fill-fence.ts): per-key fence keys, and the namespace generation. */
  private readonly fencePrefix: string;
  private readonly genKey: string;
  /** Redis as invalidations see it: deletes write fences, pattern/tag/clear walks bump the generation first. */
  private readonly invalidationTarget: InvalidationTarget | undefined;
  private closed = false;
  private closing = false;
  /** Cross-instance L1 invalidation (Redis pub/sub); undefined without L2 or when turned off. */
  readonly bus: InvalidationBus | undefined;
  /** Counters the event-invalidation layer increments; reported under stats().invalidation. */
  readonly invalidationCounters = new InvalidationCounters();
  private readonly invalidationQueue: InvalidationQueue;
  /** False while the bus is not subscribed: L1 may have missed other instances' changes. */
  private l1Trusted = true;
  private readonly readGuard = new ReadGuard();
  private observers: CacheObserver[] = [];
  /** Metrics hooks (undefined when nobody observes: the hot path tests this one field). */
  private observer: CacheObserver | undefined;

  private n = {
    l1Hits: 0,
    l1Misses: 0,
    l2Hits: 0,
    l2Misses: 0,
    l2Errors: 0,
    promotions: 0,
    corrupt: 0,
    fillsRefused: 0,
    gets: 0,
    sets: 0,
    deletes: 0,
    latencyTotal: 0,
    latencySamples: 0,
  };

  constructor(options: TieredCacheOptions = {}) {
    this.options = resolveOptions(options);
    const o = this.options;
    this.prefix = o.keyPrefix;
    this.cloneOnRead = o.l1.protection === 'clone';
    this.tagPrefix = o.keyPrefix + RESERVED + 'tagz:';
    this.legacyTagPrefix = o.keyPrefix + RESERVED + 'tag:';
    this.fencePrefix = o.keyPrefix + RESERVED + 'fence:';
    this.genKey = o.keyPrefix + RESERVED + 'gen';
    if (o.l1.enabled) this.l1 = new MemoryTier(o.l1.maxEntries, o.l1.maxBytes, o.l1.cleanupInterval);
    if (o.redis) {
      const factory = new RedisConnectionFactory(o.redis);
      this.l2 = new RedisTier(
        factory,
        o.redis.maxConnections,
        o.redis.commandTimeout,
        o.redis.connectTimeout,
        (op, err) => this.onL2Error(op, err),
        o.redis.socketTimeout,
      );
      const l2 = this.l2;
      this.invalidationTarget = {
        get ready() {
          return l2.ready;
        },
        onReady: (listener) => l2.onReady(listener),
        del: (pkeys) => l2.del(pkeys, { keys: pkeys.map((p) => fenceKeyOf(this.fencePrefix, p)), ttl: o.l2.fillWindow }),
        // The generation moves before the walk starts: a fill that stores while the walk runs must already see it.
        // When it cannot move, the walk still cleans what it reaches, and the invalidation counts as incomplete.
        scanDelete: async (match, onKeys) => {
          const bumped = await l2.bump(this.genKey);
          const r = await l2.scanDelete(match, onKeys);
          return bumped || r.failedNodes.length > 0 ? r : { removed: r.removed, failedNodes: ['generation'] };
        },
        popTag: async (tagKey, legacyKey, onKeys) => {
          const bumped = await l2.bump(this.genKey);
          const r = await l2.popTag(tagKey, legacyKey, onKeys);
          return bumped ? r : { removed: r.removed, complete: false };
        },
      };
      const deferred = new DeferredInvalidations(this.invalidationTarget, this.prefix, { prefix: this.tagPrefix, legacyPrefix: this.legacyTagPrefix }, DEFERRED_LIMITS, {
        landed: (change) => this.replayed(change),
        tagKeys: (pkeys) => this.droppedByTag(pkeys),
        log: (message) => this.log('warn', 'deferred', message),
      });
      this.deferred = deferred;
      if (o.writeBehind) {
        this.writeBehind = new WriteBehindQueue<Prepared>(this.l2, o.writeBehind.batchSize, o.writeBehind.maxQueue, o.writeBehind.flushInterval, (batch) => {
          if (!deferred.idle) for (const w of batch) if (w.seq !== undefined) deferred.written(w.key, w.seq);
        });
      }
      if (o.l1.enabled && o.l2.promoteAfter > 1) this.promoteCounts = new LRUCache({ max: o.l1.maxEntries });
      if (o.bus) this.bus = new InvalidationBus(this, factory, o.bus, this.l2);
    }
    this.invalidationQueue = new InvalidationQueue((keys) => this.delete(keys), o.invalidation.batchSize, o.invalidation.maxDelay);
  }

  /** Connects L2 (bounded by connectTimeout). Resolves false, never throws, when Redis is not there. */
  async connect(): Promise<boolean> {
    if (!this.l2) return true;
    const [ok] = await Promise.all([this.l2.connect(), this.bus?.connect(this.options.redis?.connectTimeout ?? 0)]);
    if (!ok) this.log('warn', 'connect', 'Redis is not reachable; serving from L1 and reconnecting in the background');
    return ok;
  }

  /** Flushes queued writes and closes every connection and timer. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.invalidationQueue.close();
    this.closed = true;
    if (this.writeBehind) {
      const lost = await this.writeBehind.close();
      if (lost > 0) this.log('error', 'shutdown', `${lost} queued write-behind entries could not be written to Redis`);
    }
    if (this.deferred) {
      const left = await this.deferred.close();
      if (left > 0) this.log('error', 'shutdown', `${left} invalidations could not be applied to Redis; what they covered stays there until it expires`);
    }
    await this.bus?.close();
    await this.l2?.close();
    this.l1?.close();
  }

  onChange(listener: (change: CacheChange) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Physical Redis key of a cache key. */
  redisKey(key: string): string {
    return this.prefix + key;
  }

  // ---------------------------------------------------------------- reads

  // Not async: an L1 hit resolves through one Promise.resolve instead of an async frame (a measurable share
  // of a sub-microsecond hit). A bad key still rejects, never throws synchronously.
  get<T = unknown>(key: string): Promise<T | undefined> {
    if (!isValidKey(key)) return Promise.reject(keyError(key));
    const sample = (++this.n.gets & SAMPLE_MASK) === 0;
    const t0 = sample ? performance.now() : 0;
    const l1 = this.l1;
    if (l1 !== undefined && (this.l1Trusted || !this.l2?.ready)) {
      const hit = l1.get(key);
      if (hit !== undefined) {
        this.n.l1Hits++;
        if (sample) this.sampleLatency(t0, 'get', 'l1');
        return Promise.resolve(this.fromL1(hit) as T);
      }
      this.n.l1Misses++;
    }
    return this.getBelowL1<T>(key, sample, t0);
  }

  private async getBelowL1<T>(key: string, sample: boolean, t0: number): Promise<T | undefined> {
    const v = this.l2 ? await this.readL2(key) : undefined;
    if (sample) this.sampleLatency(t0, 'get', this.l2 ? 'l2' : 'l1');
    return v as T | undefined;
  }

  async has(key: string): Promise<boolean> {
    checkKey(key);
    if ((this.l1Trusted || !this.l2?.ready) && this.l1?.has(key)) return true;
    if (!this.l2 || this.deferred?.blocks(key)) return false;
    const r = await this.l2.exists(this.prefix + key);
    return r === true;
  }

  /** Remaining TTL in milliseconds, or undefined when the key is absent (or has no TTL). */
  async ttl(key: string): Promise<number | undefined> {
    checkKey(key);
    if (this.l2 && !this.deferred?.blocks(key)) {
      const r = await this.l2.pttl(this.prefix + key);
      if (r !== L2_FAILED) return r > 0 ? r : undefined;
    }
    return this.l1?.remainingTtl(key);
  }

  mget<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    const t0 = this.observer ? performance.now() : -1;
    const count = keys.length;
    const out = new Array<T | undefined>(count);
    let missing: number[] | undefined;
    let hits = 0;
    const l1 = this.l1Trusted || !this.l2?.ready ? this.l1 : undefined;
    for (let i = 0; i < count; i++) {
      const key = keys[i];
      if (!isValidKey(key)) return Promise.reject(keyError(key));
      const hit = l1 === undefined ? undefined : l1.get(key);
      if (hit !== undefined) {
        hits++;
        out[i] = this.fromL1(hit) as T;
      } else if (missing === undefined) missing = [i];
      else missing.push(i);
    }
    // Counted once per call, not per key: the loop above is the hot part of an all-L1 mget.
    this.n.gets += count;
    this.n.l1Hits += hits;
    if (this.l1) this.n.l1Misses += count - hits;
    if (missing === undefined || !this.l2) {
      if (t0 >= 0) this.timed('mget', 'l1', t0);
      return Promise.resolve(out);
    }
    return this.mgetL2(keys, out, missing, t0);
  }

  private async mgetL2<T>(keys: readonly string[], out: Array<T | undefined>, missing: number[], t0: number): Promise<Array<T | undefined>> {
    const l2 = this.l2 as RedisTier;
    const promote = this.l1 !== undefined;
    const deferred = this.deferred as DeferredInvalidations;
    if (!deferred.idle) {
      // Redis may still hold what this instance invalidated and could not delete there yet.
      const open = missing.filter((i) => !deferred.blocks(keys[i]));
      this.n.l2Misses += missing.length - open.length;
      if (open.length === 0) {
        if (t0 >= 0) this.timed('mget', 'l2', t0);
        return out;
      }
      missing = open;
    }
    const since = this.readGuard.begin();
    try {
      const pkeys = new Array<string>(missing.length);
      for (let j = 0; j < missing.length; j++) pkeys[j] = this.prefix + keys[missing[j]];
      const rows = await l2.mget(pkeys, promote);
      if (rows === L2_FAILED) {
        this.n.l2Misses += missing.length;
        return out;
      }
      for (let j = 0; j < missing.length; j++) {
        const row = rows[j];
        const key = keys[missing[j]];
        // As get does: with promoteAfter > 1 a hit short of the count is counted (no pttl), not copied up.
        const due = promote && this.promotionDue(key);
        out[missing[j]] = this.acceptL2(key, row[0], due ? row[1] : undefined, since) as T | undefined;
      }
      return out;
    } finally {
      this.readGuard.end();
      if (t0 >= 0) this.timed('mget', 'l2', t0);
    }
  }

  /**
   * Synchronous L1-only read for hot paths (the @Cacheable wrapper): the value on an L1 hit (counted as a
   * get and a hit), else undefined and nothing counted — the caller goes on to getOrSet, which counts it.
   */
  peekLocal<T = unknown>(key: string): T | undefined {
    if (!this.l1Trusted && this.l2?.ready) return undefined;
    const hit = this.l1?.get(key);
    if (hit === undefined) return undefined;
    this.n.gets++;
    this.n.l1Hits++;
    return this.fromL1(hit) as T;
  }

  /**
   * Read-through: L1 → L2 → factory. Concurrent calls for one missing key share one lookup and one factory
   * run. A factory error reaches every waiter unchanged and nothing is cached.
   */
  getOrSet<T>(key: string, factory: () => T | Promise<T>, options?: SetOptions): Promise<T> {
    if (!isValidKey(key)) return Promise.reject(keyError(key));
    if (options?.ttl !== undefined) {
      // A TTL that cannot be stored is refused before the factory runs, not after.
      try {
        parseCallTtl('ttl', options.ttl, 0);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const sample = (++this.n.gets & SAMPLE_MASK) === 0;
    const t0 = sample ? performance.now() : 0;
    if (this.l1 && (this.l1Trusted || !this.l2?.ready)) {
      const hit = this.l1.get(key);
      if (hit !== undefined) {
        this.n.l1Hits++;
        if (sample) this.sampleLatency(t0, 'getOrSet', 'l1');
        return Promise.resolve(this.fromL1(hit) as T);
      }
      this.n.l1Misses++;
    }
    const running = this.inflight.get(key);
    if (running) return running.promise as Promise<T>;
    const flight: Flight = { promise: undefined as unknown as Promise<T>, stale: false };
    flight.promise = this.fill(key, factory, options, flight, sample ? t0 : -1);
    this.inflight.set(key, flight);
    return flight.promise as Promise<T>;
  }

  private async fill<T>(key: string, factory: () => T | Promise<T>, options: SetOptions | undefined, flight: Flight, t0: number): Promise<T> {
    try {
      let seen: FillSeen | undefined;
      if (this.l2) {
        const r = await this.readForFill(key);
        if (r.value !== undefined) {
          if (t0 >= 0) this.sampleLatency(t0, 'getOrSet', 'l2');
          return r.value as T;
        }
        seen = r.seen;
      }
      if (t0 >= 0) this.sampleLatency(t0, 'getOrSet', this.l2 ? 'l2' : 'l1');
      const value = await factory();
      if (this.options.readThrough && !flight.stale && !this.closed) {
        if (!this.l2 || seen === undefined) await this.store(key, value, options, true, !!this.l2);
        else await this.storeFill(key, value, options, seen, flight);
      }
      return value;
    } finally {
      if (this.inflight.get(key) === flight) this.inflight.delete(key);
    }
  }

  /**
   * A fill's L2 read: the value when there is one, else what the store will be checked against (fill-fence.ts).
   * `seen` is undefined when Redis could not be asked (unreachable, or an invalidation of the key still waiting
   * to reach it): the fill then keeps its value in L1 only.
   */
  private async readForFill(key: string): Promise<{ value: unknown; seen?: FillSeen }> {
    const deferred = this.deferred as DeferredInvalidations;
    if (!deferred.idle && deferred.blocks(key)) {
      this.n.l2Misses++;
      return { value: undefined };
    }
    const startedAt = performance.now();
    const pkey = this.prefix + key;
    const promote = this.l1 !== undefined && this.promotionDue(key);
    const since = promote ? this.readGuard.begin() : -1;
    try {
      const r = await (this.l2 as RedisTier).readForFill(pkey, fenceKeyOf(this.fencePrefix, pkey), this.genKey);
      if (r === L2_FAILED) {
        this.n.l2Misses++;
        return { value: undefined };
      }
      const value = this.acceptL2(key, r[0], promote ? r[1] : undefined, since);
      return value !== undefined ? { value } : { value: undefined, seen: { fence: r[2], generation: r[3], startedAt } };
    } finally {
      if (promote) this.readGuard.end();
    }
  }

  /** Stores a fill's value in Redis only if no invalidation overtook it, and in L1 only once Redis took it. */
  private async storeFill(key: string, value: unknown, options: SetOptions | undefined, seen: FillSeen, flight: Flight): Promise<void> {
    if (value === undefined || (value === null && !this.options.cacheNullValues)) return;
    const w = this.prepare(key, value, options);
    if (performance.now() - seen.startedAt > this.options.l2.fillWindow) {
      // Its fence may have expired: an invalidation it missed would not be seen.
      this.n.fillsRefused++;
      return;
    }
    const pkey = w.pkey;
    const r = await (this.l2 as RedisTier).storeFill(w, fenceKeyOf(this.fencePrefix, pkey), this.genKey, seen);
    if (r === false) {
      this.n.fillsRefused++;
      return;
    }
    // Written, or Redis failed (the script may still run, and still checks): L1 as any write, unless this
    // instance heard of an invalidation meanwhile.
    if (flight.stale || this.closed || !this.l1) return;
    this.n.sets++;
    this.l1.set(key, this.toL1(value), w.l1Ttl, w.tags, w.bytes);
    this.promoteCounts?.delete(key);
  }

  private async readL2(key: string): Promise<unknown> {
    const l2 = this.l2 as RedisTier;
    const pkey = this.prefix + key;
    if (!(this.deferred as DeferredInvalidations).idle && (this.deferred as DeferredInvalidations).blocks(key)) {
      // An invalidation of this key has not reached Redis yet: what Redis holds is what was invalidated.
      this.n.l2Misses++;
      return undefined;
    }
    const promote = this.l1 !== undefined && this.promotionDue(key);
    if (promote) {
      const since = this.readGuard.begin();
      try {
        const r = await l2.getWithPttl(pkey);
        if (r === L2_FAILED) {
          this.n.l2Misses++;
          return undefined;
        }
        return this.acceptL2(key, r[0], r[1], since);
      } finally {
        this.readGuard.end();
      }
    }
    const payload = await l2.get(pkey);
    if (payload === L2_FAILED) {
      this.n.l2Misses++;
      return undefined;
    }
    return this.acceptL2(key, payload, undefined);
  }

  /** Whether an L2 hit of `key` now reaches `l2.promoteAfter` (always, with the default of 1). */
  private promotionDue(key: string): boolean {
    return this.promoteCounts ? (this.promoteCounts.get(key) ?? 0) + 1 >= this.options.l2.promoteAfter : true;
  }

  /** Decodes an L2 payload, counts the hit or miss, and promotes into L1 when `pttl` is given. */
  private acceptL2(key: string, payload: string | null, pttl: number | undefined, since = -1): unknown {
    if (payload === null) {
      this.n.l2Misses++;
      return undefined;
    }
    let value: unknown;
    try {
      value = this.options.codec.decode(payload);
    } catch (err) {
      // Another writer's garbage is a miss: remove it so the next read refills it.
      this.n.corrupt++;
      this.n.l2Misses++;
      this.log('warn', 'corrupt', `undecodable payload under "${key}" treated as a miss and deleted (${(err as Error).message})`);
      void this.l2?.del([this.prefix + key]);
      return undefined;
    }
    if (value === undefined || (value === null && !this.options.cacheNullValues)) {
      this.n.l2Misses++;
      return undefined;
    }
    this.n.l2Hits++;
    if (this.l1 && !this.closed && this.l1Trusted) {
      if (pttl === undefined) {
        // Not promoted this time (promoteAfter > 1): count the hit toward promotion.
        this.promoteCounts?.set(key, (this.promoteCounts.get(key) ?? 0) + 1);
      } else if (
        // PTTL 0: the entry expires within this millisecond; -2: it is gone. Neither may be copied up.
        (pttl > 0 || pttl === -1) &&
        !this.inflight.get(key)?.stale &&
        !(since >= 0 && this.readGuard.changedSince(key, since)) &&
        this.l1.admits(key)
      ) {
        // An L1 copy must never outlive the L2 entry it came from (-1: Redis keeps it without a TTL).
        const ttl = pttl > 0 ? Math.min(this.options.l1.ttl, pttl) : this.options.l1.ttl;
        this.l1.set(key, this.toL1(value), ttl, undefined, this.l1SizeOf(payload));
        this.promoteCounts?.delete(key);
        this.n.promotions++;
      }
    }
    return value;
  }

  // ---------------------------------------------------------------- writes

  /** Stores a value. Resolves false when nothing was stored (`undefined`, or `null` without cacheNullValues). */
  set(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    if (!isValidKey(key)) return Promise.reject(keyError(key));
    if (!this.observer) return this.store(key, value, options, false);
    const t0 = performance.now();
    return this.store(key, value, options, false).then((stored) => {
      this.timed('set', this.l2 ? 'l2' : 'l1', t0);
      return stored;
    });
  }

  /** Not async: one promise per write-through set (the L2 reply mapped to true), none for the rest. */
  /** `l1Only`: a fill that could not ask Redis what to check its store against keeps its value here only. */
  private store(key: string, value: unknown, options: SetOptions | undefined, fromFill: boolean, l1Only = false): Promise<boolean> {
    if (value === undefined || (value === null && !this.options.cacheNullValues)) return FALSE;
    let w: Prepared;
    try {
      w = this.prepare(key, value, options);
    } catch (err) {
      return Promise.reject(err);
    }
    // The L2 write leaves first; everything below then overlaps its round trip. Nothing else runs in between,
    // so the order is invisible to every other caller.
    let written: Promise<boolean> | undefined;
    if (this.l2 && !l1Only) {
      const deferred = this.deferred as DeferredInvalidations;
      if (!deferred.idle && deferred.hasKey(key)) written = this.writeOverDeferred(w, deferred);
      else if (this.writeBehind) this.writeBehind.enqueue(w);
      else written = this.l2.set(w);
    }
    this.n.sets++;
    if (!fromFill) this.markStale(key);
    const existed = !this.l2 && (this.l1?.has(key) ?? false);
    if (this.l1) this.l1.set(key, this.toL1(value), w.l1Ttl, w.tags, w.bytes);
    this.promoteCounts?.delete(key);
    if (!fromFill && (existed || this.l2)) this.emit({ type: 'overwrite', keys: [key] });
    return written ?? TRUE;
  }

  /**
   * A write of a key whose delete is still waiting to reach Redis. It settles that delete only if it lands
   * itself (newest intent wins); if it fails too, the delete is replayed after it and the key becomes a miss
   * rather than the value from before the delete.
   */
  private writeOverDeferred(w: Prepared, deferred: DeferredInvalidations): Promise<boolean> {
    w.seq = deferred.nextSeq();
    if (this.writeBehind) {
      this.writeBehind.enqueue(w);
      return TRUE;
    }
    const seq = w.seq;
    return (this.l2 as RedisTier).setMany([w]).then((r) => {
      if (r !== L2_FAILED) deferred.written(w.key, seq);
      return true as const;
    });
  }

  async mset(entries: ReadonlyArray<readonly [string, unknown]> | Record<string, unknown>, options?: SetOptions): Promise<number> {
    const t0 = this.observer ? performance.now() : -1;
    const list = Array.isArray(entries) ? (entries as ReadonlyArray<readonly [string, unknown]>) : Object.entries(entries);
    // Encode everything first: one bad value rejects the whole batch before anything is written.
    const writes: Array<Prepared & { value: unknown }> = [];
    for (const [key, value] of list) {
      checkKey(key);
      if (value === undefined || (value === null && !this.options.cacheNullValues)) continue;
      writes.push({ ...this.prepare(key, value, options), value });
    }
    for (const w of writes) {
      this.markStale(w.key);
      if (this.l1) this.l1.set(w.key, this.toL1(w.value), w.l1Ttl, w.tags, w.bytes);
    }
    this.n.sets += writes.length;
    if (this.l2 && writes.length > 0) {
      const deferred = this.deferred as DeferredInvalidations;
      const seq = deferred.idle ? 0 : deferred.nextSeq();
      if (seq !== 0) for (const w of writes) if (deferred.hasKey(w.key)) w.seq = seq;
      if (this.writeBehind) for (const w of writes) this.writeBehind.enqueue(w);
      else if ((await this.l2.setMany(writes)) !== L2_FAILED && seq !== 0) for (const w of writes) deferred.written(w.key, seq);
    }
    if (writes.length > 0) this.emit({ type: 'overwrite', keys: writes.map((w) => w.key) });
    if (t0 >= 0) this.timed('mset', this.l2 ? 'l2' : 'l1', t0);
    return writes.length;
  }

  private prepare(key: string, value: unknown, options: SetOptions | undefined): Prepared {
    const ttl = parseCallTtl('ttl', options?.ttl, this.options.entryTtl);
    // With L2, l1.ttl bounds how stale one instance's copy can get; L1-only, the entry's ttl is its lifetime.
    const l1Ttl = Math.min(parseCallTtl('l1Ttl', options?.l1Ttl, this.l2 ? this.options.l1.ttl : ttl), ttl);
    const tags = options?.tags;
    if (tags !== undefined) {
      if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t.length === 0)) {
        throw new TypeError(`tags for "${key}" must be an array of non-empty strings`);
      }
    }
    const payload = this.options.codec.encode(value, key);
    if (typeof payload !== 'string') throw new CacheSerializationError(key, `codec ${this.options.codec.name} did not return a string`);
    // A UTF-16 unit is 1 to 3 UTF-8 bytes: the exact count is only needed when 3 per unit could pass a limit.
    const max = this.options.maxValueBytes;
    const bytes = payload.length * 3 > max || this.options.l1.maxBytes !== undefined ? Buffer.byteLength(payload, 'utf8') : payload.length;
    if (bytes > max) {
      throw new CacheSerializationError(key, `serialized size ${bytes} bytes exceeds maxValueBytes ${max}`);
    }
    return {
      key,
      bytes,
      pkey: this.prefix + key,
      payload,
      ttl,
      l1Ttl,
      tags: tags && tags.length > 0 ? tags : undefined,
      tagKeys: tags && tags.length > 0 ? tags.map((t) => this.tagPrefix + t) : undefined,
    };
  }

  // ---------------------------------------------------------------- invalidation

  /** Removes keys from both tiers at once; resolves to how many existed. */
  async delete(keys: string | readonly string[]): Promise<number> {
    const list = typeof keys === 'string' ? [keys] : [...keys];
    if (list.length === 0) return 0;
    const t0 = this.observer ? performance.now() : -1;
    const removed = new Array<boolean>(list.length).fill(false);
    for (let i = 0; i < list.length; i++) {
      checkKey(list[i]);
      this.markStale(list[i]);
      this.promoteCounts?.delete(list[i]);
      if (this.l1?.delete(list[i])) removed[i] = true;
      if (this.writeBehind?.discardKey(this.prefix + list[i])) removed[i] = true;
    }
    if (this.l2) {
      const deferred = this.deferred as DeferredInvalidations;
      const r = await (this.invalidationTarget as InvalidationTarget).del(list.map((k) => this.prefix + k));
      if (r === L2_FAILED) {
        // Redis still holds these: replayed until it no longer does (see DeferredInvalidations).
        deferred.addKeys(list);
        this.log('warn', 'deferred', `delete of ${list.length} key(s) could not reach Redis; it is retried until it lands`);
      } else {
        r.forEach((ok, i) => ok && (removed[i] = true));
        deferred.settled(list);
      }
    }
    this.n.deletes += list.length;
    this.emit({ type: 'delete', keys: list });
    if (t0 >= 0) this.timed('delete', this.l2 ? 'l2' : 'l1', t0);
    return removed.filter(Boolean).length;
  }

  /**
   * Queued invalidation: dropped from this instance's L1 at once, deleted from L2 (and broadcast) in
   * batches of `invalidation.batchSize` or after `invalidation.maxDelay`. Use `delete` for immediate effect.
   */
  invalidate(keys: string | readonly string[]): Promise<void> {
    const list = typeof keys === 'string' ? [keys] : [...keys];
    for (const k of list) checkKey(k);
    this.dropL1({ type: 'delete', keys: list });
    return this.invalidationQueue.add(list);
  }

  /**
   * Removes every key matching a Redis glob (`property:*`), in L1 and L2 (SCAN + UNLINK, never KEYS). L1 keys
   * are matched by Redis' own glob rules. Resolves to the number removed; with `{ detailed: true }`, to a
   * report that also says whether every tier (every Cluster master) was walked to the end. A walk that could
   * not finish is replayed on Redis until it does.
   */
  invalidatePattern(glob: string): Promise<number>;
  invalidatePattern(glob: string, options: { detailed: true }): Promise<PatternInvalidationReport>;
  async invalidatePattern(glob: string, options?: { detailed?: boolean }): Promise<number | PatternInvalidationReport> {
    if (typeof glob !== 'string' || glob.length === 0) throw new TypeError('invalidatePattern needs a non-empty glob');
    const t0 = this.observer ? performance.now() : -1;
    const matcher = compileGlob(glob);
    const l1Count = await this.dropMatching(matcher, async () => {
      this.writeBehind?.discard((w) => matcher.test(w.key));
      if (!this.l2) return { removed: 0, failedNodes: [] };
      return (this.invalidationTarget as InvalidationTarget).scanDelete(escapeGlob(this.prefix) + glob);
    });
    const l2 = l1Count.below;
    const deferred = l2.failedNodes.length > 0;
    if (deferred) {
      this.deferred?.addPattern(glob);
      this.log('warn', 'deferred', `pattern invalidation could not reach ${l2.failedNodes.join(', ')}; it is retried until it lands`);
    }
    this.emit({ type: 'pattern', pattern: glob });
    if (t0 >= 0) this.timed('invalidatePattern', this.l2 ? 'l2' : 'l1', t0);
    // L1 is (mostly) a subset of L2, so the larger count is the honest one without holding every key name.
    const removed = Math.max(l1Count.l1, l2.removed);
    return options?.detailed ? { removed, complete: !deferred, failedNodes: l2.failedNodes, deferred: deferred && !!this.deferred } : removed;
  }

  /**
   * Drops an L1 pattern while `below` (the L2 part, if any) runs. Until both are done the pattern's keys read
   * as misses and are not promoted, and fills already running for them are not stored: the L1 walk yields to
   * the event loop, and L2 may still hold old values until its walk has passed them.
   */
  private async dropMatching<T>(matcher: GlobMatcher, below: () => Promise<T>): Promise<{ l1: number; below: T }> {
    this.readGuard.dropAll();
    for (const [k, f] of this.inflight) if (matcher.test(k)) f.stale = true;
    const l1 = this.l1;
    const release = l1?.block(matcher);
    try {
      const [n, b] = await Promise.all([l1 ? l1.deleteMatching(matcher) : 0, below()]);
      return { l1: n, below: b };
    } finally {
      release?.();
      // Reads that began during the walk may have read Redis before it passed their key.
      this.readGuard.dropAll();
    }
  }

  /** Removes every entry tagged with any of `tags`, in L1 and L2, in O(tagged entries). */
  async invalidateTags(tags: string | readonly string[]): Promise<number> {
    const list = typeof tags === 'string' ? [tags] : [...tags];
    if (list.length === 0) return 0;
    this.readGuard.dropAll();
    const t0 = this.observer ? performance.now() : -1;
    for (const f of this.inflight.values()) f.stale = true;
    const l1Count = this.l1?.deleteTagged(list) ?? 0;
    const tagKeys = new Set(list.map((t) => this.tagPrefix + t));
    this.writeBehind?.discard((w) => !!w.tagKeys?.some((k) => tagKeys.has(k)));
    let l2Count = 0;
    if (this.l2) {
      const failed: string[] = [];
      for (const tag of new Set(list)) {
        // L1 copies promoted from L2 carry no tag index (here or on other instances): drop them by key, batch by batch.
        const r = await (this.invalidationTarget as InvalidationTarget).popTag(this.tagPrefix + tag, this.legacyTagPrefix + tag, (pkeys) => this.droppedByTag(pkeys));
        l2Count += r.removed;
        if (!r.complete) failed.push(tag);
      }
      if (failed.length > 0) {
        this.deferred?.addTags(failed);
        this.log('warn', 'deferred', `invalidation of ${failed.length} tag(s) could not reach Redis; it is retried until it lands`);
      }
    }
    this.emit({ type: 'tags', tags: list });
    if (t0 >= 0) this.timed('invalidateTags', this.l2 ? 'l2' : 'l1', t0);
    return Math.max(l1Count, l2Count);
  }

  private droppedByTag(pkeys: readonly string[]): void {
    const keys: string[] = [];
    for (const p of pkeys) if (p.startsWith(this.prefix)) keys.push(p.slice(this.prefix.length));
    if (keys.length === 0) return;
    for (const k of keys) {
      this.markStale(k);
      this.l1?.delete(k);
    }
    this.emit({ type: 'delete', keys, byTag: true });
  }

  /** Empties this cache's namespace (L1, and L2 keys under keyPrefix only; never FLUSHDB). */
  async clear(): Promise<number> {
    this.readGuard.dropAll();
    const t0 = this.observer ? performance.now() : -1;
    for (const f of this.inflight.values()) f.stale = true;
    const l1Count = this.l1?.clear() ?? 0;
    this.writeBehind?.clear();
    this.promoteCounts?.clear();
    let l2Count = 0;
    if (this.l2) {
      const r: ScanDeleteResult = await (this.invalidationTarget as InvalidationTarget).scanDelete(escapeGlob(this.prefix) + '*');
      l2Count = r.removed;
      if (r.failedNodes.length > 0) {
        this.deferred?.addClear();
        this.log('warn', 'deferred', `clear could not reach ${r.failedNodes.join(', ')}; it is retried until it lands`);
      }
    }
    this.emit({ type: 'clear' });
    if (t0 >= 0) this.timed('clear', this.l2 ? 'l2' : 'l1', t0);
    return Math.max(l1Count, l2Count);
  }

  /**
   * Drops local L1 entries only (used by the invalidation bus for other instances' changes, counted as 'bus').
   * A pattern resolves once its walk is done (it yields to the event loop; its keys read as misses meanwhile).
   */
  dropLocal(change: Exclude<CacheChange, { type: 'pattern' }>): number;
  dropLocal(change: CacheChange): number | Promise<number>;
  dropLocal(change: CacheChange): number | Promise<number> {
    const n = invalidationCount(change);
    if (n > 0) this.observer?.invalidation?.('bus', n);
    if (this.writeBehind && change.type !== 'overwrite') this.discardQueued(change);
    return this.dropL1(change);
  }

  /**
   * Another instance's invalidation also cancels this instance's queued write-behind writes it covers: a later
   * flush would otherwise write back what was invalidated. (Another instance's overwrite does not: Redis also
   * announces keys that merely expired, and dropping a queued write for those would lose it.)
   */
  private discardQueued(change: Exclude<CacheChange, { type: 'overwrite' }>): void {
    const wb = this.writeBehind as WriteBehindQueue<Prepared>;
    switch (change.type) {
      case 'delete':
        for (const k of change.keys) wb.discardKey(this.prefix + k);
        return;
      case 'pattern': {
        const m = compileGlob(change.pattern);
        wb.discard((w) => m.test(w.key));
        return;
      }
      case 'tags': {
        const tags = new Set(change.tags);
        wb.discard((w) => !!w.tags?.some((t) => tags.has(t)));
        return;
      }
      case 'clear':
        wb.clear();
    }
  }

  /** The L1 part of a change, not counted (invalidate() for its own keys; the bus's L1 clear on (re)subscribe). */
  dropL1(change: Exclude<CacheChange, { type: 'pattern' }>): number;
  dropL1(change: CacheChange): number | Promise<number>;
  dropL1(change: CacheChange): number | Promise<number> {
    const l1 = this.l1;
    switch (change.type) {
      case 'delete':
      case 'overwrite':
        for (const k of change.keys) this.markStale(k);
        return l1 ? change.keys.reduce((n, k) => n + (l1.delete(k) ? 1 : 0), 0) : 0;
      case 'pattern':
        return this.dropMatching(compileGlob(change.pattern), () => Promise.resolve(undefined)).then((r) => r.l1);
      case 'tags':
        this.readGuard.dropAll();
        for (const f of this.inflight.values()) f.stale = true;
        return l1?.deleteTagged(change.tags) ?? 0;
      case 'clear':
        this.readGuard.dropAll();
        for (const f of this.inflight.values()) f.stale = true;
        return l1?.clear() ?? 0;
    }
  }

  /**
   * A deferred invalidation reached Redis. Reads made while it was pending (here while Redis was unreachable,
   * on other instances before it landed) may have re-cached what it covers: drop that again, everywhere.
   */
  private replayed(change: LandedInvalidation): void {
    const c: CacheChange = { ...change, replay: true };
    if (c.type === 'delete') for (const k of c.keys) this.promoteCounts?.delete(k);
    void this.dropL1(c);
    this.emit(c);
  }

  /** Writes out the write-behind queue now. */
  async flush(): Promise<void> {
    await this.writeBehind?.flush();
  }

  /**
   * Called by the invalidation bus. While untrusted, reads skip L1 whenever L2 can answer and L2 hits are not
   * copied into L1; with Redis wholly unreachable L1 still serves (bounded by its TTL, emptied on resubscribe).
   */
  setL1Trusted(trusted: boolean): void {
    this.l1Trusted = trusted;
  }

  // ---------------------------------------------------------------- stats

  stats(): CacheStats {
    const n = this.n;
    const l1 = this.l1;
    const hits = n.l1Hits + n.l2Hits;
    const misses = n.gets - hits;
    return {
      l1: {
        enabled: !!l1,
        hits: n.l1Hits,
        misses: n.l1Misses,
        hitRatio: ratio(n.l1Hits, n.l1Misses),
        size: l1?.size ?? 0,
        maxSize: l1?.maxEntries ?? 0,
        utilization: l1 ? (l1.size / l1.maxEntries) * 100 : 0,
        bytes: l1?.bytes ?? 0,
        maxBytes: l1?.maxBytes,
        evictions: l1?.evictions ?? 0,
      },
      l2: {
        enabled: !!this.l2,
        status: this.l2 ? this.l2.status : 'disabled',
        hits: n.l2Hits,
        misses: n.l2Misses,
        hitRatio: ratio(n.l2Hits, n.l2Misses),
        promotions: n.promotions,
        errors: n.l2Errors,
        timeouts: this.l2?.deadlines.timeouts ?? 0,
        corrupt: n.corrupt,
        fillsRefused: n.fillsRefused,
        ...deferredStats(this.deferred),
      },
      overall: {
        gets: n.gets,
        hits,
        misses: Math.max(0, misses),
        hitRatio: ratio(hits, Math.max(0, misses)),
        meanLatencyMs: n.latencySamples === 0 ? 0 : n.latencyTotal / n.latencySamples,
        sets: n.sets,
        deletes: n.deletes,
      },
      writeBehind: {
        enabled: !!this.writeBehind,
        queueLength: this.writeBehind?.length ?? 0,
        flushed: this.writeBehind?.flushed ?? 0,
        dropped: this.writeBehind?.dropped ?? 0,
      },
      invalidation: {
        ...this.invalidationCounters,
        queued: this.invalidationQueue.queued,
        applied: this.invalidationQueue.applied,
        batches: this.invalidationQueue.batches,
        queueLength: this.invalidationQueue.length,
      },
      bus: this.bus?.stats() ?? DISABLED_BUS_STATS,
    };
  }

  // ---------------------------------------------------------------- helpers

  /** What an L1 entry weighs against l1.maxBytes: its payload's UTF-8 size (only computed when that limit is set). */
  private l1SizeOf(payload: string): number {
    return this.options.l1.maxBytes === undefined ? payload.length : Buffer.byteLength(payload, 'utf8');
  }

  private fromL1(hit: object): unknown {
    if (hit === NULL_MARKER) return null;
    return this.cloneOnRead ? structuredClone(hit) : hit;
  }

  private toL1(value: unknown): object {
    if (value === null) return NULL_MARKER;
    if (this.options.l1.protection === 'freeze') deepFreeze(value);
    return value as object;
  }

  private markStale(key: string): void {
    this.readGuard.dropKey(key);
    const f = this.inflight.get(key);
    if (f) f.stale = true;
  }

  private sampleLatency(t0: number, op: CacheOperation, tier: CacheTier): void {
    const ms = performance.now() - t0;
    this.n.latencyTotal += ms;
    this.n.latencySamples++;
    this.observer?.duration?.(op, tier, ms / 1000);
  }

  private timed(op: CacheOperation, tier: CacheTier, t0: number): void {
    this.observer?.duration?.(op, tier, (performance.now() - t0) / 1000);
  }

  /** Attaches metrics hooks; returns the detach function. */
  observe(observer: CacheObserver): () => void {
    this.observers = [...this.observers, observer];
    this.observer = fanOut(this.observers);
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
      this.observer = fanOut(this.observers);
    };
  }

  /** Counts invalidations caused outside the engine's own methods (the domain-event layer reports 'event'). */
  noteInvalidation(source: InvalidationSource, count = 1): void {
    this.observer?.invalidation?.(source, count);
  }

  private emit(change: CacheChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.log('error', 'listener', `change listener failed: ${(err as Error).message}`);
      }
    }
  }

  private onL2Error(op: string, err: unknown): void {
    this.n.l2Errors++;
    this.observer?.l2Error?.(op);
    const msg = err instanceof Error ? err.message : String(err);
    this.log('warn', `l2:${op}`, `Redis ${op} failed: ${msg}`);
  }

  /** Logs at most once a minute per kind, so a Redis outage does not flood the logs. */
  log(level: 'warn' | 'error', kind: string, message: string): void {
    const now = Date.now();
    const last = this.logThrottle.get(kind);
    if (last !== undefined && now - last < 60_000) return;
    if (this.logThrottle.size > 100) this.logThrottle.clear();
    this.logThrottle.set(kind, now);
    this.options.logger[level](message);
  }
}

function deferredStats(d: DeferredInvalidations | undefined): Pick<CacheStats['l2'], 'pendingInvalidations' | 'deferredInvalidations' | 'replayedInvalidations' | 'replayRounds' | 'deferredOverflows'> {
  const s = d?.stats();
  return {
    pendingInvalidations: s?.pending ?? 0,
    deferredInvalidations: s?.deferred ?? 0,
    replayedInvalidations: s?.replayed ?? 0,
    replayRounds: s?.retries ?? 0,
    deferredOverflows: s?.overflows ?? 0,
  };
}

function isValidKey(key: string): boolean {
  return typeof key === 'string' && key.length !== 0 && (key.charCodeAt(0) !== 95 || !key.startsWith(RESERVED));
}

function keyError(key: unknown): TypeError {
  if (typeof key !== 'string' || key.length === 0) return new TypeError(`cache key must be a non-empty string, got ${String(key)}`);
  return new TypeError(`cache keys starting with "${RESERVED}" are reserved`);
}

function checkKey(key: string): void {
  if (!isValidKey(key)) throw keyError(key);
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k);
      deepFreeze(v);
    }
  } else if (value instanceof Set) {
    for (const v of value) deepFreeze(v);
  } else {
    for (const v of Object.values(value)) deepFreeze(v);
  }
}

export { CacheDecodeError };
