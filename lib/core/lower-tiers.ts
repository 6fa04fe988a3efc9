import { LRUCache } from 'lru-cache';
import { EntryCompressor } from './compression';
import { DeferredInvalidations, type InvalidationTarget, type LandedInvalidation } from './deferred-invalidations';
import { compileGlob } from './glob';
import { RecoveryQueue, replayWindow, type RecoveryTarget } from './recovery-queue';
import { resolveRedis } from './options';
import { compressionStats, mean, ratio, type TierStats } from './tier-stats';
import type { ResolvedLowerTier } from './tier-options';
import { PostgresTier } from './tiers/postgres.tier';
import { RedisConnectionFactory } from './tiers/redis-connection';
import { RedisTier } from './tiers/redis.tier';
import { CLOSED } from './tiers/circuit-breaker';
import { L2_FAILED as TIER_FAILED } from './tiers/deadline';
import { encodeEntry, pastStaleAt, payloadStart, readHeader, type EntryHeader } from './entry-envelope';
import { withGrace } from './get-set/resilience-policy';
import { cappedTtl, type FillMark, type TierEntry, type TierHealth, type TierWrite } from './tiers/tier';
import { WriteBehindQueue } from './write-behind-queue';
import { L2_LEVEL, tierLabel } from './tier-label';

/** What the lower tiers need of a prepared write (engine-context.ts's LowerWrite is one). */
export interface LowerWrite {
  key: string;
  /** The key under keyPrefix (what the write-behind queues key by). */
  pkey: string;
  /** The enveloped payload, as every shared tier stores it. */
  payload: string;
  /** L2's TTL for it (the lower tiers use their own, capped by callTtl). */
  ttl: number;
  callTtl?: number;
  tags?: readonly string[];
  bytes: number;
  /** Kept past its TTL this long (0: no grace); with `staleAt`, each tier writes its own logical expiry. */
  grace?: number;
  staleAt?: number;
  createdAt?: number;
}

const DEFERRED_LIMITS = { keys: 10_000, patterns: 100, tags: 1_000 };
const NO_TAGS = { prefix: '', legacyPrefix: '' };

/** The tiers that can sit below L2: shared, and fencing their fills. */
type SharedTier = RedisTier | PostgresTier;

interface LevelCounters {
  hits: number;
  misses: number;
  errors: number;
  promotions: number;
  latencyTotal: number;
  latencySamples: number;
}

/** One tier below the first Redis tier, with what the stack keeps for it. */
interface Level {
  readonly index: number;
  /** How messages name it: L3, L4, … (tier-label.ts). */
  readonly label: string;
  readonly tier: SharedTier;
  readonly ttl: number;
  readonly promoteAfter: number;
  /** Hits per key short of promoteAfter (only when promoteAfter > 1). */
  readonly counts: LRUCache<string, number> | undefined;
  /** Invalidations that could not reach this tier, replayed until they land; reads of what they cover skip it. */
  readonly deferred: DeferredInvalidations;
  /** write: 'behind': this tier's writes, batched. */
  readonly queue: WriteBehindQueue<LowerWrite> | undefined;
  /** Writes that could not reach this tier, replayed when it is back (`recovery: false`: undefined). */
  readonly recovery: RecoveryQueue<LowerWrite> | undefined;
  readonly n: LevelCounters;
}

/** A lower tier's answer to a read: the payload and where it was found. */
export interface LowerHit {
  payload: string;
  /** Remaining lifetime there (ms; -1: no expiry). */
  ttl: number;
  level: number;
  /** The hit reached that tier's promoteAfter: copy it up. */
  due: boolean;
}

/** What a read down the lower tiers saw: the hit, if any, and each tier's fill mark (undefined: not asked). */
export interface LowerRead {
  hit: LowerHit | undefined;
  /** The first entry found past its logical expiry (within grace) on the way to `hit` or to the bottom. */
  stale?: LowerHit;
  marks: Array<FillMark | undefined>;
}

