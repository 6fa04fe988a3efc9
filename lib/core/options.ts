import { resolveCodec, type CacheCodec } from './codec';
import { parseDuration, parseTimerDuration } from './duration';
import { TieredCacheOptionsError } from './errors';
import type { ResolvedCompression } from './compression';
import type { ResolvedHitRateTarget } from './hit-rate-targets';
import { resolveResilience, type ResolvedResilience } from './get-set/resilience-policy';
import type { BreakerSettings } from './tiers/circuit-breaker';
import { checkBorrowedClient, isIoredisClient, unusableSettings, type BorrowedClient } from './tiers/borrowed-client';
import { expandTiers, resolveBreaker, resolveCompression, resolveHitRateTarget, type ResolvedLowerTier } from './tier-options';
import type { CacheTracer } from './tracing-options.interface';
import type {
  CacheLogger,
  L1Protection,
  RedisConnectionOptions,
  TieredCacheOptions,
} from './tiered-cache-options.interface';

/** The `tracing` option after validation (tracing.ts builds the spans). `enabled` undefined: on when @opentelemetry/api loads. */
export interface ResolvedTracing {
  enabled: boolean | undefined;
  tracer: CacheTracer | undefined;
  l1Hits: boolean;
  recordKeys: boolean;
  /** `cache.name` on every span: the name the cache's metrics carry (metrics.name, else the keyPrefix). */
  name: string;
}

/** Options after validation: every default applied, every duration in milliseconds. */
export interface ResolvedOptions {
  keyPrefix: string;
  defaultTtl: number;
  /** TTL of an entry when a call gives none: l2.ttl with L2; L1-only, l1.ttl if set, else defaultTtl. */
  entryTtl: number;
  l1: { enabled: boolean; maxEntries: number; maxBytes: number | undefined; ttl: number; cleanupInterval: number; protection: L1Protection };
  l2: { enabled: boolean; ttl: number; promoteAfter: number; fillWindow: number; compression: ResolvedCompression | undefined };
  redis:
    | (RedisConnectionOptions & { commandTimeout: number; connectTimeout: number; socketTimeout: number; maxConnections: number; protocol: 2 | 3; breaker: BreakerSettings | false })
    | undefined;
  writeBehind: { flushInterval: number; batchSize: number; maxQueue: number } | undefined;
  /** Replay of missed writes (recovery-queue.ts); undefined when off. */
  recovery: { maxKeys: number; batchSize: number } | undefined;
  readThrough: boolean;
  cacheNullValues: boolean;
  codec: CacheCodec;
  maxValueBytes: number;
  logger: CacheLogger;
  /** Cross-instance invalidation bus; undefined when off or without L2. */
  bus: { maxMessageBytes: number; retryQueueSize: number; heartbeatInterval: number; overwriteWindow: number; tracking: boolean } | undefined;
  invalidation: { batchSize: number; maxDelay: number };
  /** getOrSet's cluster-wide fill lock (get-set/distributed-lock.ts); `enabled` is false without L2. */
  lock: { enabled: boolean; ttl: number; wait: number; poll: number };
  /** Names of the top tiers in stats() and `set(..., { tier })` ('l1', 'l2' unless `tiers` names them). */
  tierNames: { l1: string; l2: string };
  /** Tiers with a hit-rate target, by name. */
  hitRateTargets: ReadonlyMap<string, ResolvedHitRateTarget>;
  /** The tiers below the first Redis tier, top down (`tiers` only). */
  lower: ResolvedLowerTier[];
  /** getOrSet's defaults for stale-while-revalidate, fail-safe and factory timeouts. */
  resilience: ResolvedResilience;
  /** OpenTelemetry spans (tracing.ts); `enabled` undefined: on when @opentelemetry/api is installed. */
  tracing: ResolvedTracing;
  /** Accepted but probably not meant: logged once at boot. */
  warnings: string[];
}

