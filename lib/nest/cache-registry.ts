import { Global, Injectable, Module, Optional } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { TieredCacheOptionsError } from '../core/errors';
import type { TieredCache } from '../core/tiered-cache';
import { describeCache } from './cache-name';
import { DEFAULT_CACHE_NAME, TIERED_CACHE_NAME } from './constants';

/** What the registry knows of a cache (CacheManagerService is one). */
export interface RegisteredCache {
  readonly name: string;
  readonly engine: TieredCache;
}

/**
 * The caches of one Nest app, by name. One instance per app (a global module every TieredCacheModule imports),
 * so two apps in one process never see each other's caches. Each CacheManagerService registers itself when it
 * is constructed, which is where a duplicate name or an overlapping key prefix fails the boot, before any
 * cache connects. Explorers, the interceptor, health and forFeature look caches up here by name.
 */
@Injectable()
export class CacheRegistry {
  private readonly caches = new Map<string, RegisteredCache>();
  private readonly waiting = new Map<string, Array<(cache: RegisteredCache) => void>>();
  // Per-cache companions (its health indicator, …), kept here so this file needs none of their types.
  private readonly companions = new Map<string, Map<symbol, unknown>>();

  constructor(@Optional() private readonly modules?: ModulesContainer) {}

  register(cache: RegisteredCache): void {
    const existing = this.caches.get(cache.name);
    if (existing === cache) return;
    if (existing !== undefined) {
      throw new TieredCacheOptionsError(
        'name',
        cache.name,
        `this app already has ${describeCache(cache.name)} (two TieredCacheModule.forRoot() calls with that name): give each cache its own name, ` +
          'or register it once (isGlobal: true, or TieredCacheModule.forFeature() where it is needed)',
      );
    }
    for (const other of this.caches.values()) checkPrefixes(cache, other);
    this.caches.set(cache.name, cache);
    const waiters = this.waiting.get(cache.name);
    this.waiting.delete(cache.name);
    for (const resolve of waiters ?? []) resolve(cache);
  }

  get(name: string): RegisteredCache | undefined {
    return this.caches.get(name);
  }

  /** Names of the registered caches: the default one first, then the others alphabetically. */
  names(): string[] {
    return byName([...this.caches.keys()]);
  }

  /**
   * The cache of that name once it is constructed (providers of different modules are built concurrently, so
   * a feature module's provider may ask before the root module built its cache). Rejects at once when no
   * TieredCacheModule of the app declares the name, so a typo fails the boot instead of waiting forever.
   */
  whenRegistered(name: string, where: string): Promise<RegisteredCache> {
    const cache = this.caches.get(name);
    if (cache !== undefined) return Promise.resolve(cache);
    const declared = this.declaredNames();
    if (declared !== undefined && !declared.includes(name)) {
      return Promise.reject(
        new TieredCacheOptionsError(where, name, `this app registers no such cache (${declared.length === 0 ? 'no TieredCacheModule.forRoot() at all' : `caches: ${declared.map((n) => `'${n}'`).join(', ')}`})`),
      );
    }
    return new Promise((resolve) => {
      const list = this.waiting.get(name) ?? [];
      list.push(resolve);
      this.waiting.set(name, list);
    });
  }

  attach(name: string, kind: symbol, value: unknown): void {
    let byKind = this.companions.get(name);
    if (byKind === undefined) this.companions.set(name, (byKind = new Map()));
    byKind.set(kind, value);
  }

  attached<T>(name: string, kind: symbol): T | undefined {
    return this.companions.get(name)?.get(kind) as T | undefined;
  }

  /** The cache names the app's TieredCacheModule instances declare (known from the module graph, before any is built). */
  private declaredNames(): string[] | undefined {
    if (this.modules === undefined) return undefined;
    const out: string[] = [];
    for (const m of this.modules.values()) {
      const value: unknown = m.providers.get(TIERED_CACHE_NAME)?.instance;
      if (typeof value === 'string') out.push(value);
    }
    return byName(out);
  }
}

// Construction order depends on how Nest schedules providers: messages and reports list names in a fixed order.
function byName(names: string[]): string[] {
  return names.sort((a, b) => (a === DEFAULT_CACHE_NAME ? -1 : b === DEFAULT_CACHE_NAME ? 1 : a.localeCompare(b)));
}

/**
 * Two caches whose prefixes overlap and that both keep entries in a shared store would read, clear and
 * receive invalidations (bus channel, CLIENT TRACKING prefix) for each other's keys. Whether two connection
 * settings reach one server cannot be told reliably (URLs, Sentinel, Cluster, DNS), so any two caches with a
 * shared tier must have disjoint prefixes; caches in memory only share nothing.
 */
function checkPrefixes(x: RegisteredCache, y: RegisteredCache): void {
  const shared = (c: RegisteredCache) => c.engine.options.l2.enabled || c.engine.options.lower.length > 0;
  if (!shared(x) || !shared(y)) return;
  const [a, b] = byName([x.name, y.name])[0] === x.name ? [x, y] : [y, x];
  const pa = a.engine.options.keyPrefix;
  const pb = b.engine.options.keyPrefix;
  if (!pa.startsWith(pb) && !pb.startsWith(pa)) return;
  throw new TieredCacheOptionsError(
    'keyPrefix',
    pa,
    `${describeCache(a.name)} and ${describeCache(b.name)} both keep entries outside the process and their key prefixes ` +
      `${JSON.stringify(pa)} and ${JSON.stringify(pb)} ${pa === pb ? 'are the same' : 'overlap'}: each would see, clear and invalidate the other's keys. ` +
      'Give each cache its own keyPrefix (a named cache defaults to "<name>:")',
  );
}

/** Global, so every TieredCacheModule instance of an app (and every forFeature) shares one registry. */
@Global()
@Module({ providers: [CacheRegistry], exports: [CacheRegistry] })
export class TieredCacheRegistryModule {}
