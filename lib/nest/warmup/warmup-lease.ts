import { randomUUID } from 'node:crypto';
import type { TieredCache } from '../../core/tiered-cache';
import { L2_FAILED, type FillLockKeys, type RedisTier } from '../../core/tiers/redis.tier';

/** Why a lease was not taken. */
export type LeaseRefusal = 'held' | 'unavailable';

/**
 * The cluster-wide lease of one warmer's scheduled run, in the cache's Redis: `SET NX PX` with this run's token
 * (the fill lock's own scripts, lock-scripts.ts), renewed every third of its TTL while the run goes on, released
 * with a token check at the end, so an instance never extends or drops a lease another one holds. A lease that
 * cannot be renewed because another token holds it (this instance stalled past the TTL) is lost: the run is told
 * and stops. A run that ends within `holdAtLeast` of its start keeps the lease until then instead of dropping it,
 * so an instance whose cron fires a little later (clock skew, a busy event loop) finds it taken and skips that
 * tick too.
 */
export class WarmupLease {
  private timer: NodeJS.Timeout | undefined;
  private lost = false;
  private released = false;

  private constructor(
    private readonly l2: RedisTier,
    private readonly keys: FillLockKeys,
    private readonly channel: string,
    private readonly startedAt: number,
    private readonly holdAtLeast: number,
  ) {}

  /** The lease key of a warmer (its name is a hash tag: the key and its flag share a Cluster slot). */
  static keyOf(engine: TieredCache, warmer: string): string {
    return engine.redisKey(`__tc:warm:{${warmer}}`);
  }

  /** The lease, or why not: 'held' (another instance runs), 'unavailable' (Redis could not be asked). */
  static async acquire(engine: TieredCache, l2: RedisTier, warmer: string, ttl: number, holdAtLeast: number, onLost: () => void): Promise<WarmupLease | LeaseRefusal> {
    const lockKey = WarmupLease.keyOf(engine, warmer);
    const keys: FillLockKeys = { lockKey, waitKey: `${lockKey}:w`, token: randomUUID(), ttl };
    const taken = await l2.lockAcquire(keys);
    if (taken === L2_FAILED) return 'unavailable';
    if (!taken) return 'held';
    const lease = new WarmupLease(l2, keys, engine.redisKey('__tc:warm:v1'), performance.now(), holdAtLeast);
    lease.timer = setInterval(() => void lease.renew(onLost), Math.max(10, Math.floor(ttl / 3)));
    lease.timer.unref();
    return lease;
  }

  private async renew(onLost: () => void): Promise<void> {
    if (this.released || this.lost) return;
    const r = await this.l2.lockExtend(this.keys);
    // A failed call leaves the lease to its PX: the next renewal tries again.
    if (r !== false || this.released) return;
    this.lost = true;
    this.stop();
    onLost();
  }

  /** Ends the lease: dropped, or kept until `holdAtLeast` from its start. Never throws. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stop();
    if (this.lost) return;
    const left = Math.ceil(this.holdAtLeast - (performance.now() - this.startedAt));
    if (left > 0) await this.l2.lockExtend({ ...this.keys, ttl: left });
    else await this.l2.lockRelease(this.keys, this.channel, this.keys.lockKey);
  }

  private stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
