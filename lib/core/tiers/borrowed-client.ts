import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { TieredCacheOptionsError } from '../errors';

/** A client the app created and handed in as `redis: { client }` (never closed by us). */
export type BorrowedClient = Redis | Cluster;

/**
 * Options that describe a connection of their own: with `client`, the client's own settings apply, so any of
 * these would be either ignored or contradicted. Named in the boot error.
 */
const CONNECTION_KEYS = ['url', 'host', 'port', 'path', 'sentinels', 'name', 'nodes', 'clusterOptions', 'password', 'username', 'sentinelPassword', 'db', 'tls'] as const;

/**
 * Borrowed clients in use as a cache's data connection in this process. A connection carries one CLIENT TRACKING
 * redirect, and the cache turns tracking on (and off at close) on its data connection: a second cache given the
 * same client (named caches, one app client) gets a duplicate of its own instead (see RedisConnectionFactory).
 */
const inUse = new WeakSet<BorrowedClient>();

/** Takes `client` as a cache's data connection; false when another cache in this process has it. */
export function claimBorrowed(client: BorrowedClient): boolean {
  if (inUse.has(client)) return false;
  inUse.add(client);
  return true;
}

/** Gives `client` back (the cache that claimed it closed). */
export function releaseBorrowed(client: BorrowedClient): void {
  inUse.delete(client);
}

/** Whether `value` is an ioredis client (of the ioredis this package uses). */
export function isIoredisClient(value: unknown): value is BorrowedClient {
  return value instanceof Redis || value instanceof Cluster;
}

/**
 * Checks `redis.client` (and what may not come with it) at boot; returns the mode the client runs in. Every
 * error names the option at fault.
 */
export function checkBorrowedClient(at: string, opts: Record<string, unknown>): 'standalone' | 'sentinel' | 'cluster' {
  const client = opts.client;
  for (const k of CONNECTION_KEYS) {
    if (opts[k] !== undefined) throw new TieredCacheOptionsError(`${at}.${k}`, k === 'password' || k === 'sentinelPassword' ? '***' : opts[k], `not with ${at}.client: the client's own connection settings apply`);
  }
  if (!(client instanceof Redis) && !(client instanceof Cluster)) {
    const looksLikeIoredis = typeof client === 'object' && client !== null && typeof (client as { sendCommand?: unknown }).sendCommand === 'function' && typeof (client as { duplicate?: unknown }).duplicate === 'function';
    throw new TieredCacheOptionsError(
      `${at}.client`,
      looksLikeIoredis ? '[an ioredis-like client]' : client,
      looksLikeIoredis
        ? 'this client comes from another copy of ioredis than the one this package uses (ioredis 6): install one copy (npm dedupe) and create the client with it'
        : 'expected an ioredis Redis or Cluster instance (new Redis(...) / new Cluster(...))',
    );
  }
  const mode = client instanceof Cluster ? 'cluster' : client.options.sentinels ? 'sentinel' : 'standalone';
  if (opts.mode !== undefined && opts.mode !== mode) throw new TieredCacheOptionsError(`${at}.mode`, opts.mode, `the client is a ${mode} client; leave mode out (it is taken from the client)`);
  // ioredis applies keyPrefix to a command's keys but not to SCAN MATCH patterns (io#239) nor to CLIENT TRACKING
  // prefixes and channel names: pattern deletes, clear() and server-assisted invalidation would all miss the keys.
  const prefix = client.options.keyPrefix;
  if (prefix) {
    throw new TieredCacheOptionsError(
      `${at}.client`,
      `[client with keyPrefix ${JSON.stringify(prefix)}]`,
      `a client with keyPrefix cannot be shared: ioredis does not apply it to SCAN patterns or CLIENT TRACKING prefixes. Pass a client without it (client.duplicate({ keyPrefix: '' })) and put the prefix in the cache's own keyPrefix option (e.g. keyPrefix: '${prefix}cache:')`,
    );
  }
  return mode;
}

/**
 * Settings of a borrowed client the cache cannot send its own commands through; empty when it can use the
 * client as it is. Each one is an adaptation, not an error: the cache then opens one data connection of its
 * own, duplicated from the client with the setting corrected, and says so once at boot.
 */
export function unusableSettings(client: BorrowedClient): string[] {
  const out: string[] = [];
  if (client instanceof Cluster) {
    const o = client.options;
    // Deferred to setImmediate: a read the tier routes to the master itself would overtake a write sent before it.
    if (o.enableAutoPipelining) out.push('enableAutoPipelining is on (a read could overtake the write sent before it)');
    const scale = o.scaleReads ?? 'master';
    if (scale !== 'master') out.push(`scaleReads is ${typeof scale === 'function' ? 'a function' : `'${scale}'`} (replica reads would put stale values back into the cache)`);
    if (o.redisOptions?.replyMapping === 'resp3') out.push("redisOptions.replyMapping is 'resp3' (the cache reads RESP2-shaped replies)");
    return out;
  }
  const o = client.options;
  if (o.enableAutoPipelining) out.push('enableAutoPipelining is on (a read could overtake the write sent before it)');
  if (o.replyMapping === 'resp3') out.push("replyMapping is 'resp3' (the cache reads RESP2-shaped replies)");
  if (o.monitor) out.push('it is a MONITOR connection');
  if (client.mode === 'subscriber') out.push('it is in subscriber mode');
  return out;
}

/**
 * A connection of ours duplicated from a borrowed client: its connection settings (host, auth, TLS, Sentinel,
 * startup nodes, NAT map…) with our own safety defaults on top (`safety`: what our own connections get).
 */
export function duplicateBorrowed(client: BorrowedClient, safety: RedisOptions, cluster: Partial<ClusterOptions>): Redis | Cluster {
  const fixed: RedisOptions = { ...safety, keyPrefix: '', enableAutoPipelining: false, replyMapping: 'legacy', monitor: false };
  if (client instanceof Cluster) {
    return client.duplicate([], {
      ...cluster,
      keyPrefix: '',
      enableAutoPipelining: false,
      scaleReads: 'master',
      redisOptions: { ...client.options.redisOptions, ...fixed },
    });
  }
  return client.duplicate(fixed);
}
