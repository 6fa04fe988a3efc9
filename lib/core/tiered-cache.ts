import { EntryCompressor } from './compression';
import { HitRateTargets } from './hit-rate-targets';
import type { GetOrSetOptions, SetOptions, TieredCacheOptions } from './tiered-cache-options.interface';
import type { BusHost } from './bus/bus-host';
import { DISABLED_BUS_STATS } from './bus/bus-stats';
import { InvalidationBus } from './bus/invalidation-bus';
import type { CacheChange, PatternInvalidationReport } from './cache-change';
import { CacheStack, type HeldCopy } from './cache-stack';
import { coarseNow } from './coarse-clock';
import { CacheDecodeError } from './codec';
import { DeferredInvalidations } from './deferred-invalidations';
import { parseCallTtl } from './duration';
import { newCounters, type EngineContext, type PreparedWrite } from './engine-context';
import { fencedTarget, replayTarget } from './fill-fence';
import { FillLocks, type FillLockStats } from './get-set/distributed-lock';
import { FactoryRunner } from './get-set/factory-runner';
import { freshStored, GracedEntry } from './get-set/graced-entry';
import { callPolicy, type CallPolicy } from './get-set/resilience-policy';
import { SingleFlight } from './get-set/single-flight';
import { InvalidationQueue } from './invalidation-queue';
import { InvalidationCounters } from './invalidation-stats';
import { Invalidator } from './invalidator';
import { checkKey, isValidKey, keyError, reservedNames } from './keys/cache-key';
import { LogThrottle } from './log-throttle';
import { errorText, L2_LEVEL, tierLabel } from './tier-label';
import { LowerTiers } from './lower-tiers';
import { fanOut, type CacheObserver, type CacheOperation, type CacheTier, type InvalidationSource } from './observer';
import { resolveOptions, type ResolvedOptions } from './options';
import { ReadGuard } from './read-guard';
import { RecoveryQueue } from './recovery-queue';
import { statsReport, type CacheStats } from './stats';
import { TagSystem } from './tag-system';
import { createTracing, type CacheTracing } from './tracing';
import { MemoryTier } from './tiers/memory.tier';
import { RedisConnectionFactory } from './tiers/redis-connection';
import { breakerMessage } from './tiers/circuit-breaker';
import { L2_FAILED, RedisTier, type L2Write } from './tiers/redis.tier';
import type { TierHealth } from './tiers/tier';
import { NULL_MARKER, ValueProtection } from './value-protection';
import { WritePath } from './write-path';
import { WriteBehindQueue } from './write-behind-queue';

const DISABLED_LOCK_STATS: FillLockStats = Object.freeze({ enabled: false, acquired: 0, waited: 0, received: 0, timedOut: 0, fallbacks: 0, refreshesLeft: 0 });
const DEFERRED_LIMITS = { keys: 10_000, patterns: 100, tags: 1_000 };
const SAMPLE_MASK = 7;
const ignore = (): void => undefined;

/** getOrSet past L1 (plain or traced: chosen at construction). */
type FillBelowL1 = <T>(key: string, factory: () => T | Promise<T>, o: GetOrSetOptions<never> | undefined, held: HeldCopy | undefined, sample: boolean, t0: number) => Promise<T>;

/** The engine's shared state as the facade holds it: the parts read it through EngineContext (read-only). */
type EngineState = { -readonly [K in keyof EngineContext]: EngineContext[K] };

/**
 * The cache: a stack of tiers — L1 (in-process LRU) in front of L2 (Redis) — behind one API. Free of Nest so it
 * can be unit-tested and benchmarked alone. Nothing here throws because of Redis: L2 failures are misses,
 * counted and logged.
 *
 * This class is the facade: it checks arguments, serves L1 hits itself (that path is a few property loads)
 * and hands everything else to one part per mechanism — the cache stack (reads down, promotes up, writes
 * down), the write path, single-flight and the factory runner, the invalidator and the tag system.
 */
