import { COMPRESSION_ALGORITHMS, DEFAULT_COMPRESSION, LEVELS, type CompressionAlgorithm, type ResolvedCompression } from './compression';
import { parseDuration, parseTimerDuration } from './duration';
import type { ResolvedHitRateTarget } from './hit-rate-targets';
import { DEFAULT_BREAKER, type BreakerSettings } from './tiers/circuit-breaker';
import { TieredCacheOptionsError } from './errors';
import type { PostgresTierOptions } from './tiers/postgres.tier';
import type {
  BreakerOptions,
  ByteSize,
  CompressionOptions,
  HitRateTarget,
  L1Options,
  L2Options,
  PostgresConnectionOptions,
  RedisConnectionOptions,
  TierConfig,
  TieredCacheOptions,
  WriteBehindOptions,
} from './tiered-cache-options.interface';

/** write: 'behind' of a lower tier, resolved. */
export interface LowerWriteBehind {
  flushInterval: number;
  batchSize: number;
  maxQueue: number;
}

/** What every tier below the first Redis tier has, validated (durations in ms). */
interface LowerTierCommon {
  name: string;
  ttl: number;
  promoteAfter: number;
  behind: LowerWriteBehind | undefined;
  compression: ResolvedCompression | undefined;
  hitRateTarget: ResolvedHitRateTarget | undefined;
}

/** A tier below the first Redis tier, validated (connections resolved by options.ts). */
export type ResolvedLowerTier =
  | (LowerTierCommon & { type: 'redis'; redis: string | RedisConnectionOptions })
  | (LowerTierCommon & { type: 'postgres'; postgres: Omit<PostgresTierOptions, 'namespace' | 'name' | 'fillWindow'> });

/** The `tiers` list as the short form it extends (`l1`, `l2`, `redis`, `writeBehind`), plus the tiers below. */
export interface ExpandedTiers {
  short: Pick<TieredCacheOptions, 'l1' | 'l2' | 'redis' | 'writeBehind'>;
  names: { l1: string | undefined; l2: string | undefined };
  lower: ResolvedLowerTier[];
  /** Accepted, but probably not meant (an upper tier outliving the one below it). */
  warnings: string[];
}

const SHORT_FORM = ['l1', 'l2', 'redis', 'writeBehind', 'writeThrough'] as const;
const TYPES = ['memory', 'redis', 'postgres'];
const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i;
const SIZE_UNIT: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_BREAKER_FAILURES = 10_000;

/** Bytes from a number or `'5mb'`-style string (1 kb = 1,024 bytes), a positive whole number. */
export function parseByteSize(option: string, value: ByteSize): number {
  let n: number | undefined;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string') {
    const m = SIZE_RE.exec(value);
    if (m) n = Math.floor(Number(m[1]) * SIZE_UNIT[(m[2] ?? 'b').toLowerCase()]);
  }
  if (n === undefined || !Number.isSafeInteger(n) || n <= 0) throw new TieredCacheOptionsError(option, value, "expected a positive number of bytes or a size such as '512kb', '5mb', '1gb'");
  return n;
}

/**
 * Validates `tiers` and expands it: the memory tier becomes `l1`, the first Redis tier `redis` + `l2` (it
 * carries the bus and the fill fences, so it must come before any other shared tier), the rest the tiers below.
 * Every error names the option at fault (`tiers[2].type`).
 */
