import { EventEmitter } from 'node:events';
import type { TieredCache } from '../core/tiered-cache';
import { isValidKey, keyError } from '../core/keys/cache-key';
import { BackgroundRefreshes, type RefreshOutcome } from './background-refresh';
import type { CacheSettings } from './compat-options';
import { callTtl, EXPIRED, NO_EXPIRY, NO_EXPIRY_FLOOR } from './ttl';

/** An entry with its expiry, as `wrap(..., { raw: true })` returns it (Keyv's raw form). */
export interface StoredDataRaw<T> {
  value?: T;
  /** Epoch ms; undefined when the entry does not expire. */
  expires?: number;
}

/** A TTL or refresh threshold: milliseconds, or a function of the value. */
export type ValueOrFunction<T> = number | ((value: T) => number);

export interface WrapOptions<T> {
  ttl?: ValueOrFunction<T>;
  /** A hit with less TTL left than this (ms) is answered and refreshed in the background. */
  refreshThreshold?: ValueOrFunction<T>;
}

export interface WrapOptionsRaw<T> extends WrapOptions<T> {
  raw: true;
}

/** The events of cache-manager 7, with the payloads it emits for a cache of one store ('primary'). */
export interface CacheEvents {
  get: (data: { key: string; value?: unknown; store?: string; error?: unknown }) => void;
  mget: (data: { keys: string[]; values?: unknown[]; error?: unknown }) => void;
  ttl: (data: { key: string; value?: StoredDataRaw<unknown>; error?: unknown }) => void;
  set: (data: { key: string; value: unknown; store?: string; error?: unknown }) => void;
  mset: (data: { list: Array<{ key: string; value: unknown; ttl?: number }>; error?: unknown }) => void;
  del: (data: { key: string; error?: unknown }) => void;
  mdel: (data: { keys: string[]; error?: unknown }) => void;
  clear: (error?: unknown) => void;
  refresh: (data: { key: string; value: unknown; error?: unknown }) => void;
}

/** What one wrap() read found, shared by the calls for that key that overlapped it. */
interface WrapRead {
  value: unknown;
  /** Epoch ms, undefined (no expiry), or UNREAD (nobody needed it). */
  expires: number | undefined | typeof UNREAD;
}

const UNREAD = Symbol('unread');
const STORE = 'primary';

/** Thrown out of a wrap() factory so the engine hands the value back without storing it. */
class Unstored {
  constructor(readonly value: unknown) {}
}

/** The parts of a Cache that this package's module, factory and interceptor use; not public API. */
export interface CacheInternals {
  readonly settings: CacheSettings;
  /** Connects the engine (bounded by redis.connectTimeout); operations made meanwhile wait for it. */
  connect(): Promise<boolean>;
  /** Closes the engine and runs the onClose hooks; idempotent. */
  close(): Promise<void>;
  onClose(fn: () => void): void;
  emit<E extends keyof CacheEvents>(event: E, ...payload: Parameters<CacheEvents[E]>): void;
}

const INTERNALS = new WeakMap<Cache, CacheInternals>();

export function cacheInternals(cache: Cache): CacheInternals {
  const i = INTERNALS.get(cache);
  if (i === undefined) throw new TypeError('not a nestjs-tiered-cache/compat Cache');
  return i;
}

const BOUND = ['get', 'mget', 'ttl', 'set', 'mset', 'del', 'mdel', 'clear', 'wrap', 'on', 'off', 'disconnect', 'cacheId'] as const;

/**
 * cache-manager 7's `Cache` on the tiered engine: same methods, arguments, results and events. Created by
 * `createCache()` or `CacheModule`; also the class token `Cache` that Nest injects it by. The engine itself is
 * `tiered` (tags, patterns, stats, getOrSet with its resilience options).
 *
 * The methods are bound, so `const { get } = cache` works as with cache-manager's plain object.
 */
export class Cache {
  /** The engine behind this cache. */
  readonly tiered: TieredCache;
  readonly #settings: CacheSettings;
  readonly #events = new EventEmitter();
  readonly #wraps = new Map<string, Promise<WrapRead>>();
  readonly #refreshes: BackgroundRefreshes;
  readonly #onClose: Array<() => void> = [];
  #gate: Promise<boolean> | undefined;
  #connected = false;
  #closing: Promise<void> | undefined;

