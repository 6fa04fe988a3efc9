import { GatewayTimeoutException, Inject, Injectable, Optional, RequestMethod, StreamableFile, VersioningType, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import {
  GUARDS_METADATA,
  HEADERS_METADATA,
  INTERCEPTORS_METADATA,
  METHOD_METADATA,
  REDIRECT_METADATA,
  RENDER_METADATA,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  SSE_METADATA,
} from '@nestjs/common/constants';
import { concat, defer, EMPTY, lastValueFrom, mergeMap, of, tap, type Observable } from 'rxjs';
import { CacheManagerService } from '../cache-manager.service';
import {
  baseSetOptions,
  compileEvict,
  compileKey,
  compileTags,
  MethodFailure,
  NotStored,
  type Args,
  type Evictor,
  type Render,
  type TagsOf,
  type TemplateCompiler,
} from '../cache-invocation';
import { DEFAULT_CACHE_NAME, TIERED_CACHE_INTERCEPTOR_OPTIONS } from '../constants';
import { getCacheOperations, type CacheOperations } from '../decorators/cache-operations';
import type { TieredCacheInterceptorOptions } from '../cache-decorator-options.interface';
import type { GetOrSetOptions } from '../../core/tiered-cache-options.interface';
import { KeyTemplate } from '../../core/keys/key-template';
import { stringSegment } from '../../core/keys/key-segment';
import { canonicalize, hashText } from '../../core/keys/stable-digest';
import { HttpFastPath, type CachedHttpResponse } from './http-fast-path';
import { engineInternals } from '../../core/tiered-cache';
import { CacheFactoryTimeoutError } from '../../core/errors';
import type { TieredCache } from '../../core/tiered-cache';
import { CacheRegistry } from '../cache-registry';
import { describeCache } from '../cache-name';
import { WARM_RESULT_HEADER, warmModeOf, type WarmResult } from '../warmup/http-warm-token';

/** The parts of a request and response this interceptor reads (Express and Fastify both have them). */
interface HttpRequest {
  method: string;
  url: string;
  originalUrl?: string;
  headers: Record<string, string | string[] | undefined>;
  params?: Record<string, unknown>;
  query?: Record<string, unknown>;
}
export interface HttpResponse {
  statusCode: number;
  /** Express and Fastify's raw response: true once an answer went out. */
  headersSent?: boolean;
  setHeader?(name: string, value: string): unknown;
  header?(name: string, value: string): unknown;
  getHeader(name: string): unknown;
}

/** What is stored for a cached response. */
type CachedResponse = CachedHttpResponse;

interface CompiledRoute {
  sse: boolean;
  cache?: {
    /** The engine of the route's cache (`@Cacheable({ cache })`, default the default cache). */
    engine: TieredCache;
    base: Render;
    vary: string[];
    public: boolean;
    options: GetOrSetOptions<never>;
    tags: TagsOf | undefined;
    condition: ((req: HttpRequest) => boolean) | undefined;
    unless: ((body: unknown) => boolean) | undefined;
  };
  before: Evictor[];
  after: Evictor[];
}

// RouteParamtypes.RESPONSE and NEXT (the enum is not exported from @nestjs/common's entry point).
const RESPONSE_PARAM = 1;
const NEXT_PARAM = 2;

/** Headers that identify a caller: a request carrying one is cached only if the route varies on it. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

/**
 * Caches HTTP responses of route handlers marked @Cacheable, and runs @CacheEvict around handlers.
 * Use with `@UseInterceptors(TieredCacheInterceptor)` or globally (APP_INTERCEPTOR); only decorated
 * handlers are affected.
 *
 * - Only GET and HEAD responses with a 2xx status are cached, never one that sets a cookie or says
 *   `Cache-Control: private|no-store`, never streams or files. Errors are never cached.
 * - The key is `<key or keyPrefix or http:Controller.handler>:~r<request>`: the path and the full query
 *   string (parameter order ignored), escaped; with `vary` headers, a digest of those and the headers' values.
 * - A request carrying credentials (Authorization, Cookie) the route does not vary on is not cached at all
 *   (`X-Cache: BYPASS`): its response may belong to that user. Name the header in `vary`, or declare the
 *   route `public: true` if its response is the same for everyone.
 * - Responses carry `X-Cache: HIT` or `MISS`. Concurrent identical requests run the handler once.
 * - Templates name route params, then query parameters (`'property:{id}'`); key, tags and condition
 *   functions receive the request.
 * - `@Cacheable({ cache: 'scores' })` / `@CacheEvict({ cache })` on a handler pick a named cache; one
 *   interceptor serves routes of every cache of the app.
 * - With `http: { fastPath: true }` it tells the module's middleware which URLs of eligible routes it may
 *   answer from L1 before Nest routing (see explainFastPath).
 */
@Injectable()
export class TieredCacheInterceptor implements NestInterceptor {
  // Bounded by the number of route handlers.
  private readonly routes = new WeakMap<object, CompiledRoute>();
  private readonly vary: string[];

  // Per controller class too: an inherited handler may sit behind different guards in each subclass.
  private readonly fastPathRoutes = new WeakMap<object, WeakMap<object, boolean>>();

  constructor(
    // Optional: an app may register named caches only (they are found through the registry).
    @Optional() private readonly cache?: CacheManagerService,
    @Optional() @Inject(TIERED_CACHE_INTERCEPTOR_OPTIONS) options?: TieredCacheInterceptorOptions,
    @Optional() private readonly fastPath?: HttpFastPath,
    @Optional() private readonly registry?: CacheRegistry,
  ) {
    this.vary = (options?.vary ?? []).map((h) => h.toLowerCase());
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const handler = context.getHandler();
    const ops = getCacheOperations(handler);
    if (!ops) return next.handle();
    const route = this.route(handler, ops);
    const http = context.switchToHttp();
    const req = http.getRequest<HttpRequest>();
    const res = http.getResponse<HttpResponse>();
    let out$: Observable<unknown>;
    if (route.cache && (req.method === 'GET' || req.method === 'HEAD') && !route.sse) out$ = this.cached(context, route.cache, req, res, next);
    else out$ = next.handle();
    if (route.before.length === 0 && route.after.length === 0) return out$;
    return this.evicting(route, req, out$);
  }

  private cached(ctx: ExecutionContext, c: NonNullable<CompiledRoute['cache']>, req: HttpRequest, res: HttpResponse, next: CallHandler): Observable<unknown> {
    if (!c.public && CREDENTIAL_HEADERS.some((h) => req.headers[h] !== undefined && !c.vary.includes(h))) {
      setHeader(res, 'X-Cache', 'BYPASS');
      return next.handle();
    }
    // A warm-up of this app (warmup/http-warm.ts) is told what happened to the response.
    const warm = warmModeOf(req.headers);
    if (c.condition !== undefined && c.condition(req) !== true) {
      if (warm !== undefined) setHeader(res, WARM_RESULT_HEADER, 'not-stored');
      return next.handle();
    }
    if (warm === 'refresh') return this.refreshed(ctx, c, req, res, next);
    const engine = c.engine;
    let early: string | undefined;
    try {
      early = this.key(c, req);
    } catch {
      // Reported through the observable below, like every other failure of this request's cache work.
    }
    if (early !== undefined) {
      // An L1 hit is answered synchronously: no promise, no deferred observable.
      const hit = engine.peekLocal<CachedResponse>(early);
      if (hit !== undefined) {
        res.statusCode = hit.s;
        setHeader(res, 'X-Cache', 'HIT');
        if (warm !== undefined) setHeader(res, WARM_RESULT_HEADER, 'cached');
        if (this.fastPath?.active === true && this.fastPath.engine === engine) this.offerToFastPath(ctx, req, early, c.public);
        return of(hit.b);
      }
    }
    return defer(() => {
      const key = early ?? this.key(c, req);
      const options: GetOrSetOptions<never> = c.tags ? { ...c.options } : c.options;
      let ran = false;
      let produced: unknown;
      let producedEntry: CachedResponse | undefined;
      const factory = async (): Promise<CachedResponse> => {
        ran = true;
        const statusBefore = res.statusCode;
        let body: unknown;
        try {
          body = await lastValueFrom(next.handle(), { defaultValue: undefined });
        } catch (err) {
          throw new MethodFailure(err);
        }
        produced = body;
        // A handler that finishes after timeout.hard finds its request answered (a 504, or a stale copy): the
        // status it would have had is the one from before it ran.
        const status = res.headersSent === true ? statusBefore : res.statusCode;
        if (!storable(res, status, body) || (c.unless !== undefined && c.unless(body) === true)) throw new NotStored(body);
        if (c.tags) (options as { tags?: readonly string[] }).tags = c.tags([req], body);
        producedEntry = { s: status, b: body };
        return producedEntry;
      };
      return engine.getOrSet<CachedResponse>(key, factory, options as GetOrSetOptions<CachedResponse>).then(
        (entry) => {
          // A handler that ran may still not be what answers: past timeout.soft (or when it failed) a stale
          // copy is served, with its own status.
          if (ran && entry === producedEntry) {
            setHeader(res, 'X-Cache', 'MISS');
          } else {
            res.statusCode = entry.s;
            setHeader(res, 'X-Cache', 'HIT');
          }
          if (warm !== undefined) setHeader(res, WARM_RESULT_HEADER, ran && entry === producedEntry ? 'stored' : 'cached');
          if (this.fastPath?.active === true && this.fastPath.engine === engine) this.offerToFastPath(ctx, req, key, c.public);
          return entry.b;
        },
        (err: unknown) => {
          if (err instanceof MethodFailure) throw err.error;
          // The handler passed timeout.hard and there was no stale copy: the gateway's answer, not a 500.
          if (err instanceof CacheFactoryTimeoutError) throw new GatewayTimeoutException(err.message);
          if (!(err instanceof NotStored)) {
            engineInternals(engine).log('warn', 'decorator-store', `response of ${key.split(':~r')[0]} not cached (${(err as Error)?.message ?? String(err)})`);
          }
          setHeader(res, 'X-Cache', 'MISS');
          if (warm !== undefined) setHeader(res, WARM_RESULT_HEADER, 'not-stored');
          // A request that waited on another's uncacheable response runs its own handler: that response
          // (status, headers) was never meant to be shared.
          return ran ? produced : lastValueFrom(next.handle(), { defaultValue: undefined });
        },
      );
    });
  }

  /**
   * A warm-up's refresh of this response (its request carries the process's warm token): the handler runs even
   * when the cache holds the response, and what it answers is written with `set`, as a client's fill would have
   * stored it (same key, TTL and tags).
   */
  private refreshed(ctx: ExecutionContext, c: NonNullable<CompiledRoute['cache']>, req: HttpRequest, res: HttpResponse, next: CallHandler): Observable<unknown> {
    return defer(async () => {
      const key = this.key(c, req);
      const body: unknown = await lastValueFrom(next.handle(), { defaultValue: undefined });
      const status = res.statusCode;
      setHeader(res, 'X-Cache', 'MISS');
      let result: WarmResult = 'not-stored';
      if (storable(res, status, body) && (c.unless === undefined || c.unless(body) !== true)) {
        const options = c.tags ? { ...c.options, tags: c.tags([req], body) } : c.options;
        try {
          if (await c.engine.set<CachedResponse>(key, { s: status, b: body }, options as GetOrSetOptions<CachedResponse>)) result = 'stored';
        } catch (err) {
          engineInternals(c.engine).log('warn', 'decorator-store', `response of ${key.split(':~r')[0]} not cached (${(err as Error)?.message ?? String(err)})`);
        }
      }
      setHeader(res, WARM_RESULT_HEADER, result);
      if (result === 'stored' && this.fastPath?.active === true && this.fastPath.engine === c.engine) this.offerToFastPath(ctx, req, key, c.public);
      return body;
    });
  }

  /**
   * Why the HTTP fast path (`http: { fastPath: true }`) may not answer GETs of this route; empty when it may.
   * The fast path answers an L1 hit before Nest routing, so a route qualifies only when nothing that runs on
   * a normal HIT (guards, other interceptors, response decorators) could change or refuse the answer, and
   * the cache key depends on the URL alone.
   */
  explainFastPath(controller: abstract new (...args: never[]) => unknown, methodName: string): string[] {
    return this.fastPathBlockers(controller, (controller.prototype as Record<string, unknown>)[methodName], methodName);
  }

  private offerToFastPath(ctx: ExecutionContext, req: HttpRequest, key: string, isPublic: boolean): void {
    const url = req.originalUrl;
    // The middleware sees GETs only, before routing: a URL something rewrote on the way here (req.url no longer
    // the original) may route elsewhere, so it is not remembered.
    if (req.method !== 'GET' || url === undefined || req.url !== url) return;
    const cls = ctx.getClass();
    const handler = ctx.getHandler();
    let byHandler = this.fastPathRoutes.get(cls);
    if (byHandler === undefined) this.fastPathRoutes.set(cls, (byHandler = new WeakMap()));
    let eligible = byHandler.get(handler);
    if (eligible === undefined) {
      eligible = this.fastPathBlockers(cls, handler, handler.name).length === 0;
      byHandler.set(handler, eligible);
    }
    if (eligible) this.fastPath?.record(url, key, isPublic);
  }

  private fastPathBlockers(cls: object, handler: unknown, methodName: string): string[] {
    const out: string[] = [];
    const fp = this.fastPath;
    const ops = getCacheOperations(handler);
    const o = ops?.cacheable;
    if (fp === undefined || !fp.active) out.push('the fast path is not active (http.fastPath off, not Express, or L1 off)');
    else if (fp.engine !== this.findEngine(o?.cache)) {
      const named = o?.cache !== undefined && o.cache !== DEFAULT_CACHE_NAME;
      out.push(named ? `it is served by ${describeCache(o.cache!)}; the fast path serves the default cache only` : "this interceptor's cache is not the fast path's");
    }
    if (typeof handler !== 'function' || ops === undefined || o === undefined) return [...out, 'no @Cacheable()'];
    if (Reflect.getMetadata(METHOD_METADATA, handler) !== RequestMethod.GET) out.push('not a @Get() route');
    if (typeof o.key === 'function') out.push('its key is a function of the request');
    if (this.vary.length > 0 || (o.vary?.length ?? 0) > 0) out.push('it varies on request headers');
    if (o.condition !== undefined) out.push('it has a condition');
    if (Reflect.getMetadata(SSE_METADATA, handler) === true) out.push('it is @Sse()');
    if (ops.evict.length > 0) out.push('it has @CacheEvict()');
    const app = fp?.appConfig;
    if (app === undefined) out.push('the application config (global guards and interceptors) is not visible');
    const guards = [
      ...(app?.getGlobalGuards() ?? []),
      ...(app?.getGlobalRequestGuards() ?? []),
      ...metadataList(GUARDS_METADATA, cls),
      ...metadataList(GUARDS_METADATA, handler),
    ];
    if (guards.length > 0) out.push(`guards would run (${guards.map(nameOf).join(', ')})`);
    const interceptors = [
      ...(app?.getGlobalInterceptors() ?? []),
      ...(app?.getGlobalRequestInterceptors() ?? []).map((w) => w.metatype),
      ...metadataList(INTERCEPTORS_METADATA, cls),
      ...metadataList(INTERCEPTORS_METADATA, handler),
    ];
    // Subclasses count as other interceptors: they may change what a HIT answers.
    const ours = interceptors.filter((i) => i === TieredCacheInterceptor || (i as object | null)?.constructor === TieredCacheInterceptor);
    const others = interceptors.filter((i) => !ours.includes(i));
    if (others.length > 0) out.push(`other interceptors would run (${others.map(nameOf).join(', ')})`);
    if (ours.length > 1) out.push(`TieredCacheInterceptor is applied ${ours.length} times`);
    if (metadataList(HEADERS_METADATA, handler).length > 0) out.push('it sets @Header()');
    if (Reflect.getMetadata(REDIRECT_METADATA, handler) !== undefined) out.push('it is @Redirect()');
    if (Reflect.getMetadata(RENDER_METADATA, handler) !== undefined) out.push('it is @Render()');
    const params = (Reflect.getMetadata(ROUTE_ARGS_METADATA, cls, methodName) ?? {}) as Record<string, unknown>;
    const takesResponse = Object.keys(params).some((k) => {
      const type = Number(k.split(':')[0]);
      return type === RESPONSE_PARAM || type === NEXT_PARAM;
    });
    if (takesResponse && Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, cls, methodName) !== true) {
      out.push('it takes @Res() or @Next() (Nest does not send what it returns)');
    }
    const versioning = app?.getVersioning();
    if (versioning !== undefined && versioning.type !== VersioningType.URI) out.push('the app picks versions by request header or a custom extractor');
    if (fp?.routesByHost === true) out.push('a controller of the app routes by host');
    return out;
  }

  private evicting(route: CompiledRoute, req: HttpRequest, out$: Observable<unknown>): Observable<unknown> {
    let last: unknown;
    const args: Args = [req];
    const before$ = route.before.length === 0 ? EMPTY : defer(async () => {
      for (const e of route.before) await e(args, undefined);
    }).pipe(mergeMap(() => EMPTY));
    // Evict after the handler completes and before the response is sent, so a client's next GET is fresh.
    const after$ = defer(async () => {
      for (const e of route.after) await e(args, last);
    }).pipe(mergeMap(() => EMPTY));
    return concat(before$, out$.pipe(tap((v) => (last = v))), after$);
  }

  private key(c: NonNullable<CompiledRoute['cache']>, req: HttpRequest): string {
    const url = req.originalUrl ?? req.url;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1).split('&').sort().join('&');
    // Without vary headers the request part is kept readable (escaped, injective, no hashing on the hot
    // path); header values (an Authorization, say) are only ever stored as a digest.
    if (c.vary.length === 0) return c.base([req]) + ':~r' + stringSegment(q < 0 ? path : path + '?' + query);
    const vary = c.vary.map((h) => req.headers[h] ?? null);
    return c.base([req]) + ':~r~h' + hashText(canonicalize([path, query, vary]));
  }

  /** The engine serving a cache name (the injected default cache first, then the app's registry). */
  private findEngine(name: string | undefined): TieredCache | undefined {
    const n = name ?? DEFAULT_CACHE_NAME;
    if (this.cache !== undefined && this.cache.name === n) return this.cache.engine;
    return this.registry?.get(n)?.engine;
  }

  private engineOf(name: string | undefined, where: string): TieredCache {
    const engine = this.findEngine(name);
    if (engine === undefined) throw noCache(where, name);
    return engine;
  }

  private route(handler: object, ops: CacheOperations): CompiledRoute {
    let route = this.routes.get(handler);
    if (route) return route;
    const where = `${ops.className}.${ops.methodName}`;
    const compiler: TemplateCompiler = {
      template: (source, segment) => {
        const t = KeyTemplate.parse(source, where);
        return (args) => t.render((root) => lookup(args[0] as HttpRequest, root), segment);
      },
      call: <R>(fn: (...args: never[]) => R) => (args: Args) => (fn as unknown as (...a: Args) => R)(...args),
    };
    route = { sse: Reflect.getMetadata(SSE_METADATA, handler) === true, before: [], after: [] };
    const o = ops.cacheable;
    if (o) {
      const tags = compileTags(compiler, o.tags, where);
      const prefix = o.keyPrefix ?? `http:${ops.className}.${ops.methodName}`;
      route.cache = {
        engine: this.engineOf(o.cache, where),
        base: o.key !== undefined ? compileKey(compiler, o.key, `${where} key`) : () => prefix,
        vary: [...new Set([...this.vary, ...(o.vary ?? []).map((h) => h.toLowerCase())])].sort(),
        public: o.public === true,
        options: baseSetOptions(`@Cacheable() on ${where}`, o, tags, (r: CachedResponse) => r.b),
        tags: typeof tags === 'function' ? tags : undefined,
        condition: o.condition as ((req: HttpRequest) => boolean) | undefined,
        unless: o.unless as ((body: unknown) => boolean) | undefined,
      };
    }
    for (const e of ops.evict) {
      (e.beforeInvocation ? route.before : route.after).push(compileEvict(compiler, e, `@CacheEvict() on ${where}`, this.engineOf(e.cache, where)));
    }
    this.routes.set(handler, route);
    return route;
  }
}