export function expandTiers(input: TieredCacheOptions, defaultTtl: number): ExpandedTiers {
  const list = input.tiers as unknown;
  if (!Array.isArray(list) || list.length === 0) throw new TieredCacheOptionsError('tiers', list, 'expected a non-empty array of tiers');
  for (const k of SHORT_FORM) {
    if (input[k] !== undefined) throw new TieredCacheOptionsError(k, input[k], 'give either `tiers` or the short form (l1, l2, redis, writeBehind, writeThrough), not both');
  }
  const out: ExpandedTiers = { short: {}, names: { l1: undefined, l2: undefined }, lower: [], warnings: [] };
  const seen = new Set<string>();
  const ttls: Array<{ name: string; ttl: number }> = [];
  list.forEach((raw: unknown, i) => {
    const at = `tiers[${i}]`;
    if (raw === null || typeof raw !== 'object') throw new TieredCacheOptionsError(at, raw, 'expected a tier object { name, type, ... }');
    const t = raw as TierConfig;
    if (typeof t.name !== 'string' || !NAME_RE.test(t.name)) throw new TieredCacheOptionsError(`${at}.name`, t.name, 'expected a name of 1 to 64 letters, digits, _ or -');
    if (seen.has(t.name)) throw new TieredCacheOptionsError(`${at}.name`, t.name, `two tiers are named "${t.name}"`);
    seen.add(t.name);
    if (!TYPES.includes(t.type)) throw new TieredCacheOptionsError(`${at}.type`, t.type, `expected one of ${TYPES.join(', ')}`);
    const promoteAfter = t.promoteAfter === undefined ? 1 : positiveInt(`${at}.promoteAfter`, t.promoteAfter);
    const hitRateTarget = resolveHitRateTarget(`${at}.hitRateTarget`, t.hitRateTarget);
    if (t.type === 'memory') {
      if (i !== 0) throw new TieredCacheOptionsError(`${at}.type`, t.type, 'a memory tier can only be the first tier (it is this process\'s own copy)');
      const c = (raw as { compression?: unknown }).compression;
      if (c !== undefined) throw new TieredCacheOptionsError(`${at}.compression`, c, 'the memory tier holds live values, not serialized ones: compress a redis or postgres tier');
      const b = (raw as { breaker?: unknown }).breaker;
      if (b !== undefined) throw new TieredCacheOptionsError(`${at}.breaker`, b, 'the memory tier is in-process and cannot hang: a breaker belongs to a redis or postgres tier');
      const { name: _n, type: _t, ttl, promoteAfter: _p, maxBytes, ...rest } = t;
      const l1: L1Options = { ...rest, enabled: true };
      if (maxBytes !== undefined) l1.maxBytes = parseByteSize(`${at}.maxBytes`, maxBytes);
      if (ttl !== undefined) l1.ttl = parseDuration(`${at}.ttl`, ttl);
      out.short.l1 = l1;
      out.names.l1 = t.name;
      ttls.push({ name: t.name, ttl: l1.ttl === undefined ? 300_000 : (l1.ttl as number) });
      return;
    }
    const write = t.write ?? 'through';
    if (write !== 'through' && write !== 'behind') throw new TieredCacheOptionsError(`${at}.write`, write, "expected 'through' or 'behind'");
    if (t.writeBehind !== undefined && write !== 'behind') throw new TieredCacheOptionsError(`${at}.writeBehind`, t.writeBehind, "only with write: 'behind'");
    const behind = write === 'behind' ? (t.writeBehind ?? {}) : undefined;
    if (behind !== undefined && (typeof behind !== 'object' || behind === null)) throw new TieredCacheOptionsError(`${at}.writeBehind`, behind, 'expected { flushInterval?, batchSize?, maxQueue? }');
    const ttl = t.ttl === undefined ? defaultTtl : parseDuration(`${at}.ttl`, t.ttl);
    ttls.push({ name: t.name, ttl });
    const compression = resolveCompression(`${at}.compression`, t.compression);
    const breaker = t.breaker === undefined ? undefined : resolveBreaker(`${at}.breaker`, t.breaker);
    if (out.names.l2 === undefined) {
      if (t.type !== 'redis') throw new TieredCacheOptionsError(`${at}.type`, t.type, 'the first shared tier must be a redis tier: it carries the invalidation bus and the fill fences of every instance');
      if (t.redis === undefined) throw new TieredCacheOptionsError(`${at}.redis`, t.redis, 'expected a redis URL or connection options');
      const l2: L2Options = { enabled: true, ttl, promoteAfter };
      if (t.fillWindow !== undefined) l2.fillWindow = t.fillWindow;
      if (t.compression !== undefined) l2.compression = t.compression;
      if (t.hitRateTarget !== undefined) l2.hitRateTarget = t.hitRateTarget;
      out.short.l2 = l2;
      out.short.redis = withBreaker(at, t.redis, breaker);
      if (behind) out.short.writeBehind = behind;
      out.names.l2 = t.name;
      return;
    }
    if (t.name === 'l1' || t.name === 'l2') throw new TieredCacheOptionsError(`${at}.name`, t.name, 'the names l1 and l2 are the first two tiers\' (metrics label them so); pick another for a tier below them');
    if (t.type === 'redis') {
      if ((t as { fillWindow?: unknown }).fillWindow !== undefined) throw new TieredCacheOptionsError(`${at}.fillWindow`, t.fillWindow, 'set on the first redis tier only: one fill window covers every tier');
      if (t.redis === undefined) throw new TieredCacheOptionsError(`${at}.redis`, t.redis, 'expected a redis URL or connection options');
      out.lower.push({ type: 'redis', name: t.name, ttl, promoteAfter, behind: lowerBehind(at, behind), compression, hitRateTarget, redis: withBreaker(at, t.redis, breaker) });
      return;
    }
    const postgres = resolvePostgres(at, t.postgres, t.maxEntries, t.maxBytes);
    const settings = breaker ?? DEFAULT_BREAKER;
    if (settings !== false) postgres.breaker = settings;
    out.lower.push({ type: 'postgres', name: t.name, ttl, promoteAfter, behind: lowerBehind(at, behind), compression, hitRateTarget, postgres });
  });
  if (out.names.l1 === undefined) out.short.l1 = { enabled: false };
  for (let i = 1; i < ttls.length; i++) {
    const above = ttls[i - 1];
    const below = ttls[i];
    if (above.ttl > below.ttl) {
      out.warnings.push(`tier "${above.name}" keeps entries longer (${above.ttl} ms) than "${below.name}" below it (${below.ttl} ms): a copy above never outlives the entry below, so the longer TTL has no effect`);
    }
  }
  return out;
}

