import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { CacheCodec } from './codec';
import type { Duration } from './duration';
import type { TieredCacheMetricsOptions } from './metrics-options.interface';
import type { TieredCacheTracingOptions } from './tracing-options.interface';

export type { Duration };

/** How callers are protected from mutating a cached object that other callers share. */
export type L1Protection = 'none' | 'clone' | 'freeze';

export interface L1Options {
  /** Default true. */
  enabled?: boolean;
  /** Max entries (default 10,000). */
  maxEntries?: number;
  /** Optional cap on the approximate bytes held (sizes are estimated from the serialized form). */
  maxBytes?: number;
  /** L1 TTL (default 5 minutes); an entry never outlives its L2 TTL either. */
  ttl?: Duration;
  /** How often expired entries are purged in the background (default 60s). */
  cleanupInterval?: Duration;
  /** Hit ratio below which health reports this tier degraded (see HitRateTarget; default none). */
  hitRateTarget?: HitRateTarget;
  /** 'none' (default, fastest: callers share one object), 'clone' (structuredClone on every read), 'freeze' (deep-freeze on write). */
  protection?: L1Protection;
}

export interface L2Options {
  /** Default true when `redis` is configured, else false. */
  enabled?: boolean;
  /** L2 TTL (default `defaultTtl`). */
  ttl?: Duration;
  /** L2 hits of one key before it is copied into L1 (default 1). */
  promoteAfter?: number;
  /**
   * The longest a getOrSet factory (or @Cacheable method) may run and still have its result stored (default 1m).
   * A delete leaves a fence in Redis this long, so a fill it overtook, on any instance, is never stored.
   */
  fillWindow?: Duration;
  /** Hit ratio below which health reports L2 degraded (see HitRateTarget; default none). */
  hitRateTarget?: HitRateTarget;
  /** Compress L2's large entries (see CompressionOptions; default off). */
  compression?: CompressionOptions | boolean;
}

/**
 * Compression of a shared tier's entries (node:zlib). `true` = the defaults. Entries are compressed when their
 * serialized size reaches `threshold`, and flagged in the entry envelope so any instance reads either form.
 * `maxValueBytes` still applies to the uncompressed size.
 */
export interface CompressionOptions {
  /** Default 'brotli'. */
  algorithm?: 'gzip' | 'deflate' | 'brotli';
  /** gzip/deflate level 1–9, brotli quality 0–11 (default 6 for gzip/deflate, 1 for brotli). */
  level?: number;
  /** Smallest serialized size compressed (default '1kb'). */
  threshold?: ByteSize;
}

/**
 * A remote tier's circuit breaker: after `failures` failed calls or missed deadlines within `window`, every call
 * is skipped at once (a miss, a deferred invalidation) for `openFor`; then one probe (PING, `SELECT 1`) decides
 * whether calls go out again. Defaults: 5 failures in 10s, open for 5s. `false` turns it off.
 */
export interface BreakerOptions {
  /** Failures (missed deadlines included) that open the breaker (default 5). */
  failures?: number;
  /** Within how long (default 10s). */
  window?: Duration;
  /** How long an open breaker skips calls before it probes (default 5s). */
  openFor?: Duration;
}

interface RedisCommonOptions {
  /** Our own deadline on every L2 call (default 250ms). A slow Redis never holds a request longer. */
  commandTimeout?: Duration;
  /** Bounded wait for the first connection at boot (default 3s); boot never blocks longer. */
  connectTimeout?: Duration;
  /** Idle socket timeout: detects half-open TCP connections (default 10s). */
  socketTimeout?: Duration;
  /** Data connections, used round-robin (standalone/Sentinel; default 1: ioredis multiplexes). */
  maxConnections?: number;
  /** RESP version; pinned to 2 by default so managed Redis without HELLO works too. */
  protocol?: 2 | 3;
  /** Extra ioredis options, applied last (except the safety defaults named above). */
  redisOptions?: RedisOptions;
  /** Circuit breaker of this Redis tier (see BreakerOptions; default on). Not the bus' own connections. */
  breaker?: false | BreakerOptions;
}

export interface StandaloneRedisOptions extends RedisCommonOptions {
  mode?: 'standalone';
  /** `redis://[user:pass@]host:port[/db]` or `rediss://…` for TLS. */
  url: string;
}

