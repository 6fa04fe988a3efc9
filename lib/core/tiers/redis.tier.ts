import { createHash } from 'node:crypto';
import { Command, type Cluster, type Redis } from 'ioredis';
import { DEADLINE_MISSED, Deadlines, L2_FAILED, type CommandQueue, type L2Failed, type StampedCommand } from './deadline';
import { ClusterReads, type RoutedNode } from './cluster-reads';
import { breakerHealth, CircuitBreaker, CLOSED, type BreakerSettings } from './circuit-breaker';
import type { EntryCompressor } from '../compression';
import { escapeGlob } from '../glob';
import { fenceKeyOf, RESERVED, reservedNames } from '../keys/cache-key';
import { LOCK_ACQUIRE, LOCK_EXTEND, LOCK_RELEASE, READ_OR_LOCK, READ_OR_LOCK_SHA, releaseLock } from './lock-scripts';
import { releaseBorrowed } from './borrowed-client';
import { watchConnectionErrors } from './connection-errors';
import { reviveOnEnd, type RedisClient, type RedisConnectionFactory, type RedisMode } from './redis-connection';
import type { FillMark, ReplayableTier, Tier, TierCapabilities, TierEntry, TierHealth, TierRemoval, TierWrite } from './tier';

const REDIS_CAPABILITIES: TierCapabilities = Object.freeze({ shared: true, persistent: false, tags: true, patterns: true, byteBound: false, fences: true });

export { L2_FAILED, type L2Failed };

/** What a pattern walk did: `failedNodes` names the nodes (host:port) it could not finish; empty when complete. */
export interface ScanDeleteResult {
  removed: number;
  failedNodes: string[];
}

export interface TagPopResult {
  removed: number;
  complete: boolean;
}

/** A fill lock as the tier sends it (lock-scripts.ts): the lock, its waiter flag, the holder's token, the lock's PX. */
export interface FillLockKeys {
  lockKey: string;
  waitKey: string;
  token: string;
  ttl: number;
}

/** A fill lock's release, as FILL_STAGE performs it (see releaseWithStore). */
interface RidingRelease {
  lock: FillLockKeys;
  channel: string;
  message: string;
}

export interface L2Write {
  pkey: string;
  payload: string;
  ttl: number;
  tagKeys?: readonly string[];
}

/**
 * Indexes a key under a tag: a sorted set scored by each member's expiry (Redis' own clock, so instances with
 * skewed clocks agree). Each write also prunes up to ARGV[3] members that have expired, so the set holds
 * O(live tagged keys) instead of every key ever tagged, and the set itself expires with its longest-lived member.
 * GT: a score only grows, so a write with a shorter TTL (or a refused fill) never gets a live key pruned early.
 */
const REDIS_NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
/** The indexing itself, as Lua text over the given expressions (`now` from REDIS_NOW); sets `gone`. */
const indexUnderTag = (tag: string, member: string, ttl: string, prune: string): string => `redis.call('ZADD', ${tag}, 'GT', now + tonumber(${ttl}), ${member})
local gone = redis.call('ZRANGEBYSCORE', ${tag}, '-inf', now, 'LIMIT', 0, tonumber(${prune}))
if #gone > 0 then redis.call('ZREM', ${tag}, unpack(gone)) end
local last = redis.call('ZRANGE', ${tag}, -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', ${tag}, last[2]) end`;
const TAG_ADD = `${REDIS_NOW}
${indexUnderTag('KEYS[1]', 'ARGV[1]', 'ARGV[2]', 'ARGV[3]')}
return #gone`;

/** Puts popped members back with the expiry scores they had (ARGV: score, member, …); the set's TTL follows. */
const TAG_RESTORE = `redis.call('ZADD', KEYS[1], unpack(ARGV))
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1`;

// The index of earlier versions: a plain set per tag, its TTL stretched to the longest-lived member.
const LEGACY_TAG_ADD = `redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PTTL', KEYS[1])
if t < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;

/**
 * A fill's store on a Cluster (see fill-fence.ts): KEYS = key, its fence; ARGV = payload, PX, the fence the fill
 * saw ('' for none). Writes only if the fence still reads so and the key is absent.
 */
const FILL_STORE = `if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return 0`;
/** A replayed write's store on a Cluster (recovery-queue.ts): FILL_STORE over the value the replay read (ARGV[4]) instead of NX. */
const REPLAY_STORE = `if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] or (redis.call('GET', KEYS[1]) or '') ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/**
 * A fill's store on standalone/Sentinel, inside MULTI before a `RENAME staging key`: KEYS = key, fence,
 * generation, staging key, then the tag indexes; ARGV = the fence and generation the fill saw, payload, PX,
 * the prune bound. When the key is still absent and neither moved, the value goes into the staging key (and
 * the key into its tag indexes); the RENAME after it, a command of our own connection, moves it into place.
 * Otherwise nothing is staged and the RENAME fails with nothing written. So a script that does not run at all
 * (NOSCRIPT: a flushed script cache, a fresh server after a failover) stores nothing either, and the script
 * can go as EVALSHA. The value is not written by the script itself: CLIENT TRACKING's NOLOOP does not cover
 * writes made inside a script, and Redis would announce this instance's own fill back to it.
 *
 * A fill that holds its key's fill lock (get-set/distributed-lock.ts) lets it go here, stored or refused: ARGV[6]
 * = 1, KEYS[5], KEYS[6] = the lock and its waiter flag (the tag indexes follow them), ARGV[7..9] = token,
 * channel, message. Inside the transaction, so a waiter told of the release finds the value in place, and at the
 * price of a few calls in a script that runs anyway, instead of a script call of its own.
 * (Built over `keyMoved`, the check of the key itself, which the replay's store below makes differently.)
 */
const stageScript = (keyMoved: string): string => `local firstTag = 5
if ARGV[6] == '1' then
  firstTag = 7
  ${releaseLock('KEYS[5]', 'KEYS[6]', 'ARGV[7]', 'ARGV[8]', 'ARGV[9]')}
end
if ${keyMoved} or (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] or (redis.call('GET', KEYS[3]) or '') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
if #KEYS >= firstTag then
  ${REDIS_NOW}
  for i = firstTag, #KEYS do
    ${indexUnderTag('KEYS[i]', 'KEYS[1]', 'ARGV[4]', 'ARGV[5]')}
  end
end
return 1`;
const FILL_STAGE = stageScript(`redis.call('EXISTS', KEYS[1]) == 1`);
/**
 * A replayed write's (or a refresh's) store: FILL_STAGE, except that the key must still hold what was read
 * (ARGV[10]; '' for nothing) instead of being absent, so an older entry can be replaced, never a newer one.
 */
const REPLAY_STAGE = stageScript(`(redis.call('GET', KEYS[1]) or '') ~= ARGV[10]`);
const REPLAY_STAGE_SHA = createHash('sha1').update(REPLAY_STAGE).digest('hex');
const FILL_STAGE_SHA = createHash('sha1').update(FILL_STAGE).digest('hex');

/** Expired members a tagged write prunes at most (bounded work per write; a burst of expiries is pruned over several writes). */
const TAG_PRUNE = 100;

const SCAN_COUNT = 500;
const FAILED: Promise<L2Failed> = Promise.resolve(L2_FAILED);
const TRUE: Promise<true> = Promise.resolve(true);
const returnTrue = (): true => true;
const ignore = (): void => undefined;
const TAG_POP_BATCH = 500;
const NO_TAGS: readonly string[] = [];

/** The scripts run on every fill or tagged write, as ioredis commands (defineCommand: EVALSHA, loaded on first use). */
interface FillCommands {
  tcFillStore(key: string, fence: string, payload: string, ttl: number, seenFence: string): Promise<number>;
  tcReplayStore(key: string, fence: string, payload: string, ttl: number, seenFence: string, expected: string): Promise<number>;
  tcTagAdd(tagKey: string, key: string, ttl: number, prune: number): Promise<number>;
  tcLockAcquire(lockKey: string, waitKey: string, token: string, ttl: number): Promise<number>;
  tcLockExtend(lockKey: string, waitKey: string, token: string, ttl: number): Promise<number>;
  tcLockRelease(lockKey: string, waitKey: string, token: string, channel: string, message: string): Promise<number>;
}