export interface LowerTierHooks {
  /**
   * An invalidation deferred on tier `level` finally reached it. While it was pending the tiers above may have
   * been refilled from what it covered (on other instances too): the engine drops it again above that tier.
   */
  landed(change: LandedInvalidation, level: number): void;
  /** Queued writes were replayed on tier `level` (or their keys deleted there): the tiers above drop their copies. */
  recovered(keys: string[], level: number): void;
  /** `label`: how messages name the tier (tier-label.ts). */
  onError(tier: string, label: string, op: string, err: unknown): void;
  /** `kind`: what the log throttle counts it under (default: the deferred work's). */
  log(message: string, kind?: string): void;
}

/**
 * The tiers below the first Redis tier (an L3 Redis, an L4 PostgreSQL), top down. The first Redis tier stays the
 * engine's own (it carries the bus and the fast paths); these extend the stack beneath it:
 *
 * - Reads go down tier by tier; a hit is copied up into each tier above it with that tier's fenced store, so a
 *   copy an invalidation overtook is refused there (a tier never holds what an invalidation of it removed).
 * - Invalidations run bottom-up, the lowest tier first and the first Redis tier last (the caller does that one):
 *   a read that misses an upper tier after its invalidation then also misses every tier below it, and cannot copy
 *   an older value back up.
 * - A fill stores into every tier with the mark it read there (fenced, each tier on its own).
 */
export class LowerTiers {
  readonly levels: readonly Level[];

  constructor(
    specs: readonly ResolvedLowerTier[],
    /** keyPrefix: each tier's namespace (a key prefix in Redis, the ns column in PostgreSQL). */
    private readonly namespace: string,
    fillWindow: number,
    private readonly hooks: LowerTierHooks,
    recovery?: { maxKeys: number; batchSize: number },
  ) {
    this.levels = specs.map((spec, index) => {
      const label = tierLabel(L2_LEVEL + 1 + index, spec.type, spec.name);
      const tier = buildTier(spec, namespace, fillWindow, (op, err) => hooks.onError(spec.name, label, op, err), (note) => hooks.log(`${label}: ${note}`, `options:client:${spec.name}`));
      const target = tierTarget(tier);
      const deferred = new DeferredInvalidations(target, '', NO_TAGS, DEFERRED_LIMITS, {
        landed: (change) => hooks.landed(change, index),
        tagKeys: () => undefined,
        log: (message) => hooks.log(`${label}: ${message}`),
      });
      const recovered = (ws: readonly LowerWrite[]): void => hooks.recovered(ws.map((w) => w.key), index);
      const replay = recovery
        ? new RecoveryQueue<LowerWrite>(this.replayTarget(tier, index, fillWindow), recovery, {
            overflowed: (w) => deferred.addKeys([w.key]),
            replayed: recovered,
            dropped: recovered,
            log: (message) => hooks.log(`${label}: ${message}`),
          })
        : undefined;
      const queue = spec.behind
        ? new WriteBehindQueue<LowerWrite>(
            { get ready() { return tier.ready; }, setMany: (ws) => Promise.resolve(tier.setEntries(ws.map((w) => this.tierWrite(w, index)))) },
            spec.behind.batchSize,
            spec.behind.maxQueue,
            spec.behind.flushInterval,
            undefined,
            replay && ((ws) => this.lost(replay, ws)),
          )
        : undefined;
      return {
        index,
        label,
        tier,
        ttl: spec.ttl,
        promoteAfter: spec.promoteAfter,
        counts: spec.promoteAfter > 1 ? new LRUCache<string, number>({ max: 10_000 }) : undefined,
        deferred,
        queue,
        recovery: replay,
        n: { hits: 0, misses: 0, errors: 0, promotions: 0, latencyTotal: 0, latencySamples: 0 },
      };
    });
  }

  async connect(): Promise<boolean[]> {
    return Promise.all(
      this.levels.map(async (l) => {
        const up = await connectTier(l.tier);
        // What writes that fail from now on are checked against when they are replayed.
        if (up) await l.recovery?.refresh();
        return up;
      }),
    );
  }

