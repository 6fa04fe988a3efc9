import type { InjectionToken, Type } from '@nestjs/common';
import type { Duration } from '../../core/duration';

/**
 * How a warm-up treats a key the cache already holds. 'refresh' (the default) loads every key from the source and
 * writes it (a fresh value and a full TTL, also after a data import); 'missing' loads only the keys no tier
 * holds (a key found in the cache counts as skipped).
 */
export type WarmupMode = 'refresh' | 'missing';

/** What started a run. */
export type WarmupTrigger = 'manual' | 'bootstrap' | 'schedule';

/** Warming the cached responses of GET routes by requesting them (see docs/warming.md, "HTTP responses"). */
export interface CacheWarmerHttpOptions {
  /**
   * Where the requests go, e.g. `'http://127.0.0.1:3000'`. Default: this application's own HTTP server, once it
   * listens (then 'refresh' works as well; against another process only 'missing' does).
   */
  baseUrl?: string;
  /** Headers sent with every request (e.g. the tenant header a route varies on). */
  headers?: Record<string, string>;
}

export interface CacheWarmerBootstrapOptions {
  /**
   * How long application bootstrap (`app.init()`, `app.listen()`) waits for the run before it goes on with the run
   * in the background (default 0: it does not wait). HTTP warmers start once the server listens, after bootstrap.
   */
  wait?: Duration;
  /**
   * The longest a readiness check that asks for it (`isHealthy(key, { requireWarmup: true })`) reports down while
   * this run goes on, counted from the run's start (default '1m'; false: readiness never waits for it).
   */
  readiness?: Duration | false;
}

/**
 * The cluster-wide lease of scheduled runs: one instance sharing the cache's Redis runs each tick, the others skip.
 * Taken with `SET NX PX` and a token, renewed every third of `ttl` while the run goes on, released at its end.
 */
export interface CacheWarmerLeaseOptions {
  /** Lifetime of the lease, renewed while the run goes on: how soon another instance may take over from one that died (default '30s'). */
  ttl?: Duration;
  /**
   * A run that ends sooner keeps the lease this long from its start, so an instance whose clock or cron fires a
   * little later does not run the same tick again (default '5s'; 0: released at once).
   */
  holdAtLeast?: Duration | 0;
}

/** `@CacheWarmer(options)`. Every option is checked when the decorator is applied: a bad one fails at import. */
export interface CacheWarmerOptions {
  /** Unique in the app: `run(name)`, the CLI's `--warmer`, the lease, stats and the metrics' `warmer` label. Letters, digits, `.`, `_`, `-`; at most 64. */
  name: string;
  /**
   * Warm through this @Cacheable method: it is called for each id (with `args(id)`), and its result stored under the
   * method's own key, TTL and tags. On the warmer class itself, or on `target`.
   */
  method?: string;
  /** The provider whose @Cacheable `method` is called (default: the warmer class itself). */
  target?: Type<unknown>;
  /** The argument list of `method` for one id (default `[id]`). */
  args?: (id: never) => readonly unknown[];
  /** Warm cached GET responses: each id is a path (or `path(id)` makes one), requested through the app's HTTP stack. */
  http?: boolean | CacheWarmerHttpOptions;
  /** Default 'refresh'. */
  mode?: WarmupMode;
  /** Keys warmed at once (default 8, at most 1,000). */
  concurrency?: number;
  /** A key whose warming has not settled by then counts as failed and its signal is aborted (default '30s'; false: none). */
  keyTimeout?: Duration | false;
  /** Run when the application boots: `true` (in the background) or `{ wait, readiness }`. Needs `keys()`. */
  onBootstrap?: boolean | CacheWarmerBootstrapOptions;
  /** A cron expression (`'0 2 * * *'`: daily at 2 AM; six fields for seconds). Needs @nestjs/schedule and `keys()`. */
  cron?: string;
  /** IANA time zone of `cron` (default: the process's). */
  timeZone?: string;
  /** The lease of scheduled runs (default on when the cache has Redis; `false`: every instance runs its schedule). */
  lease?: false | CacheWarmerLeaseOptions;
  /** The token of the cache to fill: a CacheManagerService or TieredCache provider (default the module's CacheManagerService). */
  cache?: InjectionToken;
}

/** What a run tells the warmer's methods. */
export interface WarmupContext {
  readonly warmer: string;
  readonly trigger: WarmupTrigger;
  /** Aborted when the run is cancelled (`cancel()`, app shutdown, a lost lease); per key also at `keyTimeout`. */
  readonly signal: AbortSignal;
}