function resolvePostgres(at: string, input: string | PostgresConnectionOptions | undefined, maxEntries: unknown, maxBytes: ByteSize | undefined): Extract<ResolvedLowerTier, { type: 'postgres' }>['postgres'] {
  const o: PostgresConnectionOptions | undefined = typeof input === 'string' ? { url: input } : input;
  if (o === undefined || o === null || typeof o !== 'object') throw new TieredCacheOptionsError(`${at}.postgres`, input, 'expected a postgres:// URL or connection options');
  let url: URL | undefined;
  try {
    url = new URL(o.url);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new TieredCacheOptionsError(`${at}.postgres.url`, typeof o.url === 'string' ? o.url.replace(/\/\/([^@/]*)@/, '//***@') : o.url, 'expected postgres://user:password@host:port/database');
  }
  const p = `${at}.postgres`;
  const ident = (name: string, v: unknown): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,47}$/.test(v)) throw new TieredCacheOptionsError(`${p}.${name}`, v, 'expected a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 48 characters)');
    return v;
  };
  const flag = (name: string, v: unknown): boolean | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw new TieredCacheOptionsError(`${p}.${name}`, v, 'expected true or false');
    return v;
  };
  return {
    url: o.url,
    schema: ident('schema', o.schema),
    table: ident('table', o.table),
    createTable: flag('createTable', o.createTable),
    unlogged: flag('unlogged', o.unlogged),
    commandTimeout: o.commandTimeout === undefined ? undefined : parseTimerDuration(`${p}.commandTimeout`, o.commandTimeout),
    connectTimeout: o.connectTimeout === undefined ? undefined : parseTimerDuration(`${p}.connectTimeout`, o.connectTimeout),
    maxConnections: o.maxConnections === undefined ? undefined : positiveInt(`${p}.maxConnections`, o.maxConnections),
    maxWaiting: o.maxWaiting === undefined ? undefined : positiveInt(`${p}.maxWaiting`, o.maxWaiting),
    maintenanceInterval: o.maintenanceInterval === undefined ? undefined : parseTimerDuration(`${p}.maintenanceInterval`, o.maintenanceInterval),
    batchSize: o.batchSize === undefined ? undefined : positiveInt(`${p}.batchSize`, o.batchSize),
    maxEntries: maxEntries === undefined ? undefined : positiveInt(`${at}.maxEntries`, maxEntries),
    maxBytes: maxBytes === undefined ? undefined : parseByteSize(`${at}.maxBytes`, maxBytes),
  };
}

/**
 * A tier's `breaker` (or `redis.breaker`), defaults applied; false when off. Durations are timer durations: a
 * window or open time past what a timer can wait is a mistake, though the breaker itself arms none.
 */