  // ---------------------------------------------------------------- reads

  /** Down the tiers until one has the key; `marks` hold what each tier asked on the way down read. */
  async read(key: string): Promise<LowerRead> {
    const marks: Array<FillMark | undefined> = new Array(this.levels.length).fill(undefined);
    let stale: LowerHit | undefined;
    for (const level of this.levels) {
      if (!level.deferred.idle && level.deferred.blocks(key)) {
        // What the tier holds is what was invalidated; and nothing is stored there until it lands.
        level.n.misses++;
        continue;
      }
      const t0 = performance.now();
      const r = await level.tier.readFenced(key);
      level.n.latencyTotal += performance.now() - t0;
      level.n.latencySamples++;
      if (r === TIER_FAILED) {
        level.n.misses++;
        continue;
      }
      marks[level.index] = r.mark;
      if (r.entry !== undefined) {
        // Past its TTL here (grace): a longer-lived tier below may still hold it fresh.
        if (readHeader(r.entry.value, this.#header) > 0 && pastStaleAt(this.#header.staleAt)) {
          level.n.misses++;
          stale ??= { payload: r.entry.value, ttl: r.entry.ttl, level: level.index, due: false };
          continue;
        }
        level.n.hits++;
        return { hit: { payload: r.entry.value, ttl: r.entry.ttl, level: level.index, due: this.promotionDue(level, key) }, stale, marks };
      }
      level.n.misses++;
    }
    return { hit: undefined, stale, marks };
  }

  readonly #header: EntryHeader = { createdAt: 0, staleAt: -1, flags: 0 };

  /** The keys an mget found nowhere above, tier by tier (no copies up: an mget holds no fill marks). */
  async readMany(keys: readonly string[]): Promise<Array<TierEntry<string> | undefined>> {
    const out = new Array<TierEntry<string> | undefined>(keys.length).fill(undefined);
    let open = keys.map((_, i) => i);
    for (const level of this.levels) {
      if (open.length === 0) break;
      const asked = level.deferred.idle ? open : open.filter((i) => !level.deferred.blocks(keys[i]));
      if (asked.length === 0) continue;
      const rows = await level.tier.getEntries(asked.map((i) => keys[i]));
      if (rows === TIER_FAILED) {
        level.n.misses += asked.length;
        continue;
      }
      asked.forEach((i, j) => {
        if (rows[j] !== undefined) {
          out[i] = rows[j];
          level.n.hits++;
        } else level.n.misses++;
      });
      open = open.filter((i) => out[i] === undefined);
    }
    return out;
  }

  /**
   * Remaining lifetime of `key` in the first tier below L2 that holds it (-1: kept without expiry); undefined
   * when none does, or none could be asked. A tier whose invalidation of the key is still pending is skipped:
   * what it holds was invalidated (the tiers below it already took that invalidation: they run bottom-up).
   */
  async ttlOf(key: string): Promise<number | undefined> {
    for (const level of this.levels) {
      if (!level.deferred.idle && level.deferred.blocks(key)) continue;
      const r = await level.tier.ttlOf(key);
      if (r !== TIER_FAILED && r !== undefined) return r;
    }
    return undefined;
  }

  /** Copies a hit into the lower tiers above the one that had it, each fenced by the mark it read. */
  async promote(key: string, hit: LowerHit, marks: ReadonlyArray<FillMark | undefined>): Promise<void> {
    const stores: Array<Promise<unknown>> = [];
    for (let i = hit.level - 1; i >= 0; i--) {
      const level = this.levels[i];
      const mark = marks[i];
      if (mark === undefined) continue;
      const ttl = cappedTtl(level.ttl, hit.ttl);
      if (ttl <= 0) continue;
      stores.push(
        level.tier.storeFenced({ key, value: hit.payload, ttl }, mark).then((ok) => {
          if (ok === true) level.n.promotions++;
        }),
      );
    }
    this.levels[hit.level].counts?.delete(key);
    await Promise.all(stores);
  }

  /** A fill's value: into every tier whose mark was read, fenced there. */
  async storeFill(w: LowerWrite, marks: ReadonlyArray<FillMark | undefined>): Promise<void> {
    await Promise.all(
      this.levels.map((level) => {
        const mark = marks[level.index];
        return mark === undefined ? undefined : level.tier.storeFenced(this.tierWrite(w, level.index), mark);
      }),
    );
  }

  // ---------------------------------------------------------------- writes

  /** Plain writes (set, mset) from tier `from` down: through tiers answer before this resolves, behind ones queue. */
  async write(writes: readonly LowerWrite[], from = 0): Promise<void> {
    if (writes.length === 0) return;
    await Promise.all(
      this.levels.slice(from).map((level) => {
        const recovery = level.recovery;
        for (const w of writes) {
          level.counts?.delete(w.key);
          if (recovery !== undefined && !recovery.idle) recovery.supersede(w.pkey);
        }
        if (level.queue) {
          for (const w of writes) level.queue.enqueue(w);
          return undefined;
        }
        return Promise.resolve(level.tier.setEntries(writes.map((w) => this.tierWrite(w, level.index)))).then((r) => {
          if (r === TIER_FAILED && recovery) this.lost(recovery, writes);
        });
      }),
    );
  }

  /** Writes that did not reach a tier: kept for its replay (only what the replay needs, not an mset's live value). */
  private lost(recovery: RecoveryQueue<LowerWrite>, writes: readonly LowerWrite[]): void {
    for (const w of writes) recovery.enqueue({ key: w.key, pkey: w.pkey, payload: w.payload, ttl: w.ttl, callTtl: w.callTtl, tags: w.tags, bytes: w.bytes });
  }

  /** Writes out every write-behind queue now. */
  async flush(): Promise<void> {
    await Promise.all(this.levels.map((l) => l.queue?.flush()));
  }

  // ---------------------------------------------------------------- invalidations, bottom-up

  /** `above`: only the tiers above that level (a replay there left it holding the newest). */
  async deleteKeys(keys: readonly string[], above = this.levels.length): Promise<number> {
    let removed = 0;
    for (let i = above - 1; i >= 0; i--) {
      const level = this.levels[i];
      for (const k of keys) {
        level.counts?.delete(k);
        level.queue?.discardKey(this.namespace + k);
        level.recovery?.supersede(this.namespace + k);
      }
      const r = await level.tier.deleteKeys(keys);
      if (r === TIER_FAILED) this.defer(level, 'delete', keys.length, () => level.deferred.addKeys(keys));
      else {
        removed = Math.max(removed, r);
        level.deferred.settled(keys);
      }
    }
    return removed;
  }

  async deletePattern(glob: string): Promise<{ removed: number; complete: boolean }> {
    const matcher = compileGlob(glob);
    let removed = 0;
    let complete = true;
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const level = this.levels[i];
      level.counts?.clear();
      level.queue?.discard((w) => matcher.test(w.key));
      level.recovery?.invalidate((w) => matcher.test(w.key));
      const r = await level.tier.deletePattern(glob);
      removed = Math.max(removed, r.removed);
      if (!r.complete) {
        complete = false;
        this.defer(level, 'pattern', 1, () => level.deferred.addPattern(glob));
      }
    }
    return { removed, complete };
  }

