import type { Duration } from '../core/duration';
import type { GetOrSetOptions } from '../core/tiered-cache-options.interface';

/**
 * A key given as a function. On provider methods it receives the method's arguments; on controller
 * handlers (TieredCacheInterceptor) it receives the request.
 */
export type CacheKeyFunction = (...args: never[]) => string;

/** Templates name arguments by parameter name or position: `'property:{id}'`, `'lead:{0}:{1}'`, `'t:{dto.tenantId}'`. */
export type CacheKeyTemplate = string;

/**
 * getOrSet's resilience options, per method or route (each defaults to the module's `resilience`, and `lock` to
 * the module's `lock`): see GetOrSetOptions for what each does.
 */
export type CacheResilienceOptions = Pick<GetOrSetOptions<never>, 'grace' | 'eagerRefresh' | 'failSafe' | 'failSafeTtl' | 'failSafeBackoff' | 'timeout' | 'lock'>;

/** Which cache serves a decorated method or route. */
export interface CacheTargetOptions {
  /**
   * Name of the cache (`TieredCacheModule.forRoot({ name })`) that serves this method. Default: the default
   * cache (registered without a name). An unknown name fails the app's boot, naming the method.
   */
  cache?: string;
}

export interface CacheableOptions extends CacheResilienceOptions, CacheTargetOptions {
  /** A template or a function of the arguments. Default: `<keyPrefix>:<digest of the arguments>`. */
  key?: CacheKeyTemplate | CacheKeyFunction;
  /** Namespace of the default key (default `ClassName.methodName`). Methods that share a keyPrefix share entries. */
  keyPrefix?: string;
  /**
   * L2 TTL (default: the module's). Numbers are milliseconds; strings such as '30s', '1h'. A function of the
   * result (on a route: of the response body) sets it per value (adaptive TTL).
   */
  ttl?: Duration | ((result: never) => Duration);
  /** L1 TTL (never longer than `ttl`). */
  l1Ttl?: Duration;
  /** Tags (templates allowed) or a function of the arguments and the result. */
  tags?: readonly string[] | ((args: never, result: never) => readonly string[]);
  /** Cache only when this returns true for the arguments; otherwise the method just runs. */
  condition?: (...args: never[]) => boolean;
  /** Do not store a result for which this returns true (it is still returned). */
  unless?: (result: never) => boolean;
  /**
   * Controllers only: request headers the response depends on. Part of the key, so one user's or tenant's
   * response is never served to another.
   */
  vary?: readonly string[];
  /**
   * Controllers only: the response is the same for every caller, so requests carrying credentials
   * (`Authorization`, `Cookie`) may be cached even if `vary` does not name those headers. Default false.
   */
  public?: boolean;
}

/** A key or pattern given as a function of the arguments (may return several). */
export type CacheEvictFunction = (...args: never[]) => string | readonly string[];

export interface CacheEvictOptions extends CacheTargetOptions {
  /** Keys to delete: templates as in @Cacheable, or functions of the arguments. */
  keys?: string | ReadonlyArray<CacheKeyTemplate | CacheEvictFunction>;
  /** Redis globs: literal text is a glob, filled-in values always match literally. */
  patterns?: string | ReadonlyArray<CacheKeyTemplate | CacheEvictFunction>;
  /** Tags (templates allowed) or a function of the arguments and the result (undefined before invocation). */
  tags?: readonly string[] | ((args: never, result: never) => readonly string[]);
  /** Empty this cache's whole namespace. */
  allEntries?: boolean;
  /** Evict before the method runs (even if it then throws). Default: after it succeeds. */
  beforeInvocation?: boolean;
}

export interface CachePutOptions extends CacheTargetOptions {
  /** Where to store the result: a template or a function of the arguments. */
  key: CacheKeyTemplate | CacheKeyFunction;
  ttl?: Duration | ((result: never) => Duration);
  /** How long the entry is kept past its TTL as a stale copy (default the module's `resilience.grace`). */
  grace?: Duration | false;
  l1Ttl?: Duration;
  tags?: readonly string[] | ((args: never, result: never) => readonly string[]);
  condition?: (...args: never[]) => boolean;
  unless?: (result: never) => boolean;
}

export interface TieredCacheInterceptorOptions {
  /** Headers every cached route varies on (added to each route's own `vary`). */
  vary?: readonly string[];
}