export function resolveBreaker(option: string, input: false | BreakerOptions | undefined): BreakerSettings | false {
  if (input === false) return false;
  if (input === undefined) return DEFAULT_BREAKER;
  if (input === null || typeof input !== 'object') throw new TieredCacheOptionsError(option, input, 'expected false or { failures?, window?, openFor? }');
  const failures = input.failures === undefined ? DEFAULT_BREAKER.failures : positiveInt(`${option}.failures`, input.failures);
  // The breaker keeps the time of each of the last `failures` failures.
  if (failures > MAX_BREAKER_FAILURES) throw new TieredCacheOptionsError(`${option}.failures`, failures, `expected at most ${MAX_BREAKER_FAILURES}`);
  return {
    failures,
    window: input.window === undefined ? DEFAULT_BREAKER.window : parseTimerDuration(`${option}.window`, input.window),
    openFor: input.openFor === undefined ? DEFAULT_BREAKER.openFor : parseTimerDuration(`${option}.openFor`, input.openFor),
  };
}

/** A redis tier's connection with the tier's own `breaker` in it (validated there again, as `redis.breaker` is). */
function withBreaker(at: string, redis: string | RedisConnectionOptions, breaker: BreakerSettings | false | undefined): string | RedisConnectionOptions {
  if (breaker === undefined) return redis;
  if (typeof redis === 'string') return { url: redis, breaker };
  if (redis !== null && typeof redis === 'object' && redis.breaker !== undefined) {
    throw new TieredCacheOptionsError(`${at}.breaker`, breaker, `${at}.redis.breaker is given too: set the breaker in one place`);
  }
  return { ...redis, breaker };
}

/** A tier's `hitRateTarget` (or `l1.` / `l2.hitRateTarget`): undefined when none. */
export function resolveHitRateTarget(option: string, input: HitRateTarget | undefined): ResolvedHitRateTarget | undefined {
  if (input === undefined) return undefined;
  const o = typeof input === 'number' ? { ratio: input } : input;
  if (o === null || typeof o !== 'object') throw new TieredCacheOptionsError(option, input, 'expected a ratio such as 0.85, or { ratio, window }');
  const ratio: unknown = o.ratio;
  if (typeof ratio !== 'number' || !(ratio > 0 && ratio <= 1)) {
    throw new TieredCacheOptionsError(typeof input === 'number' ? option : `${option}.ratio`, ratio, 'expected a hit ratio above 0 and at most 1 (0.85 for 85 %)');
  }
  const window = o.window === undefined ? 1_000 : positiveInt(`${option}.window`, o.window);
  return { ratio, window };
}

/** `compression` of a shared tier (or `l2.compression`): undefined when off. */
export function resolveCompression(option: string, input: CompressionOptions | boolean | undefined): ResolvedCompression | undefined {
  if (input === undefined || input === false) return undefined;
  if (input === true) return { ...DEFAULT_COMPRESSION };
  if (input === null || typeof input !== 'object') throw new TieredCacheOptionsError(option, input, 'expected true, false or { algorithm?, level?, threshold? }');
  const algorithm: unknown = input.algorithm ?? DEFAULT_COMPRESSION.algorithm;
  if (!COMPRESSION_ALGORITHMS.includes(algorithm as CompressionAlgorithm)) {
    throw new TieredCacheOptionsError(`${option}.algorithm`, algorithm, `expected one of ${COMPRESSION_ALGORITHMS.join(', ')}`);
  }
  const a = algorithm as CompressionAlgorithm;
  const { min, max } = LEVELS[a];
  const level: unknown = input.level ?? (a === DEFAULT_COMPRESSION.algorithm ? DEFAULT_COMPRESSION.level : 6);
  if (typeof level !== 'number' || !Number.isInteger(level) || level < min || level > max) {
    throw new TieredCacheOptionsError(`${option}.level`, level, `expected a whole number from ${min} to ${max} for ${a}`);
  }
  const threshold = input.threshold === undefined ? DEFAULT_COMPRESSION.threshold : parseByteSize(`${option}.threshold`, input.threshold);
  return { algorithm: a, level, threshold };
}

function lowerBehind(at: string, wb: WriteBehindOptions | undefined): LowerWriteBehind | undefined {
  if (wb === undefined) return undefined;
  return {
    flushInterval: parseTimerDuration(`${at}.writeBehind.flushInterval`, wb.flushInterval ?? 100),
    batchSize: wb.batchSize === undefined ? 500 : positiveInt(`${at}.writeBehind.batchSize`, wb.batchSize),
    maxQueue: wb.maxQueue === undefined ? 10_000 : positiveInt(`${at}.writeBehind.maxQueue`, wb.maxQueue),
  };
}

function positiveInt(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new TieredCacheOptionsError(option, value, 'expected a positive whole number');
  return value;
}