  /** `onKeys`: the keys each tier removed, as it goes (the tiers above drop them by name: their copies carry no tags). */
  async deleteTags(tags: readonly string[], onKeys: (keys: string[]) => Promise<void>): Promise<number> {
    const set = new Set(tags);
    let removed = 0;
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const level = this.levels[i];
      level.counts?.clear();
      const tagged = (w: LowerWrite): boolean => !!w.tags?.some((t) => set.has(t));
      level.queue?.discard(tagged);
      level.recovery?.invalidate(tagged);
      const found: string[] = [];
      const r = await level.tier.deleteTags([...set], (keys) => found.push(...keys));
      if (found.length > 0) await onKeys(found);
      removed = Math.max(removed, r.removed);
      if (!r.complete) this.defer(level, 'tag', set.size, () => level.deferred.addTags([...set]));
    }
    return removed;
  }

  async clear(): Promise<number> {
    let removed = 0;
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const level = this.levels[i];
      level.counts?.clear();
      level.queue?.clear();
      level.recovery?.clear();
      const r = await level.tier.deletePattern('*');
      removed = Math.max(removed, r.removed);
      if (!r.complete) this.defer(level, 'clear', 1, () => level.deferred.addClear());
    }
    return removed;
  }

  /** Whether an invalidation of `key` is still waiting to reach some tier here (then no fill may trust them). */
  blocks(key: string): boolean {
    for (const l of this.levels) if (!l.deferred.idle && l.deferred.blocks(key)) return true;
    return false;
  }

  // ---------------------------------------------------------------- stats and lifecycle

  stats(firstLevel: number): Record<string, TierStats> {
    const out: Record<string, TierStats> = {};
    for (const l of this.levels) {
      const n = l.n;
      out[l.tier.name] = {
        kind: l.tier.kind,
        level: firstLevel + l.index,
        hits: n.hits,
        misses: n.misses,
        hitRatio: ratio(n.hits, n.misses),
        promotions: n.promotions,
        // Missed deadlines are failed commands too, and the only sign of a tier that hangs: nothing it does is an error.
        errors: n.errors + l.tier.deadlines.timeouts,
        timeouts: l.tier.deadlines.timeouts,
        ready: l.tier.ready,
        meanLatencyMs: mean(n.latencyTotal, n.latencySamples),
      };
      const c = compressionStats(l.tier.compressor);
      if (c) out[l.tier.name].compression = c;
      const b = l.tier.breaker.stats();
      if (b) out[l.tier.name].breaker = b;
      if (l.tier.kind === 'postgres' && l.tier.lastSize !== undefined) out[l.tier.name].size = l.tier.lastSize;
      if (l.queue) out[l.tier.name].writeBehind = { queueLength: l.queue.length, flushed: l.queue.flushed, dropped: l.queue.dropped };
      if (l.recovery) out[l.tier.name].recovery = l.recovery.stats();
    }
    return out;
  }

  /** Each tier's own health report, by name; a tier that does not answer within `timeoutMs` is reported unresponsive. */
  async health(timeoutMs: number): Promise<Record<string, TierHealth & { kind: string }>> {
    const out: Record<string, TierHealth & { kind: string }> = {};
    await Promise.all(
      this.levels.map(async (l) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<TierHealth>((r) => (timer = setTimeout(() => r({ ok: false, status: 'unresponsive' }), timeoutMs)));
        const h = await Promise.race([l.tier.health(), late]);
        clearTimeout(timer);
        out[l.tier.name] = { kind: l.tier.kind, ...h };
      }),
    );
    return out;
  }

  /** How messages name the tier at `index`. */
  labelOf(index: number): string {
    return this.levels[index]?.label ?? `tier ${index}`;
  }

  /** Counts a failed command of tier `name` (its onError). */
  countError(name: string): void {
    const l = this.levels.find((x) => x.tier.name === name);
    if (l) l.n.errors++;
  }

  async close(): Promise<number> {
    let lost = 0;
    for (const l of this.levels) {
      if (l.queue) lost += await l.queue.close();
      if (l.recovery) lost += await l.recovery.close();
      lost += await l.deferred.close();
      await l.tier.close();
    }
    return lost;
  }

  // ---------------------------------------------------------------- internals

  private promotionDue(level: Level, key: string): boolean {
    const counts = level.counts;
    if (counts === undefined) return true;
    const n = (counts.get(key) ?? 0) + 1;
    if (n >= level.promoteAfter) return true;
    counts.set(key, n);
    return false;
  }

  /** A prepared write as tier `index` stores it: its own TTL, capped by the call's. */
  private tierWrite(w: LowerWrite, index: number): TierWrite<string> {
    const own = this.levels[index].ttl;
    const ttl = w.callTtl === undefined ? own : Math.min(own, w.callTtl);
    if (w.staleAt === undefined || w.createdAt === undefined) return { key: w.key, value: w.payload, ttl, tags: w.tags, bytes: w.bytes };
    // The entry goes stale here when this tier's own TTL ends, not L2's: a longer-lived tier keeps it fresh longer.
    const grace = w.grace ?? 0;
    const value = encodeEntry(w.payload.slice(payloadStart(w.payload)), { createdAt: w.createdAt, staleAt: w.createdAt + ttl });
    return { key: w.key, value, ttl: withGrace(ttl, grace), tags: w.tags, bytes: w.bytes };
  }

  /**
   * Tier `index` as the replay of its queued writes sees it (recovery-queue.ts): cache keys (the tier applies its
   * namespace), each write at the tier's own TTL.
   */
  private replayTarget(tier: SharedTier, index: number, fillWindow: number): RecoveryTarget<LowerWrite> {
    return {
      get ready() {
        return tier.ready;
      },
      onReady: (listener) => tier.onReady(listener),
      window: replayWindow(fillWindow, tier.deadlines.timeoutMs),
      ttl: (w) => this.tierWrite(w, index).ttl,
      generation: () => tier.currentGeneration(),
      read: (w) => tier.readFenced(w.key).then((r) => (r === TIER_FAILED ? r : { value: r.entry?.value, fence: r.mark.fence, generation: r.mark.generation })),
      replace: (w, ttl, mark, expected) => tier.replaceFenced({ ...this.tierWrite(w, index), ttl }, mark, expected),
      drop: (ws) => Promise.resolve(tier.deleteKeys(ws.map((w) => w.key))).then((r) => r !== TIER_FAILED),
    };
  }

  private defer(level: Level, what: string, count: number, add: () => void): void {
    add();
    this.hooks.log(`${level.label}: ${what} invalidation (${count}) could not reach it; it is retried until it lands`);
  }
}