export function resolveOptions(options: TieredCacheOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new TieredCacheOptionsError('options', options, 'expected an object');
  let input = options;
  const keyPrefix = input.keyPrefix ?? 'cache:';
  if (typeof keyPrefix !== 'string') throw new TieredCacheOptionsError('keyPrefix', keyPrefix, 'expected a string');
  const defaultTtl = parseDuration('defaultTtl', input.defaultTtl ?? '1h');
  const tiers = input.tiers === undefined ? undefined : expandTiers(input, defaultTtl);
  const warnings = [...(tiers?.warnings ?? [])];
  if (tiers) {
    input = { ...input, ...tiers.short };
    // Checked here, at boot, as the first Redis tier is (the tier resolves it again when it is built).
    for (const t of tiers.lower) if (t.type === 'redis') warnings.push(...borrowedNotes(resolveRedis(t.redis, `tiers.${t.name}.redis`), `tiers.${t.name}.redis`));
  }

  const l1In = input.l1 ?? {};
  const l1 = {
    enabled: bool('l1.enabled', l1In.enabled, true),
    maxEntries: positiveInt('l1.maxEntries', l1In.maxEntries, 10_000),
    maxBytes: l1In.maxBytes === undefined ? undefined : positiveInt('l1.maxBytes', l1In.maxBytes, 0),
    ttl: parseDuration('l1.ttl', l1In.ttl ?? '5m'),
    cleanupInterval: parseTimerDuration('l1.cleanupInterval', l1In.cleanupInterval ?? '60s'),
    protection: oneOf('l1.protection', l1In.protection, ['none', 'clone', 'freeze'] as const, 'none'),
  };

  const redis = resolveRedis(input.redis);
  warnings.unshift(...borrowedNotes(redis, tiers?.names.l2 ? `tiers.${tiers.names.l2}.redis` : 'redis'));
  const l2In = input.l2 ?? {};
  const l2 = {
    enabled: bool('l2.enabled', l2In.enabled, redis !== undefined),
    ttl: l2In.ttl === undefined ? defaultTtl : parseDuration('l2.ttl', l2In.ttl),
    promoteAfter: positiveInt('l2.promoteAfter', l2In.promoteAfter, 1),
    fillWindow: parseDuration('l2.fillWindow', l2In.fillWindow ?? '1m'),
    // The `tiers` form checked its own (under its own name) before it became l2.compression.
    compression: resolveCompression('l2.compression', l2In.compression),
  };
  if (l2.enabled && !redis) throw new TieredCacheOptionsError('l2.enabled', true, 'L2 needs `redis` (a URL or connection options)');
  if (!l1.enabled && !l2.enabled) throw new TieredCacheOptionsError('l1.enabled', false, 'with L2 disabled too, nothing would be cached');

  const writeThrough = input.writeThrough === undefined ? undefined : bool('writeThrough', input.writeThrough, true);
  const wbIn = input.writeBehind;
  const writeBehindOn = wbIn !== undefined && wbIn !== false;
  if (writeBehindOn && writeThrough === true) {
    throw new TieredCacheOptionsError('writeBehind', wbIn, 'writeThrough and writeBehind are both on; choose one');
  }
  if (!writeBehindOn && writeThrough === false) {
    throw new TieredCacheOptionsError('writeThrough', false, 'turn writeBehind on, or leave writeThrough on');
  }
  let writeBehind: ResolvedOptions['writeBehind'];
  if (writeBehindOn) {
    const wb = wbIn === true ? {} : (wbIn as Exclude<typeof wbIn, boolean | undefined>);
    if (typeof wb !== 'object' || wb === null) throw new TieredCacheOptionsError('writeBehind', wbIn, 'expected true or an options object');
    writeBehind = {
      flushInterval: parseTimerDuration('writeBehind.flushInterval', wb.flushInterval ?? 100),
      batchSize: positiveInt('writeBehind.batchSize', wb.batchSize, 500),
      maxQueue: positiveInt('writeBehind.maxQueue', wb.maxQueue, 10_000),
    };
  }

  // The `tiers` form checked its own (under their names) before they became l1 / l2.hitRateTarget.
  const hitRateTargets = new Map<string, ResolvedHitRateTarget>();
  const tierNames = { l1: tiers?.names.l1 ?? 'l1', l2: tiers?.names.l2 ?? 'l2' };
  const l1Target = l1.enabled ? resolveHitRateTarget('l1.hitRateTarget', l1In.hitRateTarget) : undefined;
  if (l1Target) hitRateTargets.set(tierNames.l1, l1Target);
  const l2Target = l2.enabled ? resolveHitRateTarget('l2.hitRateTarget', l2In.hitRateTarget) : undefined;
  if (l2Target) hitRateTargets.set(tierNames.l2, l2Target);
  for (const t of tiers?.lower ?? []) if (t.hitRateTarget) hitRateTargets.set(t.name, t.hitRateTarget);
  const codec = input.codec;
  if (codec !== undefined && codec !== 'default' && codec !== 'json' && (typeof codec !== 'object' || typeof codec.encode !== 'function' || typeof codec.decode !== 'function')) {
    throw new TieredCacheOptionsError('codec', codec, "expected 'default', 'json' or an object with encode() and decode()");
  }

  return {
    keyPrefix,
    defaultTtl,
    entryTtl: l2.enabled ? l2.ttl : l1In.ttl !== undefined ? l1.ttl : defaultTtl,
    l1,
    l2,
    redis: l2.enabled ? redis : undefined,
    writeBehind: l2.enabled ? writeBehind : undefined,
    recovery: resolveRecovery(input.recovery),
    readThrough: bool('readThrough', input.readThrough, true),
    cacheNullValues: bool('cacheNullValues', input.cacheNullValues, false),
    codec: resolveCodec(codec),
    maxValueBytes: positiveInt('maxValueBytes', input.maxValueBytes, 1024 * 1024),
    logger: resolveLogger(input.logger),
    bus: resolveBus(input.bus, l2.enabled),
    invalidation: resolveInvalidation(input.invalidation),
    lock: resolveLock(input.lock, l2.enabled),
    tierNames,
    hitRateTargets,
    lower: tiers?.lower ?? [],
    resilience: resolveResilience(input.resilience),
    tracing: resolveTracing(input.tracing, metricsName(input.metrics) ?? keyPrefix),
    warnings,
  };
}

