import type { CacheChange, PatternInvalidationReport } from './cache-change';
import type { CacheStack } from './cache-stack';
import type { DeferredInvalidations, InvalidationTarget, LandedInvalidation } from './deferred-invalidations';
import type { EngineContext } from './engine-context';
import { compileGlob, escapeGlob, type GlobMatcher } from './glob';
import { checkKey } from './keys/cache-key';
import { invalidationCount } from './observer';
import type { TagSystem } from './tag-system';
import { L2_FAILED, type ScanDeleteResult } from './tiers/redis.tier';

/**
 * Invalidation of keys, patterns and the whole namespace, local (this instance's calls) and remote (what the
 * bus hears of other instances). Each one also cancels running fills and queued writes it covers. What could
 * not reach Redis is handed to DeferredInvalidations and replayed until it lands.
 */
export class Invalidator {
  constructor(
    private readonly ctx: EngineContext,
    private readonly stack: CacheStack,
    private readonly tags: TagSystem,
    /** Redis as invalidations see it (fences and the generation, fill-fence.ts); undefined without L2. */
    private readonly target: InvalidationTarget | undefined,
  ) {}

  /** Removes keys from every tier at once; resolves to how many existed. */
  async delete(list: readonly string[]): Promise<number> {
    const ctx = this.ctx;
    const removed = new Array<boolean>(list.length).fill(false);
    let lowerRemoved = 0;
    for (let i = 0; i < list.length; i++) {
      checkKey(list[i]);
      this.overtake(list[i]);
      this.stack.forget(list[i]);
      if (ctx.l1?.delete(list[i])) removed[i] = true;
      if (ctx.writeBehind?.discardKey(ctx.prefix + list[i])) removed[i] = true;
      ctx.recovery?.supersede(ctx.prefix + list[i]);
    }
    if (this.target) {
      // Bottom-up (lower-tiers.ts): a read that misses L2 after this delete then misses every tier below it.
      if (ctx.lower) lowerRemoved = await ctx.lower.deleteKeys(list);
      const r = await this.deleteL2(list);
      if (r !== L2_FAILED) r.forEach((ok, i) => ok && (removed[i] = true));
    }
    ctx.n.deletes += list.length;
    ctx.emit({ type: 'delete', keys: [...list] });
    return Math.max(removed.filter(Boolean).length, lowerRemoved);
  }

  /** The Redis part of a delete; what cannot reach Redis is deferred (see DeferredInvalidations). */
  private async deleteL2(list: readonly string[]): Promise<boolean[] | typeof L2_FAILED> {
    const ctx = this.ctx;
    const deferred = ctx.deferred as DeferredInvalidations;
    const r = await (this.target as InvalidationTarget).del(list.map((k) => ctx.prefix + k));
    if (r === L2_FAILED) {
      // Redis still holds these: replayed until it no longer does.
      deferred.addKeys(list);
      ctx.log('warn', 'deferred', `${ctx.l2Label}: delete failed for ${list.length} key(s); it is retried until it lands`);
    } else deferred.settled(list);
    return r;
  }

  async pattern(glob: string): Promise<PatternInvalidationReport> {
    const ctx = this.ctx;
    const matcher = compileGlob(glob);
    const walked = await this.dropMatching(matcher, async (): Promise<ScanDeleteResult> => {
      ctx.writeBehind?.discard((w) => matcher.test(w.key));
      ctx.recovery?.invalidate((w) => matcher.test(w.pkey.slice(ctx.prefix.length)));
      if (!this.target) return { removed: 0, failedNodes: [] };
      const lower = ctx.lower ? await ctx.lower.deletePattern(glob) : undefined;
      const r = await this.target.scanDelete(escapeGlob(ctx.prefix) + glob);
      return lower === undefined ? r : { removed: Math.max(r.removed, lower.removed), failedNodes: r.failedNodes };
    });
    const l2 = walked.below;
    const deferred = l2.failedNodes.length > 0;
    if (deferred) {
      ctx.deferred?.addPattern(glob);
      ctx.log('warn', 'deferred', `${ctx.l2Label}: scan failed: the pattern invalidation could not reach ${l2.failedNodes.join(', ')}; it is retried until it lands`);
    }
    ctx.emit({ type: 'pattern', pattern: glob });
    // L1 is (mostly) a subset of L2, so the larger count is the honest one without holding every key name.
    return { removed: Math.max(walked.l1, l2.removed), complete: !deferred, failedNodes: l2.failedNodes, deferred: deferred && !!ctx.deferred };
  }

  /** Empties this cache's namespace (L1, and Redis keys under keyPrefix only; never FLUSHDB). */
  async clear(): Promise<number> {
    const ctx = this.ctx;
    ctx.readGuard.dropAll();
    ctx.flights.markAll();
    const l1Count = ctx.l1?.clear() ?? 0;
    ctx.writeBehind?.clear();
    ctx.recovery?.clear();
    this.stack.forgetAll();
    let l2Count = 0;
    if (this.target) {
      const lower = ctx.lower ? await ctx.lower.clear() : 0;
      const r = await this.target.scanDelete(escapeGlob(ctx.prefix) + '*');
      l2Count = Math.max(r.removed, lower);
      if (r.failedNodes.length > 0) {
        ctx.deferred?.addClear();
        ctx.log('warn', 'deferred', `${ctx.l2Label}: clear failed: it could not reach ${r.failedNodes.join(', ')}; it is retried until it lands`);
      }
    }
    ctx.emit({ type: 'clear' });
    return Math.max(l1Count, l2Count);
  }

