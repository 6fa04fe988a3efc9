import type { SetOptions } from './tiered-cache-options.interface';
import type { CacheStack } from './cache-stack';
import { parseCallTtl, type Duration } from './duration';
import { callGrace, withGrace, type CallPolicy } from './get-set/resilience-policy';
import type { EngineContext, PreparedWrite } from './engine-context';
import { encodeEntry } from './entry-envelope';
import { CacheSerializationError } from './errors';
import { checkKey, fenceKeyOf } from './keys/cache-key';
import type { RedisTier } from './tiers/redis.tier';

const FALSE: Promise<boolean> = Promise.resolve(false);

/**
 * Writes: every value is checked, encoded and sized before anything is written (one bad value rejects a
 * whole mset), then handed to the stack. A local write also cancels fills of its key that are running, and
 * is announced so that other instances drop their copies.
 */
export class WritePath {
  constructor(
    private readonly ctx: EngineContext,
    private readonly stack: CacheStack,
  ) {}

  /** Whether `value` is stored at all (`undefined` never is; `null` only with cacheNullValues). */
  storable(value: unknown): boolean {
    return value !== undefined && (value !== null || this.ctx.options.cacheNullValues);
  }

  /** Not async: one promise per write-through set (the L2 reply mapped to true), none for the rest. */
  set(key: string, value: unknown, options: SetOptions<never> | undefined): Promise<boolean> {
    if (options?.tier !== undefined && options.tier !== this.ctx.options.tierNames.l1) return this.#writeFrom(key, value, options, options.tier);
    return this.#write(key, value, options, false, false);
  }