export class TieredCache {
  readonly options: ResolvedOptions;
  readonly l1: MemoryTier | undefined;
  readonly l2: RedisTier | undefined;
  /** Cross-instance L1 invalidation (Redis pub/sub); undefined without L2 or when turned off. */
  readonly bus: InvalidationBus | undefined;
  /** Counters the event-invalidation layer increments; reported under stats().invalidation. */
  readonly invalidationCounters = new InvalidationCounters();
  readonly #state: EngineState;
  readonly #stack: CacheStack;
  readonly #writes: WritePath;
  readonly #runner: FactoryRunner;
  readonly #locks: FillLocks | undefined;
  readonly #invalidator: Invalidator;
  readonly #invalidationQueue: InvalidationQueue;
  readonly #listeners: Array<(change: CacheChange) => void> = [];
  readonly #logs: LogThrottle;
  readonly #plain: boolean;
  readonly #targets: HitRateTargets;
  /** OpenTelemetry spans (tracing.ts); undefined when off, and then nothing below looks at it per call. */
  readonly #tracing: CacheTracing | undefined;
  readonly #getBelowL1: <T>(key: string, sample: boolean, t0: number) => Promise<T | undefined>;
  readonly #fillBelowL1: FillBelowL1;
  /** How messages name L2 (tier-label.ts). */
  readonly #l2Label: string;
  #observers: CacheObserver[] = [];
  #closing = false;

