import { TieredCacheOptionsError } from '../core/errors';
import { redactUrl } from '../core/options';
import type { TieredCacheOptions } from '../core/tiered-cache-options.interface';
import type { CacheModuleOptions } from './cache-options.interface';
import { NO_EXPIRY } from './ttl';

/** What the `Cache` facade keeps of the options (the rest goes to the engine). */
export interface CacheSettings {
  /** `ttl` as given (undefined: none), for what mset() reports back, as cache-manager does. */
  readonly ttl: number | undefined;
  /** Default refreshThreshold of wrap() in ms; undefined: none. */
  readonly refreshThreshold: number | undefined;
  readonly cacheId: string;
  /** Lower-case request headers that make CacheInterceptor bypass the cache; empty: never. */
  readonly credentialHeaders: readonly string[];
}

export const DEFAULT_CREDENTIAL_HEADERS: readonly string[] = Object.freeze(['authorization', 'cookie', 'proxy-authorization']);

const KNOWN = new Set(['ttl', 'namespace', 'refreshThreshold', 'nonBlocking', 'refreshAllStores', 'cacheId', 'credentialBypass', 'tiered', 'isGlobal']);

/** Engine options that only the Nest layer of TieredCacheModule acts on: given here, they would do nothing. */
const NEST_LAYER_ONLY: Record<string, string> = {
  http: 'the HTTP fast path belongs to TieredCacheModule and TieredCacheInterceptor',
  invalidationRules: 'event rules are applied by TieredCacheModule (with EventEmitterModule)',
};

const STORES_REASON =
  'Keyv stores are not supported by nestjs-tiered-cache/compat. The in-process tier is built in (size it with `tiered: { l1: { maxEntries } }`); ' +
  "for Redis give `tiered: { redis: 'redis://host:6379' }` (Sentinel and Cluster: see RedisConnectionOptions); for more tiers (a second Redis, " +
  'PostgreSQL) give `tiered: { tiers: [...] }`. Remove `stores`';

/**
 * Checks cache-manager-style options and splits them into the engine's options and the facade's settings.
 * Every invalid or unsupported option throws a TieredCacheOptionsError naming it, so the app fails at boot.
 */