  /**
   * `set(..., { tier })`: that tier and the ones below it, never above; the copies above are removed first
   * (L2's with a fence, as a delete does), so no older value there shadows the new one.
   */
  async #writeFrom(key: string, value: unknown, options: SetOptions<never>, tier: string): Promise<boolean> {
    const ctx = this.ctx;
    const names = [ctx.options.tierNames.l2, ...ctx.options.lower.map((t) => t.name)];
    const at = ctx.l2 ? names.indexOf(tier) : -1;
    if (at < 0) throw new TypeError(`set(..., { tier: ${JSON.stringify(tier)} }): no such tier (tiers: ${[ctx.options.tierNames.l1, ...(ctx.l2 ? names : [])].join(', ')})`);
    if (!this.storable(value)) return false;
    const w = this.prepare(key, value, options);
    const l2 = ctx.l2 as RedisTier;
    this.overtake(key);
    ctx.l1?.delete(key);
    ctx.n.sets++;
    if (ctx.recovery !== undefined && !ctx.recovery.idle) ctx.recovery.supersede(w.pkey);
    if (at === 0) {
      await l2.set(w, ctx.recovery && this.stack.lostL2);
    } else {
      await l2.del([w.pkey], { keys: [fenceKeyOf(ctx.reserved.fencePrefix, w.pkey)], ttl: ctx.options.l2.fillWindow });
      await ctx.lower?.write([w], at - 1);
    }
    ctx.emit({ type: 'overwrite', keys: [key] });
    return true;
  }

  /**
   * A fill's value, when it cannot be fenced (no Redis, or Redis could not be asked): stored like a write,
   * but neither cancelling other fills nor announced (nothing changed at the source).
   */
  storeUnfenced(key: string, value: unknown, options: SetOptions<never> | undefined, l1Only: boolean, policy?: CallPolicy): Promise<boolean> {
    return this.#write(key, value, options, true, l1Only, policy);
  }

  #write(key: string, value: unknown, options: SetOptions<never> | undefined, fromFill: boolean, l1Only: boolean, policy?: CallPolicy): Promise<boolean> {
    if (!this.storable(value)) return FALSE;
    let w: PreparedWrite;
    try {
      w = this.prepare(key, value, options, policy);
    } catch (err) {
      return Promise.reject(err);
    }
    const ctx = this.ctx;
    const existed = !fromFill && !ctx.l2 && (ctx.l1?.has(key) ?? false);
    const written = this.stack.writeDown(w, value, l1Only);
    ctx.n.sets++;
    if (!fromFill) {
      this.overtake(key);
      if (existed || ctx.l2) ctx.emit({ type: 'overwrite', keys: [key] });
    }
    return written;
  }

  async setMany(entries: ReadonlyArray<readonly [string, unknown]>, options: SetOptions<never> | undefined): Promise<number> {
    const writes: Array<PreparedWrite & { value: unknown }> = [];
    for (const [key, value] of entries) {
      checkKey(key);
      if (!this.storable(value)) continue;
      writes.push({ ...this.prepare(key, value, options), value });
    }
    for (const w of writes) this.overtake(w.key);
    this.ctx.n.sets += writes.length;
    await this.stack.writeManyDown(writes);
    if (writes.length > 0) this.ctx.emit({ type: 'overwrite', keys: writes.map((w) => w.key) });
    return writes.length;
  }

  /** Validates, encodes (codec, then the entry envelope) and sizes a value; throws before anything is written. */
  /**
   * `policy`: a getOrSet's (its grace, and whether it refreshes early, which needs the logical expiry written
   * even without grace).
   */
  prepare(key: string, value: unknown, options: SetOptions<never> | undefined, policy?: CallPolicy): PreparedWrite {
    const o = this.ctx.options;
    const ttlOption = options?.ttl;
    // Adaptive TTL: a function of the value, called once, before anything is written.
    const ttl = parseCallTtl('ttl', typeof ttlOption === 'function' ? (ttlOption as (v: unknown) => Duration)(value) : ttlOption, o.entryTtl);
    // With L2, l1.ttl bounds how stale one instance's copy can get; L1-only, the entry's ttl is its lifetime.
    const l1Ttl = Math.min(parseCallTtl('l1Ttl', options?.l1Ttl, this.ctx.l2 ? o.l1.ttl : ttl), ttl);
    const grace = policy ? policy.grace : callGrace(o.resilience, options);
    const createdAt = Date.now();
    const logical = grace > 0 || (policy !== undefined && policy.eagerRefresh > 0);
    const tags = options?.tags;
    if (tags !== undefined) {
      if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t.length === 0)) {
        throw new TypeError(`tags for "${key}" must be an array of non-empty strings`);
      }
    }
    const payload = o.codec.encode(value, key);
    if (typeof payload !== 'string') throw new CacheSerializationError(key, `codec ${o.codec.name} did not return a string`);
    // A UTF-16 unit is 1 to 3 UTF-8 bytes: the exact count is only needed when 3 per unit could pass a limit.
    const max = o.maxValueBytes;
    const bytes = payload.length * 3 > max || o.l1.maxBytes !== undefined ? Buffer.byteLength(payload, 'utf8') : payload.length;
    if (bytes > max) {
      throw new CacheSerializationError(key, `serialized size ${bytes} bytes exceeds maxValueBytes ${max}`);
    }
    const tagged = tags !== undefined && tags.length > 0;
    return {
      key,
      bytes,
      pkey: this.ctx.prefix + key,
      // Sizes count the codec's payload, not the envelope's header (a dozen bytes) wrapped around it here.
      payload: encodeEntry(payload, logical ? { createdAt, staleAt: createdAt + ttl } : { createdAt }),
      ttl: withGrace(ttl, grace),
      l1Ttl: withGrace(l1Ttl, grace),
      l1Fresh: l1Ttl,
      grace,
      createdAt,
      staleAt: logical ? createdAt + ttl : undefined,
      callTtl: options?.ttl === undefined ? undefined : ttl,
      tags: tagged ? tags : undefined,
      tagKeys: tagged ? tags.map((t) => this.ctx.reserved.tagPrefix + t) : undefined,
    };
  }

  /** A local write of `key`: a fill of it that is running, or a read that began before, must not store. */
  private overtake(key: string): void {
    this.ctx.readGuard.dropKey(key);
    this.ctx.flights.markStale(key);
  }
}
