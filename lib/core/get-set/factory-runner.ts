import type { SetOptions } from '../tiered-cache-options.interface';
import type { CacheStack } from '../cache-stack';
import type { EngineContext } from '../engine-context';
import { fenceKeyOf, type FillSeen } from '../fill-fence';
import type { CacheOperation, CacheTier } from '../observer';
import type { RedisTier } from '../tiers/redis.tier';
import type { FillMark } from '../tiers/tier';
import type { WritePath } from '../write-path';
import type { FillLease, FillLocks } from './distributed-lock';
import type { Flight } from './single-flight';

/**
 * A getOrSet miss: one lookup below L1, then the factory, then a store that no invalidation has overtaken
 * on any instance (fill-fence.ts). The caller (tiered-cache.ts) has already missed L1 and joined or started
 * the key's single flight; this runs that flight.
 */
export class FactoryRunner {
  constructor(
    private readonly ctx: EngineContext,
    private readonly stack: CacheStack,
    private readonly writes: WritePath,
    private readonly sampled: (t0: number, op: CacheOperation, tier: CacheTier) => void,
    private readonly locks?: FillLocks,
  ) {}

  async fill<T>(key: string, factory: () => T | Promise<T>, options: SetOptions | undefined, flight: Flight, t0: number): Promise<T> {
    const ctx = this.ctx;
    let lease: FillLease | undefined;
    try {
      let seen: FillSeen | undefined;
      let marks: Array<FillMark | undefined> | undefined;
      if (ctx.l2) {
        // ▼ One factory run per key across instances (distributed-lock.ts): the lock is asked for in the read; when
        // another instance holds it, settle() waits for its value (or the lock) and reads again.
        const lock = this.locks?.attempt(key, options);
        let r = await this.stack.readForFill(key, lock);
        if (lock !== undefined) ({ read: r, lease } = await (this.locks as FillLocks).settle(key, r, lock, flight));
        // ▲
        if (r.value !== undefined) {
          if (t0 >= 0) this.sampled(t0, 'getOrSet', 'l2');
          return r.value as T;
        }
        seen = r.seen;
        marks = r.marks;
      }
      if (t0 >= 0) this.sampled(t0, 'getOrSet', ctx.l2 ? 'l2' : 'l1');
      const value = await factory();
      if (!ctx.options.readThrough || ctx.closed) return value;
      if (flight.stale) {
        // This instance already heard of an invalidation (its own, or another's through the bus): not stored.
        ctx.n.fillsRefused++;
      } else if (!ctx.l2 || seen === undefined) await this.writes.storeUnfenced(key, value, options, !!ctx.l2);
      else await this.storeFenced(key, value, options, seen, flight, marks);
      return value;
    } finally {
      lease?.release();
      ctx.flights.end(key, flight);
    }
  }

  /** Stores a fill's value in Redis only if no invalidation overtook it, and in L1 only once Redis took it. */
  private async storeFenced(key: string, value: unknown, options: SetOptions | undefined, seen: FillSeen, flight: Flight, marks: Array<FillMark | undefined> | undefined): Promise<void> {
    const ctx = this.ctx;
    if (!this.writes.storable(value)) return;
    const w = this.writes.prepare(key, value, options);
    if (performance.now() - seen.startedAt > ctx.options.l2.fillWindow) {
      // Its fence may have expired: an invalidation it missed would not be seen.
      ctx.n.fillsRefused++;
      return;
    }
    // Each lower tier checks its own mark (lower-tiers.ts), so these go beside the L2 store, not after it.
    const below = marks && ctx.lower?.storeFill(w, marks);
    const r = await (ctx.l2 as RedisTier).storeFill(w, fenceKeyOf(ctx.reserved.fencePrefix, w.pkey), ctx.reserved.genKey, seen);
    await below;
    if (r === false) {
      ctx.n.fillsRefused++;
      return;
    }
    // Written, or Redis failed (the script may still run, and still checks): L1 as any write, unless this
    // instance heard of an invalidation meanwhile.
    if (flight.stale || ctx.closed || !ctx.l1) return;
    ctx.n.sets++;
    this.stack.writeL1(w, value);
  }
}
