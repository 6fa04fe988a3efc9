import type { CacheOperations, InstalledWrapper } from './decorators/cache-operations';
import type { TieredCache } from '../core/tiered-cache';
import type { GetOrSetOptions } from '../core/tiered-cache-options.interface';
import {
  baseSetOptions,
  compileEvict,
  compileKey,
  compileTags,
  MethodFailure,
  NotStored,
  type Args,
  type TagsOf,
  type TemplateCompiler,
} from './cache-invocation';
import { KeyTemplate } from '../core/keys/key-template';
import { buildArgumentsKey, defaultKeyPrefix } from '../core/keys/method-key';
import { parameterNames } from '../core/keys/parameter-names';
import { engineInternals } from '../core/tiered-cache';
import { CacheFactoryTimeoutError } from '../core/errors';

type AnyMethod = (this: unknown, ...args: unknown[]) => unknown;

/** The key namespace a method's default keys live in. */
export function methodKeyPrefix(ops: CacheOperations): string | undefined {
  const c = ops.cacheable;
  if (!c || c.key !== undefined) return undefined;
  return c.keyPrefix ?? defaultKeyPrefix(ops.className, ops.methodName);
}

/** The engine of a cache by name (each decorator may name its own cache). */
export type EngineResolver = (cache: string | undefined) => TieredCache;

/**
 * Builds the function installed on a provider instance for a decorated method. Everything that can be
 * decided once (templates bound to parameter positions, TTLs parsed, static tags, each operation's cache)
 * is decided here, so a cache hit costs a key build and an L1 lookup.
 */
export function createMethodWrapper(ops: CacheOperations, engineOf: EngineResolver): InstalledWrapper {
  if (ops.cacheable) return cacheableWrapper(ops, engineOf(ops.cacheable.cache));
  const where = `${ops.className}.${ops.methodName}`;
  const compiler = templateCompiler(ops, where);
  let inner: InstalledWrapper = (self, args) => ops.original.apply(self, args);
  if (ops.put) inner = putWrapper(ops, inner, engineOf(ops.put.cache), compiler, where);
  if (ops.evict.length > 0) inner = evictWrapper(ops, inner, engineOf, compiler, where);
  return inner;
}

/** A @Cacheable method's caching, compiled once: what the installed wrapper and a warm-up through the method both use. */
export interface CompiledCacheable {
  readonly where: string;
  /** The method as written. */
  readonly original: AnyMethod;
  /** The cache key of an argument list (throws for arguments a template cannot fill). */
  readonly keyOf: (args: Args) => string;
  /** The write options fixed at bootstrap (ttl, l1Ttl, static tags, resilience). */
  readonly base: GetOrSetOptions<never>;
  /** Tags that depend on the arguments or the result, when there are such. */
  readonly dynamicTags: TagsOf | undefined;
  readonly condition: ((...args: Args) => boolean) | undefined;
  readonly unless: ((result: unknown) => boolean) | undefined;
}

export function compileCacheable(ops: CacheOperations): CompiledCacheable {
  const where = `${ops.className}.${ops.methodName}`;
  const o = ops.cacheable;
  if (!o) throw new TypeError(`${where} is not @Cacheable`);
  const prefix = methodKeyPrefix(ops);
  const c = templateCompiler(ops, where);
  const tags = compileTags(c, o.tags, where);
  return {
    where,
    original: ops.original,
    keyOf: prefix !== undefined ? defaultKeys(prefix) : compileKey(c, o.key!, `${where} key`),
    base: baseSetOptions(`@Cacheable() on ${where}`, o, tags),
    dynamicTags: typeof tags === 'function' ? tags : undefined,
    condition: o.condition as ((...args: Args) => boolean) | undefined,
    unless: o.unless as ((result: unknown) => boolean) | undefined,
  };
}