  /** Use createCache() or CacheModule: they check the options and connect the engine. */
  constructor(engine: TieredCache, settings: CacheSettings) {
    this.tiered = engine;
    this.#settings = settings;
    this.#refreshes = new BackgroundRefreshes(engine, (k, v, ttl) => this.set(k, v, ttl), (o) => this.#refreshed(o));
    const self = this as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const name of BOUND) self[name] = self[name].bind(this);
    INTERNALS.set(this, {
      settings,
      connect: () => this.#connect(),
      close: () => this.#close(),
      onClose: (fn) => void this.#onClose.push(fn),
      emit: (event, ...payload) => void this.#events.emit(event, ...payload),
    });
  }

  /**
   * Not available: this cache has no Keyv stores. Its tiers are configured with `tiered` (`tiered.l1`,
   * `tiered.redis`, `tiered.tiers`) and reached through `tiered` (the engine).
   */
  get stores(): never {
    throw new TypeError('nestjs-tiered-cache/compat: Cache has no Keyv `stores`; its tiers are configured with the `tiered` option and reached through `cache.tiered`');
  }

  cacheId(): string {
    return this.#settings.cacheId;
  }

  // ---------------------------------------------------------------- reads

  /** The value, `null` when null was cached, undefined on a miss. Never rejects: a failure is a miss and a `get` event with `error`. */
  get<T>(key: string): Promise<T | undefined> {
    if (this.#gate !== undefined) return this.#gate.then(() => this.#get<T>(key));
    return this.#get<T>(key);
  }

  #get<T>(key: string): Promise<T | undefined> {
    if (!isValidKey(key)) {
      this.#emit('get', { key, error: keyError(key) });
      return Promise.resolve(undefined);
    }
    return this.tiered.get<T>(key).then(
      (value) => {
        if (value !== undefined && this.#events.listenerCount('get') > 0) this.#events.emit('get', { key, value, store: STORE });
        return value;
      },
      (error: unknown) => {
        this.#emit('get', { key, error });
        return undefined;
      },
    );
  }

  /** Values in the order of `keys` (undefined for misses). Never rejects. */
  async mget<T>(keys: string[]): Promise<Array<T | undefined>> {
    if (this.#gate !== undefined) await this.#gate;
    let values: Array<T | undefined>;
    try {
      values = await this.tiered.mget<T>(keys);
    } catch (error) {
      this.#emit('mget', { keys, error });
      values = keys.map(() => undefined);
    }
    this.#emit('mget', { keys, values });
    return values;
  }

  /** When `key` expires (epoch ms); undefined when it is absent or does not expire. Never rejects. */
  async ttl(key: string): Promise<number | undefined> {
    if (this.#gate !== undefined) await this.#gate;
    try {
      const left = await this.tiered.ttl(key);
      if (left === undefined) return undefined;
      const expires = expiryOf(left);
      if (this.#events.listenerCount('ttl') > 0) this.#events.emit('ttl', { key, value: { value: await this.tiered.get(key), expires } });
      return expires;
    } catch (error) {
      this.#emit('ttl', { key, error });
      return undefined;
    }
  }

  // ---------------------------------------------------------------- writes

  /**
   * Stores `value` for `ttl` ms (default: the `ttl` option; 0: no expiry) and resolves to it. `undefined`, or
   * a negative TTL, removes the key instead (cache-manager stores an entry that reads as absent).
   */
  async set<T>(key: string, value: T, ttl?: number): Promise<T> {
    if (this.#gate !== undefined) await this.#gate;
    try {
      const t = callTtl(ttl, `set("${key}")`);
      if (value === undefined || t === EXPIRED) {
        if (!isValidKey(key)) throw keyError(key);
        await this.tiered.delete(key);
      } else {
        await this.tiered.set(key, value, t === undefined ? undefined : { ttl: t });
      }
    } catch (error) {
      this.#emit('set', { key, value, error });
      throw error;
    }
    if (this.#events.listenerCount('set') > 0) {
      this.#events.emit('set', { key, value, store: STORE });
      this.#events.emit('set', { key, value });
    }
    return value;
  }

  /** Stores every entry (each with its own `ttl`); resolves to the list with the default TTL filled in. */
  async mset<T>(list: Array<{ key: string; value: T; ttl?: number }>): Promise<Array<{ key: string; value: T; ttl?: number }>> {
    if (this.#gate !== undefined) await this.#gate;
    const out = list.map(({ key, value, ttl }) => ({ key, value, ttl: ttl ?? this.#settings.ttl }));
    try {
      // The last entry of a key wins, as when they are written one after the other.
      const last = new Map<string, { value: T; ttl: number | undefined | typeof EXPIRED }>();
      for (const { key, value, ttl } of list) {
        if (!isValidKey(key)) throw keyError(key);
        last.delete(key);
        last.set(key, { value, ttl: callTtl(ttl, `mset("${key}")`) });
      }
      const removed: string[] = [];
      const byTtl = new Map<number | undefined, Array<[string, T]>>();
      for (const [key, { value, ttl }] of last) {
        if (value === undefined || ttl === EXPIRED) {
          removed.push(key);
          continue;
        }
        let group = byTtl.get(ttl);
        if (group === undefined) byTtl.set(ttl, (group = []));
        group.push([key, value]);
      }
      const writes: Array<Promise<unknown>> = [...byTtl].map(([ttl, entries]) => this.tiered.mset(entries, ttl === undefined ? undefined : { ttl }));
      if (removed.length > 0) writes.push(this.tiered.delete(removed));
      await Promise.all(writes);
    } catch (error) {
      this.#emit('mset', { list: out, error });
      throw error;
    }
    this.#emit('mset', { list: out });
    return out;
  }

  /** Removes `key` from every tier and, through the bus, from every instance's in-process tier. Resolves true. */
  async del(key: string): Promise<boolean> {
    if (this.#gate !== undefined) await this.#gate;
    try {
      if (!isValidKey(key)) throw keyError(key);
      await this.tiered.delete(key);
    } catch (error) {
      this.#emit('del', { key, error });
      throw error;
    }
    this.#emit('del', { key });
    return true;
  }

  async mdel(keys: string[]): Promise<boolean> {
    if (this.#gate !== undefined) await this.#gate;
    try {
      for (const key of keys) if (!isValidKey(key)) throw keyError(key);
      await this.tiered.delete(keys);
    } catch (error) {
      this.#emit('mdel', { keys, error });
      throw error;
    }
    this.#emit('mdel', { keys });
    return true;
  }

  /** Empties this cache's namespace (never the whole Redis database), on every instance. Resolves true. */
  async clear(): Promise<boolean> {
    if (this.#gate !== undefined) await this.#gate;
    try {
      await this.tiered.clear();
    } catch (error) {
      this.#events.emit('clear', error);
      throw error;
    }
    this.#events.emit('clear');
    return true;
  }

  // ---------------------------------------------------------------- wrap

  /**
   * Read-through: the cached value, else what `fn` returns (stored for `ttl`). Concurrent calls for one key share
   * one read and one `fn` run (across instances too, through the engine's fill lock, when Redis is configured).
   * A hit with less than `refreshThreshold` ms left is answered at once and refreshed in the background (a
   * `refresh` event reports the outcome). `{ raw: true }` resolves to `{ value, expires }`.
   */
  wrap<T>(key: string, fn: () => T | Promise<T>, ttl?: ValueOrFunction<T>, refreshThreshold?: ValueOrFunction<T>): Promise<T>;
  wrap<T>(key: string, fn: () => T | Promise<T>, options: WrapOptions<T>): Promise<T>;
  wrap<T>(key: string, fn: () => T | Promise<T>, options: WrapOptionsRaw<T>): Promise<StoredDataRaw<T>>;
  async wrap<T>(key: string, fn: () => T | Promise<T>, ttlOrOptions?: ValueOrFunction<T> | WrapOptions<T> | WrapOptionsRaw<T>, refreshThreshold?: ValueOrFunction<T>): Promise<T | StoredDataRaw<T>> {
    if (this.#gate !== undefined) await this.#gate;
    const o: WrapOptions<T> & { raw?: boolean } =
      ttlOrOptions !== null && typeof ttlOrOptions === 'object' ? ttlOrOptions : { ttl: ttlOrOptions, refreshThreshold };
    let read = this.#wraps.get(key);
    if (read === undefined) {
      read = this.#wrapRead(key, fn, o).finally(() => this.#wraps.delete(key));
      this.#wraps.set(key, read);
    }
    const r = await read;
    if (o.raw !== true) return r.value as T;
    return { value: r.value as T, expires: r.expires === UNREAD ? expiryOf(await this.tiered.ttl(key)) : r.expires };
  }

  async #wrapRead<T>(key: string, fn: () => T | Promise<T>, o: WrapOptions<T> & { raw?: boolean }): Promise<WrapRead> {
    let ran = false;
    let ttl: number | undefined | typeof EXPIRED;
    // Filled in by the factory: the engine reads a fill's options when it stores the value.
    const options: { ttl?: number } = {};
    const value = await this.tiered
      .getOrSet<T>(
        key,
        async () => {
          ran = true;
          const result = await fn();
          ttl = callTtl(runIfFn(o.ttl, result), `wrap("${key}")`);
          if (ttl === EXPIRED) throw new Unstored(result);
          if (ttl !== undefined) options.ttl = ttl;
          return result;
        },
        options,
      )
      .catch((err: unknown) => {
        if (err instanceof Unstored) return err.value as T;
        throw err;
      });
    if (ran) {
      if (value !== undefined && ttl !== EXPIRED && this.#events.listenerCount('set') > 0) {
        this.#events.emit('set', { key, value, store: STORE });
        this.#events.emit('set', { key, value });
      }
      const ms = ttl === EXPIRED ? 0 : (ttl ?? this.tiered.options.entryTtl);
      return { value, expires: ms >= NO_EXPIRY ? undefined : Date.now() + ms };
    }
    // A hit (or the value a fill made elsewhere just now): refreshed early when little of its TTL is left.
    const threshold = runIfFn(o.refreshThreshold, value as T) ?? this.#settings.refreshThreshold;
    const due = typeof threshold === 'number' && threshold > 0;
    if (!due && o.raw !== true) return { value, expires: UNREAD };
    const expires = expiryOf(await this.tiered.ttl(key));
    if (due && expires !== undefined && expires - Date.now() < threshold) {
      this.#refreshes.start(key, fn, (v: T) => runIfFn(o.ttl, v), value);
    }
    return { value, expires };
  }

  #refreshed(outcome: RefreshOutcome): void {
    this.#events.emit('refresh', outcome);
  }

  // ---------------------------------------------------------------- events and lifecycle

  on<E extends keyof CacheEvents>(event: E, listener: CacheEvents[E]): EventEmitter {
    return this.#events.addListener(event, listener);
  }

  off<E extends keyof CacheEvents>(event: E, listener: CacheEvents[E]): EventEmitter {
    return this.#events.removeListener(event, listener);
  }

  /** Writes out what is queued and closes every connection and timer of the engine. */
  async disconnect(): Promise<undefined> {
    await this.#close();
    return undefined;
  }

  #connect(): Promise<boolean> {
    if (this.#connected) return Promise.resolve(true);
    if (this.#gate === undefined) {
      const gate = this.tiered.connect().finally(() => {
        this.#connected = true;
        if (this.#gate === gate) this.#gate = undefined;
      });
      this.#gate = gate;
    }
    return this.#gate;
  }

  #close(): Promise<void> {
    this.#closing ??= (async () => {
      // Closed mid-connect, the engine would leave its connect deadline armed: let the connect settle first.
      if (this.#gate !== undefined) await this.#gate;
      this.#refreshes.close();
      for (const fn of this.#onClose.splice(0)) fn();
      await this.tiered.close();
    })();
    return this.#closing;
  }

  #emit<E extends keyof CacheEvents>(event: E, ...payload: Parameters<CacheEvents[E]>): void {
    this.#events.emit(event, ...payload);
  }
}

function runIfFn<T>(v: ValueOrFunction<T> | undefined, value: T): number | undefined {
  return typeof v === 'function' ? v(value) : v;
}

/** Epoch ms of an entry's expiry from its remaining TTL; undefined when absent or written to never expire. */
function expiryOf(left: number | undefined): number | undefined {
  return left === undefined || left > NO_EXPIRY_FLOOR ? undefined : Date.now() + left;
}