/** One data connection, with what the write coalescing and the half-open watchdog need to know about it. */
interface Conn {
  readonly client: RedisClient;
  /** Ours to close; false for the app's own client (`redis: { client }`), which close() only lets go of. */
  readonly owned: boolean;
  /** Our 'ready' handler, for a borrowed client that was ready before we listened (connect() calls it). */
  onReady?: () => void;
  /** IDLE: nothing sent this tick; SENT: one command went straight out; CORKED: later ones wait for the tick's end. */
  tick: typeof IDLE | typeof SENT | typeof CORKED;
  /** Last time any reply bytes arrived (performance.now()). */
  lastDataAt: number;
  /** Send time of the first call that timed out with no reply bytes since; -1 when none. */
  silentSince: number;
}

const IDLE = 0;
const SENT = 1;
const CORKED = 2;

const UTF8 = { replyEncoding: 'utf8' as const };

/** A client's queue of commands waiting for a connection (ioredis' private `offlineQueue`; empty without the offline queue). */
function offlineQueueOf(client: RedisClient): () => CommandQueue | undefined {
  return () => (client as unknown as { offlineQueue?: CommandQueue }).offlineQueue;
}

/**
 * A write whose promise resolves to true whether it succeeded or failed (a failure is handed to `onFail`,
 * which reports it): the caller can return this command's own promise, with no `.then` in between. On this
 * path every extra step between a reply and the next request counts: see `set()`.
 */
class WriteCommand extends Command {
  constructor(args: Array<string | number>, options: typeof UTF8 & { keyPrefix?: string }, onFail: (err: unknown) => void, write: L2Write, lost: ((w: L2Write) => void) | undefined) {
    super('set', args, options);
    const resolve = this.resolve;
    this.reject = (err: Error) => {
      onFail(err);
      lost?.(write);
      resolve(true);
    };
  }

  override transformReply(): string {
    return true as unknown as string;
  }
}

/**
 * Whether a failed call is a sign of an outage, which the circuit breaker counts (missed deadlines are counted
 * where they are detected). Not a reply error: Redis answered at full speed, and the fault is the command's or
 * one slot's (WRONGTYPE, NOPERM, a Cluster master's CLUSTERDOWN must not skip the other masters). Nor a connection
 * that is gone (closed, not writable, retries used up): calls fail at once while it reconnects anyway, and
 * counting them would keep the tier skipped for `openFor` after it is back.
 */
