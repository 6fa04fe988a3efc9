import type { Server } from 'node:http';
import { Injectable, Optional } from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost, ModuleRef } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { TieredCache } from '../../core/tiered-cache';
import { CacheManagerService } from '../cache-manager.service';
import { CacheRegistry } from '../cache-registry';
import { DEFAULT_CACHE_NAME } from '../constants';
import { getCacheOperations } from '../decorators/cache-operations';
import { compileCacheable } from '../method-cache.wrapper';
import type { CacheWarmerHandler } from './cache-warmer-options.interface';
import { entryWarm } from './entry-warm';
import { httpWarm } from './http-warm';
import { methodWarm } from './method-warm';
import { CacheWarmerError } from './warmup-errors';
import { WarmupMetadataAccessor } from './warmup-metadata.accessor';
import type { WarmerDefinition } from './warmup.registry';
import type { ResolvedWarmerOptions } from './warmer-options';

/**
 * Finds every `@CacheWarmer` provider of the app (DiscoveryService) and compiles it into a definition: which cache
 * it fills, how one id is warmed (its own `load`, a @Cacheable method, or a GET of a cached route), how an id given
 * as text is parsed. Everything a warmer gets wrong fails the app's start here, naming the warmer.
 */
@Injectable()
export class WarmupExplorer {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly accessor: WarmupMetadataAccessor,
    private readonly moduleRef: ModuleRef,
    private readonly cache: CacheManagerService,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
    @Optional() private readonly caches?: CacheRegistry,
  ) {}

  explore(): WarmerDefinition[] {
    const found = new Map<string, WarmerDefinition>();
    const seen = new Set<unknown>();
    for (const wrapper of this.discovery.getProviders()) {
      // A class provider's own class; a factory or value provider's, through the instance it made.
      const made: unknown = wrapper.isDependencyTreeStatic() ? wrapper.instance : undefined;
      const type = this.accessor.warmerOptions(wrapper.metatype) !== undefined ? wrapper.metatype : (made as { constructor?: unknown } | null | undefined)?.constructor;
      const options = this.accessor.warmerOptions(type);
      if (options === undefined) continue;
      const className = (type as { name: string }).name;
      const where = `warmer "${options.name}" (${className})`;
      if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) {
        throw new CacheWarmerError(`${where} is ${wrapper.isTransient ? 'transient' : 'request-scoped (itself or through a dependency)'}; warmers must be singleton providers`);
      }
      const instance: unknown = wrapper.instance;
      // One instance reachable under several tokens (an alias, a re-export) is one warmer.
      if (instance === null || typeof instance !== 'object' || seen.has(instance)) continue;
      seen.add(instance);
      const other = found.get(options.name);
      if (other !== undefined) throw new CacheWarmerError(`two warmers are named "${options.name}" (${other.className} and ${className}); names must be unique in the app`);
      found.set(options.name, this.compile(options, className, instance as CacheWarmerHandler, where));
    }
    return [...found.values()];
  }

  private compile(options: ResolvedWarmerOptions, className: string, handler: CacheWarmerHandler, where: string): WarmerDefinition {
    const engine = this.engineOf(options, where);
    const hasKeys = typeof handler.keys === 'function';
    if ((options.cron !== undefined || options.onBootstrap !== undefined) && !hasKeys) {
      throw new CacheWarmerError(`${where} has ${options.cron !== undefined ? 'a cron' : 'onBootstrap'} but no keys() method: a run without ids needs keys() to say what to warm`);
    }
    const ownParse = typeof handler.parseId === 'function' ? (text: string) => (handler.parseId as (t: string) => unknown).call(handler, text) : undefined;
    const base = { name: options.name, className, options, handler, engine, precheck: (): string | undefined => undefined };

    if (options.method !== undefined) {
      if (typeof handler.load === 'function') throw new CacheWarmerError(`${where} names method "${options.method}" and implements load(): give one of them`);
      const { instance, type } = this.methodOwner(options, handler, where);
      const proto = Object.getPrototypeOf(instance) as Record<string, unknown>;
      const ops = getCacheOperations(proto[options.method]);
      if (ops?.cacheable === undefined) {
        throw new CacheWarmerError(`${where}: ${type.name}.${options.method} is not a @Cacheable() method${typeof proto[options.method] === 'function' ? '' : ' (no such method)'}`);
      }
      const argsOf = options.args ?? ((id: unknown) => [id]);
      const warm = methodWarm(compileCacheable(ops), engine, instance, argsOf);
      return { ...base, kind: 'method', warm: (id, mode) => warm(id, mode), parseId: ownParse ?? (options.args ? identity : parserOf(type, options.method)) };
    }

    if (options.http !== undefined) {
      if (typeof handler.load === 'function') throw new CacheWarmerError(`${where} is an http warmer and implements load(): give one of them`);
      const http = options.http;
      const own = this.ownServer(options.name);
      const baseUrl = http.baseUrl !== undefined ? () => ({ url: http.baseUrl as string, own: false }) : own.resolve;
      const precheck = http.baseUrl !== undefined ? base.precheck : own.precheck;
      return { ...base, kind: 'http', warm: httpWarm(handler, baseUrl, http.headers, className), parseId: ownParse ?? identity, precheck };
    }

    if (typeof handler.load !== 'function') {
      throw new CacheWarmerError(`${where} has nothing to warm with: implement load(id), or name a @Cacheable method ({ method }), or set http`);
    }
    if (options.mode === 'missing' && typeof handler.key !== 'function') {
      throw new CacheWarmerError(`${where} has mode 'missing' but no key(id) method: it needs the cache key of an id to know whether the cache holds it`);
    }
    return { ...base, kind: 'load', warm: entryWarm(handler, engine, className), parseId: ownParse ?? identity };
  }

  /**
   * The cache a warmer fills: the default cache, or the one its `cache` names — a cache's name
   * (`forRoot({ name })`), or an injection token resolving to a CacheManagerService or a TieredCache. Not this
   * module's own cache: the explorer that runs may be a named cache module's.
   */
  private engineOf(options: ResolvedWarmerOptions, where: string): TieredCache {
    if (options.cache === undefined) return (this.caches?.get(DEFAULT_CACHE_NAME) ?? this.cache).engine;
    if (typeof options.cache === 'string') {
      const named = this.caches?.get(options.cache);
      if (named !== undefined) return named.engine;
    }
    let found: unknown;
    try {
      found = this.moduleRef.get(options.cache as never, { strict: false });
    } catch {
      throw new CacheWarmerError(`${where}: cache ${String(options.cache)} is not a provider of the app`);
    }
    if (found instanceof CacheManagerService) return found.engine;
    if (found instanceof TieredCache) return found;
    throw new CacheWarmerError(`${where}: cache ${String(options.cache)} is neither a CacheManagerService nor a TieredCache`);
  }

  /** The instance whose @Cacheable method a method warmer calls: `target`'s provider, or the warmer itself. */
  private methodOwner(options: ResolvedWarmerOptions, handler: CacheWarmerHandler, where: string): { instance: object; type: { name: string; prototype: object } } {
    if (options.target === undefined) return { instance: handler, type: handler.constructor as { name: string; prototype: object } };
    const target = options.target;
    if (this.discovery.getControllers().some((w) => w.metatype === target)) {
      throw new CacheWarmerError(`${where}: target ${target.name} is a controller; warm its cached routes with http: true and their paths`);
    }
    const wrapper = this.discovery.getProviders().find((w: InstanceWrapper) => w.metatype === target && w.instance !== null && typeof w.instance === 'object');
    if (wrapper === undefined) throw new CacheWarmerError(`${where}: target ${target.name} is not a provider of the app`);
    if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) throw new CacheWarmerError(`${where}: target ${target.name} is not a singleton provider`);
    return { instance: wrapper.instance as object, type: target as unknown as { name: string; prototype: object } };
  }

  /** This app's own HTTP server as a base URL, once it listens on a TCP port. */
  private ownServer(name: string): { resolve: () => { url: string; own: boolean }; precheck: () => string | undefined } {
    let known: string | undefined;
    const find = (): string | { error: string } => {
      const server = (this.adapterHost?.httpAdapter as { getHttpServer?(): unknown } | undefined)?.getHttpServer?.() as Server | undefined;
      if (server === undefined || server === null || typeof server.address !== 'function') {
        return { error: `warmer "${name}" requests this app's HTTP routes, but the app has no HTTP server (an application context; in the CLI, pass --http), or give http.baseUrl` };
      }
      const a = server.listening ? server.address() : null;
      if (a === null) return { error: `warmer "${name}" requests this app's HTTP routes, but its HTTP server does not listen yet (app.listen())` };
      if (typeof a === 'string') return { error: `warmer "${name}": the HTTP server listens on a socket path (${a}); give http.baseUrl` };
      if (typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function') {
        return { error: `warmer "${name}": the HTTP server is HTTPS, whose certificate a loopback request cannot verify; give http.baseUrl` };
      }
      const host = a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '[::1]' : a.family === 'IPv6' ? `[${a.address}]` : a.address;
      return `http://${host}:${a.port}`;
    };
    return {
      precheck: () => {
        if (known !== undefined) return undefined;
        const r = find();
        if (typeof r !== 'string') return r.error;
        known = r;
        return undefined;
      },
      resolve: () => {
        if (known === undefined) {
          const r = find();
          if (typeof r !== 'string') throw new Error(r.error);
          known = r;
        }
        return { url: known, own: true };
      },
    };
  }
}

const identity = (text: string): unknown => text;

/**
 * The default parse of an id given as text for a method warmer: a number when the method's first parameter is
 * declared `number` (decorator metadata), so `--ids 1,2` finds the keys `getCustomer(1)` caches; else the text.
 */
function parserOf(type: { prototype: object }, method: string): (text: string) => unknown {
  const params = Reflect.getMetadata('design:paramtypes', type.prototype, method) as unknown[] | undefined;
  if (params?.[0] !== Number) return identity;
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) throw new TypeError(`"${text}" is not a number (implement parseId(text) to read ids your way)`);
    return n;
  };
}