function resolveTracing(input: TieredCacheOptions['tracing'], name: string): ResolvedTracing {
  if (input === undefined || typeof input === 'boolean') return { enabled: input, tracer: undefined, l1Hits: false, recordKeys: false, name };
  if (input === null || typeof input !== 'object') throw new TieredCacheOptionsError('tracing', input, 'expected true, false or { enabled?, tracer?, l1Hits?, recordKeys? }');
  const tracer = input.tracer;
  if (tracer !== undefined && (tracer === null || typeof tracer !== 'object' || typeof tracer.startSpan !== 'function')) {
    throw new TieredCacheOptionsError('tracing.tracer', tracer, 'expected an OpenTelemetry Tracer (with startSpan)');
  }
  return {
    enabled: input.enabled === undefined ? undefined : bool('tracing.enabled', input.enabled, true),
    tracer,
    l1Hits: bool('tracing.l1Hits', input.l1Hits, false),
    recordKeys: bool('tracing.recordKeys', input.recordKeys, false),
    name,
  };
}

/** The name the cache's metrics carry (`metrics.name`), which its spans carry too. */
function metricsName(metrics: TieredCacheOptions['metrics']): string | undefined {
  return typeof metrics === 'object' && metrics !== null && typeof metrics.name === 'string' && metrics.name !== '' ? metrics.name : undefined;
}

function resolveLogger(input: unknown): CacheLogger {
  if (input === undefined) return consoleLogger;
  const l = input as Partial<CacheLogger> | null;
  if (l === null || typeof l !== 'object' || typeof l.warn !== 'function' || typeof l.error !== 'function') {
    throw new TieredCacheOptionsError('logger', input, 'expected an object with warn(message) and error(message), such as a Nest Logger');
  }
  // Bound: a LoggerService's methods may use `this`.
  return { warn: (m) => l.warn?.(m), error: (m) => l.error?.(m) };
}