export interface SentinelRedisOptions extends RedisCommonOptions {
  mode: 'sentinel';
  sentinels: Array<{ host: string; port: number }>;
  /** The master group name. */
  name: string;
  password?: string;
  username?: string;
  sentinelPassword?: string;
  db?: number;
}

export interface ClusterRedisOptions extends RedisCommonOptions {
  mode: 'cluster';
  nodes: Array<{ host: string; port: number } | string>;
  password?: string;
  username?: string;
  clusterOptions?: ClusterOptions;
}

/**
 * An ioredis client of the app's own (`new Redis(...)`, a Sentinel client, or `new Cluster(...)`), shared with
 * the cache. The cache sends its commands through it and never closes it; the connections it needs besides
 * (the bus subscriber, further data connections) are duplicated from it and closed with the cache. Its
 * connection settings apply, so none of url, sentinels, nodes, password, … may come with it; the common options
 * (commandTimeout, connectTimeout, socketTimeout, maxConnections, protocol, redisOptions, breaker) still do,
 * `protocol` and `redisOptions` for the duplicated connections only. A client with `keyPrefix` is refused.
 * See docs/redis-client-and-logging.md.
 */
export interface ExistingRedisClientOptions extends RedisCommonOptions {
  client: Redis | Cluster;
  /** Taken from the client; if given, it must match it. */
  mode?: 'standalone' | 'sentinel' | 'cluster';
}

export type RedisConnectionOptions = StandaloneRedisOptions | SentinelRedisOptions | ClusterRedisOptions | ExistingRedisClientOptions;

export interface WriteBehindOptions {
  /** Flush interval (default 100ms). */
  flushInterval?: Duration;
  /** Entries per pipelined batch (default 500). */
  batchSize?: number;
  /** Max queued writes (default 10,000); past it the oldest queued write is dropped and counted. */
  maxQueue?: number;
}

/**
 * Auto-recovery: writes that could not reach a shared tier (Redis, or a tier below it) while it was down are
 * queued and replayed, each only where the tier proves it is not stale, when the tier is back (docs/cache-api.md).
 */
export interface RecoveryOptions {
  /** Queued writes per tier (default 10,000); past it the oldest is pushed out and its key deleted there instead. */
  maxKeys?: number;
  /** Writes replayed at once (default 100). */
  batchSize?: number;
}

/** A byte size: a number of bytes, or a string such as `'512kb'`, `'5mb'`, `'1gb'` (1 kb = 1,024 bytes). */
export type ByteSize = number | string;

interface TierConfigBase {
  /** Unique in the list: the key of stats().tiers and of `set(..., { tier })`. */
  name: string;
  /** How long this tier keeps an entry (a call's `ttl` caps it). */
  ttl?: Duration;
  /** Hits of one key in this tier before it is copied up into the tiers above (default 1). */
  promoteAfter?: number;
  /** Hit ratio below which health reports this tier degraded (see HitRateTarget; default none). */
  hitRateTarget?: HitRateTarget;
}

/**
 * A tier's hit-rate target: a ratio (0.85), or `{ ratio, window }`. It is judged over the lookups since the last
 * judgement once there are at least `window` of them (default 1,000): the first `window` lookups are a warm-up.
 * A miss makes the health check report the cache degraded (never down) and shows in stats().tiers[name].target.
 */
export type HitRateTarget = number | { ratio: number; window?: number };

interface SharedTierConfig extends TierConfigBase {
  /** Compress this tier's large entries (default off); not for the memory tier, which holds live values. */
  compression?: CompressionOptions | boolean;
  /** This tier's circuit breaker (see BreakerOptions; default on). A redis tier may give it in `redis` instead. */
  breaker?: false | BreakerOptions;
}

/** The in-process tier (lru-cache); only as the first tier. */
export interface MemoryTierConfig extends TierConfigBase, Omit<L1Options, 'enabled' | 'maxBytes' | 'ttl'> {
  type: 'memory';
  maxBytes?: ByteSize;
}

/**
 * A Redis tier. The first one carries the invalidation bus and the fill fences of every instance (what `redis`
 * and `l2` configure in the short form); a later one is a further tier with its own connection.
 */