  constructor(options: TieredCacheOptions = {}) {
    this.options = resolveOptions(options);
    const o = this.options;
    // Before any connection exists: `tracing: true` without @opentelemetry/api is a boot error.
    const tracing = createTracing(o.tracing);
    this.#tracing = tracing;
    this.#getBelowL1 = tracing ? this.#getBelowL1Traced : this.#getBelowL1Plain;
    this.#fillBelowL1 = tracing ? this.#fillBelowL1Traced : this.#fillBelowL1Plain;
    const prefix = o.keyPrefix;
    this.#logs = new LogThrottle(o.logger);
    const log = (level: 'warn' | 'error', kind: string, message: string): void => this.#logs.log(level, kind, message);
    const l2Label = tierLabel(L2_LEVEL, 'redis', o.tierNames.l2);
    this.#l2Label = l2Label;
    this.l1 = o.l1.enabled ? new MemoryTier(o.l1.maxEntries, o.l1.maxBytes, o.l1.cleanupInterval, o.tierNames.l1) : undefined;
    let factory: RedisConnectionFactory | undefined;
    if (o.redis) {
      factory = new RedisConnectionFactory(o.redis);
      this.l2 = new RedisTier(
        factory,
        o.redis.maxConnections,
        o.redis.commandTimeout,
        o.redis.connectTimeout,
        (op, err) => this.#onL2Error(op, err),
        o.redis.socketTimeout,
        prefix,
        o.tierNames.l2,
        o.l2.fillWindow,
        o.l2.compression ? new EntryCompressor(o.l2.compression) : undefined,
        o.redis.breaker || undefined,
      );
      factory.notes.forEach((note, i) => log('warn', `options:client:${i}`, `${l2Label}: ${note}`));
    }
    // One kind each: the throttle would keep all but the first of them.
    o.warnings.forEach((w, i) => log('warn', `options:${i}`, w));
    this.#targets = new HitRateTargets(o.hitRateTargets);
    const l2 = this.l2;
    const reserved = reservedNames(prefix);
    const target = l2 ? fencedTarget(l2, { prefix, ...reserved }, o.l2.fillWindow) : undefined;
    const state: EngineState = {
      options: o,
      prefix,
      l2Label,
      reserved,
      l1: this.l1,
      l2,
      lower: undefined,
      deferred: undefined,
      writeBehind: undefined,
      recovery: undefined,
      flights: new SingleFlight(),
      readGuard: new ReadGuard(),
      protection: new ValueProtection(o.l1.protection),
      n: newCounters(),
      observer: undefined,
      l1Trusted: true,
      closed: false,
      emit: (change) => this.#emit(change),
      log,
    };
    if (l2 && o.lower.length > 0) {
      state.lower = new LowerTiers(o.lower, prefix, o.l2.fillWindow, {
        landed: (change) => void this.#invalidator.landedBelow(change),
        recovered: (keys, level) => void this.#invalidator.replayedBelow(keys, level),
        onError: (tier, label, op, err) => {
          state.lower?.countError(tier);
          this.#logs.log('warn', `${tier}:${op}`, `${label}: ${op} failed: ${errorText(err)}`);
        },
        log: (message, kind = 'deferred') => log('warn', kind, message),
      }, o.recovery);
    }
    const labelled = [...(this.l2 ? [{ tier: this.l2, label: l2Label }] : []), ...(state.lower?.levels ?? []).map((l) => ({ tier: l.tier, label: l.label }))];
    for (const { tier, label } of labelled) {
      tier.breaker.onChange((st) => {
        const m = breakerMessage(label, tier.breaker, st);
        if (m) log('warn', `breaker:${tier.name}:${st}`, m);
      });
    }
    this.#state = state;
    this.#plain = state.protection.plain;
    this.#stack = new CacheStack(state);
    const tags = new TagSystem(state, target);
    this.#invalidator = new Invalidator(state, this.#stack, tags, target);
    this.#writes = new WritePath(state, this.#stack);
    this.#locks = l2 ? new FillLocks(state, this.#stack) : undefined;
    this.#runner = new FactoryRunner(state, this.#stack, this.#writes, (t0, op, tier) => this.#sampleLatency(t0, op, tier), o.resilience, this.#locks);
    if (l2 && target) {
      const deferred = new DeferredInvalidations(target, prefix, { prefix: reserved.tagPrefix, legacyPrefix: reserved.legacyTagPrefix }, DEFERRED_LIMITS, {
        landed: (change) => this.#invalidator.replayed(change),
        tagKeys: (pkeys) => tags.droppedByTag(pkeys),
        log: (message) => log('warn', 'deferred', `${l2Label}: ${message}`),
      });
      state.deferred = deferred;
      const cacheKeys = (ws: readonly L2Write[]): string[] => ws.map((w) => w.pkey.slice(prefix.length));
      const recovery = o.recovery
        ? new RecoveryQueue<L2Write>(replayTarget(l2, reserved, o.l2.fillWindow, o.redis?.commandTimeout ?? 0), o.recovery, {
            // Pushed out of the queue, its key must still lose the older value Redis holds: a deferred delete.
            overflowed: (w) => deferred.addKeys(cacheKeys([w])),
            // Reads made before the replay reached Redis (here too) may have copied the older value into L1.
            replayed: (ws) => {
              const change = { type: 'overwrite', keys: cacheKeys(ws) } as const;
              void this.#invalidator.dropL1(change);
              this.#emit(change);
            },
            dropped: (ws) => this.#invalidator.replayed({ type: 'delete', keys: cacheKeys(ws) }),
            log: (message) => log('warn', 'recovery', `${l2Label}: ${message}`),
          })
        : undefined;
      state.recovery = recovery;
      if (o.writeBehind) {
        state.writeBehind = new WriteBehindQueue<PreparedWrite>(
          l2,
          o.writeBehind.batchSize,
          o.writeBehind.maxQueue,
          o.writeBehind.flushInterval,
          (batch) => {
            if (!deferred.idle) for (const w of batch) if (w.seq !== undefined) deferred.written(w.key, w.seq);
          },
          recovery && ((writes) => this.#stack.lostL2Many(writes)),
        );
      }
    }
    const internals: EngineInternals = {
      keyPrefix: prefix,
      tierLabel: l2Label,
      hasL1: o.l1.enabled,
      onChange: (listener) => this.onChange(listener),
      dropLocal: ((change: CacheChange) => this.#invalidator.dropLocal(change)) as EngineInternals['dropLocal'],
      dropL1: ((change: CacheChange) => this.#invalidator.dropL1(change)) as EngineInternals['dropL1'],
      setL1Trusted: (trusted) => {
        state.l1Trusted = trusted;
      },
      log,
      noteInvalidation: (source, count = 1) => state.observer?.invalidation?.(source, count),
    };
    INTERNALS.set(this, internals);
    if (l2 && factory && o.bus) this.bus = new InvalidationBus(internals, factory, o.bus, l2);
    const locks = this.#locks;
    // Without a subscriber (bus off, or no L1 to keep), waiters for another instance's fill poll instead.
    if (locks) this.bus?.onFillReleased((key) => locks.notify(key));
    this.#invalidationQueue = new InvalidationQueue((keys) => this.delete(keys), o.invalidation.batchSize, o.invalidation.maxDelay);
    tracing?.install(this, state.n);
  }

  /** Connects L2 (bounded by connectTimeout). Resolves false, never throws, when Redis is not there. */
  async connect(): Promise<boolean> {
    if (!this.l2) return true;
    const [ok, lower] = await Promise.all([this.l2.connect(), this.#state.lower?.connect(), this.bus?.connect(this.options.redis?.connectTimeout ?? 0)]);
    // What writes that fail from now on are checked against when they are replayed (recovery-queue.ts).
    if (ok) await this.#state.recovery?.refresh();
    lower?.forEach((up, i) => {
      const name = this.options.lower[i].name;
      if (!up) this.#logs.log('warn', `${name}:connect`, `${this.#state.lower?.labelOf(i)}: connect failed: not reachable; the tier is skipped until it answers`);
    });
    // A connect that close() cut short did not fail: nothing to say.
    if (!ok && !this.#closing) {
      const within = this.options.redis?.connectTimeout ?? 0;
      this.#logs.log('warn', `${this.options.tierNames.l2}:connect`, `${this.#l2Label}: connect failed: Redis did not answer within ${within} ms; serving from L1 (and the tiers below) and reconnecting in the background`);
    }
    return ok;
  }

  /** Flushes queued writes and closes every connection and timer. */
  async close(): Promise<void> {
    const s = this.#state;
    if (s.closed || this.#closing) return;
    this.#closing = true;
    await this.#invalidationQueue.close();
    s.closed = true;
    this.#locks?.close();
    if (s.writeBehind) {
      const lost = await s.writeBehind.close();
      if (lost > 0) this.#logs.log('error', 'shutdown', `${lost} queued write-behind entries could not be written to Redis`);
    }
    if (s.recovery) {
      const left = await s.recovery.close();
      if (left > 0) this.#logs.log('error', 'shutdown', `${left} writes could not be replayed on Redis; what it held before them stays there until it expires`);
    }
    if (s.deferred) {
      const left = await s.deferred.close();
      if (left > 0) this.#logs.log('error', 'shutdown', `${left} invalidations could not be applied to Redis; what they covered stays there until it expires`);
    }
    if (s.lower) {
      const left = await s.lower.close();
      if (left > 0) this.#logs.log('error', 'shutdown', `${left} queued writes or invalidations could not reach the lower tiers`);
    }
    await this.bus?.close();
    await this.l2?.close();
    this.l1?.close();
  }

  onChange(listener: (change: CacheChange) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Physical Redis key of a cache key. */
  redisKey(key: string): string {
    return this.#state.prefix + key;
  }

  // ---------------------------------------------------------------- reads

  // Not async: an L1 hit resolves through one Promise.resolve instead of an async frame (a measurable share
  // of a sub-microsecond hit). A bad key still rejects, never throws synchronously.
  get<T = unknown>(key: string): Promise<T | undefined> {
    if (!isValidKey(key)) return Promise.reject(keyError(key));
    const s = this.#state;
    const n = s.n;
    const sample = (++n.gets & SAMPLE_MASK) === 0;
    const t0 = sample ? performance.now() : 0;
    const l1 = this.l1;
    if (l1 !== undefined && (s.l1Trusted || !this.l2?.ready)) {
      let hit: object | undefined = l1.get(key);
      // A copy past L1's own TTL (kept for grace) is a miss to get().
      if (l1.graced && hit !== undefined) hit = freshStored(hit);
      if (hit !== undefined) {
        n.l1Hits++;
        if (sample) this.#sampleLatency(t0, 'get', 'l1');
        // The common case (no clone on read) inlined: this path is a few property loads.
        return Promise.resolve((this.#plain ? (hit === NULL_MARKER ? null : hit) : s.protection.fromStored(hit)) as T);
      }
      n.l1Misses++;
    }
    return this.#getBelowL1<T>(key, sample, t0);
  }

  async #getBelowL1Plain<T>(key: string, sample: boolean, t0: number): Promise<T | undefined> {
    const v = this.l2 ? await this.#stack.readBelow(key) : undefined;
    if (sample) this.#sampleLatency(t0, 'get', this.l2 ? 'l2' : 'l1');
    return v as T | undefined;
  }

  /** get past L1 in a span of its own: the tier that answered, or a miss. */
  async #getBelowL1Traced<T>(key: string, sample: boolean, t0: number): Promise<T | undefined> {
    const tracing = this.#tracing as CacheTracing;
    if (!tracing.listening) return this.#getBelowL1Plain(key, sample, t0);
    const span = tracing.start('get', key);
    try {
      const r = this.l2 ? await tracing.within(span, () => this.#stack.readBelowFrom(key)) : undefined;
      if (sample) this.#sampleLatency(t0, 'get', this.l2 ? 'l2' : 'l1');
      tracing.answered(span, r?.tier);
      return r?.value as T | undefined;
    } catch (err) {
      tracing.fail(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  async has(key: string): Promise<boolean> {
    checkKey(key);
    const s = this.#state;
    if ((s.l1Trusted || !this.l2?.ready) && this.l1?.has(key)) return true;
    if (!this.l2 || s.deferred?.blocks(key)) return false;
    const r = await this.l2.exists(s.prefix + key);
    if (r === true) return true;
    // What get() would find below L2.
    return s.lower !== undefined && (await s.lower.ttlOf(key)) !== undefined;
  }

  /**
   * Remaining TTL in milliseconds, or undefined when the key is absent (or has no TTL): L2's, else that of the
   * first tier below it that holds the key (what a read would copy up from), else L1's own copy's.
   */
  async ttl(key: string): Promise<number | undefined> {
    checkKey(key);
    const s = this.#state;
    if (this.l2 && !s.deferred?.blocks(key)) {
      const r = await this.l2.pttl(s.prefix + key);
      if (r !== L2_FAILED && r !== -2) return r > 0 ? r : undefined;
      if (s.lower) {
        const below = await s.lower.ttlOf(key);
        if (below !== undefined) return below > 0 ? below : undefined;
      }
      if (r !== L2_FAILED) return undefined;
    }
    return this.l1?.remainingTtl(key);
  }

  mget<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    const s = this.#state;
    const t0 = s.observer ? performance.now() : -1;
    const count = keys.length;
    const out = new Array<T | undefined>(count);
    let missing: number[] | undefined;
    let hits = 0;
    const l1 = s.l1Trusted || !this.l2?.ready ? this.l1 : undefined;
    const graced = l1?.graced === true;
    const protection = s.protection;
    for (let i = 0; i < count; i++) {
      const key = keys[i];
      if (!isValidKey(key)) return Promise.reject(keyError(key));
      let hit: object | undefined = l1 === undefined ? undefined : l1.get(key);
      if (graced && hit !== undefined) hit = freshStored(hit);
      if (hit !== undefined) {
        hits++;
        out[i] = protection.fromStored(hit) as T;
      } else {
        // Written, not left a hole: callers' map/forEach must see every miss as `undefined`.
        out[i] = undefined;
        if (missing === undefined) missing = [i];
        else missing.push(i);
      }
    }
    // Counted once per call, not per key: the loop above is the hot part of an all-L1 mget.
    s.n.gets += count;
    s.n.l1Hits += hits;
    if (this.l1) s.n.l1Misses += count - hits;
    if (missing === undefined || !this.l2) {
      if (t0 >= 0) this.#timed('mget', 'l1', t0);
      return Promise.resolve(out);
    }
    const below = this.#stack.readManyBelow(keys, out, missing);
    return t0 < 0 ? below : below.finally(() => this.#timed('mget', 'l2', t0));
  }

  /**
   * Synchronous L1-only read for hot paths (the @Cacheable wrapper): the value on an L1 hit (counted as a
   * get and a hit), else undefined and nothing counted — the caller goes on to getOrSet, which counts it.
   */
  peekLocal<T = unknown>(key: string): T | undefined {
    const s = this.#state;
    if (!s.l1Trusted && this.l2?.ready) return undefined;
    let hit: object | undefined = this.l1?.get(key);
    if (hit !== undefined && this.l1?.graced === true) hit = freshStored(hit);
    if (hit === undefined) return undefined;
    s.n.gets++;
    s.n.l1Hits++;
    return (this.#plain ? (hit === NULL_MARKER ? null : hit) : s.protection.fromStored(hit)) as T;
  }

  /**
   * Read-through: L1 → L2 → factory. Concurrent calls for one missing key share one lookup and one factory
   * run. A factory error reaches every waiter unchanged and nothing is cached. A value whose factory started
   * before an invalidation of its key, on any instance, is returned but stored in no tier (fill-fence.ts).
   */
  getOrSet<T>(key: string, factory: () => T | Promise<T>, options?: GetOrSetOptions<T>): Promise<T> {
    if (!isValidKey(key)) return Promise.reject(keyError(key));
    if (options?.ttl !== undefined && typeof options.ttl !== 'function') {
      // A TTL that cannot be stored is refused before the factory runs, not after (a function of the value
      // is checked when the value is there).
      try {
        parseCallTtl('ttl', options.ttl, 0);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const s = this.#state;
    const sample = (++s.n.gets & SAMPLE_MASK) === 0;
    const t0 = sample ? performance.now() : 0;
    const l1 = this.l1;
    if (l1 && (s.l1Trusted || !this.l2?.ready)) {
      const hit = l1.get(key);
      if (hit !== undefined) {
        if (l1.graced && hit instanceof GracedEntry) return this.#gracedHit(key, hit, factory, options as GetOrSetOptions<never> | undefined, sample, t0);
        s.n.l1Hits++;
        if (sample) this.#sampleLatency(t0, 'getOrSet', 'l1');
        return Promise.resolve((this.#plain ? (hit === NULL_MARKER ? null : hit) : s.protection.fromStored(hit)) as T);
      }
      s.n.l1Misses++;
    }
    return this.#fillBelowL1(key, factory, options as GetOrSetOptions<never> | undefined, undefined, sample, t0);
  }

  /**
   * An L1 hit on an entry with a logical expiry: fresh (refreshed in the background once past eagerRefresh),
   * stale within grace (answered now, refreshed in the background), or past L1's own TTL: then a miss that keeps
   * this copy to fall back on.
   */
  #gracedHit<T>(key: string, hit: GracedEntry, factory: () => T | Promise<T>, o: GetOrSetOptions<never> | undefined, sample: boolean, t0: number): Promise<T> {
    const s = this.#state;
    const now = coarseNow();
    const stale = now >= hit.staleAt;
    const stored = hit.stored;
    const value = (this.#plain ? (stored === NULL_MARKER ? null : stored) : s.protection.fromStored(stored as object)) as T;
    if (now >= hit.freshUntil && (!stale || o?.grace === false)) {
      s.n.l1Misses++;
      return this.#fillBelowL1(key, factory, o, this.#heldCopy(key, value, hit, stale), sample, t0);
    }
    s.n.l1Hits++;
    if (sample) this.#sampleLatency(t0, 'getOrSet', 'l1');
    if (stale) s.n.resilience.staleServed++;
    // Only a fresh hit asks whether it is due early, and only when some option could say so.
    const due = !stale && (this.options.resilience.eagerRefresh > 0 || o?.eagerRefresh !== undefined);
    const refreshing = hit.refresh;
    if ((stale || due) && (refreshing === undefined || refreshing.done) && s.flights.running(key) === undefined) {
      let policy: CallPolicy | undefined;
      try {
        policy = callPolicy(this.options.resilience, o);
      } catch (err) {
        return Promise.reject(err);
      }
      const refresh = stale ? (policy ?? this.options.resilience) : policy !== undefined && hit.refreshDue(now, policy.eagerRefresh) ? policy : undefined;
      if (refresh !== undefined) {
        const copy = this.#heldCopy(key, value, hit, stale);
        // The background run's own finally ends its flight; its failure is fail-safe's (factory-runner.ts).
        const run = this.#tracing === undefined ? factory : this.#tracing.refresh(key, factory);
        s.flights.start(key, (flight) => {
          hit.refresh = flight;
          return this.#runner.fillResilient(key, run, o, refresh, flight, -1, copy, undefined, true);
        }).catch(ignore);
      }
    }
    return Promise.resolve(value);
  }

  /** getOrSet past L1: joins the key's flight or starts one (plain, or with the call's policy). */
  #fillBelowL1Plain<T>(key: string, factory: () => T | Promise<T>, o: GetOrSetOptions<never> | undefined, held: HeldCopy | undefined, sample: boolean, t0: number): Promise<T> {
    const s = this.#state;
    const running = s.flights.running(key);
    // A flight an invalidation overtook is not joined: what it answers may predate the invalidation.
    if (running && !running.stale) return running.promise as Promise<T>;
    let policy: CallPolicy | undefined;
    try {
      policy = callPolicy(this.options.resilience, o);
    } catch (err) {
      return Promise.reject(err);
    }
    if (policy === undefined && held === undefined) return s.flights.start(key, (flight) => this.#runner.fill(key, factory, o, flight, sample ? t0 : -1));
    return s.flights.start(key, (flight) => this.#runner.fillResilient(key, factory, o, policy ?? this.options.resilience, flight, sample ? t0 : -1, held));
  }

  /**
   * getOrSet past L1 in a span of its own: what answered it (a tier, a stale copy, the factory), whether it joined
   * a lookup already running; its factory run (if it is the one that starts it) in a child span.
   */
  #fillBelowL1Traced<T>(key: string, factory: () => T | Promise<T>, o: GetOrSetOptions<never> | undefined, held: HeldCopy | undefined, sample: boolean, t0: number): Promise<T> {
    const tracing = this.#tracing as CacheTracing;
    if (!tracing.listening) return this.#fillBelowL1Plain(key, factory, o, held, sample, t0);
    const flights = this.#state.flights;
    const running = flights.running(key);
    const coalesced = running !== undefined && !running.stale;
    const call = tracing.call(key);
    const run = coalesced ? factory : call.factory(key, factory);
    const answer = tracing.within(call.span, () => this.#fillBelowL1Plain(key, run, o, held, sample, t0));
    return tracing.settle(call, answer, coalesced ? running : flights.running(key), coalesced);
  }

  /** An L1 copy getOrSet may fall back on, with what fail-safe needs to keep it safely. */
  #heldCopy(key: string, value: unknown, hit: GracedEntry, stale: boolean): HeldCopy {
    const l1 = this.l1 as MemoryTier;
    const tags = l1.tagsOf(key);
    const left = tags === undefined ? l1.remainingTtl(key) : undefined;
    return { value, stale, createdAt: hit.createdAt, tags, keepUntil: left === undefined ? 0 : Date.now() + left };
  }

  // ---------------------------------------------------------------- writes

  /** Stores a value. Resolves false when nothing was stored (`undefined`, or `null` without cacheNullValues). */
  set<T>(key: string, value: T, options?: SetOptions<T>): Promise<boolean> {
    if (!isValidKey(key)) return Promise.reject(keyError(key));
    if (!this.#state.observer) return this.#writes.set(key, value, options);
    const t0 = performance.now();
    return this.#writes.set(key, value, options).then((stored) => {
      this.#timed('set', this.l2 ? 'l2' : 'l1', t0);
      return stored;
    });
  }

  mset(entries: ReadonlyArray<readonly [string, unknown]> | Record<string, unknown>, options?: SetOptions): Promise<number> {
    const list = Array.isArray(entries) ? (entries as ReadonlyArray<readonly [string, unknown]>) : Object.entries(entries);
    return this.#measured('mset', () => this.#writes.setMany(list, options));
  }

  /** Writes out the write-behind queue now. */
  async flush(): Promise<void> {
    await Promise.all([this.#state.writeBehind?.flush(), this.#state.lower?.flush()]);
  }

  // ---------------------------------------------------------------- invalidation

  /** Removes keys from both tiers at once; resolves to how many existed. */
  delete(keys: string | readonly string[]): Promise<number> {
    const list = typeof keys === 'string' ? [keys] : [...keys];
    if (list.length === 0) return Promise.resolve(0);
    return this.#measured('delete', () => this.#invalidator.delete(list));
  }

  /**
   * Queued invalidation: dropped from this instance's L1 at once, deleted from L2 (and broadcast) in
   * batches of `invalidation.batchSize` or after `invalidation.maxDelay`. Use `delete` for immediate effect.
   */
  invalidate(keys: string | readonly string[]): Promise<void> {
    const list = typeof keys === 'string' ? [keys] : [...keys];
    for (const k of list) checkKey(k);
    void this.#invalidator.dropL1({ type: 'delete', keys: list });
    return this.#invalidationQueue.add(list);
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
    const report = await this.#measured('invalidatePattern', () => this.#invalidator.pattern(glob));
    return options?.detailed ? report : report.removed;
  }

  /** Removes every entry tagged with any of `tags`, in L1 and L2, in O(tagged entries). */
  invalidateTags(tags: string | readonly string[]): Promise<number> {
    const list = typeof tags === 'string' ? [tags] : [...tags];
    if (list.length === 0) return Promise.resolve(0);
    return this.#measured('invalidateTags', () => this.#invalidator.tagged(list));
  }

  /** Empties this cache's namespace (L1, and L2 keys under keyPrefix only; never FLUSHDB). */
  clear(): Promise<number> {
    return this.#measured('clear', () => this.#invalidator.clear());
  }

  // ---------------------------------------------------------------- stats and observation

  stats(): CacheStats {
    const tiers = this.#stack.tierStats();
    if (!this.#targets.empty) this.#targets.judge(tiers);
    return statsReport(this.#state, {
      tiers,
      bus: this.bus?.stats() ?? DISABLED_BUS_STATS,
      invalidationCounters: this.invalidationCounters,
      invalidationQueue: this.#invalidationQueue,
      lock: this.#locks?.stats() ?? DISABLED_LOCK_STATS,
    });
  }

  /** Health of the tiers below L2 (`tiers`), each bounded by `timeoutMs`; empty without them. Never throws. */
  async lowerTierHealth(timeoutMs = 1_000): Promise<Record<string, TierHealth & { kind: string }>> {
    return this.#state.lower ? this.#state.lower.health(timeoutMs) : {};
  }

  /** Attaches metrics hooks; returns the detach function. */
  observe(observer: CacheObserver): () => void {
    this.#observers = [...this.#observers, observer];
    this.#state.observer = fanOut(this.#observers);
    return () => {
      this.#observers = this.#observers.filter((o) => o !== observer);
      this.#state.observer = fanOut(this.#observers);
    };
  }

  #sampleLatency(t0: number, op: CacheOperation, tier: CacheTier): void {
    const ms = performance.now() - t0;
    const n = this.#state.n;
    if (tier === 'l1') {
      n.l1LatencyTotal += ms;
      n.l1LatencySamples++;
    } else {
      n.belowLatencyTotal += ms;
      n.belowLatencySamples++;
    }
    this.#state.observer?.duration?.(op, tier, ms / 1000);
  }

  /** Runs an operation, timing it for the metrics hooks when someone observes. */
  async #measured<T>(op: CacheOperation, run: () => Promise<T>): Promise<T> {
    if (!this.#state.observer) return run();
    const t0 = performance.now();
    const r = await run();
    this.#timed(op, this.l2 ? 'l2' : 'l1', t0);
    return r;
  }

  #timed(op: CacheOperation, tier: CacheTier, t0: number): void {
    this.#state.observer?.duration?.(op, tier, (performance.now() - t0) / 1000);
  }

  #emit(change: CacheChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.#logs.log('error', 'listener', `change listener failed: ${(err as Error).message}`);
      }
    }
  }

  #onL2Error(op: string, err: unknown): void {
    this.#state.n.l2Errors++;
    this.#state.observer?.l2Error?.(op);
    this.#logs.log('warn', `${this.options.tierNames.l2}:${op}`, `${this.#l2Label}: ${op} failed: ${errorText(err)}`);
  }
}

export { CacheDecodeError };
export type { CacheChange, PatternInvalidationReport };

/**
 * The engine's internals for the parts of this package that sit around it (the bus, the Nest layer, tests):
 * not part of the public API, and the only way in.
 */
export interface EngineInternals extends BusHost {
  /** Counts invalidations caused outside the engine's own methods (the domain-event layer reports 'event'). */
  noteInvalidation(source: InvalidationSource, count?: number): void;
}

const INTERNALS = new WeakMap<TieredCache, EngineInternals>();

/** The one door to an engine's internals (see EngineInternals). */
export function engineInternals(cache: TieredCache): EngineInternals {
  const i = INTERNALS.get(cache);
  if (i === undefined) throw new TypeError('not a TieredCache');
  return i;
}