export function resolveCacheOptions(input: CacheModuleOptions | undefined): { engine: TieredCacheOptions; settings: CacheSettings } {
  const options = (input ?? {}) as Record<string, unknown>;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TieredCacheOptionsError('options', input, 'expected an object');
  for (const legacy of ['stores', 'store']) {
    if (options[legacy] !== undefined) {
      const url = redisUrlOf(options[legacy]);
      const hint = url === undefined ? '' : ` (here: \`tiered: { redis: '${String(redactUrl(url))}' }\`)`;
      throw new TieredCacheOptionsError(legacy, describeStores(options[legacy]), STORES_REASON + hint);
    }
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key) && options[key] !== undefined) {
      throw new TieredCacheOptionsError(key, options[key], `not an option of nestjs-tiered-cache/compat (known: ${[...KNOWN].join(', ')}); engine options go under \`tiered\``);
    }
  }
  const tieredIn = options.tiered ?? {};
  if (typeof tieredIn !== 'object' || tieredIn === null || Array.isArray(tieredIn)) throw new TieredCacheOptionsError('tiered', tieredIn, 'expected TieredCacheOptions (an object)');
  const tiered = tieredIn as TieredCacheOptions;
  for (const [key, why] of Object.entries(NEST_LAYER_ONLY)) {
    const v = (tiered as Record<string, unknown>)[key];
    if (v !== undefined && v !== false) throw new TieredCacheOptionsError(`tiered.${key}`, v, `not available through nestjs-tiered-cache/compat: ${why}`);
  }

  const ttl = options.ttl;
  if (ttl !== undefined && (typeof ttl !== 'number' || Number.isNaN(ttl) || ttl < 0)) {
    throw new TieredCacheOptionsError('ttl', ttl, 'expected milliseconds (0 = no expiry)');
  }
  if (ttl !== undefined && tiered.defaultTtl !== undefined) throw new TieredCacheOptionsError('ttl', ttl, 'give `ttl` or `tiered.defaultTtl`, not both');
  const namespace = options.namespace;
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length === 0)) throw new TieredCacheOptionsError('namespace', namespace, 'expected a non-empty string');
  if (namespace !== undefined && tiered.keyPrefix !== undefined) throw new TieredCacheOptionsError('namespace', namespace, 'give `namespace` or `tiered.keyPrefix`, not both');
  const threshold = options.refreshThreshold;
  if (threshold !== undefined && (typeof threshold !== 'number' || !Number.isFinite(threshold) || threshold < 0)) {
    throw new TieredCacheOptionsError('refreshThreshold', threshold, 'expected milliseconds');
  }
  for (const flag of ['nonBlocking', 'refreshAllStores', 'isGlobal']) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') throw new TieredCacheOptionsError(flag, options[flag], 'expected true or false');
  }
  const nonBlocking = options.nonBlocking === true;
  if (nonBlocking && (tiered.writeThrough !== undefined || tiered.writeBehind !== undefined)) {
    throw new TieredCacheOptionsError('nonBlocking', true, 'give `nonBlocking` or `tiered.writeThrough` / `tiered.writeBehind`, not both');
  }
  const cacheId = options.cacheId;
  if (cacheId !== undefined && (typeof cacheId !== 'string' || cacheId.length === 0)) throw new TieredCacheOptionsError('cacheId', cacheId, 'expected a non-empty string');

  const engine: TieredCacheOptions = { ...tiered };
  if (namespace !== undefined) engine.keyPrefix = `${namespace}:`;
  // cache-manager's entries never expire unless a TTL says so; the engine's default would be one hour.
  if (tiered.defaultTtl === undefined) engine.defaultTtl = ttl === undefined || ttl === 0 || ttl >= NO_EXPIRY ? NO_EXPIRY : Math.ceil(ttl);
  // cache-manager stores null like any other value (only undefined is "nothing").
  if (tiered.cacheNullValues === undefined) engine.cacheNullValues = true;
  // Only meaningful with Redis: set then resolves after the in-process write, as nonBlocking's did after the first store's.
  if (nonBlocking && (tiered.redis !== undefined || tiered.tiers !== undefined)) engine.writeBehind = true;
  return {
    engine,
    settings: {
      ttl: ttl as number | undefined,
      refreshThreshold: threshold as number | undefined,
      cacheId: (cacheId as string | undefined) ?? Math.random().toString(36).slice(2),
      credentialHeaders: credentialHeaders(options.credentialBypass),
    },
  };
}

function credentialHeaders(input: unknown): readonly string[] {
  if (input === undefined || input === true) return DEFAULT_CREDENTIAL_HEADERS;
  if (input === false) return [];
  if (!Array.isArray(input) || input.some((h) => typeof h !== 'string' || h.length === 0)) {
    throw new TieredCacheOptionsError('credentialBypass', input, 'expected true, false or a list of header names');
  }
  return Object.freeze(input.map((h: string) => h.toLowerCase()));
}

/** Names the stores given (`Keyv(KeyvRedis)`, …): a Keyv instance itself is neither serialisable nor readable in a message. */
function describeStores(stores: unknown): string {
  const list = Array.isArray(stores) ? stores : [stores];
  return list
    .map((s) => {
      if (s === null || typeof s !== 'object') return typeof s;
      const name = (s as object).constructor?.name ?? 'object';
      const inner = (s as { opts?: { store?: object } }).opts?.store?.constructor?.name;
      return inner !== undefined && inner !== 'Map' && inner !== name ? `${name}(${inner})` : name;
    })
    .join(', ');
}

/** The URL of a KeyvRedis store among `stores` (bare, inside a Keyv, or a Cacheable's tier), for the boot error to suggest. */
function redisUrlOf(stores: unknown): string | undefined {
  const list = Array.isArray(stores) ? [...stores] : [stores];
  for (const s of list) {
    if (s === null || typeof s !== 'object') continue;
    const { primary, secondary } = s as { primary?: unknown; secondary?: unknown };
    if (secondary !== undefined || primary !== undefined) list.push(primary, secondary);
    const store = (s as { opts?: { store?: unknown } }).opts?.store ?? s;
    const url = (store as { client?: { options?: { url?: unknown } } }).client?.options?.url;
    if (typeof url === 'string') return url;
  }
  return undefined;
}
