import type { DeferredInvalidations, InvalidationTarget } from './deferred-invalidations';
import type { EngineContext } from './engine-context';
import { L2_FAILED, type L2Write } from './tiers/redis.tier';

/**
 * Tags: an index per tag in each tier that holds tagged entries (L1: a map; Redis: a sorted set scored by
 * expiry, see redis.tier.ts), so invalidating a tag costs O(entries under it). L1 copies promoted from Redis
 * carry no tag index, here or on other instances: the keys popped from Redis are dropped by name as they come.
 */
export class TagSystem {
  constructor(
    private readonly ctx: EngineContext,
    private readonly target: InvalidationTarget | undefined,
  ) {}

  /** Removes every entry tagged with any of `tags`, in L1 and Redis; resolves to the larger of the two counts. */
  async invalidate(list: readonly string[]): Promise<number> {
    const ctx = this.ctx;
    const { tagPrefix, legacyTagPrefix } = ctx.reserved;
    ctx.readGuard.dropAll();
    ctx.flights.markAll();
    const l1Count = ctx.l1?.deleteTagged(list) ?? 0;
    const tagKeys = new Set(list.map((t) => tagPrefix + t));
    const tagged = (w: L2Write): boolean => !!w.tagKeys?.some((k) => tagKeys.has(k));
    ctx.writeBehind?.discard(tagged);
    ctx.recovery?.invalidate(tagged);
    let l2Count = 0;
    if (this.target) {
      const target = this.target;
      // Bottom-up (lower-tiers.ts). Copies promoted into L2 from below carry no tag: dropped by name.
      if (ctx.lower) {
        l2Count = await ctx.lower.deleteTags(list, async (keys) => {
          if ((await target.del(keys.map((k) => ctx.prefix + k))) === L2_FAILED) (ctx.deferred as DeferredInvalidations).addKeys(keys);
          this.droppedByTag(keys.map((k) => ctx.prefix + k));
        });
      }
      const failed: string[] = [];
      for (const tag of new Set(list)) {
        const r = await this.target.popTag(tagPrefix + tag, legacyTagPrefix + tag, (pkeys) => this.droppedByTag(pkeys));
        l2Count += r.removed;
        if (!r.complete) failed.push(tag);
      }
      if (failed.length > 0) {
        (ctx.deferred as DeferredInvalidations).addTags(failed);
        ctx.log('warn', 'deferred', `${ctx.l2Label}: tag invalidation failed for ${failed.length} tag(s); it is retried until it lands`);
      }
    }
    ctx.emit({ type: 'tags', tags: [...list] });
    return Math.max(l1Count, l2Count);
  }

  /** Keys popped from a Redis tag index (physical keys): dropped here, and announced by name. */
  droppedByTag(pkeys: readonly string[]): void {
    const ctx = this.ctx;
    const keys: string[] = [];
    for (const p of pkeys) if (p.startsWith(ctx.prefix)) keys.push(p.slice(ctx.prefix.length));
    if (keys.length === 0) return;
    for (const k of keys) {
      ctx.readGuard.dropKey(k);
      ctx.flights.markStale(k);
      ctx.l1?.delete(k);
    }
    ctx.emit({ type: 'delete', keys, byTag: true });
  }
}
