import type { GetOrSetOptions } from '../tiered-cache-options.interface';
import type { CacheStack, FillRead, HeldCopy } from '../cache-stack';
import type { EngineContext } from '../engine-context';
import { CacheFactoryTimeoutError } from '../errors';
import { fenceKeyOf, type FillSeen } from '../fill-fence';
import type { CacheOperation, CacheTier } from '../observer';
import type { RedisTier } from '../tiers/redis.tier';
import type { FillMark } from '../tiers/tier';
import type { WritePath } from '../write-path';
import { GracedEntry } from './graced-entry';
import type { CallPolicy } from './resilience-policy';
import type { FillLease, FillLocks } from './distributed-lock';
import type { Flight } from './single-flight';

type Options = GetOrSetOptions<never> | undefined;
const ignore = (): void => undefined;

/**
 * A getOrSet miss: one lookup below L1, then the factory, then a store that no invalidation has overtaken
 * on any instance (fill-fence.ts). The caller (tiered-cache.ts) has already missed L1 and joined or started
 * the key's single flight; this runs that flight.
 *
 * Two ways through. `fill` is the plain one (no grace, no early refresh, no timeouts): one async frame, the
 * flight ends when the store is in. `fillResilient` is taken when the call's policy asks for more, or when the
 * lookup found a copy past its TTL: the callers' answer (the fresh value, a stale copy at once, a stale copy
 * after a soft timeout or a failure, a timeout error) is decoupled from the factory's run, which always goes
 * on to its end and stores its result; the flight ends then, so no second run starts meanwhile.
 */
export class FactoryRunner {
  constructor(
    private readonly ctx: EngineContext,
    private readonly stack: CacheStack,
    private readonly writes: WritePath,
    private readonly sampled: (t0: number, op: CacheOperation, tier: CacheTier) => void,
    private readonly defaults: CallPolicy,
    private readonly locks?: FillLocks,
  ) {}

  async fill<T>(key: string, factory: () => T | Promise<T>, options: Options, flight: Flight, t0: number): Promise<T> {
    const ctx = this.ctx;
    let handedOver = false;
    let lease: FillLease | undefined;
    try {
      let seen: FillSeen | undefined;
      let marks: Array<FillMark | undefined> | undefined;
      if (ctx.l2) {
        let r: FillRead;
        ({ read: r, lease } = await this.lockedRead(key, 0, options, flight));
        if (r.value !== undefined) {
          if (t0 >= 0) this.sampled(t0, 'getOrSet', 'l2');
          flight.from = r.tier ?? ctx.l2.name;
          return r.value as T;
        }
        if (r.copy !== undefined) {
          // An entry written with grace, past its TTL: served as any graced read would be.
          handedOver = true;
          return this.fillResilient(key, factory, options, this.defaults, flight, t0, undefined, r);
        }
        seen = r.seen;
        marks = r.marks;
      }
      if (t0 >= 0) this.sampled(t0, 'getOrSet', ctx.l2 ? 'l2' : 'l1');
      const value = await factory();
      await this.store(key, value, options, undefined, flight, seen, marks, undefined);
      return value;
    } finally {
      lease?.release();
      if (!handedOver) ctx.flights.end(key, flight);
    }
  }

  /**
   * The fill read with the fill lock (distributed-lock.ts), one factory run per key across instances: the lock is
   * asked for in the read; when another instance holds it, settle() waits for its value (or the lock) and reads
   * again. A copy (stale, or due for an early refresh) is answered at once instead: its refresh asks for the lock
   * without waiting (runFactory).
   */
  private async lockedRead(key: string, eagerRefresh: number, options: Options, flight: Flight): Promise<{ read: FillRead; lease?: FillLease }> {
    const lock = this.locks?.attempt(key, options);
    const read = await this.stack.readForFill(key, eagerRefresh, lock);
    if (lock === undefined) return { read };
    if (read.copy === undefined) return (this.locks as FillLocks).settle(key, read, lock, flight);
    (this.locks as FillLocks).abandon(key);
    return { read };
  }