function buildTier(spec: ResolvedLowerTier, namespace: string, fillWindow: number, onError: (op: string, err: unknown) => void, note: (message: string) => void): SharedTier {
  const compressor = spec.compression ? new EntryCompressor(spec.compression) : undefined;
  if (spec.type === 'postgres') {
    const p = spec.postgres;
    return new PostgresTier({ ...p, namespace, fillWindow, name: spec.name, compressor }, onError);
  }
  const r = resolveRedis(spec.redis, `tiers.${spec.name}.redis`);
  if (!r) throw new TypeError(`tier ${spec.name}: no redis connection`);
  const factory = new RedisConnectionFactory(r);
  const tier = new RedisTier(factory, r.maxConnections, r.commandTimeout, r.connectTimeout, onError, r.socketTimeout, namespace, spec.name, fillWindow, compressor, r.breaker || undefined);
  for (const n of factory.notes) note(n);
  return tier;
}

function connectTier(tier: SharedTier): Promise<boolean> {
  return tier.connect();
}

/**
 * A tier as the replay of its deferred invalidations sees it (cache keys, no prefix: the tier applies its own).
 * The tier's own deletes fence (isFenced), so a replayed one also refuses the fills it overtakes.
 */
function tierTarget(tier: SharedTier): InvalidationTarget {
  return {
    get ready() {
      return tier.ready;
    },
    // Replays run on their own timer (100 ms doubling to 5 s), and at once when the tier's breaker closes (its
    // server answered again): there is no ready event of the connection to wait for.
    onReady: (listener) =>
      tier.breaker.onChange((state) => {
        if (state === CLOSED) listener();
      }),
    del: (keys) => tier.deleteKeys(keys).then((r) => (r === TIER_FAILED ? r : keys.map(() => true))),
    scanDelete: (match) => tier.deletePattern(match).then((r) => ({ removed: r.removed, failedNodes: r.complete ? [] : [tier.name] })),
    popTag: (tag) => Promise.resolve(tier.deleteTags([tag])),
  };
}