  tagged(list: readonly string[]): Promise<number> {
    return this.tags.invalidate(list);
  }

  /**
   * Another instance's change (the bus): drops what it covers here, counted as a 'bus' invalidation. A pattern
   * resolves once its walk is done (it yields to the event loop; its keys read as misses meanwhile).
   */
  dropLocal(change: CacheChange): number | Promise<number> {
    const n = invalidationCount(change);
    if (n > 0) this.ctx.observer?.invalidation?.('bus', n);
    if ((this.ctx.writeBehind || this.ctx.recovery) && change.type !== 'overwrite') this.discardQueued(change);
    return this.dropL1(change);
  }

  /** The L1 part of a change, not counted (invalidate() for its own keys; the bus's L1 clear on (re)subscribe). */
  dropL1(change: CacheChange): number | Promise<number> {
    const ctx = this.ctx;
    const l1 = ctx.l1;
    switch (change.type) {
      case 'delete':
      case 'overwrite':
        for (const k of change.keys) this.overtake(k);
        return l1 ? change.keys.reduce((n, k) => n + (l1.delete(k) ? 1 : 0), 0) : 0;
      case 'pattern':
        return this.dropMatching(compileGlob(change.pattern), () => Promise.resolve(undefined)).then((r) => r.l1);
      case 'tags':
        ctx.readGuard.dropAll();
        ctx.flights.markAll();
        return l1?.deleteTagged(change.tags) ?? 0;
      case 'clear':
        ctx.readGuard.dropAll();
        ctx.flights.markAll();
        return l1?.clear() ?? 0;
    }
  }

  /**
   * A deferred invalidation reached Redis. Reads made while it was pending (here while Redis was unreachable,
   * on other instances before it landed) may have re-cached what it covers: drop that again, everywhere.
   */
  replayed(change: LandedInvalidation): void {
    const c: CacheChange = { ...change, replay: true };
    if (c.type === 'delete') for (const k of c.keys) this.stack.forget(k);
    void this.dropL1(c);
    this.ctx.emit(c);
  }

  /**
   * Queued writes of a tier below L2 were replayed there (or replaced by deletes). While they waited, reads here
   * and on other instances may have copied that tier's older values into the tiers above it: those copies go
   * (every instance drops its L1 copy); the tier itself keeps what the replay left.
   */
  async replayedBelow(keys: string[], level: number): Promise<void> {
    if (!this.target) return;
    if (level > 0) await this.ctx.lower?.deleteKeys(keys, level);
    await this.deleteL2(keys);
    this.replayed({ type: 'delete', keys });
  }

  /**
   * An invalidation deferred on a tier below L2 reached it at last. While it was pending, reads (here and on
   * other instances) may have copied what it covered back into the tiers above: it runs again on all of them.
   */
  async landedBelow(change: LandedInvalidation): Promise<void> {
    switch (change.type) {
      case 'delete':
        await this.delete(change.keys);
        return;
      case 'pattern':
        await this.pattern(change.pattern);
        return;
      case 'tags':
        await this.tags.invalidate(change.tags);
        return;
      case 'clear':
        await this.clear();
    }
  }

  /**
   * Drops an L1 pattern while `below` (the Redis part, if any) runs. Until both are done the pattern's keys read
   * as misses and are not promoted, and fills already running for them are not stored: the L1 walk yields to
   * the event loop, and Redis may still hold old values until its walk has passed them.
   */
  private async dropMatching<T>(matcher: GlobMatcher, below: () => Promise<T>): Promise<{ l1: number; below: T }> {
    const ctx = this.ctx;
    ctx.readGuard.dropAll();
    ctx.flights.markMatching(matcher);
    const l1 = ctx.l1;
    const release = l1?.block(matcher);
    try {
      const [n, b] = await Promise.all([l1 ? l1.deleteMatching(matcher) : 0, below()]);
      return { l1: n, below: b };
    } finally {
      release?.();
      // Reads that began during the walk may have read Redis before it passed their key.
      ctx.readGuard.dropAll();
    }
  }

  /**
   * Another instance's invalidation also cancels this instance's queued writes it covers (write-behind, and those
   * waiting for replay): a later flush would otherwise write back what was invalidated. (Another instance's
   * overwrite does not: Redis also announces keys that merely expired, and dropping a queued write for those
   * would lose it.)
   */
  private discardQueued(change: Exclude<CacheChange, { type: 'overwrite' }>): void {
    const { writeBehind: wb, recovery, prefix, reserved } = this.ctx;
    switch (change.type) {
      case 'delete':
        for (const k of change.keys) {
          wb?.discardKey(prefix + k);
          recovery?.supersede(prefix + k);
        }
        return;
      case 'pattern': {
        const m = compileGlob(change.pattern);
        wb?.discard((w) => m.test(w.key));
        recovery?.invalidate((w) => m.test(w.pkey.slice(prefix.length)));
        return;
      }
      case 'tags': {
        const tags = new Set(change.tags);
        wb?.discard((w) => !!w.tags?.some((t) => tags.has(t)));
        const tagKeys = new Set(change.tags.map((t) => reserved.tagPrefix + t));
        recovery?.invalidate((w) => !!w.tagKeys?.some((k) => tagKeys.has(k)));
        return;
      }
      case 'clear':
        wb?.clear();
        recovery?.clear();
    }
  }

  private overtake(key: string): void {
    this.ctx.readGuard.dropKey(key);
    this.ctx.flights.markStale(key);
  }
}