  /**
   * The fill with a policy: `held` is the copy L1 had (past its own TTL, or stale), `read` a lookup already made;
   * `answered`: the caller already answered from L1 (a background refresh), so only the run is counted here.
   * Resolves to what the callers get; the factory's run and its store go on after that when they must.
   */
  async fillResilient<T>(key: string, factory: () => T | Promise<T>, options: Options, policy: CallPolicy, flight: Flight, t0: number, held?: HeldCopy, read?: FillRead, answered = false): Promise<T> {
    const ctx = this.ctx;
    let run: Promise<T> | undefined;
    let lease: FillLease | undefined;
    try {
      if (read === undefined && ctx.l2) ({ read, lease } = await this.lockedRead(key, policy.eagerRefresh, options, flight));
      if (t0 >= 0) this.sampled(t0, 'getOrSet', ctx.l2 ? 'l2' : 'l1');
      if (read !== undefined && read.value !== undefined && read.copy === undefined) {
        flight.from = read.tier ?? (ctx.l2 as RedisTier).name;
        return read.value as T;
      }
      // L2's copy is at least as new as the one L1 held.
      let copy = read?.copy ?? held;
      if (flight.stale) copy = undefined;
      const allowStale = options?.grace !== false;
      // Fail-safe acts once per run: after the hard timeout, or when the factory fails, whichever comes first.
      const failSafe = { done: false };
      const background = (read !== undefined && read.value !== undefined) || (copy !== undefined && copy.stale && allowStale);
      run = this.runFactory(key, factory, options, policy, flight, read, copy, failSafe, lease, background);
      lease = undefined;
      if (read !== undefined && read.value !== undefined) {
        // Fresh, and due for an early refresh: answered now, refreshed in the background.
        ctx.n.resilience.refreshes++;
        flight.from = read.tier ?? (ctx.l2 as RedisTier).name;
        run.catch(ignore);
        return read.value as T;
      }
      if (copy !== undefined && copy.stale && allowStale) {
        ctx.n.resilience.refreshes++;
        flight.answeredStale = true;
        if (!answered) ctx.n.resilience.staleServed++;
        run.catch(ignore);
        return copy.value as T;
      }
      return await this.answer(key, run, policy, flight, copy, failSafe);
    } finally {
      // Nothing started: the flight is over now. Otherwise it ends with the run (runFactory).
      if (run === undefined) {
        lease?.release();
        ctx.flights.end(key, flight);
      }
    }
  }

  /** The factory's run to its end: its result stored, or its failure met with fail-safe. Ends the flight. */
  /**
   * `background`: a refresh behind an answer already given. It asks for the fill lock first, without waiting: when
   * another instance holds it (refreshing the same key), this one leaves the refresh to it and resolves to the copy.
   */
  private async runFactory<T>(
    key: string,
    factory: () => T | Promise<T>,
    options: Options,
    policy: CallPolicy,
    flight: Flight,
    read: FillRead | undefined,
    copy: HeldCopy | undefined,
    failSafe: { done: boolean },
    lease: FillLease | undefined,
    background: boolean,
  ): Promise<T> {
    const ctx = this.ctx;
    let replaces = copy?.replaces;
    try {
      if (background && lease === undefined && this.locks !== undefined && read?.seen !== undefined) {
        const taken = await this.locks.tryLock(key, options);
        if (taken === false) return copy?.value as T;
        lease = taken;
        if (lease !== undefined) {
          // The lock may have come free because another instance just stored its refresh: read again first.
          const again = await this.stack.readForFill(key, policy.eagerRefresh);
          if (again.value !== undefined && again.copy === undefined) return again.value as T;
          read = again;
          // What the store replaces is what this read found (another instance may have written since).
          replaces = again.copy?.replaces;
        }
      }
      const value = await factory();
      await this.store(key, value, options, policy, flight, read?.seen, read?.marks, replaces);
      return value;
    } catch (err) {
      if (copy !== undefined) {
        ctx.n.resilience.refreshFailures++;
        if (policy.failSafe && !flight.stale && !failSafe.done) {
          failSafe.done = true;
          ctx.n.resilience.failSafe++;
          ctx.log('warn', 'fail-safe', `getOrSet("${key}"): the factory failed (${err instanceof Error ? err.message : String(err)}); a stale copy is served instead`);
          this.keepFailSafe(key, copy, policy, flight);
        }
      }
      throw err;
    } finally {
      lease?.release();
      ctx.flights.end(key, flight);
    }
  }

