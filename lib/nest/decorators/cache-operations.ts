import 'reflect-metadata';
import { CACHE_OPERATIONS_METADATA } from '../constants';
import { parseDuration } from '../../core/duration';
import { TieredCacheOptionsError } from '../../core/errors';
import type { CacheableOptions, CacheEvictOptions, CachePutOptions } from '../cache-decorator-options.interface';
import { KeyTemplate } from '../../core/keys/key-template';
import { checkCallOptions } from '../../core/get-set/resilience-policy';
import type { GetOrSetOptions } from '../../core/tiered-cache-options.interface';
import { resolveCacheName } from '../cache-name';

type AnyMethod = (this: unknown, ...args: unknown[]) => unknown;

/** What the explorer installs in an instance's slot: the method's cached behaviour. */
export type InstalledWrapper = (self: unknown, args: unknown[]) => unknown;

/** What the decorators record on a method; the explorer and the interceptor act on it. */
export interface CacheOperations {
  /** Where the explorer installs this method's wrapper on an instance (per instance, so per app). */
  readonly slot: symbol;
  /** The method as written (or as the decorators below ours left it). */
  readonly original: AnyMethod;
  readonly className: string;
  readonly methodName: string;
  cacheable?: CacheableOptions;
  put?: CachePutOptions;
  readonly evict: CacheEvictOptions[];
}

/**
 * The cache that wraps the method (its @Cacheable's or @CachePut's, else its first @CacheEvict's): every
 * module instance explores every provider, and only this cache's explorer installs the wrapper, so a method
 * is wrapped exactly once even when its @CacheEvict()s reach several caches.
 */
export function owningCache(ops: CacheOperations): string {
  return ops.cacheable?.cache ?? ops.put?.cache ?? ops.evict[0]?.cache ?? resolveCacheName('cache', undefined);
}

/** Every cache the method's decorators name (each must be registered in the app). */
export function targetCaches(ops: CacheOperations): string[] {
  const out = new Set<string>([owningCache(ops)]);
  for (const e of ops.evict) if (e.cache !== undefined) out.add(e.cache);
  return [...out];
}

/** Validates and normalises a decorator's `cache` (undefined and 'default' become 'default'). */
export function decoratorCache(where: string, cache: unknown): string {
  return resolveCacheName(`${where} cache`, cache);
}

export function getCacheOperations(method: unknown): CacheOperations | undefined {
  return typeof method === 'function' ? (Reflect.getOwnMetadata(CACHE_OPERATIONS_METADATA, method) as CacheOperations | undefined) : undefined;
}

/**
 * Records an operation and, the first time, replaces the method by a stub: the stub calls the wrapper the
 * explorer installed on the instance, or else the original. The stub keeps the original's name and has it
 * as its prototype, so metadata other decorators put on the original (`@OnEvent`, route and guard
 * metadata, swagger) is still found by `Reflect.getMetadata`. Nothing process-wide is involved, so two
 * apps in one process each wrap their own instances.
 */
export function recordOperation(
  decorator: string,
  target: object,
  propertyKey: string | symbol,
  descriptor: PropertyDescriptor,
  record: (ops: CacheOperations, where: string) => void,
): void {
  const className = typeof target === 'function' ? target.name : target.constructor.name;
  const methodName = String(propertyKey);
  const where = `@${decorator}() on ${className}.${methodName}`;
  const current: unknown = descriptor.value;
  if (typeof current !== 'function') throw new TypeError(`${where}: can only decorate methods`);
  if (typeof target === 'function') throw new TypeError(`${where}: static methods are not supported`);
  let ops = getCacheOperations(current);
  if (!ops) {
    const original = current as AnyMethod;
    const slot = Symbol(`tiered-cache ${className}.${methodName}`);
    const stub = function (this: unknown, ...args: unknown[]): unknown {
      const wrapper = this === null || this === undefined ? undefined : (this as Record<symbol, InstalledWrapper | undefined>)[slot];
      return wrapper === undefined ? original.apply(this, args) : wrapper(this, args);
    };
    Object.defineProperty(stub, 'name', { value: original.name, configurable: true });
    Object.setPrototypeOf(stub, original);
    ops = { slot, original, className, methodName, evict: [] };
    Reflect.defineMetadata(CACHE_OPERATIONS_METADATA, ops, stub);
    descriptor.value = stub;
  }
  record(ops, where);
  if (ops.cacheable && (ops.put || ops.evict.length > 0)) {
    throw new TypeError(`${where}: @Cacheable cannot be combined with @CachePut or @CacheEvict on one method`);
  }
}

/** Validates what can be validated before bootstrap, so a typo fails at import with the option named. */
export function checkCommonOptions(where: string, o: { ttl?: unknown; l1Ttl?: unknown; tags?: unknown; condition?: unknown; unless?: unknown }): void {
  // A function of the result (adaptive TTL) is checked on each value it returns.
  if (o.ttl !== undefined && typeof o.ttl !== 'function') parseDuration(`${where} ttl`, o.ttl);
  checkCallOptions(where, o as GetOrSetOptions<never>);
  if (o.l1Ttl !== undefined) parseDuration(`${where} l1Ttl`, o.l1Ttl);
  if (o.tags !== undefined && typeof o.tags !== 'function') {
    if (!Array.isArray(o.tags)) throw new TieredCacheOptionsError(`${where} tags`, o.tags, 'expected an array of strings or a function');
    for (const t of o.tags) KeyTemplate.parse(t as string, `${where} tags`);
  }
  for (const name of ['condition', 'unless'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'function') throw new TieredCacheOptionsError(`${where} ${name}`, o[name], 'expected a function');
  }
}

export function checkKeyOption(where: string, option: string, key: unknown): void {
  if (typeof key === 'function') return;
  if (typeof key !== 'string') throw new TieredCacheOptionsError(`${where} ${option}`, key, 'expected a template string or a function');
  KeyTemplate.parse(key, `${where} ${option}`);
  if (key.startsWith('__tc:')) throw new TieredCacheOptionsError(`${where} ${option}`, key, 'keys starting with "__tc:" are reserved');
}
