import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ResolvedOptions } from '../options';
import { claimBorrowed, duplicateBorrowed, unusableSettings, type BorrowedClient } from './borrowed-client';

export type RedisClient = Redis | Cluster;
export type RedisMode = 'standalone' | 'sentinel' | 'cluster';
type ResolvedRedis = NonNullable<ResolvedOptions['redis']>;
/** A configuration of a connection of our own (not a borrowed client). */
type OwnRedis = Exclude<ResolvedRedis, { client: unknown }>;

/** A data connection and whether it is ours to close (a borrowed client is not). */
export interface DataConnection {
  client: RedisClient;
  owned: boolean;
}

/**
 * Builds ioredis clients with the safety defaults a cache needs (see ../shared/notes/failure-modes.md):
 * no offline queue (a request never waits for a reconnect), at most one retry per request, bounded connect,
 * an idle socket timeout against half-open TCP, lazy connect so boot never blocks on Redis, RESP pinned.
 * The read/write paths only see `RedisClient`; adding a mode touches this file alone.
 *
 * With `redis: { client }` (borrowed-client.ts) the app's own client is the first data connection, used as it
 * is; every other connection (the bus subscriber, further data connections) is duplicated from it with these
 * same defaults, so it is ours and closed with the cache.
 */
export class RedisConnectionFactory {
  private readonly borrowed: BorrowedClient | undefined;
  /** What the cache should say once about how it uses a borrowed client (beyond what options.ts says at boot). */
  readonly notes: string[] = [];

  constructor(private readonly opts: ResolvedRedis) {
    this.borrowed = (opts as { client?: BorrowedClient }).client;
  }

  get mode(): RedisMode {
    return this.opts.mode ?? 'standalone';
  }

  /**
   * The first data connection: the borrowed client itself when the cache can use it as it is, else (and
   * without one) a connection of ours.
   */
  primary(purpose: string, overrides: RedisOptions = {}): DataConnection {
    const b = this.borrowed;
    if (b !== undefined && unusableSettings(b).length === 0) {
      if (claimBorrowed(b)) return { client: b, owned: false };
      this.notes.push('redis.client is already the data connection of another cache in this process; this one sends its commands on a connection of its own, duplicated from it (a connection carries one CLIENT TRACKING redirect)');
    }
    return { client: this.create(purpose, overrides), owned: true };
  }

  /** A client of ours (`purpose` names the connection in CLIENT LIST). */
  create(purpose: string, overrides: RedisOptions = {}): RedisClient {
    const o = this.opts;
    const safety: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: o.connectTimeout,
      socketTimeout: o.socketTimeout,
      protocol: o.protocol,
      connectionName: `tiered-cache:${purpose}`,
      // ioredis arms an un-unref'd timer of this length when closing a socket that already failed; the
      // 2s default keeps a shutting-down process (and Jest) alive for nothing.
      disconnectTimeout: 200,
      // READONLY after a failover: reconnect and resend, the new master takes it.
      reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 2_000),
    };
    const cluster: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Replica reads would re-cache values a master has already replaced.
      scaleReads: 'master',
      // CLUSTERDOWN (slots uncovered): fail now, as with no offline queue. ioredis' default retries every
      // 100 ms up to maxRedirections, so each call would sit until its command deadline while the cluster is down.
      retryDelayOnClusterDown: 0,
      slotsRefreshTimeout: 3_000,
      clusterRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 10), 2_000),
    };
    if (this.borrowed !== undefined) {
      return duplicateBorrowed(this.borrowed, { ...safety, ...o.redisOptions, ...overrides }, cluster);
    }
    return this.own(o as OwnRedis, safety, cluster, overrides);
  }

  private own(o: OwnRedis, safety: RedisOptions, cluster: ClusterOptions, overrides: RedisOptions): RedisClient {
    switch (o.mode) {
      case 'cluster':
        return new Cluster(o.nodes, {
          ...cluster,
          ...o.clusterOptions,
          redisOptions: { ...safety, password: o.password, username: o.username, ...o.redisOptions, ...overrides },
        });
      case 'sentinel':
        return new Redis({
          ...safety,
          sentinels: o.sentinels,
          name: o.name,
          password: o.password,
          username: o.username,
          sentinelPassword: o.sentinelPassword,
          db: o.db,
          failoverDetector: true,
          ...o.redisOptions,
          ...overrides,
        } as RedisOptions);
      default:
        return new Redis((o as { url: string }).url, { ...safety, ...o.redisOptions, ...overrides });
    }
  }
}

/**
 * ioredis ends a client for good (status 'end', no more reconnects) when its connector fails, e.g. when the
 * Sentinel failover detector disconnects it while it is still asking Sentinel for the master. A cache must
 * keep trying: unless `isClosed()`, an ended client is connected again after `delayMs` (and again, if that
 * fails too). Returns the disposer to call when closing the client on purpose.
 */
export function reviveOnEnd(client: RedisClient, isClosed: () => boolean, delayMs = 1_000): () => void {
  let timer: NodeJS.Timeout | undefined;
  const onEnd = (): void => {
    if (isClosed() || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (!isClosed() && client.status === 'end') client.connect().catch(() => undefined);
    }, delayMs);
    timer.unref();
  };
  client.on('end', onEnd);
  return () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    client.off('end', onEnd);
  };
}