  /**
   * What callers waiting on the factory get: its result; with a copy, that copy after the soft timeout or when
   * the factory fails (fail-safe); past the hard timeout, the copy or a CacheFactoryTimeoutError. An invalidation
   * of the key meanwhile withdraws the copy.
   */
  private answer<T>(key: string, run: Promise<T>, policy: CallPolicy, flight: Flight, copy: HeldCopy | undefined, failSafeRun: { done: boolean }): Promise<T> {
    const ctx = this.ctx;
    const failSafe = copy !== undefined && policy.failSafe;
    if (policy.soft === 0 && policy.hard === 0 && !failSafe) return run;
    return new Promise<T>((resolve, reject) => {
      let open = true;
      let soft: NodeJS.Timeout | undefined;
      let hard: NodeJS.Timeout | undefined;
      const close = (): boolean => {
        if (!open) return false;
        open = false;
        if (soft) clearTimeout(soft);
        if (hard) clearTimeout(hard);
        return true;
      };
      const serveCopy = (): boolean => {
        if (copy === undefined || flight.stale || !close()) return false;
        ctx.n.resilience.staleServed++;
        flight.answeredStale = true;
        resolve(copy.value as T);
        return true;
      };
      if (copy !== undefined && policy.soft > 0) {
        soft = setTimeout(() => {
          if (serveCopy()) ctx.n.resilience.softTimeouts++;
        }, policy.soft);
        soft.unref();
      }
      if (policy.hard > 0) {
        hard = setTimeout(() => {
          if (!open) return;
          ctx.n.resilience.hardTimeouts++;
          if (failSafe && serveCopy()) {
            if (!failSafeRun.done) {
              failSafeRun.done = true;
              ctx.n.resilience.failSafe++;
              this.keepFailSafe(key, copy, policy, flight);
            }
            return;
          }
          close();
          reject(new CacheFactoryTimeoutError(key, policy.hard));
        }, policy.hard);
        hard.unref();
      }
      run.then(
        (value) => {
          if (close()) resolve(value);
        },
        (err: unknown) => {
          if (!open) return;
          // runFactory counted and logged it, and kept the copy.
          if (failSafe && serveCopy()) return;
          close();
          reject(err);
        },
      );
    });
  }

  /**
   * Fail-safe: the copy a failing or hung factory left callers with is kept in L1, fresh for failSafeBackoff (no
   * call reaches the source meanwhile) and there for failSafeTtl. Never past what could name it in a tag
   * index (keepUntil, unless L1 holds its tags itself), never after an invalidation of the key.
   */
  private keepFailSafe(key: string, copy: HeldCopy, policy: CallPolicy, flight: Flight): void {
    const ctx = this.ctx;
    const l1 = ctx.l1;
    if (!l1 || ctx.closed || flight.stale || !ctx.l1Trusted || !l1.admits(key)) return;
    const now = Date.now();
    let keep = Math.max(policy.failSafeTtl, policy.failSafeBackoff);
    if (copy.tags === undefined) keep = copy.keepUntil > now ? Math.min(keep, copy.keepUntil - now) : 0;
    if (keep <= 0) return;
    const until = now + Math.min(policy.failSafeBackoff, keep);
    l1.graced = true;
    l1.set(key, new GracedEntry(ctx.protection.toStored(copy.value), copy.createdAt, until, until), keep, copy.tags, 1);
  }

  /** A fill's result into the tiers: fenced where the lookup could read what to check against, else as a write. */
  private async store(key: string, value: unknown, options: Options, policy: CallPolicy | undefined, flight: Flight, seen: FillSeen | undefined, marks: Array<FillMark | undefined> | undefined, replaces: string | undefined): Promise<void> {
    const ctx = this.ctx;
    if (!ctx.options.readThrough || ctx.closed) return;
    if (flight.stale) {
      // This instance already heard of an invalidation (its own, or another's through the bus): not stored.
      ctx.n.fillsRefused++;
    } else if (!ctx.l2 || seen === undefined) await this.writes.storeUnfenced(key, value, options, !!ctx.l2, policy);
    else await this.storeFenced(key, value, options, policy, seen, flight, marks, replaces);
  }

  /** Stores a fill's value in Redis only if no invalidation overtook it, and in L1 only once Redis took it. */
  private async storeFenced(key: string, value: unknown, options: Options, policy: CallPolicy | undefined, seen: FillSeen, flight: Flight, marks: Array<FillMark | undefined> | undefined, replaces: string | undefined): Promise<void> {
    const ctx = this.ctx;
    if (!this.writes.storable(value)) return;
    const w = this.writes.prepare(key, value, options, policy);
    if (performance.now() - seen.startedAt > ctx.options.l2.fillWindow) {
      // Its fence may have expired: an invalidation it missed would not be seen.
      ctx.n.fillsRefused++;
      return;
    }
    // Each lower tier checks its own mark (lower-tiers.ts), so these go beside the L2 store, not after it. A
    // refresh read L2 only: the tiers below may hold the entry it replaces, and drop it (a miss is never stale).
    const below = replaces !== undefined ? ctx.lower?.deleteKeys([key]) : marks && ctx.lower?.storeFill(w, marks);
    const l2 = ctx.l2 as RedisTier;
    const fenceKey = fenceKeyOf(ctx.reserved.fencePrefix, w.pkey);
    // A refresh replaces the very entry it read (still there unchanged), where a fill needs the key absent.
    const r = await (replaces === undefined ? l2.storeFill(w, fenceKey, ctx.reserved.genKey, seen) : l2.replaceFill(w, fenceKey, ctx.reserved.genKey, seen, replaces));
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