function isOutage(err: unknown): boolean {
  if (err === DEADLINE_MISSED) return false;
  if (!(err instanceof Error)) return true;
  if (err.name === 'ReplyError') return false;
  return !/^(Connection is closed|Stream isn't writeable|Reached the max retries per request limit)/.test(err.message);
}

function endTick(conn: Conn): void {
  if (conn.tick === CORKED) (conn.client as Redis).stream.uncork();
  conn.tick = IDLE;
}

/**
 * L2 over ioredis. No method throws or waits past the deadline: failures come back as L2_FAILED and are
 * reported through `onError`. Physical keys are built by the caller (ioredis keyPrefix does not apply to
 * SCAN MATCH, io#239). Everything that touches several keys is written so it also works on a Cluster,
 * where one pipeline cannot span slots.
 */
export class RedisTier implements Tier<string>, ReplayableTier<string> {
  readonly kind = 'redis' as const;
  readonly capabilities = REDIS_CAPABILITIES;
  /** Tag indexes (sorted sets scored by expiry) and the plain sets of earlier versions, under keyPrefix. */
  readonly tagPrefix: string;
  readonly legacyTagPrefix: string;
  private readonly fencePrefix: string;
  private readonly genKey: string;
  /** Where a fill's value waits, inside its transaction, for the RENAME that moves it into place (FILL_STAGE). */
  private readonly stagingKey: string;
  private readonly conns: Conn[];
  private next = 0;
  readonly deadlines: Deadlines<Conn | undefined>;
  readonly mode: RedisMode;
  private closed = false;
  private readonly readyListeners: Array<() => void> = [];
  private readonly primaryListeners: Array<(up: boolean) => void> = [];
  private readonly disposers: Array<() => void> = [];
  /** Our listeners on the connections, taken off once they are closed (a borrowed client goes back to the app as it came). */
  private readonly detachers: Array<() => void> = [];
  /** CLIENT TRACKING was turned on on the first connection (turned off again at close when it is the app's client). */
  private tracking = false;
  /**
   * Skips every call at once while the server keeps failing or missing deadlines (circuit-breaker.ts). Tested
   * where a call picks its connection (pick(), and the routed and SCAN paths that pick none): a closed breaker
   * costs one field check there. `ready` stays the connection's state: the engine trusts L1 by that and by the
   * bus, and an open breaker must not make an unsubscribed instance serve L1 copies that other instances'
   * invalidations (lost while Redis hangs) may have outdated; with the breaker open, those reads skip L2 at once
   * and go to the source instead of waiting out a deadline.
   */
  readonly breaker: CircuitBreaker;
  /** Send time of the last call the deadline sweep failed (see onTimeout). */
  private lastTimedOut = -1;
  /**
   * Standalone/Sentinel: the first command of a tick is written at once (a lone call costs what a raw
   * ioredis call costs); the ones after it in the same tick are corked and leave together in one socket
   * write when the tick ends. ioredis auto-pipelining instead builds a Pipeline per batch and defers to
   * setImmediate, a cost a lone call pays in full. On a Cluster, reads get the same scheme per master
   * connection (`routes`); everything else goes through the Cluster client.
   */
  private readonly coalesce: boolean;
  /**
   * Cluster only: reads written straight to the connection of the master serving the key (cluster-reads.ts),
   * corked per tick as above, instead of one socket write per command through Cluster#sendCommand. A read
   * it cannot route, or whose reply is a redirection, goes through the Cluster client (see reroute()).
   */
  private readonly routes: ClusterReads<Conn> | undefined;
  /** The Cluster client's command options (its keyPrefix): a routed command is built as the client would build it. */
  private readonly routedOptions: typeof UTF8 & { keyPrefix?: string };

  constructor(
    factory: RedisConnectionFactory,
    maxConnections: number,
    private readonly commandTimeoutMs: number,
    private readonly connectTimeoutMs: number,
    private readonly onError: (op: string, err: unknown) => void,
    private readonly socketTimeoutMs = 0,
    /** The cache's namespace in Redis: every key of the contract methods below lives under it. */
    readonly keyPrefix = '',
    readonly name = 'l2',
    /** How long a delete's fence outlives it (fill-fence.ts): a fill older than this is not stored. */
    readonly fillWindow = 60_000,
    /** Rewrites what this tier stores (compression.ts); absent: entries are stored as they come. */
    readonly compressor?: EntryCompressor,
    /** The circuit breaker's settings; absent: no breaker (the engine always passes its resolved ones). */
    breaker?: BreakerSettings,
  ) {
    this.breaker = new CircuitBreaker(breaker, () => this.probe());
    // Closed again: a good moment to retry what failed meanwhile (deferred invalidations, the bus' outbox).
    this.breaker.onChange((state) => {
      if (state === CLOSED) for (const l of this.readyListeners) l();
    });
    ({ tagPrefix: this.tagPrefix, legacyTagPrefix: this.legacyTagPrefix, fencePrefix: this.fencePrefix, genKey: this.genKey } = reservedNames(keyPrefix));
    this.stagingKey = keyPrefix + RESERVED + 'fill';
    this.mode = factory.mode;
    this.coalesce = this.mode !== 'cluster';
    const n = this.mode === 'cluster' ? 1 : maxConnections;
    this.conns = Array.from({ length: n }, (_, i) => {
      const name = n === 1 ? 'data' : `data-${i}`;
      // ioredis' socketTimeout arms a timer and a 'data' listener per command; the watchdog below does the
      // same job from the deadline sweep at no per-call cost. On a Cluster the override lands in the node
      // clients' redisOptions, not on the Cluster client, whose commands are written as they are called.
      // Keep it that way: the Cluster client's auto-pipelining would hold writes and deletes until
      // setImmediate, and a routed read of the same key (written at the tick's end) would overtake them.
      // A borrowed client (the first connection) is used with the app's own settings.
      const overrides = this.coalesce ? { socketTimeout: undefined } : { enableAutoPipelining: true };
      const { client, owned } = i === 0 ? factory.primary(name, overrides) : { client: factory.create(name, overrides), owned: true };
      // EVALSHA instead of EVAL: fills and tagged writes would otherwise send the scripts' text every time.
      (client as Redis).defineCommand('tcFillStore', { numberOfKeys: 2, lua: FILL_STORE });
      (client as Redis).defineCommand('tcReplayStore', { numberOfKeys: 2, lua: REPLAY_STORE });
      (client as Redis).defineCommand('tcTagAdd', { numberOfKeys: 1, lua: TAG_ADD });
      (client as Redis).defineCommand('tcLockAcquire', { numberOfKeys: 2, lua: LOCK_ACQUIRE });
      (client as Redis).defineCommand('tcLockExtend', { numberOfKeys: 2, lua: LOCK_EXTEND });
      (client as Redis).defineCommand('tcLockRelease', { numberOfKeys: 2, lua: LOCK_RELEASE });
      const conn: Conn = { client, owned, tick: IDLE, lastDataAt: 0, silentSince: -1 };
      // The app's own client is not revived: whether it ends is the app's call.
      if (owned) this.disposers.push(reviveOnEnd(client, () => this.closed));
      // Errors while closing are the close's own noise.
      this.detachers.push(watchConnectionErrors(client, (op, err) => this.closed || this.onError(op, err)));
      const onReady = (): void => {
        // A handshake Redis answered is as good as the breaker's probe. Closing an open breaker calls the
        // listeners itself; a closed one forgets the failures of the connection that went.
        const closing = this.breaker.state !== CLOSED;
        this.breaker.succeeded();
        if (!closing) for (const l of this.readyListeners) l();
        if (i === 0) for (const l of this.primaryListeners) l(true);
      };
      conn.onReady = onReady;
      this.listen(client, 'ready', onReady);
      if (i === 0) this.listen(client, 'close', () => {
        for (const l of this.primaryListeners) l(false);
      });
      if (this.coalesce) {
        const onData = (): void => {
          conn.lastDataAt = performance.now();
        };
        const watchStream = (): void => {
          conn.tick = IDLE;
          conn.silentSince = -1;
          (client as Redis).stream.on('data', onData);
        };
        this.listen(client, 'connect', watchStream);
        // A borrowed client may be connected already: its 'connect' has been and gone.
        const stream = (client as Redis).stream as Redis['stream'] | undefined;
        if (!owned && stream && (client.status === 'connect' || client.status === 'ready')) stream.on('data', onData);
        this.detachers.push(() => ((client as Redis).stream as Redis['stream'] | undefined)?.off('data', onData));
      }
      return conn;
    });
    const watch = this.coalesce && socketTimeoutMs > 0;
    this.deadlines = new Deadlines<Conn | undefined>(commandTimeoutMs, {
      onError: (op, err, late) => {
        if (!late && !this.closed && isOutage(err)) this.breaker.failure();
        onError(op, err);
      },
      onTimeout: (conn, sentAt) => {
        // The commands of one call (MGET + PTTL, MULTI … EXEC) carry its one deadline: one failure per call.
        if (sentAt !== this.lastTimedOut) {
          this.lastTimedOut = sentAt;
          this.breaker.failure(sentAt);
        }
        if (watch) this.watchdog(conn, sentAt);
      },
    });
    if (this.coalesce) {
      for (const conn of this.conns) {
        const client = conn.client as Redis & { prevCommandQueue?: CommandQueue | null };
        this.deadlines.watch(() => client.commandQueue as unknown as CommandQueue, conn);
        // After a reconnect and until the new socket is ready, ioredis keeps the old socket's unanswered
        // commands here (to resend them): a handshake that hangs must not hold their callers.
        this.deadlines.watch(() => client.prevCommandQueue ?? undefined, conn);
        // A borrowed client may have its offline queue on: a command that lands there (a socket that stopped
        // being writable under a 'ready' client) still fails at its deadline.
        if (client.options.enableOfflineQueue) this.deadlines.watch(offlineQueueOf(client), conn);
      }
    }
    this.routedOptions = commandOptions(this.conns[0]);
    this.routes = this.mode === 'cluster' ? new ClusterReads<Conn>(this.conns[0].client as Cluster, (client) => this.adoptNode(client)) : undefined;
  }

  private listen(client: RedisClient, event: string, fn: () => void): void {
    client.on(event, fn);
    this.detachers.push(() => client.off(event, fn));
  }

  /** A master connection reads are routed to: its own tick state, and its unanswered commands under the deadline sweep. */
  private adoptNode(client: Redis): RoutedNode<Conn> {
    const conn: Conn = { client, owned: false, tick: IDLE, lastDataAt: 0, silentSince: -1 };
    // A new socket is not corked: the tick's end must not uncork it.
    const reset = (): void => {
      conn.tick = IDLE;
    };
    client.on('connect', reset);
    const withPrev = client as Redis & { prevCommandQueue?: CommandQueue | null };
    const unwatch = this.deadlines.watch(() => client.commandQueue as unknown as CommandQueue, conn);
    const unwatchPrev = this.deadlines.watch(() => withPrev.prevCommandQueue ?? undefined, conn);
    // The node connections of a borrowed Cluster client may keep an offline queue (see the constructor).
    const unwatchOffline = client.options.enableOfflineQueue ? this.deadlines.watch(offlineQueueOf(client), conn) : undefined;
    return {
      node: conn,
      dispose: () => {
        unwatch();
        unwatchPrev();
        unwatchOffline?.();
        client.off('connect', reset);
      },
    };
  }

  private readonly getFailed = (err: unknown): L2Failed => this.failed('get', err);

  private readonly setFailed = (err: unknown): void => {
    this.failed('set', err);
  };

  private failed(op: string, err: unknown): L2Failed {
    if (err !== DEADLINE_MISSED && !this.closed) this.fault(op, err);
    return L2_FAILED;
  }

  /** A call failed (not at its deadline: the sweep counts those): reported, and counted by the breaker if it says Redis is in trouble. */
  private fault(op: string, err: unknown): void {
    if (isOutage(err)) this.breaker.failure();
    this.onError(op, err);
  }

  /**
   * The breaker's half-open probe: one PING on the first connection, under the deadline, around pick() (which
   * the breaker still blocks). Its missed deadline also feeds the half-open TCP watchdog, which has no other
   * traffic to go by while the breaker holds the calls back.
   */
  private probe(): Promise<boolean> {
    const conn = this.conns[0];
    if (this.closed || conn.client.status !== 'ready') return Promise.resolve(false);
    return this.deadlines.run(conn.client.ping(), 'ping', conn).then((r) => r !== L2_FAILED);
  }

  /** Starts connecting; waits at most connectTimeout. A Redis that is down leaves the app booting L1-only. */
  async connect(): Promise<boolean> {
    const cleanups: Array<() => void> = [];
    const attempts = this.conns.map((conn) => this.connectOne(conn, cleanups));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), this.connectTimeoutMs);
      // close() while this waits ends the wait: nothing will connect any more.
      this.endConnectWait = () => r(false);
    });
    const ok = await Promise.race([Promise.all(attempts).then((r) => r.every(Boolean)), timeout]);
    clearTimeout(timer);
    this.endConnectWait = undefined;
    for (const f of cleanups) f();
    return ok;
  }

  private endConnectWait: (() => void) | undefined;

  /**
   * Our own connections are lazy: connect them. A borrowed client is connected if it has not been (lazyConnect,
   * or ended), else waited for while it connects under the app's settings; one already ready gets our 'ready'
   * handler now, its event having come before we listened.
   */
  private connectOne(conn: Conn, cleanups: Array<() => void>): Promise<boolean> {
    const c = conn.client;
    if (conn.owned || c.status === 'wait' || c.status === 'end') return c.connect().then(() => true, () => false);
    if (c.status === 'ready') {
      conn.onReady?.();
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const ready = (): void => resolve(true);
      c.once('ready', ready);
      cleanups.push(() => c.off('ready', ready));
    });
  }

  get ready(): boolean {
    return this.conns.some((c) => c.client.status === 'ready');
  }

  get status(): string {
    return this.conns[0].client.status;
  }

  get client(): RedisClient {
    return this.conns[0].client;
  }

  private pick(write: boolean): Conn | undefined {
    if (this.breaker.state !== CLOSED && this.breaker.blocked()) return undefined;
    const n = this.conns.length;
    // Writes always leave on the first connection, the one whose CLIENT TRACKING is NOLOOP: our own SETs
    // then never come back as invalidations of what we just cached (see track()).
    if (write && this.coalesce) return this.conns[0].client.status === 'ready' ? this.conns[0] : undefined;
    if (n === 1) return this.conns[0].client.status === 'ready' ? this.conns[0] : undefined;
    for (let i = 0; i < n; i++) {
      const c = this.conns[this.next++ % n];
      if (c.client.status === 'ready') return c;
    }
    return undefined;
  }

  /** Write coalescing: the first command of a tick goes out at once, later ones are corked until the tick ends. */
  private enterTick(conn: Conn, several: boolean): void {
    if (conn.tick === IDLE) {
      process.nextTick(endTick, conn);
      if (several) {
        conn.tick = CORKED;
        (conn.client as Redis).stream.cork();
      } else conn.tick = SENT;
    } else if (conn.tick === SENT) {
      conn.tick = CORKED;
      (conn.client as Redis).stream.cork();
    }
  }

  /**
   * The hot paths' send (standalone/Sentinel): the Command is built here, with its deadline stamped on it
   * and enforced by the deadline sweep through the client's queue of unanswered commands. That skips what
   * run() costs per call (a closure, a wrapper promise, a Set entry) and ioredis' generic command method.
   * The caller attaches its own rejection handler (`getFailed`/`setFailed`).
   */
  private send(conn: Conn, name: string, args: Array<string | number>): Promise<unknown> {
    return this.dispatch(conn, new Command(name, args, commandOptions(conn)));
  }

  private dispatch(conn: Conn, cmd: Command): Promise<unknown> {
    this.enterTick(conn, false);
    (cmd as unknown as StampedCommand).tcDeadline = performance.now() + this.commandTimeoutMs;
    (conn.client as Redis).sendCommand(cmd);
    this.deadlines.ensureArmed();
    return cmd.promise;
  }

  /**
   * `several`: `fn` sends more than one command; they are corked from the first so they share one write.
   * `deadline`: a routed read's own, when it falls back here (the retry gets what is left of it, no more).
   */
  private run<T>(op: string, fn: (c: RedisClient) => Promise<T>, several = false, write = false, deadline?: number): Promise<T | L2Failed> {
    const conn = this.closed ? undefined : this.pick(write);
    if (!conn) return Promise.resolve(L2_FAILED);
    const c = conn.client;
    if (this.coalesce) this.enterTick(conn, several);
    let p: Promise<T>;
    try {
      p = fn(c);
    } catch (err) {
      this.fault(op, err);
      return Promise.resolve(L2_FAILED);
    }
    return this.deadlines.run(p, op, conn, deadline);
  }

  /**
   * A routed read's command, on the master's connection as the Cluster client would send it. Only the last
   * command of a read carries the deadline: the sweep then fails the call once and counts one missed
   * deadline, as run() does; the commands before it are answered first (or fail with it when the socket goes).
   */
  private routed(conn: Conn, name: string, args: Array<string | number>, deadline?: number): Promise<unknown> {
    const cmd = new Command(name, args, this.routedOptions);
    if (deadline !== undefined) (cmd as unknown as StampedCommand).tcDeadline = deadline;
    (conn.client as Redis).sendCommand(cmd);
    return cmd.promise;
  }

  /**
   * A routed read failed. A missed deadline (or a closed tier) leaves nothing to retry within. Anything else
   * (MOVED/ASK after a slot moved, CLUSTERDOWN, TRYAGAIN, a connection that closed under the read) goes once
   * through the Cluster client, within what is left of the deadline: the client follows the redirection,
   * refreshes its slot table (so the next reads route to the new master), and reports what still fails.
   */
  private reroute<T>(err: unknown, retry: () => Promise<T | L2Failed>): Promise<T | L2Failed> | L2Failed {
    if (err === DEADLINE_MISSED || this.closed) return L2_FAILED;
    return retry();
  }

  /**
   * Half-open TCP (a peer that vanished without a FIN) would leave a connection "ready" for minutes while
   * every call times out. Calls keep missing their deadline and no reply byte has arrived for
   * socketTimeout: drop the socket so ioredis reconnects.
   */
  private watchdog(conn: Conn | undefined, sentAt: number): void {
    if (!conn || this.closed) return;
    if (conn.lastDataAt >= sentAt) return; // the connection answered something since: Redis is slow, not gone
    if (conn.silentSince < 0 || conn.lastDataAt >= conn.silentSince) {
      conn.silentSince = sentAt;
      return;
    }
    if (performance.now() - conn.silentSince < this.socketTimeoutMs) return;
    conn.silentSince = -1;
    const err = new Error(`Socket timeout: no reply from Redis in ${Math.round(this.socketTimeoutMs)} ms; reconnecting`);
    this.onError('connection', err);
    (conn.client as Redis).stream.destroy(err);
  }

  get(pkey: string): Promise<string | null | L2Failed> {
    if (this.routes !== undefined) {
      if (this.breaker.state !== CLOSED && this.breaker.blocked()) return FAILED;
      const conn = this.closed ? undefined : this.routes.nodeFor(pkey);
      if (conn === undefined) return this.run('get', (c) => c.get(pkey));
      const deadline = performance.now() + this.commandTimeoutMs;
      this.enterTick(conn, false);
      const value = this.routed(conn, 'get', [pkey], deadline) as Promise<string | null>;
      this.deadlines.ensureArmed();
      return value.then(undefined, (err: unknown) => this.reroute(err, () => this.run('get', (c) => c.get(pkey), false, false, deadline)));
    }
    const conn = this.closed ? undefined : this.pick(false);
    if (!conn) return FAILED;
    return (this.send(conn, 'get', [pkey]) as Promise<string | null>).then(undefined, this.getFailed);
  }

  /** Value and remaining TTL in one round trip (one socket write), for promotion into L1. */
  getWithPttl(pkey: string): Promise<[string | null, number] | L2Failed> {
    // Standalone/Sentinel: pick() tests the breaker.
    if (this.routes !== undefined && this.breaker.state !== CLOSED && this.breaker.blocked()) return FAILED;
    const conn = this.routes === undefined || this.closed ? undefined : this.routes.nodeFor(pkey);
    if (conn === undefined) return this.getWithPttlVia(pkey);
    const deadline = performance.now() + this.commandTimeoutMs;
    this.enterTick(conn, true);
    const get = this.routed(conn, 'get', [pkey]);
    const pttl = this.routed(conn, 'pttl', [pkey], deadline);
    this.deadlines.ensureArmed();
    // Replies come in order: when the PTTL's arrives, the GET's is in.
    let value: unknown;
    let refused: unknown;
    get.then(
      (v) => (value = v),
      (err: unknown) => (refused = err ?? new Error('GET refused')),
    );
    const retry = (): Promise<[string | null, number] | L2Failed> => this.getWithPttlVia(pkey, deadline);
    return pttl.then(
      (t) => (refused === undefined ? [value as string | null, t as number] : this.reroute(refused, retry)),
      (err: unknown) => this.reroute(err, retry),
    );
  }

  /** getWithPttl through the client (a Cluster's routes it), both in one write. */
  private getWithPttlVia(pkey: string, deadline?: number): Promise<[string | null, number] | L2Failed> {
    return this.run('get', (c) => Promise.all([c.get(pkey), c.pttl(pkey)]), true, false, deadline);
  }

  mget(pkeys: readonly string[], withPttl: boolean): Promise<Array<[string | null, number]> | L2Failed> {
    if (this.mode === 'cluster') {
      // One MGET cannot span slots: a GET (and PTTL) per key, each written as it is called, all in flight at once.
      return this.run('mget', (c) => Promise.all(pkeys.map((k) => Promise.all([c.get(k), withPttl ? c.pttl(k) : Promise.resolve(-1)]))));
    }
    if (!withPttl) return this.run('mget', (c) => c.mget(...pkeys).then((vals) => vals.map((v): [string | null, number] => [v, -1])));
    // MGET and the PTTLs leave in one write (corked) and come back in order.
    return this.run(
      'mget',
      (c) =>
        Promise.all([c.mget(...pkeys), Promise.all(pkeys.map((k) => c.pttl(k)))]).then(([vals, ttls]) =>
          vals.map((v, i): [string | null, number] => [v, ttls[i]]),
        ),
      true,
    );
  }

  /** PUBLISH on a data connection; false when it failed or missed the deadline. */
  publish(channel: string, message: string): Promise<boolean> {
    return this.run('publish', (c) => c.publish(channel, message)).then((r) => r !== L2_FAILED);
  }

  onReady(listener: () => void): void {
    this.readyListeners.push(listener);
  }

  /** The first data connection (the one writes and CLIENT TRACKING use) came up (true) or went down (false). */
  onPrimary(listener: (up: boolean) => void): void {
    this.primaryListeners.push(listener);
  }

  /** Server-assisted invalidation needs one connection that carries every write: not on a Cluster. */
  get canTrack(): boolean {
    return this.coalesce;
  }

  /**
   * Turns on Redis server-assisted invalidation for this instance: every key under `prefix` that another
   * client writes, deletes, or that expires, is announced on `__redis__:invalidate` to client `redirectId`
   * (our subscriber). NOLOOP leaves out the writes of this connection, which carries all of ours. OFF first:
   * a re-issued ON with the same prefix is refused, and the redirect target changes on every reconnect.
   * 'unsupported' when Redis refuses the command itself (Redis < 6, an ACL without CLIENT).
   */
  async track(redirectId: number, prefix: string): Promise<'ok' | 'unsupported' | 'failed'> {
    const conn = this.conns[0];
    if (this.closed || !this.coalesce || conn.client.status !== 'ready') return 'failed';
    const c = conn.client as Redis;
    const on = ['TRACKING', 'ON', 'REDIRECT', String(redirectId), 'BCAST', ...(prefix ? ['PREFIX', prefix] : []), 'NOLOOP'];
    let refused: unknown;
    const sent = Promise.all([c.call('CLIENT', 'TRACKING', 'OFF'), c.call('CLIENT', ...on)]).catch((err: unknown) => {
      refused = err;
      return undefined;
    });
    // Sent, whatever its answer: a borrowed connection gets its OFF at close.
    this.tracking = true;
    const r = await this.deadlines.run(sent, 'tracking', conn);
    if (r === L2_FAILED) return 'failed';
    if (refused === undefined) return 'ok';
    const msg = refused instanceof Error ? refused.message : String(refused);
    this.onError('tracking', refused);
    return /unknown (sub)?command|NOPERM|not allowed/i.test(msg) ? 'unsupported' : 'failed';
  }

  pttl(pkey: string): Promise<number | L2Failed> {
    return this.run('ttl', (c) => c.pttl(pkey));
  }

  exists(pkey: string): Promise<boolean | L2Failed> {
    return this.run('has', (c) => c.exists(pkey).then((n) => n > 0));
  }

  /**
   * Resolves to true once the write is done or given up (a failure is reported through onError, as
   * everywhere): the caller has already stored the value in L1 and answers true either way. `lost` hears a
   * write that failed, missed its deadline or was not sent (the recovery queue keeps it for replay).
   */
  set(w: L2Write, lost?: (w: L2Write) => void): Promise<true> {
    const payload = this.stored(w.payload);
    if ((w.tagKeys && w.tagKeys.length > 0) || !this.coalesce) {
      const sent = w.tagKeys && w.tagKeys.length > 0 ? this.run('set', (c) => writeOne(c, w, payload), true, true) : this.run('set', (c) => c.set(w.pkey, payload, 'PX', w.ttl), false, true);
      if (lost === undefined) return sent.then(returnTrue);
      return sent.then((r): true => {
        if (r === L2_FAILED) lost(w);
        return true;
      });
    }
    const conn = this.closed ? undefined : this.pick(true);
    if (!conn) {
      lost?.(w);
      return TRUE;
    }
    // The command's own promise, already true either way. On a VM, a fraction of a µs more between Redis'
    // reply and our next request (one more promise hop) measurably costs a vCPU wake-up on the next write.
    return this.dispatch(conn, new WriteCommand([w.pkey, payload, 'PX', w.ttl], commandOptions(conn), this.setFailed, w, lost)) as Promise<true>;
  }

  /** Many writes in one round trip (auto-pipelined; per node on a Cluster). */
  setMany(writes: readonly L2Write[]): Promise<boolean | L2Failed> {
    return this.run('mset', (c) => Promise.all(writes.map((w) => writeOne(c, w, this.stored(w.payload)))).then(() => true), true, true);
  }

  /** What this tier stores for a payload: compressed when it compresses and the payload is large enough (compression.ts). */
  private stored(payload: string): string {
    return this.compressor === undefined ? payload : this.compressor.pack(payload);
  }

  /**
   * Deletes keys; resolves to a flag per key (removed or not). On the write connection: a delete must never
   * overtake a SET sent before it (even one that already missed its deadline and may still reach Redis).
   * `fence`: also writes a new token into each key's fence (fill-fence.ts), in the same write.
   */
  del(pkeys: readonly string[], fence?: { keys: ReadonlyArray<string | undefined>; ttl: number }): Promise<boolean[] | L2Failed> {
    if (!fence) return this.run('delete', (c) => Promise.all(pkeys.map((k) => c.unlink(k).then((n) => n > 0))), pkeys.length > 1, true);
    const token = this.nextFenceToken();
    return this.run(
      'delete',
      (c) =>
        Promise.all(
          pkeys.map((k, i) => {
            const fk = fence.keys[i];
            const removed = c.unlink(k).then((n) => n > 0);
            return fk === undefined ? removed : Promise.all([removed, c.set(fk, token, 'PX', fence.ttl)]).then(([r]) => r);
          }),
        ),
      true,
      true,
    );
  }

  private fenceSeq = 0;
  private readonly fenceId = Math.random().toString(36).slice(2, 10);

  private nextFenceToken(): string {
    return `${this.fenceId}:${++this.fenceSeq}`;
  }

  /** Increments a generation counter (pattern, tag and clear invalidations fence fills with it). */
  bump(genKey: string): Promise<boolean> {
    return this.run('delete', (c) => c.incr(genKey), false, true).then((r) => r !== L2_FAILED);
  }

  /**
   * A fill's read, in one round trip: the value, its PTTL when `withPttl` (-1 otherwise), and the fence and
   * generation the fill will store against. Standalone/Sentinel read the three in one MGET, at one instant,
   * and the PTTL in the same socket write: plain commands cost Redis a fraction of what a script call costs.
   */
  readForFill(pkey: string, fenceKey: string | undefined, genKey: string, withPttl: boolean): Promise<[string | null, number, string, string] | L2Failed> {
    if (this.mode !== 'cluster' && fenceKey !== undefined) {
      const conn = this.closed ? undefined : this.pick(false);
      if (!conn) return FAILED;
      const send = this.sender(conn, withPttl);
      const mget = send('mget', [pkey, fenceKey, genKey]);
      if (!withPttl) {
        this.deadlines.ensureArmed();
        return mget.then((r) => this.fillRead(r, -1), this.getFailed);
      }
      const pttl = send('pttl', [pkey]);
      this.deadlines.ensureArmed();
      // Replies come in order: when the PTTL's arrives, the MGET's is in.
      let values: unknown;
      mget.then((r) => (values = r), ignore);
      return pttl.then((t) => this.fillRead(values, t as number), this.getFailed);
    }
    if (this.routes !== undefined && this.breaker.state !== CLOSED && this.breaker.blocked()) return FAILED;
    const at = this.routes === undefined || this.closed || fenceKey === undefined ? undefined : this.routes.nodeFor(pkey);
    // The generation lives in a slot of its own, often on another master.
    const genAt = at && (this.routes as ClusterReads<Conn>).nodeFor(genKey);
    if (at !== undefined && genAt !== undefined) {
      const deadline = performance.now() + this.commandTimeoutMs;
      this.enterTick(at, true);
      if (genAt !== at) this.enterTick(genAt, false);
      // The last command on each master carries the deadline (two only if both masters hang).
      const value = this.routed(at, 'get', [pkey]);
      const pttl = withPttl ? this.routed(at, 'pttl', [pkey]) : -1;
      const fence = this.routed(at, 'get', [fenceKey as string], genAt === at ? undefined : deadline);
      const gen = this.routed(genAt, 'get', [genKey], deadline);
      this.deadlines.ensureArmed();
      return Promise.all([value, pttl, fence, gen]).then(
        ([v, t, f, g]): [string | null, number, string, string] => [v as string | null, t as number, (f as string | null) ?? '', (g as string | null) ?? ''],
        (err: unknown) => this.reroute(err, () => this.readForFillVia(pkey, fenceKey, genKey, withPttl, deadline)),
      );
    }
    return this.readForFillVia(pkey, fenceKey, genKey, withPttl);
  }

  /** readForFill through the Cluster client. */
  private readForFillVia(pkey: string, fenceKey: string | undefined, genKey: string, withPttl: boolean, deadline?: number): Promise<[string | null, number, string, string] | L2Failed> {
    return this.run(
      'get',
      (c) =>
        Promise.all([c.get(pkey), withPttl ? c.pttl(pkey) : -1, fenceKey === undefined ? Promise.resolve(null) : c.get(fenceKey), c.get(genKey)]).then(
          ([v, t, f, g]): [string | null, number, string, string] => [v, t, f ?? '', g ?? ''],
        ),
      true,
      false,
      deadline,
    );
  }

  /**
   * Whether readForFillLocking can take a fill lock inside the fill read. Not on a Cluster: the generation it
   * reads lives in another slot than the key, so one script cannot read both (the lock is taken after the read).
   */
  get locksInRead(): boolean {
    return this.coalesce;
  }

  /**
   * readForFill that also takes `lock` when the key is missing, in one script call (READ_OR_LOCK) instead of the
   * MGET + PTTL: the fifth element says whether the lock was taken (undefined on a hit: not asked, so a payload
   * the caller cannot use leaves it to ask again). Standalone/Sentinel only (see locksInRead).
   * EVALSHA; once more as EVAL when Redis does not know the script (it is loaded with it).
   */
  readForFillLocking(pkey: string, fenceKey: string, genKey: string, withPttl: boolean, lock: FillLockKeys, asEval = false): Promise<[string | null, number, string, string, boolean | undefined] | L2Failed> {
    const conn = this.closed ? undefined : this.pick(false);
    if (!conn) return FAILED;
    const send = this.sender(conn, false);
    const r = send(asEval ? 'eval' : 'evalsha', [asEval ? READ_OR_LOCK : READ_OR_LOCK_SHA, 5, pkey, fenceKey, genKey, lock.lockKey, lock.waitKey, lock.token, lock.ttl, withPttl ? 1 : 0]);
    this.deadlines.ensureArmed();
    return r.then(
      (reply) => {
        const row = reply as Array<string | number | null>;
        if (!Array.isArray(row)) return this.failed('get', new Error('locking fill read: unexpected reply'));
        if (row[0] === 1) return [row[1] as string, Number(row[2]), (row[3] as string | null) ?? '', (row[4] as string | null) ?? '', undefined];
        return [null, -2, (row[1] as string | null) ?? '', (row[2] as string | null) ?? '', row[3] === 1];
      },
      (err: unknown) => (!asEval && err instanceof Error && err.message.startsWith('NOSCRIPT') ? this.readForFillLocking(pkey, fenceKey, genKey, withPttl, lock, true) : this.getFailed(err)),
    );
  }

  /** Takes a fill lock, or raises its waiter flag (LOCK_ACQUIRE): true when taken. */
  lockAcquire(lock: FillLockKeys): Promise<boolean | L2Failed> {
    return this.run('lock', (c) => (c as unknown as FillCommands).tcLockAcquire(lock.lockKey, lock.waitKey, lock.token, lock.ttl).then((n) => n === 1), false, true);
  }

  /** Gives the lock another PX while its holder's factory runs; false when it is no longer the holder's. */
  lockExtend(lock: FillLockKeys): Promise<boolean | L2Failed> {
    return this.run('lock', (c) => (c as unknown as FillCommands).tcLockExtend(lock.lockKey, lock.waitKey, lock.token, lock.ttl).then((n) => n === 1), false, true);
  }

  /** Fill-lock releases waiting to ride with their key's fill store (standalone/Sentinel): pkey → release. */
  private readonly riding = new Map<string, RidingRelease>();

  /**
   * Lets `lock` go inside the next fill store of `pkey` (FILL_STAGE), stored or refused, instead of in a script
   * call of its own after it. False on a Cluster (the store there is several calls): the caller releases itself.
   */
  releaseWithStore(pkey: string, lock: FillLockKeys, channel: string, message: string): boolean {
    if (!this.coalesce) return false;
    this.riding.set(pkey, { lock, channel, message });
    return true;
  }

  /** True when the release of `pkey` registered with releaseWithStore found no store to ride with (it is forgotten here). */
  unride(pkey: string): boolean {
    return this.riding.delete(pkey);
  }

  /** Releases a fill lock still held by `lock.token`, announcing `message` on `channel` when someone waits. */
  lockRelease(lock: FillLockKeys, channel: string, message: string): Promise<boolean | L2Failed> {
    return this.run('lock', (c) => (c as unknown as FillCommands).tcLockRelease(lock.lockKey, lock.waitKey, lock.token, channel, message).then((n) => n === 1), false, true);
  }

  private fillRead(values: unknown, pttl: number): [string | null, number, string, string] | L2Failed {
    if (!Array.isArray(values) || values.length !== 3) return this.failed('get', new Error('fill read: unexpected reply'));
    const [v, f, g] = values as Array<string | null>;
    return [v, pttl, f ?? '', g ?? ''];
  }

  /**
   * Stores a fill's value only if no invalidation overtook it (fill-fence.ts): true when written, false when
   * refused. Tags are indexed after the value is in. Without a fence key (a key whose braces defeat the slot
   * rule) the fill is refused: it cannot be checked.
   */
  storeFill(write: L2Write, fenceKey: string | undefined, genKey: string, seen: { fence: string; generation: string }): Promise<boolean | L2Failed> {
    return this.storeChecked(write, fenceKey, genKey, seen, undefined);
  }

  /**
   * A replayed write's store (recovery-queue.ts): as storeFill, but the key must still hold `expected` (the raw
   * value the replay read; undefined: nothing) rather than be absent, so an older entry can be replaced.
   */
  replaceFill(write: L2Write, fenceKey: string | undefined, genKey: string, seen: { fence: string; generation: string }, expected: string | undefined): Promise<boolean | L2Failed> {
    return this.storeChecked(write, fenceKey, genKey, seen, expected ?? '');
  }

  /** storeFill; with `expected` ('' for nothing), replaceFill. */
  private async storeChecked(write: L2Write, fenceKey: string | undefined, genKey: string, seen: { fence: string; generation: string }, expected: string | undefined): Promise<boolean | L2Failed> {
    if (fenceKey === undefined) return false;
    const payload = this.stored(write.payload);
    const w = payload === write.payload ? write : { ...write, payload };
    if (this.mode !== 'cluster') {
      const release = this.riding.size === 0 ? undefined : this.riding.get(w.pkey);
      if (release !== undefined) this.riding.delete(w.pkey);
      return this.storeFillStaged(w, fenceKey, genKey, seen, false, release, expected);
    }
    // The generation is in another slot: checked just before (see fill-fence.ts for the window this leaves).
    const g = await this.run('get', (c) => c.get(genKey));
    if (g === L2_FAILED) return L2_FAILED;
    if ((g ?? '') !== seen.generation) return false;
    const commands = (c: RedisClient): FillCommands => c as unknown as FillCommands;
    const stored = await this.run(
      'set',
      (c) => (expected === undefined ? commands(c).tcFillStore(w.pkey, fenceKey, w.payload, w.ttl, seen.fence) : commands(c).tcReplayStore(w.pkey, fenceKey, w.payload, w.ttl, seen.fence, expected)),
      false,
      true,
    );
    if (stored === L2_FAILED) return L2_FAILED;
    if (stored !== 1) return false;
    if (w.tagKeys && w.tagKeys.length > 0) {
      const tagKeys = w.tagKeys;
      await this.run('set', (c) => Promise.all(tagKeys.map((tk) => tagAdd(c, tk, w))), true, true);
    }
    // And checked again after: an invalidation moves the generation before it walks, so a store that landed
    // after the move sees it here and takes its value back; one that landed before it is in the walk's way.
    const after = await this.run('get', (c) => c.get(genKey));
    if (after !== L2_FAILED && (after ?? '') === seen.generation) return true;
    await this.run('delete', (c) => c.unlink(w.pkey), false, true);
    return false;
  }

  /**
   * The namespace generation (fill-fence.ts). Created with a random value when absent: a Redis that lost its
   * data then reads another generation than before, and nothing checked against the old one is stored.
   */
  generation(genKey: string): Promise<string | L2Failed> {
    const seed = String(Math.floor(Math.random() * 2 ** 40));
    return this.run('get', (c) => Promise.all([c.set(genKey, seed, 'NX'), c.get(genKey)]).then(([, g]) => g ?? ''), true, true);
  }

  /**
   * A fill's store on standalone/Sentinel: MULTI, FILL_STAGE, RENAME, EXEC, sent as raw commands in one
   * socket write instead of through an ioredis Pipeline, whose bookkeeping is a measurable share of the miss
   * path. Tags are indexed by the same script, so a tag invalidation cannot fall between the value and its
   * index. The script goes as EVALSHA; when Redis no longer knows it, the store is sent once more as EVAL
   * (which also loads it again).
   */
  private storeFillStaged(
    w: L2Write,
    fenceKey: string,
    genKey: string,
    seen: { fence: string; generation: string },
    asEval: boolean,
    release: RidingRelease | undefined,
    expected?: string,
  ): Promise<boolean | L2Failed> {
    const conn = this.closed ? undefined : this.pick(true);
    if (!conn) return FAILED;
    const send = this.sender(conn, true);
    const tags = w.tagKeys ?? NO_TAGS;
    const script = expected === undefined ? (asEval ? FILL_STAGE : FILL_STAGE_SHA) : asEval ? REPLAY_STAGE : REPLAY_STAGE_SHA;
    const stage: Array<string | number> = [script, (release ? 6 : 4) + tags.length, w.pkey, fenceKey, genKey, this.stagingKey];
    if (release) stage.push(release.lock.lockKey, release.lock.waitKey);
    for (const tk of tags) stage.push(tk);
    stage.push(seen.fence, seen.generation, w.payload, w.ttl, TAG_PRUNE);
    // ARGV[6..9]: the lock's release (or none); ARGV[10]: what a replacing store expects to find.
    if (release) stage.push(1, release.lock.token, release.channel, release.message);
    else if (expected !== undefined) stage.push(0, '', '', '');
    if (expected !== undefined) stage.push(expected);
    // Their replies are MULTI's OK and QUEUED; what counts comes back in EXEC's reply (or as its rejection).
    send('multi', []).catch(ignore);
    send(asEval ? 'eval' : 'evalsha', stage).catch(ignore);
    send('rename', [this.stagingKey, w.pkey]).catch(ignore);
    const exec = send('exec', []);
    this.deadlines.ensureArmed();
    return exec.then((r) => {
      const rows = r as unknown[] | null;
      if (!Array.isArray(rows) || rows.length !== 2) return this.failed('set', new Error('fill store: transaction discarded'));
      const [staged, renamed] = rows;
      if (staged === 1) return renamed === 'OK' ? true : this.failed('set', renamed instanceof Error ? renamed : new Error('fill store: staged value not moved'));
      if (staged === 0) return false;
      if (!asEval && staged instanceof Error && staged.message.startsWith('NOSCRIPT')) return this.storeFillStaged(w, fenceKey, genKey, seen, true, release, expected);
      return this.failed('set', staged instanceof Error ? staged : new Error('fill store: unexpected reply'));
    }, this.setFillFailed);
  }

  /**
   * Sends raw commands on `conn` under one deadline, as they are called; with `several`, the ones after the
   * first wait for the tick's end and leave together. Call `deadlines.ensureArmed()` once they are sent.
   */
  private sender(conn: Conn, several: boolean): (name: string, args: Array<string | number>) => Promise<unknown> {
    const client = conn.client as Redis;
    const options = commandOptions(conn);
    const deadline = performance.now() + this.commandTimeoutMs;
    this.enterTick(conn, several);
    return (name, args) => {
      const cmd = new Command(name, args, options);
      (cmd as unknown as StampedCommand).tcDeadline = deadline;
      client.sendCommand(cmd);
      return cmd.promise;
    };
  }

  private readonly setFillFailed = (err: unknown): L2Failed => this.failed('set', err);

  /**
   * SCAN MATCH + UNLINK in batches (never KEYS), on every master of a Cluster (cluster SCAN only sees one
   * node, io#1884). Each step has its own deadline. A node whose step fails is skipped and named in the
   * result, and the walk goes on with the next one: one hung master must not leave the others' keys behind.
   */
  /** `keep`: keys the walk must leave although they match (the engine's own keys under the namespace). */
  async scanDelete(match: string, onKeys?: (pkeys: string[]) => void, keep?: (pkey: string) => boolean): Promise<ScanDeleteResult> {
    // The walk's SCANs go to the nodes directly, not through pick().
    if (this.closed || (this.breaker.state !== CLOSED && this.breaker.blocked())) return { removed: 0, failedNodes: ['all'] };
    const nodes: RedisClient[] =
      this.mode === 'cluster' ? (this.conns[0].client as Cluster).nodes('master') : [this.conns[0].client];
    if (nodes.length === 0) return { removed: 0, failedNodes: ['all'] };
    let removed = 0;
    const failedNodes: string[] = [];
    for (const node of nodes) {
      const r = await this.scanDeleteNode(node, match, onKeys, keep);
      removed += r.removed;
      if (!r.complete) failedNodes.push(nodeName(node));
    }
    return { removed, failedNodes };
  }

  private async scanDeleteNode(node: RedisClient, match: string, onKeys?: (pkeys: string[]) => void, keep?: (pkey: string) => boolean): Promise<{ removed: number; complete: boolean }> {
    let removed = 0;
    let cursor = '0';
    do {
      const page = await this.deadlines.run((node as Redis).scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT), 'scan', undefined);
      if (page === L2_FAILED) return { removed, complete: false };
      cursor = page[0];
      const keys = keep ? page[1].filter((k) => !keep(k)) : page[1];
      if (keys.length > 0) {
        onKeys?.(keys);
        const r = await this.run(
          'unlink',
          (c) => (this.mode === 'cluster' ? Promise.all(keys.map((k) => c.unlink(k))).then((a) => a.reduce((s, n) => s + n, 0)) : c.unlink(...keys)),
          false,
          true,
        );
        if (r === L2_FAILED) return { removed, complete: false };
        removed += r;
      }
    } while (cursor !== '0');
    return { removed, complete: true };
  }

  /**
   * Removes every key indexed under a tag, in O(tagged keys); `onKeys` gets each batch once it is deleted.
   * ZPOPMIN (SPOP for an index of an earlier version, `legacyKey`) takes members out atomically, so a key tagged
   * while this runs is either popped here or stays indexed for the next invalidation. `complete` is false when a
   * step failed (what was popped and not deleted is put back).
   */
  async popTag(tagKey: string, legacyKey: string | undefined, onKeys?: (pkeys: string[]) => void): Promise<TagPopResult> {
    let removed = 0;
    if (legacyKey !== undefined) {
      for (;;) {
        const members = await this.run('tag', (c) => c.spop(legacyKey, TAG_POP_BATCH), false, true);
        if (members === L2_FAILED) return { removed, complete: false };
        if (!members || members.length === 0) break;
        const r = await this.del(members);
        if (r === L2_FAILED) {
          await this.restoreLegacyTag(legacyKey, members);
          return { removed, complete: false };
        }
        onKeys?.(members);
        for (const ok of r) if (ok) removed++;
      }
    }
    for (;;) {
      const popped = await this.run('tag', (c) => c.zpopmin(tagKey, TAG_POP_BATCH), false, true);
      if (popped === L2_FAILED) return { removed, complete: false };
      if (popped.length === 0) return { removed, complete: true };
      const members: string[] = [];
      for (let i = 0; i < popped.length; i += 2) members.push(popped[i]);
      const r = await this.del(members);
      if (r === L2_FAILED) {
        // ZPOPMIN already took them out of the index: put them back, or a later invalidation of this tag
        // would miss keys that still hold their old values.
        const args: string[] = [];
        for (let i = 0; i < popped.length; i += 2) args.push(popped[i + 1], popped[i]);
        const back = await this.run('tag', (c) => c.eval(TAG_RESTORE, 1, tagKey, ...args), false, true);
        if (back === L2_FAILED) this.lostFromTag(tagKey, members.length);
        return { removed, complete: false };
      }
      // After the delete: a reader told about these keys must not find the old values in L2 any more.
      onKeys?.(members);
      for (const ok of r) if (ok) removed++;
    }
  }

  /** Re-indexes members popped from an earlier version's tag set that could not be deleted (each with its own remaining TTL). */
  private async restoreLegacyTag(tagKey: string, members: string[]): Promise<void> {
    const ttls = await this.run('tag', (c) => Promise.all(members.map((m) => c.pttl(m))), true);
    let ok = ttls !== L2_FAILED;
    if (ttls !== L2_FAILED) {
      // Gone (-2) needs nothing; a member is always written with a TTL, so -1 does not occur.
      const live = members.map((m, i) => [m, ttls[i]] as const).filter(([, ttl]) => ttl > 0);
      if (live.length > 0) {
        const back = await this.run('tag', (c) => Promise.all(live.map(([m, ttl]) => c.eval(LEGACY_TAG_ADD, 1, tagKey, m, ttl))), true);
        ok = back !== L2_FAILED;
      }
    }
    if (!ok) this.lostFromTag(tagKey, members.length);
  }

  private lostFromTag(tagKey: string, n: number): void {
    this.onError('tag', new Error(`${n} keys of tag index ${tagKey} could be neither deleted nor re-indexed; they expire with their TTL`));
  }

  // ---------------------------------------------------------------- the Tier contract
  // Cache keys in, prefixed here. The engine's own paths (fenced fills, deferred invalidations) use the
  // physical-key methods above.

  getEntry(key: string): Promise<TierEntry<string> | undefined | L2Failed> {
    return this.getWithPttl(this.keyPrefix + key).then((r) => (r === L2_FAILED ? r : liveEntry(r[0], r[1])));
  }

  getEntries(keys: readonly string[]): Promise<Array<TierEntry<string> | undefined> | L2Failed> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.mget(
      keys.map((k) => this.keyPrefix + k),
      true,
    ).then((rows) => (rows === L2_FAILED ? rows : rows.map(([v, t]) => liveEntry(v, t))));
  }

  setEntry(w: TierWrite<string>): Promise<boolean | L2Failed> {
    return this.setEntries([w]);
  }

  setEntries(writes: ReadonlyArray<TierWrite<string>>): Promise<boolean | L2Failed> {
    if (writes.length === 0) return Promise.resolve(true);
    return this.setMany(writes.map((w) => this.physical(w)));
  }

  /** A contract write as the physical-key methods take it. */
  private physical(w: TierWrite<string>): L2Write {
    return { pkey: this.keyPrefix + w.key, payload: w.value, ttl: w.ttl, tagKeys: w.tags && w.tags.length > 0 ? w.tags.map((t) => this.tagPrefix + t) : undefined };
  }

  deleteKeys(keys: readonly string[]): Promise<number | L2Failed> {
    if (keys.length === 0) return Promise.resolve(0);
    const pkeys = keys.map((k) => this.keyPrefix + k);
    const fence = { keys: pkeys.map((p) => fenceKeyOf(this.fencePrefix, p)), ttl: this.fillWindow };
    return this.del(pkeys, fence).then((r) => (r === L2_FAILED ? r : r.filter(Boolean).length));
  }

  /**
   * scanDelete() with the tier's own keys left out: the tag indexes (and the engine's fences and generation) live
   * under `keyPrefix + '__tc:'`, where a glob such as `*` or `*:1` also reaches. Deleting an index would both count it
   * as an entry and leave the keys it named untouched by the next deleteTags.
   */
  async deletePattern(glob: string): Promise<TierRemoval> {
    // A user's glob (`*`, `*:1`) also matches the tier's own keys under the prefix: tag indexes must survive it.
    const reserved = this.keyPrefix + RESERVED;
    // Moved first: a fill that stores while the walk runs must already see it.
    const bumped = await this.bump(this.genKey);
    const r = await this.scanDelete(escapeGlob(this.keyPrefix) + glob, undefined, (k) => k.startsWith(reserved));
    return { removed: r.removed, complete: bumped && r.failedNodes.length === 0 };
  }

  async deleteTags(tags: readonly string[], onKeys?: (keys: string[]) => void): Promise<TierRemoval> {
    let removed = 0;
    let complete = await this.bump(this.genKey);
    const at = this.keyPrefix.length;
    const heard = onKeys && ((pkeys: string[]): void => onKeys(pkeys.filter((p) => p.startsWith(this.keyPrefix)).map((p) => p.slice(at))));
    for (const tag of new Set(tags)) {
      const r = await this.popTag(this.tagPrefix + tag, this.legacyTagPrefix + tag, heard);
      removed += r.removed;
      complete &&= r.complete;
    }
    return { removed, complete };
  }

  readFenced(key: string): Promise<{ entry: TierEntry<string> | undefined; mark: FillMark } | L2Failed> {
    const pkey = this.keyPrefix + key;
    return this.readForFill(pkey, fenceKeyOf(this.fencePrefix, pkey), this.genKey, true).then((r) =>
      r === L2_FAILED ? r : { entry: liveEntry(r[0], r[1]), mark: { fence: r[2], generation: r[3] } },
    );
  }

  storeFenced(w: TierWrite<string>, mark: FillMark): Promise<boolean | L2Failed> {
    const write = this.physical(w);
    return this.storeFill(write, fenceKeyOf(this.fencePrefix, write.pkey), this.genKey, mark);
  }

  /** The namespace generation of this tier (see generation(genKey)). */
  currentGeneration(): Promise<string | L2Failed> {
    return this.generation(this.genKey);
  }

  /** storeFenced over an entry the caller read (`expected`, raw; undefined: none): see replaceFill. */
  replaceFenced(w: TierWrite<string>, mark: FillMark, expected: string | undefined): Promise<boolean | L2Failed> {
    const write = this.physical(w);
    return this.replaceFill(write, fenceKeyOf(this.fencePrefix, write.pkey), this.genKey, mark, expected);
  }

  /** PTTL 0 (expiring within this millisecond) is no entry, as getEntry reads it. */
  ttlOf(key: string): Promise<number | undefined | L2Failed> {
    return this.pttl(this.keyPrefix + key).then((r) => (r === L2_FAILED ? r : r === -1 ? -1 : r > 0 ? r : undefined));
  }

  async health(): Promise<TierHealth> {
    if (this.closed) return { ok: false, status: 'closed' };
    const open = breakerHealth(this.breaker);
    if (open) return open;
    const r = await this.run('ping', (c) => c.ping());
    const h: TierHealth = { ok: r !== L2_FAILED, status: this.status };
    if (this.breaker.enabled) h.breaker = this.breaker.stateName;
    return h;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.endConnectWait?.();
    this.breaker.stop();
    for (const dispose of this.disposers) dispose();
    // Fails the routed reads still waiting on a master's connection first: then stop watching those.
    this.deadlines.close();
    this.routes?.close();
    await Promise.all(this.conns.map((conn) => (conn.owned ? closeOwned(conn.client) : this.letGo(conn))));
    for (const detach of this.detachers) detach();
    for (const conn of this.conns) if (!conn.owned) releaseBorrowed(conn.client);
  }

  /**
   * The app's client stays connected: only what we changed on it is undone (CLIENT TRACKING, which would keep
   * redirecting to a subscriber that is gone; bounded by the command deadline). Our listeners come off after.
   */
  private async letGo(conn: Conn): Promise<void> {
    const c = conn.client;
    if (!this.tracking || conn !== this.conns[0] || c.status !== 'ready') return;
    this.tracking = false;
    let timer: NodeJS.Timeout | undefined;
    const off = (c as Redis).call('CLIENT', 'TRACKING', 'OFF').catch(() => undefined);
    await Promise.race([off, new Promise((r) => (timer = setTimeout(r, this.commandTimeoutMs)))]);
    clearTimeout(timer);
  }
}