function noCache(where: string, name: string | undefined): Error {
  return new Error(`${where}: ${describeCache(name ?? DEFAULT_CACHE_NAME)} is not registered in this app (TieredCacheModule.forRoot${name === undefined || name === DEFAULT_CACHE_NAME ? '()' : `({ name: '${name}' })`})`);
}

function metadataList(key: string, target: unknown): unknown[] {
  if (target === null || (typeof target !== 'object' && typeof target !== 'function')) return [];
  const list: unknown = Reflect.getMetadata(key, target);
  return Array.isArray(list) ? list : [];
}

function nameOf(x: unknown): string {
  if (typeof x === 'function') return x.name || 'anonymous';
  if (x !== null && typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return String(x);
}

function lookup(req: HttpRequest, root: string): unknown {
  const p = req.params?.[root];
  return p !== undefined ? p : req.query?.[root];
}

function setHeader(res: HttpResponse, name: string, value: string): void {
  if (typeof res.setHeader === 'function') res.setHeader(name, value);
  else res.header?.(name, value);
}

export function storable(res: HttpResponse, status: number, body: unknown): boolean {
  if (status < 200 || status >= 300) return false;
  if (res.getHeader('set-cookie') !== undefined) return false;
  const cc = res.getHeader('cache-control');
  if (typeof cc === 'string' && /\b(no-store|private)\b/i.test(cc)) return false;
  if (body === undefined || body === null) return false;
  if (body instanceof StreamableFile || Buffer.isBuffer(body) || typeof (body as { pipe?: unknown }).pipe === 'function') return false;
  return true;
}