export interface RedisTierConfig extends SharedTierConfig {
  type: 'redis';
  redis: string | RedisConnectionOptions;
  /** 'through' (default): `set` resolves once this tier has the value; 'behind': queued, written in batches. */
  write?: 'through' | 'behind';
  /** Queue bounds when `write: 'behind'`. */
  writeBehind?: WriteBehindOptions;
  /** First Redis tier only: as `l2.fillWindow`. */
  fillWindow?: Duration;
}

export interface PostgresConnectionOptions {
  /** postgres://user:pass@host:port/db */
  url: string;
  schema?: string;
  /** Default 'tiered_cache'. */
  table?: string;
  /** CREATE TABLE IF NOT EXISTS at boot (default true); false when DDL is not allowed at runtime (ship sql/postgres-tier.sql). */
  createTable?: boolean;
  /** An UNLOGGED table: no WAL, far cheaper writes, emptied by a database crash. */
  unlogged?: boolean;
  /** Every query's deadline, client side and as statement_timeout (default 500ms). */
  commandTimeout?: Duration;
  /** Bound on opening a connection and on waiting for a free one (default 2s). */
  connectTimeout?: Duration;
  /** Pool size (default 4). */
  maxConnections?: number;
  /** Calls waiting for a connection beyond this fail at once (default 1,000). */
  maxWaiting?: number;
  /** Period of the expiry sweep and the trim (default 30s). */
  maintenanceInterval?: Duration;
  /** Rows per batch of the sweep, the trim and pattern/tag deletes (default 500). */
  batchSize?: number;
}

/** A persistent tier in PostgreSQL (the `pg` driver, an optional peer). */
export interface PostgresTierConfig extends SharedTierConfig {
  type: 'postgres';
  postgres: string | PostgresConnectionOptions;
  /** Rows kept in this namespace; the oldest writes go first. */
  maxEntries?: number;
  /** Bytes kept in this namespace (sum of the values' sizes); the oldest writes go first. */
  maxBytes?: ByteSize;
  write?: 'through' | 'behind';
  writeBehind?: WriteBehindOptions;
}

export type TierConfig = MemoryTierConfig | RedisTierConfig | PostgresTierConfig;

export interface TieredCacheOptions {
  /**
   * The tiers, top (asked first) to bottom. An alternative to `l1` / `l2` / `redis` / `writeBehind`, which
   * stay as the short form of `[memory, redis]`; give one form or the other.
   */
  tiers?: TierConfig[];
  /** Namespace of every Redis key and channel (default 'cache:'). */
  keyPrefix?: string;
  /** TTL when a call gives none (default 1h). Numbers are **milliseconds**. */
  defaultTtl?: Duration;
  l1?: L1Options;
  l2?: L2Options;
  /** A redis URL or connection options. Without it the cache is L1-only. */
  redis?: string | RedisConnectionOptions;
  /** Default true: `set` resolves after L1 and L2 are written. */
  writeThrough?: boolean;
  /** Write L1 at once, queue L2 writes. Mutually exclusive with writeThrough. */
  writeBehind?: boolean | WriteBehindOptions;
  /** Replay of writes a shared tier missed while it was down (default on; `false` turns it off). */
  recovery?: boolean | RecoveryOptions;
  /** Default true: getOrSet (and @Cacheable) store what the factory returns. false = cache-aside only. */
  readThrough?: boolean;
  /** Store `null` results (default false: null is a miss). `undefined` is never stored. */
  cacheNullValues?: boolean;
  /** 'default' (round-trips Date/BigInt/Map/Set), 'json' (plain JSON for other languages), or your own. */
  codec?: 'default' | 'json' | CacheCodec;
  /** Values whose serialized form exceeds this are rejected before anything is written (default 1 MiB). */
  maxValueBytes?: number;
  /**
   * Where operational messages go (Redis and database errors, corrupt payloads), at most once per kind per
   * minute. Default: console (`[tiered-cache] …`) for the engine alone; in the Nest module, Nest's `Logger`
   * with the context `TieredCache`. A Nest `LoggerService` or `Logger` instance fits as it is.
   */
  logger?: CacheLogger;
  /**
   * Cross-instance L1 consistency over Redis pub/sub (default on whenever L2 is on). `false` turns it off:
   * then another instance's change reaches this instance's L1 only when the L1 entry expires (`l1.ttl`).
   */
  bus?: boolean | InvalidationBusOptions;
  /**
   * One getOrSet factory run per missing key across every instance sharing Redis (default on whenever L2 is
   * on): a miss takes a lock in Redis, and the other instances' misses of that key wait for its value instead
   * of running their own factory. `false` keeps single flight per process only. See FillLockOptions.
   */
  lock?: boolean | FillLockOptions;
  /** Batching of `invalidate(key)` (`delete` stays immediate). */
  invalidation?: InvalidationQueueOptions;
  /** Declarative event → invalidation rules, applied when the app uses `EventEmitterModule`. */
  invalidationRules?: InvalidationRule[];
  /** Defaults for stale-while-revalidate, fail-safe and factory timeouts (see ResilienceOptions). */
  resilience?: ResilienceOptions;
  /** Prometheus metrics (prom-client). Default: on when prom-client is installed; `false` turns them off. */
  metrics?: boolean | TieredCacheMetricsOptions;
  /**
   * OpenTelemetry spans for get, getOrSet, factory runs and invalidations. Default: on when @opentelemetry/api is
   * installed (L1 hits not spanned); `false` turns them off. See TieredCacheTracingOptions.
   */
  tracing?: boolean | TieredCacheTracingOptions;
  /** HTTP options of the Nest layer (TieredCacheInterceptor). */
  http?: TieredCacheHttpOptions;
}

