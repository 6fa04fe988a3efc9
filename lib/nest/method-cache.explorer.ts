import { Injectable, Optional, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants';
import { APP_INTERCEPTOR, ApplicationConfig, DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { CacheManagerService } from './cache-manager.service';
import { getCacheOperations, owningCache, targetCaches, type CacheOperations } from './decorators/cache-operations';
import { CacheRegistry } from './cache-registry';
import { describeCache } from './cache-name';
import { DEFAULT_CACHE_NAME } from './constants';
import type { TieredCache } from '../core/tiered-cache';
import { KeyTemplate } from '../core/keys/key-template';
import { TieredCacheInterceptor } from './http/tiered-cache.interceptor';
import { createMethodWrapper, methodKeyPrefix } from './method-cache.wrapper';
import { engineInternals } from '../core/tiered-cache';

/** Thrown at bootstrap when a decorated method cannot be cached as declared. */
export class CacheDecoratorError extends Error {
  override name = 'CacheDecoratorError';
}

/**
 * Finds @Cacheable / @CacheEvict / @CachePut methods on every provider at module init and installs their
 * wrappers on the instances, so `this.propertyService.findById(id)` is cached whoever calls it. Runs in
 * onModuleInit: before any @OnEvent listener is subscribed, any route is served or any
 * onApplicationBootstrap hook runs. (The cache works before Redis is connected: L2 calls are misses.)
 *
 * Every cache's explorer sees every provider of the app, and installs only the methods its cache owns
 * (see owningCache), so each method is wrapped once, by its cache; a @CacheEvict() naming another cache
 * reaches that cache's engine through the app's CacheRegistry.
 *
 * Controllers are not wrapped: their handlers are cached as HTTP responses by TieredCacheInterceptor,
 * which needs the request (route, query, vary headers), not only the handler's arguments. The explorer
 * only validates them, and warns at bootstrap about decorated handlers the interceptor never sees (a
 * decorator that silently does nothing is the classic cache-manager surprise).
 */
@Injectable()
export class MethodCacheExplorer implements OnModuleInit, OnApplicationBootstrap {
  /** Decorated route handlers with no TieredCacheInterceptor on them, their class or APP_INTERCEPTOR. */
  private unintercepted: string[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly cache: CacheManagerService,
    @Optional() private readonly appConfig?: ApplicationConfig,
    @Optional() private readonly registry?: CacheRegistry,
  ) {}

  onModuleInit(): void {
    const prefixes = new Map<string, unknown>();
    for (const wrapper of this.discovery.getProviders()) this.exploreProvider(wrapper, prefixes);
    const global = this.discovery.getProviders().some(
      (w) => typeof w.token === 'string' && w.token.startsWith(APP_INTERCEPTOR) && isCacheInterceptor(w.metatype ?? w.instance),
    );
    for (const wrapper of this.discovery.getControllers()) this.checkController(wrapper, global);
  }

  /** After main.ts had its chance to call app.useGlobalInterceptors(). */
  onApplicationBootstrap(): void {
    if (this.unintercepted.length === 0) return;
    if (this.appConfig?.getGlobalInterceptors().some(isCacheInterceptor)) return;
    const list = this.unintercepted;
    engineInternals(this.cache.engine).log(
      'warn',
      'decorators:no-interceptor',
      `@Cacheable/@CacheEvict on route handler${list.length > 1 ? 's' : ''} ${list.slice(0, 5).join(', ')}${list.length > 5 ? ` and ${list.length - 5} more` : ''} ` +
        'will do nothing: apply TieredCacheInterceptor (@UseInterceptors(TieredCacheInterceptor) on the controller, or APP_INTERCEPTOR)',
    );
  }

  private exploreProvider(wrapper: InstanceWrapper, prefixes: Map<string, unknown>): void {
    const isStatic = wrapper.isDependencyTreeStatic() && !wrapper.isTransient;
    const instance: unknown = isStatic ? wrapper.instance : undefined;
    const proto = instance !== null && typeof instance === 'object' ? Object.getPrototypeOf(instance) : (wrapper.metatype as { prototype?: unknown } | null)?.prototype;
    if (proto === null || typeof proto !== 'object') return;
    for (const name of this.scanner.getAllMethodNames(proto)) {
      const ops = getCacheOperations((proto as Record<string, unknown>)[name]);
      if (!ops) continue;
      if (!this.owns(ops)) continue;
      const where = `${ops.className}.${ops.methodName}`;
      if (!isStatic) {
        throw new CacheDecoratorError(
          `${where} is cached but its provider is ${wrapper.isTransient ? 'transient' : 'request-scoped (itself or through a dependency)'}. ` +
            'Cached methods must live on singleton providers: move the method to a singleton service, or pass what varies per request as an argument (it becomes part of the key).',
        );
      }
      if (instance === null || typeof instance !== 'object') continue;
      checkAsync(ops, proto, name);
      const prefix = methodKeyPrefix(ops);
      if (prefix !== undefined) {
        const owner = prefixes.get(prefix);
        if (owner !== undefined && owner !== ops.original) {
          throw new CacheDecoratorError(
            `Two different methods would share the default keys "${prefix}:…" (two classes named ${ops.className}?). Give one of them @Cacheable({ keyPrefix }).`,
          );
        }
        prefixes.set(prefix, ops.original);
      }
      // An instance reachable under several tokens (aliases, re-exports) is wrapped once.
      if (Object.prototype.hasOwnProperty.call(instance, ops.slot)) continue;
      const installed = createMethodWrapper(ops, (cache) => this.engineOf(cache));
      try {
        Object.defineProperty(instance, ops.slot, { value: installed, configurable: true, enumerable: false, writable: false });
      } catch (err) {
        throw new CacheDecoratorError(`${where}: cannot install the cache wrapper on the instance (${(err as Error).message})`);
      }
    }
  }

  /**
   * Whether this cache installs (or, on a controller, checks) the method. Every explorer first checks that
   * each cache the method names exists: a method whose cache is unknown has no owner to report it.
   */
  private owns(ops: CacheOperations): boolean {
    for (const name of targetCaches(ops)) {
      if (name === this.cache.name || this.registry?.get(name) !== undefined) continue;
      const known = this.registry?.names() ?? [this.cache.name];
      throw new CacheDecoratorError(
        `${ops.className}.${ops.methodName} is cached in ${describeCache(name)}, which this app does not register ` +
          `(caches: ${known.map((n) => `'${n}'`).join(', ')}): ` +
          (name === DEFAULT_CACHE_NAME
            ? 'register it (TieredCacheModule.forRoot() without a name) or give the decorator a cache option'
            : `register it (TieredCacheModule.forRoot({ name: '${name}', … })) or fix the decorator's cache option`),
      );
    }
    return owningCache(ops) === this.cache.name;
  }

  private engineOf(cache: string | undefined): TieredCache {
    if (cache === undefined || cache === this.cache.name) return this.cache.engine;
    // owns() checked every name the method uses.
    return this.registry!.get(cache)!.engine;
  }

  private checkController(wrapper: InstanceWrapper, globalInterceptor: boolean): void {
    const proto = (wrapper.metatype as { prototype?: unknown } | null)?.prototype;
    if (proto === null || typeof proto !== 'object') return;
    const classIntercepted = globalInterceptor || hasCacheInterceptor(wrapper.metatype);
    for (const name of this.scanner.getAllMethodNames(proto)) {
      const handler = (proto as Record<string, unknown>)[name];
      const ops = getCacheOperations(handler);
      if (!ops) continue;
      if (!this.owns(ops)) continue;
      const where = `${ops.className}.${ops.methodName}`;
      if (!classIntercepted && !hasCacheInterceptor(handler)) this.unintercepted.push(where);
      if (ops.put) {
        throw new CacheDecoratorError(`@CachePut() on route handler ${where} is not supported: put it on the provider method the handler calls`);
      }
      const templates: string[] = [];
      const c = ops.cacheable;
      if (c && typeof c.key === 'string') templates.push(c.key);
      for (const t of Array.isArray(c?.tags) ? c.tags : []) templates.push(t);
      for (const e of ops.evict) {
        for (const list of [e.keys, e.patterns, e.tags]) {
          if (typeof list === 'string') templates.push(list);
          else if (Array.isArray(list)) for (const t of list) if (typeof t === 'string') templates.push(t);
        }
      }
      for (const t of templates) {
        const positional = KeyTemplate.parse(t, where).roots.find((r) => /^\d+$/.test(r));
        if (positional !== undefined) {
          throw new CacheDecoratorError(
            `${where}: template '${t}' uses position {${positional}}; on route handlers templates name route params or query parameters, e.g. {id}`,
          );
        }
      }
    }
  }
}

function isCacheInterceptor(x: unknown): boolean {
  return x === TieredCacheInterceptor || x instanceof TieredCacheInterceptor || (typeof x === 'function' && x.prototype instanceof TieredCacheInterceptor);
}

function hasCacheInterceptor(target: unknown): boolean {
  if (target === null || (typeof target !== 'object' && typeof target !== 'function')) return false;
  const list: unknown = Reflect.getMetadata(INTERCEPTORS_METADATA, target);
  return Array.isArray(list) && list.some(isCacheInterceptor);
}

function checkAsync(ops: CacheOperations, proto: object, name: string): void {
  const ctor = (ops.original as { constructor?: { name?: string } }).constructor?.name;
  if (ctor === 'AsyncFunction') return;
  const returnType: unknown = Reflect.getMetadata('design:returntype', proto, name);
  if (returnType === Promise) return;
  const which = ops.cacheable ? '@Cacheable()' : ops.put ? '@CachePut()' : '@CacheEvict()';
  throw new CacheDecoratorError(
    `${which} on ${ops.className}.${ops.methodName}: the method is not async. A cached call may wait for Redis, so it must return a Promise: ` +
      'declare it `async` (or give it a Promise return type).',
  );
}