/** What boot says once about a borrowed client the cache cannot use as it is (see borrowed-client.ts). */
function borrowedNotes(redis: ResolvedOptions['redis'], at: string): string[] {
  const client = (redis as { client?: BorrowedClient } | undefined)?.client;
  if (client === undefined) return [];
  const why = unusableSettings(client);
  if (why.length === 0) return [];
  return [`${at}.client: ${why.join('; ')}. The cache sends its commands on a connection of its own, duplicated from the client with that corrected; the client itself is left alone`];
}

function resolveRecovery(input: TieredCacheOptions['recovery']): ResolvedOptions['recovery'] {
  if (input === false) return undefined;
  const r = input === undefined || input === true ? {} : input;
  if (typeof r !== 'object' || r === null) throw new TieredCacheOptionsError('recovery', input, 'expected true, false or an options object');
  return { maxKeys: positiveInt('recovery.maxKeys', r.maxKeys, 10_000), batchSize: positiveInt('recovery.batchSize', r.batchSize, 100) };
}

function resolveBus(input: TieredCacheOptions['bus'], l2: boolean): ResolvedOptions['bus'] {
  if (input === false) return undefined;
  const b = input === undefined || input === true ? {} : input;
  if (typeof b !== 'object' || b === null) throw new TieredCacheOptionsError('bus', input, 'expected true, false or an options object');
  const resolved = {
    maxMessageBytes: positiveInt('bus.maxMessageBytes', b.maxMessageBytes, 64 * 1024),
    retryQueueSize: positiveInt('bus.retryQueueSize', b.retryQueueSize, 10_000),
    heartbeatInterval: parseTimerDuration('bus.heartbeatInterval', b.heartbeatInterval ?? '5s'),
    overwriteWindow: b.overwriteWindow === 0 || b.overwriteWindow === '0' ? 0 : parseTimerDuration('bus.overwriteWindow', b.overwriteWindow ?? 1),
    tracking: bool('bus.tracking', b.tracking, true),
  };
  // Without L2 there is no Redis to carry it (and nothing shared to keep consistent).
  return bool('bus.enabled', b.enabled, true) && l2 ? resolved : undefined;
}

function resolveLock(input: TieredCacheOptions['lock'], l2: boolean): ResolvedOptions['lock'] {
  const l = input === undefined || input === true ? {} : input === false ? { enabled: false } : input;
  if (typeof l !== 'object' || l === null) throw new TieredCacheOptionsError('lock', input, 'expected true, false or { ttl?, wait?, poll? }');
  const resolved = {
    // Without L2 there is nothing shared to lock in; a per-call `lock: true` then changes nothing either.
    enabled: bool('lock.enabled', l.enabled, true) && l2,
    ttl: parseTimerDuration('lock.ttl', l.ttl ?? '2s'),
    wait: parseTimerDuration('lock.wait', l.wait ?? '5s'),
    poll: parseTimerDuration('lock.poll', l.poll ?? 50),
  };
  // The renewal runs every third of the TTL: below 30 ms it would be a busy loop against Redis.
  if (resolved.ttl < 30) throw new TieredCacheOptionsError('lock.ttl', l.ttl, 'must be at least 30ms (the lock is renewed every third of it)');
  return resolved;
}

function resolveInvalidation(input: TieredCacheOptions['invalidation']): ResolvedOptions['invalidation'] {
  const i = input ?? {};
  if (typeof i !== 'object' || i === null) throw new TieredCacheOptionsError('invalidation', input, 'expected { batchSize?, maxDelay? }');
  return {
    batchSize: positiveInt('invalidation.batchSize', i.batchSize, 100),
    maxDelay: parseTimerDuration('invalidation.maxDelay', i.maxDelay ?? 100),
  };
}