/** QUIT (bounded), then the socket's end, for a connection of ours. */
async function closeOwned(c: RedisClient): Promise<void> {
  if (c.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([c.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 1_000)))]);
    clearTimeout(timer);
  }
  c.disconnect();
  // QUIT resolves on its reply, before the socket's close: until then the client still reads 'ready' (and so
  // would `ready`). Resolve once it has ended; bounded, as ioredis destroys a lingering socket after disconnectTimeout.
  if (c.status !== 'end' && c.status !== 'reconnecting' && c.status !== 'disconnecting') {
    let timer: NodeJS.Timeout | undefined;
    let ended: () => void = () => undefined;
    await new Promise<void>((resolve) => {
      ended = resolve;
      c.once('end', ended);
      timer = setTimeout(resolve, 1_000);
    });
    clearTimeout(timer);
    c.off('end', ended);
  }
}

/** A GET + PTTL reply as an entry: absent, or expiring within this millisecond (PTTL 0), is no entry. */
function liveEntry(value: string | null, pttl: number): TierEntry<string> | undefined {
  if (value === null || pttl === 0 || pttl === -2) return undefined;
  return { value, ttl: pttl };
}

/** What ioredis' own command methods pass: utf8 replies, and the client's keyPrefix if one was configured. */
function commandOptions(conn: Conn): typeof UTF8 & { keyPrefix?: string } {
  const prefix = (conn.client as Redis).options.keyPrefix;
  return prefix ? { ...UTF8, keyPrefix: prefix } : UTF8;
}

function nodeName(node: RedisClient): string {
  const o = (node as Redis).options;
  return o.path ? o.path : `${o.host ?? '?'}:${o.port ?? '?'}`;
}

/** Indexes `w` under a tag (EVALSHA of TAG_ADD: every tagged write runs it, so its text is not sent each time). */
function tagAdd(c: RedisClient, tagKey: string, w: L2Write): Promise<unknown> {
  return (c as unknown as FillCommands).tcTagAdd(tagKey, w.pkey, w.ttl, TAG_PRUNE);
}

function writeOne(c: RedisClient, w: L2Write, payload: string): Promise<unknown> {
  const ops: Promise<unknown>[] = [c.set(w.pkey, payload, 'PX', w.ttl)];
  if (w.tagKeys) for (const tk of w.tagKeys) ops.push(tagAdd(c, tk, w));
  return Promise.all(ops);
}