function cacheableWrapper(ops: CacheOperations, engine: TieredCache): InstalledWrapper {
  const { where, original, keyOf, base, dynamicTags, condition, unless } = compileCacheable(ops);

  const miss = (self: unknown, args: unknown[], key: string): Promise<unknown> => {
    // The engine reads the options when it stores the factory's result, so tags that depend on the
    // result can still be filled in by the factory.
    const options: GetOrSetOptions<never> = dynamicTags ? { ...base } : base;
    let ran = false;
    let produced: unknown;
    const factory = async (): Promise<unknown> => {
      ran = true;
      let result: unknown;
      try {
        result = await original.apply(self, args);
      } catch (err) {
        throw new MethodFailure(err);
      }
      produced = result;
      if (unless !== undefined && unless(result) === true) throw new NotStored(result);
      if (dynamicTags) (options as { tags?: readonly string[] }).tags = dynamicTags(args, result);
      return result;
    };
    return engine.getOrSet<unknown>(key, factory, options as GetOrSetOptions<unknown>).then(undefined, (err: unknown) => {
      if (err instanceof MethodFailure) throw err.error;
      if (err instanceof NotStored) return err.value;
      // The method passed timeout.hard with no stale copy to serve: the caller's error (it still runs, and its
      // result is cached when it comes).
      if (err instanceof CacheFactoryTimeoutError) throw err;
      // The method succeeded but its result could not be stored (too large, not serializable, bad tags):
      // the caller still gets a result; a waiter that shared the failed flight runs the method itself.
      engineInternals(engine).log('warn', 'decorator-store', `@Cacheable() on ${where}: result not cached (${(err as Error)?.message ?? String(err)})`);
      return ran ? produced : original.apply(self, args);
    });
  };

  return (self, args) => {
    if (condition !== undefined && condition(...args) !== true) return original.apply(self, args);
    let key: string;
    try {
      key = keyOf(args);
    } catch (err) {
      return Promise.reject(err);
    }
    // The hit path: one L1 lookup, no closures, no promise chaining.
    const hit = engine.peekLocal(key);
    return hit !== undefined ? Promise.resolve(hit) : miss(self, args, key);
  };
}

/** Templates bound to the method's parameter names and positions; functions called with its arguments. */
function templateCompiler(ops: CacheOperations, where: string): TemplateCompiler {
  const names = parameterNames(ops.original);
  return {
    template: (source, segment) => KeyTemplate.parse(source, where).bind(names, where, segment),
    call: <R>(fn: (...args: never[]) => R) => (args: Args) => (fn as unknown as (...a: Args) => R)(...args),
  };
}

/**
 * Default keys, with the key of a single scalar argument remembered: a hot method is called with the same
 * few ids over and over, and reusing one key string lets L1 reuse its hash instead of hashing a new string.
 */
function defaultKeys(prefix: string): (args: Args) => string {
  const memo = new Map<unknown, string>();
  return (args) => {
    if (args.length === 1) {
      const a = args[0];
      const t = typeof a;
      if (t === 'number' || (t === 'string' && (a as string).length <= 64)) {
        let k = memo.get(a);
        if (k === undefined) {
          k = buildArgumentsKey(prefix, args);
          if (memo.size >= 1000) memo.clear();
          memo.set(a, k);
        }
        return k;
      }
    }
    return buildArgumentsKey(prefix, args);
  };
}

function putWrapper(ops: CacheOperations, inner: InstalledWrapper, engine: TieredCache, c: TemplateCompiler, where: string): InstalledWrapper {
  const o = ops.put!;
  const keyOf = compileKey(c, o.key, `${where} key`);
  const tags = compileTags(c, o.tags, where);
  const base = baseSetOptions(`@CachePut() on ${where}`, o, tags);
  const condition = o.condition as ((...args: Args) => boolean) | undefined;
  const unless = o.unless as ((result: unknown) => boolean) | undefined;
  return async (self, args) => {
    const wanted = condition === undefined || condition(...args) === true;
    const result = await inner(self, args);
    if (!wanted || (unless !== undefined && unless(result) === true)) return result;
    const key = keyOf(args);
    const options = typeof tags === 'function' ? { ...base, tags: tags(args, result) } : base;
    try {
      await engine.set(key, result as never, options);
    } catch (err) {
      // A result that cannot be stored must not turn a successful call into a failure; drop the old entry
      // so it is not served any longer.
      engineInternals(engine).log('warn', 'decorator-store', `@CachePut() on ${where}: result not cached (${(err as Error).message})`);
      await engine.delete(key);
    }
    return result;
  };
}

function evictWrapper(ops: CacheOperations, inner: InstalledWrapper, engineOf: EngineResolver, c: TemplateCompiler, where: string): InstalledWrapper {
  const before = ops.evict.filter((e) => e.beforeInvocation === true).map((e) => compileEvict(c, e, `@CacheEvict() on ${where}`, engineOf(e.cache)));
  const after = ops.evict.filter((e) => e.beforeInvocation !== true).map((e) => compileEvict(c, e, `@CacheEvict() on ${where}`, engineOf(e.cache)));
  return async (self, args) => {
    for (const evict of before) await evict(args, undefined);
    const result = await inner(self, args);
    for (const evict of after) await evict(args, result);
    return result;
  };
}