/** One entry a `load()` hands back to be stored (through `set`, as any write). */
export interface WarmupEntry<T = unknown> {
  key: string;
  value: T;
  ttl?: Duration;
  l1Ttl?: Duration;
  grace?: Duration | false;
  tags?: readonly string[];
}

/**
 * What `load(id)` resolves to: entries to store; `true` when it filled the cache itself (e.g. by calling a cached
 * method) ; `undefined`, `null` or `false` when there is nothing to warm for this id (counted as skipped).
 */
export type WarmupLoadResult = WarmupEntry | readonly WarmupEntry[] | boolean | null | undefined | void;

/**
 * The methods a `@CacheWarmer` class may implement. `keys()` is needed for runs without ids (bootstrap, schedule,
 * `run(name)`); `load()` unless the warmer names a `method` or is an `http` warmer.
 */
export interface CacheWarmerHandler<Id = unknown> {
  /** The ids to warm, one at a time: an async generator can stream them from a cursor, never all in memory. */
  keys?(context: WarmupContext): AsyncIterable<Id> | Iterable<Id>;
  /** Loads one id from the source. */
  load?(id: Id, context: WarmupContext): WarmupLoadResult | Promise<WarmupLoadResult>;
  /** `load` warmers in mode 'missing': the cache key of an id, looked up before loading it. */
  key?(id: Id): string;
  /** An id given as text (`run(name, { ids, parseIds: true })`, the CLI's `--ids`/`--file`) as `keys()` would yield it. */
  parseId?(text: string): Id;
  /** `http` warmers: the path of an id (default: the id itself, which must then be a string starting with '/'). */
  path?(id: Id): string;
}

export interface WarmupKeyCounts {
  ok: number;
  failed: number;
  skipped: number;
}

/** How a run ended: 'failed' means the run itself (its ids) failed; keys that fail leave it 'completed'. */
export type WarmupRunStatus = 'completed' | 'cancelled' | 'failed' | 'skipped';

export interface WarmupRunResult {
  warmer: string;
  trigger: WarmupTrigger;
  status: WarmupRunStatus;
  /** Why it was skipped, cancelled or failed. */
  reason?: string;
  startedAt: Date;
  endedAt: Date;
  durationMs: number;
  keys: WarmupKeyCounts;
  /** The first 20 failed keys. */
  errors: Array<{ id: string; message: string }>;
}

export interface WarmupRunOptions {
  /** The ids to warm (default: the warmer's `keys()`). Any iterable or async iterable: it is read as the run goes. */
  ids?: Iterable<unknown> | AsyncIterable<unknown>;
  /** `ids` are text (a file, a command line): each goes through the warmer's `parseId()`. */
  parseIds?: boolean;
  /** Cancels the run. */
  signal?: AbortSignal;
  /** Take the cluster-wide lease first, as a scheduled run does; skipped when another instance holds it. */
  exclusive?: boolean;
  /** Overrides the warmer's own. */
  concurrency?: number;
  mode?: WarmupMode;
  /** Told about this run only. */
  observer?: WarmupObserver;
}

export interface WarmupStartedEvent {
  warmer: string;
  trigger: WarmupTrigger;
  startedAt: Date;
}

/** After each key. */
export interface WarmupProgressEvent {
  warmer: string;
  trigger: WarmupTrigger;
  id: unknown;
  result: 'ok' | 'failed' | 'skipped';
  error?: unknown;
  /** The run's counts so far. */
  keys: WarmupKeyCounts;
}

/** `TieredCacheWarmup.observe(observer)`, or `run(name, { observer })`. Must not throw (what it throws is logged). */
export interface WarmupObserver {
  started?(event: WarmupStartedEvent): void;
  progress?(event: WarmupProgressEvent): void;
  /** Also for a skipped run. */
  finished?(result: WarmupRunResult): void;
}

/** `TieredCacheWarmup.stats()[name]`. */
export interface WarmerStats {
  name: string;
  kind: 'load' | 'method' | 'http';
  /** HTTP warmers: where the requests go (null: this app's own server). */
  baseUrl?: string | null;
  mode: WarmupMode;
  concurrency: number;
  cron?: string;
  /** The schedule's next tick (null when stopped). */
  nextRun?: Date | null;
  onBootstrap: boolean;
  running: boolean;
  /** The run going on now. */
  current?: { trigger: WarmupTrigger; startedAt: Date; keys: WarmupKeyCounts };
  /** The last run that ran (a skipped one does not replace it). */
  lastRun?: Omit<WarmupRunResult, 'warmer' | 'errors'>;
  lastSkip?: { trigger: WarmupTrigger; at: Date; reason: string };
  totals: { runs: number; skippedRuns: number; keys: WarmupKeyCounts };
}
