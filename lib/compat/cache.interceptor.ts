import { GatewayTimeoutException, Inject, Injectable, Logger, Optional, StreamableFile, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { SSE_METADATA } from '@nestjs/common/constants';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { defer, lastValueFrom, of, tap, type Observable } from 'rxjs';
import { CacheFactoryTimeoutError } from '../core/errors';
import { engineInternals } from '../core/tiered-cache';
import { MethodFailure, NotStored } from '../nest/cache-invocation';
import { storable, type HttpResponse } from '../nest/http/tiered-cache.interceptor';
import { Cache, cacheInternals } from './cache';
import { CACHE_KEY_METADATA, CACHE_MANAGER, CACHE_TTL_METADATA } from './cache.constants';
import type { CacheKeyFactory } from './cache-key.decorator';
import type { CacheTTLFactory } from './cache-ttl.decorator';
import { DEFAULT_CREDENTIAL_HEADERS } from './compat-options';
import { callTtl, EXPIRED } from './ttl';

/** The value of the `X-Cache` response header. */
export type CacheHeaderValue = 'HIT' | 'MISS' | 'BYPASS';

type TtlMetadata = number | CacheTTLFactory | null;

/** The TTL factory failed: the request is answered by its handler, uncached (as @nestjs/cache-manager does). */
class TtlFailure {}

/**
 * @nestjs/cache-manager's CacheInterceptor on the tiered cache: the same members to override (`trackBy`,
 * `isRequestCacheable`, `allowedMethods`, `setHeadersWhenHttp`; `cacheManager`, `reflector`,
 * `httpAdapterHost`), the same constructor injection, the same keys (the request URL, or `@CacheKey`) and TTLs
 * (`@CacheTTL`, ms, handler before controller), so code that sets or deletes those keys keeps working.
 *
 * What it adds: concurrent identical requests run the handler once (on every instance sharing Redis), and
 * `X-Cache: HIT | MISS | BYPASS`. What it refuses (see the migration guide for why):
 * - an HTTP request carrying credentials (Authorization, Cookie, Proxy-Authorization) is neither served from
 *   nor stored in the cache (`X-Cache: BYPASS`): the URL alone does not say whose response it is. Turn it off
 *   with `credentialBypass: false` (or a shorter header list) in the module options, or per interceptor by
 *   overriding `bypassesCache(context)`;
 * - a response that is not 2xx, sets a cookie, says `Cache-Control: private | no-store`, or is a stream, file,
 *   Buffer, null or undefined is answered but not stored; `@Sse()` routes are not cached.
 */
@Injectable()
export class CacheInterceptor implements NestInterceptor {
  @Optional()
  @Inject()
  protected readonly httpAdapterHost!: HttpAdapterHost;

  protected allowedMethods: string[] = ['GET'];

  constructor(
    @Inject(CACHE_MANAGER) protected readonly cacheManager: Cache,
    protected readonly reflector: Reflector,
  ) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const key = await this.trackBy(context);
    const ttl: TtlMetadata =
      this.reflector.get<TtlMetadata | undefined>(CACHE_TTL_METADATA, context.getHandler()) ??
      this.reflector.get<TtlMetadata | undefined>(CACHE_TTL_METADATA, context.getClass()) ??
      null;
    if (!key) return next.handle();
    const http = context.getType() === 'http';
    if (http) {
      if (this.bypassesCache(context)) {
        this.setCacheHeader(context, 'BYPASS');
        return next.handle();
      }
      // An event stream is not one value: it cannot be answered from the cache.
      if (Reflect.getMetadata(SSE_METADATA, context.getHandler()) === true) return next.handle();
      if (this.cacheManager instanceof Cache) return defer(() => this.readThrough(context, next, key, ttl, this.cacheManager));
    }
    try {
      return await this.cacheAside(context, next, key, ttl);
    } catch {
      return next.handle();
    }
  }

  /**
   * The cache key of this call: `@CacheKey` (a string or a function of the context), else, in an HTTP app, the
   * request URL when `isRequestCacheable`. A nil or empty key: not cached.
   */
  protected trackBy(context: ExecutionContext): Promise<string | undefined | null> | string | undefined | null {
    const httpAdapter = this.httpAdapterHost?.httpAdapter;
    const isHttpApp = httpAdapter !== undefined && httpAdapter !== null && typeof httpAdapter.getRequestMethod === 'function';
    const keyOrFactory = this.reflector.get<string | CacheKeyFactory | undefined>(CACHE_KEY_METADATA, context.getHandler()) ?? undefined;
    if (!isHttpApp || keyOrFactory) return typeof keyOrFactory === 'function' ? keyOrFactory(context) : keyOrFactory;
    if (!this.isRequestCacheable(context)) return undefined;
    return httpAdapter.getRequestUrl(context.getArgByIndex(0)) as string;
  }

  /** Whether the request's method is one of `allowedMethods` (default GET only). */
  protected isRequestCacheable(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<{ method: string }>();
    return this.allowedMethods.includes(req.method);
  }

  /**
   * Whether this HTTP request skips the cache (`X-Cache: BYPASS`): by default, when it carries one of the
   * module's `credentialBypass` headers. Override to decide otherwise (e.g. when `trackBy` keys by user).
   */
  protected bypassesCache(context: ExecutionContext): boolean {
    const headers = this.cacheManager instanceof Cache ? cacheInternals(this.cacheManager).settings.credentialHeaders : DEFAULT_CREDENTIAL_HEADERS;
    if (headers.length === 0) return false;
    const req = context.switchToHttp().getRequest<{ headers?: Record<string, unknown> }>();
    const present = req.headers;
    return present !== undefined && headers.some((h) => present[h] !== undefined);
  }

  /** `X-Cache: HIT` for a value, `MISS` for nil (as @nestjs/cache-manager). */
  protected setHeadersWhenHttp(context: ExecutionContext, value: unknown): void {
    this.setCacheHeader(context, value === undefined || value === null ? 'MISS' : 'HIT');
  }

  /** Sets `X-Cache` on HTTP responses that have not gone out yet; override to name it differently or drop it. */
  protected setCacheHeader(context: ExecutionContext, value: CacheHeaderValue): void {
    const httpAdapter = this.httpAdapterHost?.httpAdapter;
    if (!httpAdapter || context.getType() !== 'http') return;
    const response = context.switchToHttp().getResponse<{ headersSent?: boolean }>();
    if (response.headersSent === true) return;
    httpAdapter.setHeader(response, 'X-Cache', value);
  }

  /**
   * HTTP: the handler runs inside the engine's getOrSet, so concurrent misses of one key share one run (Nest
   * sends an HTTP handler's last value anyway, which is what is stored).
   */
  private async readThrough(context: ExecutionContext, next: CallHandler, key: string, ttlMetadata: TtlMetadata, cache: Cache): Promise<unknown> {
    const engine = cache.tiered;
    const res = context.switchToHttp().getResponse<HttpResponse>();
    let handled = false;
    let produced: unknown;
    // Filled in by the factory: the engine reads a fill's options when it stores the value.
    const options: { ttl?: number } = {};
    const factory = async (): Promise<unknown> => {
      let ttl: number | undefined | typeof EXPIRED;
      try {
        ttl = callTtl(typeof ttlMetadata === 'function' ? await ttlMetadata(context) : ttlMetadata, '@CacheTTL');
      } catch {
        throw new TtlFailure();
      }
      this.setHeadersWhenHttp(context, undefined);
      const statusBefore = res.statusCode;
      handled = true;
      let body: unknown;
      try {
        body = await lastValueFrom(next.handle(), { defaultValue: undefined });
      } catch (err) {
        throw new MethodFailure(err);
      }
      produced = body;
      // A handler that finishes after timeout.hard finds its request answered: its status is the one from before.
      const status = res.headersSent === true ? statusBefore : res.statusCode;
      if (ttl === EXPIRED || !storable(res, status, body)) throw new NotStored(body);
      if (ttl !== undefined) options.ttl = ttl;
      return body;
    };
    const events = cacheInternals(cache);
    try {
      const value = await engine.getOrSet(key, factory, options);
      if (handled && value === produced) {
        events.emit('set', { key, value, store: 'primary' });
        events.emit('set', { key, value });
      } else {
        // Another request's run, a cached value, or a stale copy served past timeout.soft.
        this.setHeadersWhenHttp(context, value);
        events.emit('get', { key, value, store: 'primary' });
      }
      return value;
    } catch (err) {
      if (err instanceof MethodFailure) throw err.error;
      // The handler passed timeout.hard and there was no stale copy: the gateway's answer, not a 500.
      if (err instanceof CacheFactoryTimeoutError) throw new GatewayTimeoutException(err.message);
      if (!(err instanceof NotStored) && !(err instanceof TtlFailure)) {
        engineInternals(engine).log('warn', 'compat-interceptor', `response of ${key} not cached (${(err as Error)?.message ?? String(err)})`);
      }
      if (handled) return produced;
      // A request that waited on another's uncacheable response runs its own handler: that response was not
      // meant to be shared.
      this.setHeadersWhenHttp(context, undefined);
      return lastValueFrom(next.handle(), { defaultValue: undefined });
    }
  }

  /** WebSocket and microservice handlers (and a CACHE_MANAGER that is not this package's): get, else run and set. */
  private async cacheAside(context: ExecutionContext, next: CallHandler, key: string, ttlMetadata: TtlMetadata): Promise<Observable<unknown>> {
    const value: unknown = await this.cacheManager.get(key);
    this.setHeadersWhenHttp(context, value);
    if (value !== undefined && value !== null) return of(value);
    const ttl = typeof ttlMetadata === 'function' ? await ttlMetadata(context) : ttlMetadata;
    return next.handle().pipe(
      tap((response: unknown) => {
        if (response === undefined || response === null || response instanceof StreamableFile) return;
        this.cacheManager.set(key, response, ttl ?? undefined).catch((err: unknown) => {
          Logger.error(`An error has occurred when inserting "key: ${key}"`, (err as Error)?.stack, 'CacheInterceptor');
        });
      }),
    );
  }
}