export function resolveRedis(input: TieredCacheOptions['redis'], at = 'redis'): ResolvedOptions['redis'] {
  if (input === undefined || input === null || input === '') return undefined;
  if (isIoredisClient(input)) throw new TieredCacheOptionsError(at, '[an ioredis client]', `to share your client, pass it as ${at}: { client }`);
  const opts: RedisConnectionOptions = typeof input === 'string' ? { url: input } : input;
  if (typeof opts !== 'object') throw new TieredCacheOptionsError(at, input, 'expected a URL or connection options');
  const borrowed = (opts as { client?: unknown }).client !== undefined;
  const mode = borrowed ? checkBorrowedClient(at, opts as unknown as Record<string, unknown>) : (opts.mode ?? 'standalone');
  if (!borrowed) checkConnection(at, input, opts, mode);
  const protocol = opts.protocol ?? 2;
  if (protocol !== 2 && protocol !== 3) throw new TieredCacheOptionsError(`${at}.protocol`, protocol, 'expected 2 or 3');
  return {
    ...opts,
    mode,
    commandTimeout: parseTimerDuration(`${at}.commandTimeout`, opts.commandTimeout ?? 250),
    connectTimeout: parseTimerDuration(`${at}.connectTimeout`, opts.connectTimeout ?? '3s'),
    socketTimeout: parseTimerDuration(`${at}.socketTimeout`, opts.socketTimeout ?? '10s'),
    maxConnections: positiveInt(`${at}.maxConnections`, opts.maxConnections, 1),
    protocol,
    breaker: resolveBreaker(`${at}.breaker`, opts.breaker),
  } as ResolvedOptions['redis'];
}

/** The connection settings of a URL, Sentinel or Cluster configuration. */
function checkConnection(at: string, input: unknown, opts: RedisConnectionOptions, mode: string): void {
  if (mode === 'standalone') {
    const url = (opts as { url?: unknown }).url;
    let parsed: URL | undefined;
    try {
      parsed = typeof url === 'string' ? new URL(url) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || !parsed.hostname) {
      throw new TieredCacheOptionsError(`${at}.url`, url === undefined ? input : redactUrl(url), 'expected redis://host:port or rediss://host:port');
    }
    const db = parsed.pathname.replace(/^\//, '');
    if (db !== '' && !/^\d+$/.test(db)) throw new TieredCacheOptionsError(`${at}.url`, redactUrl(url), `database "${db}" is not a number`);
  } else if (mode === 'sentinel') {
    const s = opts as { sentinels?: unknown; name?: unknown };
    if (!Array.isArray(s.sentinels) || s.sentinels.length === 0) throw new TieredCacheOptionsError(`${at}.sentinels`, s.sentinels, 'expected at least one { host, port }');
    if (typeof s.name !== 'string' || !s.name) throw new TieredCacheOptionsError(`${at}.name`, s.name, 'expected the Sentinel master group name');
  } else if (mode === 'cluster') {
    const c = opts as { nodes?: unknown };
    if (!Array.isArray(c.nodes) || c.nodes.length === 0) throw new TieredCacheOptionsError(`${at}.nodes`, c.nodes, 'expected at least one cluster node');
  } else {
    throw new TieredCacheOptionsError(`${at}.mode`, mode, "expected 'standalone', 'sentinel' or 'cluster'");
  }
}

/** Hides the password of a Redis URL before it reaches an error message or a log. */
export function redactUrl(url: unknown): unknown {
  if (typeof url !== 'string') return url;
  return url.replace(/\/\/([^@/]*)@/, (_m, auth: string) => `//${auth.includes(':') ? auth.split(':')[0] + ':***' : '***'}@`);
}

function bool(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TieredCacheOptionsError(option, value, 'expected true or false');
  return value;
}

function positiveInt(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TieredCacheOptionsError(option, value, 'expected a positive whole number');
  }
  return value;
}

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) throw new TieredCacheOptionsError(option, value, `expected one of ${allowed.join(', ')}`);
  return value as T;
}

const consoleLogger: CacheLogger = {
  warn: (m) => console.warn(`[tiered-cache] ${m}`),
  error: (m) => console.error(`[tiered-cache] ${m}`),
};