export interface TieredCacheHttpOptions {
  /**
   * Default false. Express only: an L1 HIT of an eligible cached GET route is answered by a middleware before
   * Nest routing (no guards, interceptors or observables run; they would not have changed the answer). See
   * docs/http-caching.md for the exact rules.
   */
  fastPath?: boolean;
  /** URLs the fast path remembers (default 10,000); past it the oldest is forgotten (then served the normal way). */
  fastPathMaxUrls?: number;
}

export interface InvalidationBusOptions {
  /** Default true (when L2 is on). */
  enabled?: boolean;
  /** Larger messages are split (or, for one huge key, sent as an L1 clear); received ones are dropped (default 64 KiB). */
  maxMessageBytes?: number;
  /** Changes kept for re-publishing while Redis is unreachable (default 10,000); past it they collapse into one L1 clear. */
  retryQueueSize?: number;
  /** PING on the subscriber connection, so a half-open socket is noticed within `redis.socketTimeout` (default 5s). */
  heartbeatInterval?: Duration;
  /**
   * Overwrites (set/mset of existing keys) made within this window are published as one message (default 1 ms;
   * 0 = at the end of the current tick). Deletes, tags, patterns and clear are published at once, and take any
   * waiting overwrites with them. The window is what another instance may keep serving the old value for,
   * on top of the pub/sub delivery time; it saves a PUBLISH (and a message every instance decodes) per write.
   */
  overwriteWindow?: Duration;
  /**
   * Other instances' overwrites reach this L1 through Redis server-assisted invalidation (`CLIENT TRACKING ...
   * BCAST PREFIX <keyPrefix> NOLOOP`, redirected to the bus subscriber): a write then costs no PUBLISH at all
   * (default true; Redis >= 6, standalone or Sentinel). `false`, a Cluster, or a Redis that refuses the
   * command: overwrites are published on the bus (`overwriteWindow`). Every instance sharing a keyPrefix must
   * use the same setting: an instance that relies on tracking does not publish its overwrites.
   */
  tracking?: boolean;
}

/**
 * The cluster-wide fill lock of getOrSet. An instance whose miss finds the lock taken waits until the holder's
 * value is stored (it hears of it on the bus, or polls), then reads it; it never waits past `wait`, and runs
 * its own factory then. A holder whose factory throws releases the lock at once and the next waiter takes it
 * (one at a time, not all at once). When Redis cannot be asked, fills fall back to single flight per process.
 */
export interface FillLockOptions {
  /** Default true (when L2 is on). */
  enabled?: boolean;
  /**
   * Lifetime of a lock (default 2s), renewed every third of it while its holder's factory runs: how long the
   * other instances wait before they replace a holder that died.
   */
  ttl?: Duration;
  /** The longest a miss waits for another instance's value before it runs its own factory (default 5s). */
  wait?: Duration;
  /**
   * First interval at which a waiter reads the key again in case it missed the announcement (default 50ms);
   * it doubles after each read, up to 8 times this.
   */
  poll?: Duration;
}

