import { Inject, Injectable, Optional, type NestMiddleware } from '@nestjs/common';
import { HOST_METADATA } from '@nestjs/common/constants';
import { ApplicationConfig, DiscoveryService } from '@nestjs/core';
import { CacheManagerService } from '../cache-manager.service';
import { TieredCacheOptionsError } from '../../core/errors';
import type { TieredCache } from '../../core/tiered-cache';
import type { TieredCacheHttpOptions, TieredCacheOptions } from '../../core/tiered-cache-options.interface';
import { TIERED_CACHE_OPTIONS } from '../tiered-cache.module-definition';
import { DEFAULT_CACHE_NAME, TIERED_CACHE_NAME } from '../constants';
import { WARM_HEADER } from '../warmup/http-warm-token';

/** What TieredCacheInterceptor stores for a cached response. */
export interface CachedHttpResponse {
  s: number;
  b: unknown;
}

/** The parts of an Express request the fast path reads. */
export interface FastPathRequest {
  method: string;
  originalUrl: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The parts of an Express response the fast path writes (the calls ExpressAdapter.reply makes). */
export interface FastPathResponse {
  status(code: number): unknown;
  setHeader(name: string, value: string): unknown;
  json(body: unknown): unknown;
  send(body: string): unknown;
}

export interface HttpFastPathStats {
  /** Whether the middleware is installed (option on, Express, L1 on). */
  active: boolean;
  /** Requests answered by the fast path. */
  hits: number;
  /** URLs currently remembered. */
  urls: number;
}

interface IndexEntry {
  readonly key: string;
  /** `public: true` route: a request with credentials may be answered too. */
  readonly public: boolean;
}

/** Validates the `http` option at boot; errors name the option. */
export function resolveHttpOptions(input: unknown): Required<TieredCacheHttpOptions> {
  if (input === undefined) return { fastPath: false, fastPathMaxUrls: 10_000 };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TieredCacheOptionsError('http', input, 'expected an object such as { fastPath: true }');
  }
  const o = input as Record<string, unknown>;
  if (o.fastPath !== undefined && typeof o.fastPath !== 'boolean') throw new TieredCacheOptionsError('http.fastPath', o.fastPath, 'expected true or false');
  const max = o.fastPathMaxUrls;
  if (max !== undefined && (typeof max !== 'number' || !Number.isSafeInteger(max) || max <= 0)) {
    throw new TieredCacheOptionsError('http.fastPathMaxUrls', max, 'expected a positive whole number');
  }
  return { fastPath: o.fastPath === true, fastPathMaxUrls: (max as number | undefined) ?? 10_000 };
}

/**
 * The opt-in HTTP fast path (`http: { fastPath: true }`): a map from the exact URL of a GET that
 * TieredCacheInterceptor answered on an eligible route to its cache key, and the Express middleware that
 * answers the next GET of that URL from L1 before Nest routing. The interceptor decides what goes in
 * (route and request eligibility); an entry is only a pointer, so a stale one costs a `peekLocal` miss,
 * never a wrong answer: the value itself is always read from L1, which invalidation keeps correct.
 */
@Injectable()
export class HttpFastPath {
  readonly enabled: boolean;
  readonly engine: TieredCache;
  private readonly maxUrls: number;
  // Insertion-ordered, so the oldest URL is the first key; capped at maxUrls.
  private readonly index = new Map<string, IndexEntry>();
  private on = false;
  private hits = 0;
  private hostRouting: boolean | undefined;

  constructor(
    @Inject(TIERED_CACHE_OPTIONS) options: TieredCacheOptions,
    cache: CacheManagerService,
    @Optional() readonly appConfig?: ApplicationConfig,
    @Optional() private readonly discovery?: DiscoveryService,
    @Optional() @Inject(TIERED_CACHE_NAME) name?: string,
  ) {
    // Throws at boot, naming the option.
    const http = resolveHttpOptions(options?.http);
    if (http.fastPath && name !== undefined && name !== DEFAULT_CACHE_NAME) {
      // One middleware in front of all routes, answering from one L1: the default cache's.
      throw new TieredCacheOptionsError('http.fastPath', true, `cache '${name}' is a named cache; the HTTP fast path serves the default cache only`);
    }
    this.enabled = http.fastPath;
    this.maxUrls = http.fastPathMaxUrls;
    this.engine = cache.engine;
  }

  /** True once the middleware is installed; until then the interceptor records nothing. */
  get active(): boolean {
    return this.on;
  }

  /** Called by TieredCacheModule.configure() when it installs the middleware. */
  activate(): void {
    this.on = true;
  }

  /**
   * Whether any controller of the app routes by host (`@Controller({ host })`): one URL may then reach
   * different handlers, which a URL-keyed index cannot tell apart.
   */
  get routesByHost(): boolean {
    if (this.hostRouting === undefined) {
      this.hostRouting = (this.discovery?.getControllers() ?? []).some((w) => {
        const type: unknown = w.metatype;
        return typeof type === 'function' && Reflect.getMetadata(HOST_METADATA, type) !== undefined;
      });
    }
    return this.hostRouting;
  }

  /** Called by the interceptor for an eligible request of an eligible route. */
  record(url: string, key: string, isPublic: boolean): void {
    const index = this.index;
    const had = index.get(url);
    if (had !== undefined) {
      if (had.key === key && had.public === isPublic) return;
      index.delete(url);
    } else if (index.size >= this.maxUrls) {
      const oldest = index.keys().next();
      if (!oldest.done) index.delete(oldest.value);
    }
    index.set(url, { key, public: isPublic });
  }

  /** Forgets every URL (the next request of each goes the normal way and is recorded again) and zeroes `hits`. */
  reset(): void {
    this.index.clear();
    this.hits = 0;
  }

  stats(): HttpFastPathStats {
    return { active: this.on, hits: this.hits, urls: this.index.size };
  }

  /**
   * The middleware body. Every non-matching request costs one Map lookup; a matching one is answered with
   * the exact calls Nest's ExpressAdapter.reply makes for the value the interceptor would have returned.
   */
  handle(req: FastPathRequest, res: FastPathResponse, next: () => void): void {
    if (req.method !== 'GET') return next();
    const entry = this.index.get(req.originalUrl);
    if (entry === undefined) return next();
    // A warm-up's request (warmup/http-warm.ts) must reach the interceptor, which may refresh the entry.
    if (req.headers[WARM_HEADER] !== undefined) return next();
    if (!entry.public) {
      const h = req.headers;
      // The interceptor answers these with BYPASS (it never caches a response that may belong to a user).
      if (h.authorization !== undefined || h.cookie !== undefined || h['proxy-authorization'] !== undefined) return next();
    }
    const hit = this.engine.peekLocal<CachedHttpResponse>(entry.key);
    if (hit === undefined) return next();
    this.hits++;
    res.status(hit.s);
    res.setHeader('X-Cache', 'HIT');
    const body = hit.b;
    if (typeof body === 'object' && body !== null) res.json(body);
    else res.send(String(body));
  }
}

/** Installed for all routes by TieredCacheModule when `http.fastPath` is on (Express only). */
@Injectable()
export class HttpFastPathMiddleware implements NestMiddleware<FastPathRequest, FastPathResponse> {
  constructor(private readonly fastPath: HttpFastPath) {}

  use(req: FastPathRequest, res: FastPathResponse, next: () => void): void {
    this.fastPath.handle(req, res, next);
  }
}
