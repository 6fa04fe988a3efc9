import type { EngineCounters } from './engine-context';
import { TieredCacheOptionsError } from './errors';
import type { ResolvedTracing } from './options';
import type { CacheSpan, CacheTracer } from './tracing-options.interface';

/** The part of @opentelemetry/api used here (structural: the package is an optional peer). */
interface OtelApi {
  trace: {
    getTracer(name: string): CacheTracer;
    setSpan(context: unknown, span: CacheSpan): unknown;
    getTracerProvider?(): unknown;
  };
  /** The API's global provider is one of these; without a registered SDK its delegate is the API's no-op provider. */
  ProxyTracerProvider?: new () => DelegatingProvider;
  context: {
    active(): unknown;
    with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(context: unknown, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F>;
  };
}

interface DelegatingProvider {
  getDelegate(): unknown;
}

/** OpenTelemetry's SpanStatusCode.ERROR (a stable value of the API). */
const STATUS_ERROR = 2;
const TRACER_NAME = 'nestjs-tiered-cache';

let loaded: OtelApi | null | undefined;

/** @opentelemetry/api, required once, when a cache is built with tracing not turned off; undefined when not installed. */
export function loadOtelApi(): OtelApi | undefined {
  if (loaded === undefined) {
    try {
      loaded = require('@opentelemetry/api') as OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

/** What the engine hands over to have its calls traced (tiered-cache.ts): the methods it wraps, as own properties. */
export interface TraceableCache {
  get<T = unknown>(key: string): Promise<T | undefined>;
  getOrSet<T>(key: string, factory: () => T | Promise<T>, options?: never): Promise<T>;
  peekLocal<T = unknown>(key: string): T | undefined;
  delete(keys: string | readonly string[]): Promise<number>;
  invalidatePattern(glob: string, options?: { detailed?: boolean }): Promise<unknown>;
  invalidateTags(tags: string | readonly string[]): Promise<number>;
  clear(): Promise<number>;
}

/** The flight a getOrSet rode (single-flight.ts): what answered it. */
interface AnsweredFlight {
  from: string | undefined;
  answeredStale: boolean;
}

/**
 * A traced getOrSet miss: its span, the context it was called in, and its factory, wrapped so the run gets a
 * span of its own, child of this one. `settled`: the callers were answered (a factory still running then is
 * finishing in the background: stale-while-revalidate, early refresh, soft timeout).
 */
export class TracedCall {
  settled = false;

  constructor(
    readonly tracing: CacheTracing,
    readonly span: CacheSpan,
    readonly parent: unknown,
  ) {}

  factory<T>(key: string, factory: () => T | Promise<T>): () => T | Promise<T> {
    return () => this.tracing.runFactory(this.tracing.api.trace.setSpan(this.parent, this.span), key, factory, this);
  }
}

/**
 * OpenTelemetry spans for a cache's calls. Built once per cache, only when tracing is on: without it the engine
 * keeps its plain methods (nothing here runs, nothing is checked per call). What is traced:
 * - get / getOrSet past L1 (`cache.get`, `cache.getOrSet`): which tier answered (`cache.tier`), `cache.hit`,
 *   `cache.stale` (a copy past its TTL answered), `cache.coalesced` (joined a lookup already running);
 * - the factory run (`cache.factory`), child of the getOrSet that ran it; `cache.background` when it finished
 *   after its callers were answered;
 * - delete, invalidatePattern, invalidateTags, clear, with `cache.removed`;
 * - L1 hits only with `l1Hits` (tier l1): at about 100 ns a hit costs less than a span.
 * Errors are recorded on the span (recordException, status ERROR) and rethrown unchanged.
 */
export class CacheTracing {
  readonly l1Hits: boolean;
  readonly #recordKeys: boolean;
  readonly #name: string;
  /** The global provider and the API's no-op one, when the spans go to the global provider (no `tracer` given). */
  readonly #global: { provider: DelegatingProvider; noop: unknown } | undefined;

  constructor(
    readonly api: OtelApi,
    readonly tracer: CacheTracer,
    options: ResolvedTracing,
  ) {
    this.l1Hits = options.l1Hits;
    this.#recordKeys = options.recordKeys;
    this.#name = options.name;
    const provider = options.tracer === undefined ? api.trace.getTracerProvider?.() : undefined;
    const Proxy = api.ProxyTracerProvider;
    if (typeof Proxy === 'function' && typeof (provider as Partial<DelegatingProvider> | undefined)?.getDelegate === 'function') {
      // A fresh proxy's delegate is the API's no-op provider, the one the global proxy answers with until an SDK registers.
      this.#global = { provider: provider as DelegatingProvider, noop: new Proxy().getDelegate() };
    }
  }

  /**
   * Whether a span could be recorded: a tracer of the app's own, or an SDK registered as the global provider.
   * With the API installed and no SDK, spans would all be no-ops, yet building them, their attributes and their
   * contexts costs about a microsecond a call (a 1,000-caller single flight ran three times slower): the engine
   * then takes its plain paths. Asked per call, so an SDK registered later is picked up at once.
   */
  get listening(): boolean {
    const g = this.#global;
    return g === undefined || g.provider.getDelegate() !== g.noop;
  }

  /** A span for one call of `op`, in the caller's context. */
  start(op: string, key?: string): CacheSpan {
    const attributes: Record<string, string | number | boolean | string[]> = { 'cache.name': this.#name };
    if (key !== undefined && this.#recordKeys) attributes['cache.key'] = key;
    return this.tracer.startSpan(`cache.${op}`, { attributes }, this.api.context.active());
  }

  /** A getOrSet past L1: its span and its context, to parent the factory's. */
  call(key: string): TracedCall {
    const parent = this.api.context.active();
    const attributes: Record<string, string | number | boolean | string[]> = { 'cache.name': this.#name };
    if (this.#recordKeys) attributes['cache.key'] = key;
    return new TracedCall(this, this.tracer.startSpan('cache.getOrSet', { attributes }, parent), parent);
  }

  /** A lookup's outcome: the tier that answered (undefined: a miss). */
  answered(span: CacheSpan, tier: string | undefined): void {
    span.setAttribute('cache.hit', tier !== undefined);
    if (tier !== undefined) span.setAttribute('cache.tier', tier);
  }

  /** Ends a traced getOrSet when its callers have their answer (or its error). */
  settle<T>(call: TracedCall, answer: Promise<T>, flight: AnsweredFlight | undefined, coalesced: boolean): Promise<T> {
    const span = call.span;
    return answer.then(
      (value) => {
        call.settled = true;
        if (coalesced) span.setAttribute('cache.coalesced', true);
        if (flight?.answeredStale) {
          span.setAttribute('cache.hit', true);
          span.setAttribute('cache.stale', true);
        } else this.answered(span, flight?.from);
        span.end();
        return value;
      },
      (err: unknown) => {
        call.settled = true;
        if (coalesced) span.setAttribute('cache.coalesced', true);
        this.fail(span, err);
        span.end();
        throw err;
      },
    );
  }

  /** A background refresh that an L1 hit started (its caller already has the copy): a root of its own. */
  refresh<T>(key: string, factory: () => T | Promise<T>): () => T | Promise<T> {
    if (!this.listening) return factory;
    const parent = this.api.context.active();
    return () => this.runFactory(parent, key, factory, undefined);
  }

  /** Runs a factory inside its own span (so what it calls nests under it), recording its failure. */
  runFactory<T>(parent: unknown, key: string, factory: () => T | Promise<T>, call: TracedCall | undefined): T | Promise<T> {
    const attributes: Record<string, string | number | boolean | string[]> = { 'cache.name': this.#name };
    if (this.#recordKeys) attributes['cache.key'] = key;
    if (call === undefined) attributes['cache.background'] = true;
    const span = this.tracer.startSpan('cache.factory', { attributes }, parent);
    const done = (): void => {
      if (call?.settled) span.setAttribute('cache.background', true);
      span.end();
    };
    let out: T | Promise<T>;
    try {
      out = this.api.context.with(this.api.trace.setSpan(parent, span), factory);
    } catch (err) {
      this.fail(span, err);
      done();
      throw err;
    }
    if (!isThenable(out)) {
      done();
      return out;
    }
    return Promise.resolve(out).then(
      (value) => {
        done();
        return value;
      },
      (err: unknown) => {
        this.fail(span, err);
        done();
        throw err;
      },
    );
  }

  fail(span: CacheSpan, err: unknown): void {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: STATUS_ERROR, message: err instanceof Error ? err.message : String(err) });
  }

  /**
   * Replaces the cache's invalidation methods (and, with l1Hits, get/getOrSet/peekLocal) by traced ones, as own
   * properties of that one cache: a cache without tracing keeps its class's methods.
   */
  install(cache: TraceableCache, n: Readonly<EngineCounters>): void {
    const { delete: del, invalidatePattern, invalidateTags, clear } = cache;
    const keys = (list: string | readonly string[]): readonly string[] => (typeof list === 'string' ? [list] : list);
    cache.delete = (list) =>
      this.#traced('delete', () => del.call(cache, list), (span) => span.setAttribute('cache.keys.count', keys(list).length), removed);
    cache.invalidatePattern = ((glob: string, options?: { detailed?: boolean }) =>
      this.#traced(
        'invalidatePattern',
        () => invalidatePattern.call(cache, glob, options),
        (span) => {
          if (this.#recordKeys && typeof glob === 'string') span.setAttribute('cache.pattern', glob);
        },
        (span, r) => {
          const report = typeof r === 'object' && r !== null ? (r as { removed: number; complete: boolean }) : undefined;
          span.setAttribute('cache.removed', report ? report.removed : (r as number));
          if (report) span.setAttribute('cache.complete', report.complete);
        },
      )) as TraceableCache['invalidatePattern'];
    cache.invalidateTags = (list) =>
      this.#traced(
        'invalidateTags',
        () => invalidateTags.call(cache, list),
        (span) => {
          span.setAttribute('cache.tags.count', keys(list).length);
          if (this.#recordKeys) span.setAttribute('cache.tags', [...keys(list)]);
        },
        removed,
      );
    cache.clear = () => this.#traced('clear', () => clear.call(cache), undefined, removed);
    if (this.l1Hits) this.#traceL1Hits(cache, n);
  }

  /**
   * With l1Hits: a span for each call L1 answers. Whether it did is read from the hit counter, which the L1 path
   * moves before it returns; the calls that go below L1 have their own span already (tiered-cache.ts).
   */
  #traceL1Hits(cache: TraceableCache, n: Readonly<EngineCounters>): void {
    const { get, getOrSet, peekLocal } = cache;
    const hit = (op: string, key: string, stale: boolean): void => {
      if (!this.listening) return;
      const span = this.start(op, key);
      this.answered(span, 'l1');
      if (stale) span.setAttribute('cache.stale', true);
      span.end();
    };
    cache.get = (<T>(key: string) => {
      const before = n.l1Hits;
      const r = get.call(cache, key) as Promise<T | undefined>;
      if (n.l1Hits !== before) hit('get', key, false);
      return r;
    }) as TraceableCache['get'];
    cache.getOrSet = (<T>(key: string, factory: () => T | Promise<T>, options?: never) => {
      const before = n.l1Hits;
      const stale = n.resilience.staleServed;
      const r = getOrSet.call(cache, key, factory, options) as Promise<T>;
      if (n.l1Hits !== before) hit('getOrSet', key, n.resilience.staleServed !== stale);
      return r;
    }) as TraceableCache['getOrSet'];
    cache.peekLocal = (<T>(key: string) => {
      const v = peekLocal.call(cache, key) as T | undefined;
      if (v !== undefined) hit('get', key, false);
      return v;
    }) as TraceableCache['peekLocal'];
  }

  /** Runs `run` inside `span`'s context (what it calls, a Redis client's spans say, nests under it). */
  within<R>(span: CacheSpan, run: () => R): R {
    const api = this.api;
    return api.context.with(api.trace.setSpan(api.context.active(), span), run);
  }

  #traced<R>(op: string, run: () => Promise<R>, before: ((span: CacheSpan) => void) | undefined, after: (span: CacheSpan, r: R) => void): Promise<R> {
    if (!this.listening) return run();
    const span = this.start(op);
    before?.(span);
    let result: Promise<R>;
    try {
      result = this.within(span, run);
    } catch (err) {
      this.fail(span, err);
      span.end();
      throw err;
    }
    return result.then(
      (r) => {
        after(span, r);
        span.end();
        return r;
      },
      (err: unknown) => {
        this.fail(span, err);
        span.end();
        throw err;
      },
    );
  }
}

const removed = (span: CacheSpan, n: number): void => void span.setAttribute('cache.removed', n);

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * The cache's tracing, or undefined when it is off: turned off, or @opentelemetry/api not installed (then
 * `enabled: true` is a boot error).
 */
export function createTracing(options: ResolvedTracing): CacheTracing | undefined {
  if (options.enabled === false) return undefined;
  const api = loadOtelApi();
  if (api === undefined) {
    if (options.enabled === true) throw new TieredCacheOptionsError('tracing.enabled', true, '@opentelemetry/api is not installed (npm install @opentelemetry/api)');
    if (options.tracer !== undefined) throw new TieredCacheOptionsError('tracing.tracer', '[Tracer]', 'needs @opentelemetry/api installed (npm install @opentelemetry/api)');
    return undefined;
  }
  return new CacheTracing(api, options.tracer ?? api.trace.getTracer(TRACER_NAME), options);
}