export interface InvalidationQueueOptions {
  /** Queued invalidations applied per batch; a full batch is applied at once (default 100). */
  batchSize?: number;
  /** Longest a queued invalidation waits (default 100ms). Env `CACHE_INVALIDATION_TIMEOUT`: a bare number is seconds. */
  maxDelay?: Duration;
}

/**
 * What an event invalidates. Templates take `{field}` placeholders filled from the event payload (`{a.b}` for
 * nested fields, `{propertyId|property_id}` for alternatives; `{{`/`}}` for literal braces). A payload missing a
 * field skips the whole rule (logged and counted): it never widens into `property:undefined:*` or `*`.
 */
export interface InvalidationRule {
  /** Event name or names; `*` matches one dot-separated segment, `**` any number (as EventEmitter2 wildcards). */
  event: string | string[];
  /** Exact cache keys to delete. */
  keys?: string[];
  /** Redis globs to invalidate; values filled into them are glob-escaped. */
  patterns?: string[];
  /** Tags to invalidate. */
  tags?: string[];
}

export interface CacheLogger {
  warn(message: string): void;
  error(message: string): void;
}

export interface SetOptions<T = unknown> {
  /**
   * L2 TTL (and the L1 TTL cap; with more tiers, the cap of every tier's own TTL). Numbers are milliseconds. A
   * function of the value (adaptive TTL) is called once per write, before anything is written.
   */
  ttl?: Duration | ((value: T) => Duration);
  /**
   * How long each tier keeps an entry past its TTL as a stale copy (default `resilience.grace`; `false` or 0:
   * none). getOrSet serves a stale copy at once and refreshes it in the background; get() treats it as a miss.
   */
  grace?: Duration | false;
  /**
   * Write this tier (by name) and the ones below it, never above; the copies above are invalidated, so no
   * older value there shadows the new one.
   */
  tier?: string;
  /** L1 TTL for this entry (never longer than `ttl`). */
  l1Ttl?: Duration;
  tags?: readonly string[];
  /** getOrSet only: take (or wait for) the cluster-wide fill lock on a miss (default: the cache's `lock` setting). */
  lock?: boolean;
}

export type { MetricsRegistry, TieredCacheMetricsOptions } from './metrics-options.interface';
export type { CacheSpan, CacheTracer, TieredCacheTracingOptions } from './tracing-options.interface';

/** getOrSet's options: a write's, plus what protects callers from a slow or failing source. */
export interface GetOrSetOptions<T = unknown> extends SetOptions<T> {
  /**
   * A hit after this fraction of the TTL (0 < ratio < 1, e.g. 0.8) returns the value and refreshes it in the
   * background, before it expires (default `resilience.eagerRefresh`; `false`: off).
   */
  eagerRefresh?: number | false;
  /** Serve a stale copy (within `grace`) when the factory throws or times out (default `resilience.failSafe`, true). */
  failSafe?: boolean;
  /** How long a stale copy served by fail-safe is kept from then on (default `resilience.failSafeTtl`). */
  failSafeTtl?: Duration;
  /** After fail-safe served a stale copy, the source is not called for that key again before this (default `resilience.failSafeBackoff`). */
  failSafeBackoff?: Duration;
  /** Factory timeouts (default `resilience.timeout`; `false`: none). See FactoryTimeouts. */
  timeout?: FactoryTimeouts | false;
}

/**
 * Factory timeouts. Past `soft`, a caller with a stale copy (within grace) gets it; past `hard`, a caller without
 * one gets a CacheFactoryTimeoutError. Either way the factory goes on in the background and its result is stored
 * when it comes (unless an invalidation of the key came first).
 */
export interface FactoryTimeouts {
  soft?: Duration;
  hard?: Duration;
}

/** Cache-wide defaults for getOrSet's resilience options (each call, decorator or route may override them). */
export interface ResilienceOptions {
  /** Default none. */
  grace?: Duration | false;
  /** Default off. */
  eagerRefresh?: number | false;
  /** Default true (it only acts when there is a stale copy, i.e. with grace). */
  failSafe?: boolean;
  /** Default: `grace`. */
  failSafeTtl?: Duration;
  /** Default 10s. */
  failSafeBackoff?: Duration;
  /** Default none. */
  timeout?: FactoryTimeouts | false;
}
