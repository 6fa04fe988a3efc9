import { randomBytes } from 'node:crypto';
import type { CacheStack, FillRead } from '../cache-stack';
import type { EngineContext } from '../engine-context';
import { fenceKeyOf } from '../keys/cache-key';
import type { SetOptions } from '../tiered-cache-options.interface';
import { L2_FAILED, type FillLockKeys, type RedisTier } from '../tiers/redis.tier';
import { FillWaiters } from './fill-waiters';
import type { Flight } from './single-flight';

/** A held fill lock; the fill releases it in its finally, after its store (or its factory's failure). */
export interface FillLease {
  release(): void;
}

/** What settle() hands back: the read the fill goes on with, and the lock when this instance is to run the factory. */
export interface SettledFill {
  read: FillRead;
  lease?: FillLease;
}

/** stats().lock */
export interface FillLockStats {
  enabled: boolean;
  /** Locks taken: factory runs this instance made on behalf of every instance. */
  acquired: number;
  /** Misses that found the lock taken by another instance and waited. */
  waited: number;
  /** Waits that ended with the other instance's value (no factory run here). */
  received: number;
  /** Waits that reached `lock.wait`: the factory ran here, without the lock. */
  timedOut: number;
  /** Misses that could not ask Redis for the lock (unreachable, failing): single flight per process only. */
  fallbacks: number;
  /** Background refreshes left to the instance holding the lock (it was refreshing the same key). */
  refreshesLeft: number;
}

interface Held {
  readonly lock: FillLockKeys;
  readonly startedAt: number;
  /** When the lock was last given its PX (performance.now()). */
  renewedAt: number;
}

/** The poll interval doubles after each read, up to this many times `lock.poll`. */
const POLL_CAP = 8;

/**
 * One getOrSet factory run per missing key across every instance sharing Redis. The lock is a key in the
 * engine's reserved namespace, in the data key's Cluster slot, holding its holder's token (SET NX PX; extended
 * and released by compare-token scripts, lock-scripts.ts). On standalone/Sentinel it is taken inside the fill
 * read itself (one script call instead of MGET + PTTL: no round trip added to a miss); on a Cluster, right after
 * the read finds the key missing.
 *
 * An instance that finds the lock taken waits for the holder's value, then reads it through the normal fill read
 * (so it obeys the fences of fill-fence.ts like any other read), or takes the lock itself if the holder let it
 * go without storing. It hears of the release on the bus (the release script announces it when a waiter raised
 * the lock's flag) and polls as a fallback (a bus that is off or has no subscriber, a lost message, a holder that
 * died and whose lock ran out). It waits at most `lock.wait`, then runs its own factory: a request never fails,
 * nor waits longer, because of the lock.
 *
 * Design choices:
 * - A holder whose factory throws releases at once, and its waiters do not receive the error: each reads again
 *   and the first to take the lock runs its factory, the rest go on waiting (FusionCache's choice: a transient
 *   failure is retried by the next holder, one instance at a time, never a stampede).
 * - The holder renews its lock every third of `lock.ttl` while it runs, up to `l2.fillWindow` (a fill older than
 *   that is not stored anyway): a slow factory keeps its lock, a dead holder is replaced within `lock.ttl`.
 * - Redis unreachable or failing (the read or the lock call fails): the fill goes on as single flight per process,
 *   counted in `fallbacks`. So does a key whose braces defeat the slot rule (no lock key can share its slot).
 * - The release goes with the fill's store on standalone/Sentinel (inside its transaction: see the redis tier's
 *   FILL_STAGE), stored or refused; otherwise (a factory that threw, a value not stored, a Cluster) in the fill's
 *   finally, not awaited: the caller has its value, and that release follows everything the fill sent before it.
 */
export class FillLocks {
  readonly #waiters = new FillWaiters();
  readonly #held = new Set<Held>();
  #renewal: NodeJS.Timeout | undefined;
  readonly #id = randomBytes(6).toString('base64url') + ':';
  #seq = 0;
  readonly #n = { acquired: 0, waited: 0, received: 0, timedOut: 0, fallbacks: 0, refreshesLeft: 0 };

  constructor(
    private readonly ctx: EngineContext,
    private readonly stack: CacheStack,
  ) {}

  /** Forwarded by the bus: a lock of `key` with waiters was released. */
  notify(key: string): void {
    this.#waiters.notify(key);
  }

  /**
   * The lock this fill asks for in its read, or undefined when it goes without one (turned off, for the cache or
   * the call; cache-aside only, as nothing would be stored to wait for; a key no lock key can share a slot with).
   */
  attempt(key: string, options: SetOptions<never> | undefined): FillLockKeys | undefined {
    const o = this.ctx.options;
    if (!(options?.lock ?? o.lock.enabled) || !o.readThrough) return undefined;
    const lockKey = fenceKeyOf(this.ctx.reserved.lockPrefix, this.ctx.prefix + key);
    if (lockKey === undefined) return undefined;
    this.#waiters.watch(key);
    return { lockKey, waitKey: lockKey + ':w', token: this.#id + ++this.#seq, ttl: o.lock.ttl };
  }

  /**
   * After the fill read: the read to go on with, and a lease when this instance is to run the factory. Waits,
   * when another instance holds the lock, for its value or for the lock, at most `lock.wait`.
   */
  async settle(key: string, r: FillRead, lock: FillLockKeys, flight: Flight): Promise<SettledFill> {
    try {
      if (r.value !== undefined) {
        // Found below L2 after the read took the lock: nothing to fill.
        if (r.locked === true) this.#release(lock, key);
        return { read: r };
      }
      let taken = await this.#take(key, r, lock);
      if (taken !== false) return { read: r, lease: taken };
      this.#n.waited++;
      const o = this.ctx.options.lock;
      const deadline = performance.now() + o.wait;
      let delay = o.poll;
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0 || this.ctx.closed) {
          this.#n.timedOut++;
          return { read: r };
        }
        await this.#waiters.wait(key, Math.min(delay, left));
        if (this.ctx.closed) continue;
        delay = Math.min(delay * 2, o.poll * POLL_CAP);
        // No factory has run in this flight yet: an invalidation heard while waiting made nothing stale that this
        // read (with a fresh fence and generation) and a factory started after it could store.
        flight.stale = false;
        const next = await this.stack.readForFill(key, 0, lock);
        if (next.value !== undefined) {
          if (next.locked === true) this.#release(lock, key);
          this.#n.received++;
          return { read: next };
        }
        r = next;
        taken = await this.#take(key, r, lock);
        if (taken !== false) return { read: r, lease: taken };
      }
    } finally {
      this.#waiters.unwatch(key);
    }
  }

  /** attempt() whose read did not go on to settle() (it found the key): the key is not waited on. */
  abandon(key: string): void {
    this.#waiters.unwatch(key);
  }

  /**
   * The lock for a background refresh, without waiting: a lease, false when another instance holds it (it is
   * refreshing the key), undefined when it goes without one (turned off, or Redis could not say).
   */
  async tryLock(key: string, options: SetOptions<never> | undefined): Promise<FillLease | false | undefined> {
    const lock = this.attempt(key, options);
    if (lock === undefined) return undefined;
    try {
      const taken = await (this.ctx.l2 as RedisTier).lockAcquire(lock);
      if (taken === L2_FAILED) {
        this.#n.fallbacks++;
        return undefined;
      }
      if (!taken) {
        this.#n.refreshesLeft++;
        return false;
      }
      this.#n.acquired++;
      return this.#hold(key, lock);
    } finally {
      this.#waiters.unwatch(key);
    }
  }

  /** A lease when the lock is ours, false when another instance holds it, undefined when Redis could not say. */
  async #take(key: string, r: FillRead, lock: FillLockKeys): Promise<FillLease | false | undefined> {
    if (r.seen === undefined) {
      // The read did not reach Redis (or an invalidation of the key is still waiting to): per process only.
      this.#n.fallbacks++;
      return undefined;
    }
    const taken = r.locked ?? (await (this.ctx.l2 as RedisTier).lockAcquire(lock));
    if (taken === L2_FAILED) {
      this.#n.fallbacks++;
      return undefined;
    }
    if (!taken) return false;
    this.#n.acquired++;
    return this.#hold(key, lock);
  }

  #hold(key: string, lock: FillLockKeys): FillLease {
    const now = performance.now();
    const h: Held = { lock, startedAt: now, renewedAt: now };
    this.#held.add(h);
    if (this.#renewal === undefined) {
      this.#renewal = setInterval(() => this.#renew(), Math.max(10, Math.floor(lock.ttl / 3)));
      this.#renewal.unref();
    }
    const l2 = this.ctx.l2 as RedisTier;
    const pkey = this.ctx.prefix + key;
    const riding = l2.releaseWithStore(pkey, lock, this.ctx.reserved.fillChannel, key);
    return {
      release: () => {
        if (!this.#held.delete(h)) return;
        // Done by the fill's store already, unless there was none (a factory that threw, a value not stored).
        if (!riding || l2.unride(pkey)) this.#release(lock, key);
      },
    };
  }

  /** The announcement carries the cache key: what the waiters watch. */
  #release(lock: FillLockKeys, key: string): void {
    void (this.ctx.l2 as RedisTier).lockRelease(lock, this.ctx.reserved.fillChannel, key);
  }

  /** Renews every lock held for a third of its TTL or more; one timer for all, running only while locks are held. */
  #renew(): void {
    if (this.#held.size === 0 || this.ctx.closed) {
      clearInterval(this.#renewal);
      this.#renewal = undefined;
      return;
    }
    const now = performance.now();
    const l2 = this.ctx.l2 as RedisTier;
    for (const h of this.#held) {
      if (now - h.startedAt > this.ctx.options.l2.fillWindow) {
        // Its value would not be stored: let the lock run out so another instance can fill.
        this.#held.delete(h);
        continue;
      }
      if (now - h.renewedAt < h.lock.ttl / 3) continue;
      h.renewedAt = now;
      void l2.lockExtend(h.lock).then((ok) => {
        if (ok === false) this.#held.delete(h);
      });
    }
  }

  stats(): FillLockStats {
    return { enabled: this.ctx.options.lock.enabled, ...this.#n };
  }

  /** The cache is closing: parked waiters stop waiting, renewals stop (held locks run out). */
  close(): void {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
    this.#waiters.wakeAll();
  }
}
