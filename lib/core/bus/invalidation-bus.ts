import { randomUUID } from 'node:crypto';
import { reviveOnEnd, type RedisClient, type RedisConnectionFactory } from '../tiers/redis-connection';
import { watchConnectionErrors } from '../tiers/connection-errors';
import { errorText } from '../tier-label';
import type { CacheChange } from '../cache-change';
import type { BusHost } from './bus-host';
import { zeroCounts, type BusStats } from './bus-stats';
import { BUS_WIRE_VERSION, decodeBusMessage, encodeBusMessage } from './bus-message';
import { BusOutbox } from './bus-outbox';
import { reservedNames } from '../keys/cache-key';

/**
 * Where the bus publishes: the engine's own data connection. A PUBLISH issued in the same tick as other
 * commands leaves in the same socket write, and a change is published on the connection that carried the
 * write it follows, so Redis applies the write before any instance hears about it.
 */
export interface BusPublisher {
  readonly ready: boolean;
  /** Resolves false when the PUBLISH failed or missed the command deadline (never rejects). */
  publish(channel: string, message: string): Promise<boolean>;
  /** Called whenever a data connection becomes ready (a good moment to retry what failed). */
  onReady(listener: () => void): void;
  /** Whether one connection carries every write (needed for server-assisted invalidation). */
  readonly canTrack: boolean;
  /** CLIENT TRACKING on that connection, redirected to our subscriber (see RedisTier.track). */
  track(redirectId: number, prefix: string): Promise<'ok' | 'unsupported' | 'failed'>;
  /** That connection came up or went down (its tracking is lost with it). */
  onPrimary(listener: (up: boolean) => void): void;
}

/** Where Redis announces keys changed by other clients (server-assisted invalidation, RESP2 redirect). */
const TRACKING_CHANNEL = '__redis__:invalidate';

export interface InvalidationBusSettings {
  maxMessageBytes: number;
  retryQueueSize: number;
  heartbeatInterval: number;
  overwriteWindow: number;
  tracking: boolean;
}

/**
 * Where the subscription stands: `subscribed` (hears every change); `connecting` (not subscribed yet since
 * start); `down` (the subscription was lost; L1 is emptied once it is back); `closed`.
 */
/** `publishing`: an engine without L1 has nothing to drop, so it only publishes (no subscriber connection). */
export type BusState = 'subscribed' | 'publishing' | 'connecting' | 'down' | 'closed';


/**
 * Cross-instance L1 consistency: every local change of the engine (delete, overwrite, pattern, tags,
 * clear) is published on `<keyPrefix>__tc:bus:v1`; every other instance drops the matching L1 entries.
 *
 * - A dedicated subscriber connection (pub/sub needs its own). Publishing goes through the engine's data
 *   connection (offline queue off, command deadline), so failures surface here and go to a bounded outbox
 *   replayed when Redis is ready again.
 * - Redis pub/sub does not redeliver: after the subscription was lost, L1 is emptied once it is confirmed
 *   again (on the SUBSCRIBE reply, not on `reconnecting`). Until then the engine does not trust L1.
 * - Own messages are ignored; a received message is applied locally only and never re-published.
 * - A PING heartbeat on the idle subscriber lets `socketTimeout` detect a half-open connection.
 */
export class InvalidationBus {
  readonly instanceId = randomUUID();
  readonly channel: string;
  private readonly sub: RedisClient | undefined;
  private readonly outbox: BusOutbox;
  private readonly unsubscribeChange: () => void;
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private flushScheduled = false;
  private windowTimer: NodeJS.Timeout | undefined;
  /** The outbox holds more than overwrites: publish without waiting for the window. */
  private urgent = false;
  /** How this instance's own messages start: echoes are recognised without parsing them. */
  private readonly ownPrefix: string;
  private publishing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** L1 has been trusted before (a later loss and recovery empties it). */
  private everTrusted = false;
  /** Hears every change: subscribed, and (when Redis tracks writes for us) tracking is in force. */
  private trusted = false;
  /** The SUBSCRIBE of the current subscriber connection is confirmed. */
  private subscribedNow = false;
  /** Tracking is wanted here: L1 on, `bus.tracking` on, one connection carries every write (not a Cluster). */
  private readonly wantTracking: boolean;
  /** undefined: not known yet; true: Redis accepted CLIENT TRACKING; false: refused, overwrites are published. */
  private trackingSupported: boolean | undefined;
  /** CLIENT TRACKING is in force on the write connection, redirected to the current subscriber. */
  private trackingOn = false;
  /** CLIENT ID of the current subscriber connection (the redirect target). */
  private subId: number | undefined;
  private trackingAttempt: Promise<void> | undefined;
  private trackingAgain = false;
  private trackingRetry: NodeJS.Timeout | undefined;
  private closed = false;
  private disposeRevive: (() => void) | undefined;
  private readonly onceSubscribed: Array<() => void> = [];
  /**
   * Released fill locks that had waiters (get-set/distributed-lock.ts) are announced on a channel of their own,
   * on this subscriber connection: not as a new message type on the bus channel, which instances of an earlier
   * version would count and log as malformed. Only the key travels (bounded by maxMessageBytes like the rest).
   */
  private readonly fillChannel: string;
  private fillListener: ((key: string) => void) | undefined;
  private readonly n = zeroCounts();

  constructor(
    private readonly engine: BusHost,
    factory: RedisConnectionFactory,
    private readonly settings: InvalidationBusSettings,
    private readonly publisher: BusPublisher,
  ) {
    this.channel = `${engine.keyPrefix}__tc:bus:v${BUS_WIRE_VERSION}`;
    this.fillChannel = reservedNames(engine.keyPrefix).fillChannel;
    this.outbox = new BusOutbox(settings.retryQueueSize);
    // We subscribe ourselves on every `ready`, so we know when the subscription is confirmed.
    this.ownPrefix = encodeBusMessage(this.instanceId, { type: 'clear' }).split('"change"')[0];
    publisher.onReady(() => this.scheduleFlush());
    this.unsubscribeChange = engine.onChange((change) => this.send(change));
    this.wantTracking = settings.tracking && engine.hasL1 && publisher.canTrack;
    if (!this.wantTracking) this.trackingSupported = false;
    if (!engine.hasL1) return; // nothing local to drop: publish only
    publisher.onPrimary((up) => {
      if (up) void this.enableTracking();
      else if (this.trackingOn) {
        // The connection's tracking died with it: other instances' writes are not announced until it is back.
        this.trackingOn = false;
        this.updateTrust();
      }
    });
    // RESP2 whatever redis.protocol says: a redirected invalidation reaches a RESP3 client as an 'invalidate'
    // push that ioredis drops, and only a RESP2 subscriber gets it as a message on __redis__:invalidate.
    const sub = factory.create('bus-sub', this.wantTracking ? { autoResubscribe: false, protocol: 2 } : { autoResubscribe: false });
    this.sub = sub;
    this.disposeRevive = reviveOnEnd(sub, () => this.closed);
    watchConnectionErrors(sub, (op, err) => this.warn('bus:sub', `bus subscriber ${op} failed: ${errorText(err)}`));
    sub.on('ready', () => void this.subscribe());
    sub.on('close', () => this.lost());
    // ioredis rethrows a listener's exception on the next tick, as an uncaught exception: whatever a message
    // holds, nothing may escape these two listeners.
    sub.on('message', (channel: string, raw: string) => this.guard(() => this.receive(channel, raw)));
    if (factory.mode === 'cluster') this.watchClusterSubscriber(sub);
    if (this.wantTracking) {
      sub.on('messageBuffer', (channel: Buffer, payload: unknown) => {
        if (channel.length === TRACKING_CHANNEL.length && channel.toString() === TRACKING_CHANNEL) this.guard(() => this.receiveTracked(payload));
      });
    }
    this.heartbeat = setInterval(() => {
      if (sub.status === 'ready') (sub as { ping(): Promise<unknown> }).ping().catch(() => undefined);
    }, settings.heartbeatInterval);
    this.heartbeat.unref();
    engine.setL1Trusted(false);
  }

  get subscribed(): boolean {
    return this.trusted;
  }

  get state(): BusState {
    if (this.closed) return 'closed';
    if (!this.sub) return 'publishing';
    if (this.trusted) return 'subscribed';
    return this.everTrusted ? 'down' : 'connecting';
  }

  /** ioredis state of the subscriber connection (ready, connecting, reconnecting, …). */
  get connection(): string {
    return this.sub ? this.sub.status : 'none (publish only)';
  }

  /** Connects both connections; resolves once subscribed, or false after `timeoutMs` (it keeps trying). */
  async connect(timeoutMs: number): Promise<boolean> {
    if (!this.sub) return true;
    const subscribed = new Promise<boolean>((resolve) => {
      if (this.trusted) resolve(true);
      else this.onceSubscribed.push(() => resolve(true));
    });
    this.sub.connect().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
      // close() while this waits ends the wait: the subscription will not come any more.
      this.endConnectWait = () => r(false);
    });
    const ok = await Promise.race([subscribed, timeout]);
    clearTimeout(timer);
    this.endConnectWait = undefined;
    this.onceSubscribed.length = 0;
    return ok;
  }

  private endConnectWait: (() => void) | undefined;

  /** Publishes what is still waiting (bounded wait) and closes both connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.endConnectWait?.();
    this.unsubscribeChange();
    if (this.outbox.size > 0 || this.flushScheduled) await this.settle(this.flush(), 1_000);
    else if (this.publishing) await this.settle(this.publishing, 1_000);
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    clearTimeout(this.windowTimer);
    clearTimeout(this.trackingRetry);
    this.disposeRevive?.();
    if (this.sub) await this.quit(this.sub);
    // Deaf from now on: L1 may not be trusted any more (matters only if the engine lives on).
    this.subscribedNow = false;
    this.trusted = false;
    this.engine.setL1Trusted(false);
  }

  /** Resolves when every change made so far has been handed to Redis (or parked in the outbox after a failure). */
  async drain(): Promise<void> {
    if (this.windowTimer) this.scheduleFlush();
    while (this.flushScheduled || this.publishing) {
      if (this.publishing) await this.publishing;
      else await new Promise((r) => process.nextTick(r));
    }
  }

  stats(): BusStats {
    return {
      enabled: true,
      subscribed: this.trusted,
      instanceId: this.instanceId,
      overwrites: this.trackingSupported === undefined ? 'pending' : this.trackingSupported ? 'redis' : 'pubsub',
      ...this.n,
      retryQueue: this.outbox.size,
      retryOverflows: this.outbox.collapsed,
    };
  }

  /** Hears released fill locks (see fillChannel); false when this bus has no subscriber (publish only). */
  onFillReleased(listener: (key: string) => void): boolean {
    this.fillListener = listener;
    return this.sub !== undefined;
  }

  // ---------------------------------------------------------------- receiving

  private async subscribe(): Promise<void> {
    const sub = this.sub as unknown as {
      subscribe(...channels: string[]): Promise<unknown>;
      client(sub: 'ID'): Promise<number>;
    };
    const tracking = this.wantTracking;
    try {
      // The redirect target is this connection's id, new on every reconnect.
      if (tracking) this.subId = Number(await sub.client('ID'));
      await (tracking ? sub.subscribe(this.channel, this.fillChannel, TRACKING_CHANNEL) : sub.subscribe(this.channel, this.fillChannel));
    } catch (err) {
      // The connection dropped again before the reply: the next `ready` retries.
      this.warn('bus:subscribe', `subscribe failed (invalidation bus channel ${this.channel}): ${message(err)}`);
      return;
    }
    if (this.closed || this.subscribedNow) return;
    this.subscribedNow = true;
    if (tracking) await this.enableTracking();
    this.updateTrust();
  }

  /**
   * Server-assisted invalidation: Redis itself announces every key under our prefix that another client
   * writes, so a write costs no PUBLISH and no echo. Deletes, tags, patterns and clear still travel on the bus
   * (they carry meaning beyond single keys, and are counted). One attempt at a time; a new subscriber id or a
   * reconnected write connection asks for another.
   */
  private enableTracking(): Promise<void> {
    if (this.trackingAttempt) {
      this.trackingAgain = true;
      return this.trackingAttempt;
    }
    this.trackingAttempt = (async () => {
      do {
        this.trackingAgain = false;
        if (this.closed || !this.subscribedNow || this.subId === undefined || this.trackingSupported === false) return;
        const id = this.subId;
        const r = await this.publisher.track(id, this.engine.keyPrefix);
        if (r === 'ok') {
          this.trackingSupported = true;
          // The subscriber may have reconnected meanwhile: then this redirect points at a dead id.
          if (id === this.subId && this.subscribedNow) this.trackingOn = true;
          else this.trackingAgain = true;
        } else if (r === 'unsupported') {
          this.trackingSupported = false;
          this.warn('bus:tracking', 'tracking failed: Redis refused CLIENT TRACKING; overwrites are published on the bus instead (every instance must do the same)');
        } else this.retryTrackingLater();
      } while (this.trackingAgain);
    })().finally(() => {
      this.trackingAttempt = undefined;
      this.updateTrust();
    });
    return this.trackingAttempt;
  }

  private retryTrackingLater(): void {
    if (this.trackingRetry || this.closed) return;
    this.trackingRetry = setTimeout(() => {
      this.trackingRetry = undefined;
      void this.enableTracking();
    }, 1_000);
    this.trackingRetry.unref();
  }

  /**
   * L1 is trusted only while this instance hears every change. Anything sent while it did not is lost (pub/sub
   * and tracking do not redeliver): L1 is emptied each time trust comes back. Not a 'bus' invalidation
   * (nothing was received); recoveries are counted in l1ClearsOnReconnect.
   */
  private updateTrust(): void {
    const required = this.wantTracking && this.trackingSupported !== false;
    const trusted = !this.closed && this.subscribedNow && (this.trackingOn || !required);
    if (trusted === this.trusted) return;
    this.trusted = trusted;
    if (!trusted) {
      this.engine.setL1Trusted(false);
      return;
    }
    const dropped = this.engine.dropL1({ type: 'clear' });
    if (this.everTrusted) {
      this.n.l1ClearsOnReconnect++;
      this.warn('bus:resubscribed', `invalidation bus re-subscribed; cleared ${dropped} L1 entries that may have missed changes`);
    }
    this.everTrusted = true;
    this.engine.setL1Trusted(true);
    for (const f of this.onceSubscribed.splice(0)) f();
  }

  /**
   * On a Cluster, ioredis keeps the subscription on one node of its own choosing and, when that node goes away,
   * silently moves it to another one and re-subscribes there: the Cluster client emits no close/ready for it.
   * Messages published in between are lost, so each move counts as a lost subscription (L1 untrusted at once,
   * emptied once the SUBSCRIBE on the new node is confirmed). ioredis exposes no event for it: its
   * ClusterSubscriber.selectSubscriber (private) is wrapped; if that ever changes, nothing is hooked and the
   * bus behaves as before.
   */
  private watchClusterSubscriber(sub: RedisClient): void {
    const cs = (sub as unknown as { subscriber?: { selectSubscriber?: () => void; getInstance?: () => unknown } }).subscriber;
    if (!cs || typeof cs.selectSubscriber !== 'function' || typeof cs.getInstance !== 'function') return;
    const select = cs.selectSubscriber.bind(cs);
    const instance = cs.getInstance.bind(cs);
    cs.selectSubscriber = () => {
      const before = instance();
      select();
      const after = instance();
      // The first pick (cluster connect) is not a move: the 'ready' handler subscribes then.
      if (before === null || before === undefined || after === before || this.closed) return;
      this.lost();
      // Confirms the subscription on the new node (ioredis re-subscribes too; SUBSCRIBE is idempotent). If that
      // node is down as well, ioredis picks another one, which comes back here.
      if (after) void this.subscribe();
    };
  }

  private lost(): void {
    // A redirect to a closed subscriber is dropped by Redis: tracking has to be asked for again as well.
    this.subscribedNow = false;
    this.trackingOn = false;
    this.updateTrust();
  }

  /** Keys Redis says another client changed (or that expired); null: a FLUSHDB/FLUSHALL. */
  private receiveTracked(payload: unknown): void {
    if (payload === null) {
      this.n.trackedKeys++;
      this.engine.dropLocal({ type: 'clear' });
      return;
    }
    if (!Array.isArray(payload)) return;
    const prefix = this.engine.keyPrefix;
    const reserved = prefix + '__tc:';
    const keys: string[] = [];
    for (const b of payload) {
      const k = String(b);
      if (k.startsWith(prefix) && !k.startsWith(reserved)) keys.push(k.slice(prefix.length));
    }
    if (keys.length === 0) return;
    this.n.trackedKeys += keys.length;
    this.n.l1Dropped += this.engine.dropLocal({ type: 'overwrite', keys });
  }

  private receive(channel: string, raw: string): void {
    if (channel !== this.channel) {
      if (channel === this.fillChannel && raw.length <= this.settings.maxMessageBytes) this.fillListener?.(raw);
      return;
    }
    if (raw.startsWith(this.ownPrefix)) {
      this.n.echoes++;
      return;
    }
    const m = decodeBusMessage(raw, this.settings.maxMessageBytes);
    if (!m) {
      this.n.malformed++;
      this.warn('bus:malformed', `invalidation bus dropped a malformed message on ${this.channel}`);
      return;
    }
    if (m.src === this.instanceId) {
      this.n.echoes++;
      return;
    }
    this.n.received++;
    const dropped = this.engine.dropLocal(m.change);
    if (typeof dropped === 'number') this.n.l1Dropped += dropped;
    else dropped.then((n) => (this.n.l1Dropped += n), (err: unknown) => this.rejected(err));
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.rejected(err);
    }
  }

  /** A message that made applying it fail is counted as malformed and dropped; L1 may miss it, so it is emptied. */
  private rejected(err: unknown): void {
    this.n.malformed++;
    this.warn('bus:failed', `invalidation bus could not apply a message (${message(err)}); L1 emptied`);
    this.engine.dropL1({ type: 'clear' });
  }

  // ---------------------------------------------------------------- publishing

  private send(change: CacheChange): void {
    if (this.closed) return;
    // Redis announces this write to every other instance itself (their CLIENT TRACKING); publishing it too
    // would cost a PUBLISH and an echo per write window.
    if (change.type === 'overwrite' && this.trackingSupported === true) return;
    this.outbox.add(change);
    if (change.type === 'overwrite' && this.settings.overwriteWindow > 0) this.flushAfterWindow();
    else {
      this.urgent = true;
      this.scheduleFlush();
    }
  }

  /** Overwrites wait up to `overwriteWindow` so a burst of writes costs one PUBLISH, not one each. */
  private flushAfterWindow(): void {
    if (this.flushScheduled || this.windowTimer) return;
    this.windowTimer = setTimeout(() => {
      this.windowTimer = undefined;
      this.scheduleFlush();
    }, this.settings.overwriteWindow);
    this.windowTimer.unref();
  }

  /**
   * Coalesces the changes of one tick (the writes answered by one socket read) into as few messages as
   * possible. nextTick, not setImmediate: the PUBLISH then joins the socket write of whatever else this
   * tick sends, instead of costing a turn of the event loop and a write of its own.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    if (this.windowTimer) {
      clearTimeout(this.windowTimer);
      this.windowTimer = undefined;
    }
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private flush(): Promise<void> {
    if (this.publishing) {
      // One publish round at a time keeps messages in order; what arrives meanwhile goes in the next round.
      return this.publishing.then(() => (this.outbox.size > 0 ? this.flush() : undefined));
    }
    if (this.outbox.size === 0 || !this.publisher.ready) return Promise.resolve();
    this.publishing = this.publishRound().finally(() => (this.publishing = undefined));
    return this.publishing;
  }

  private async publishRound(): Promise<void> {
    const changes = this.outbox.take();
    this.urgent = false;
    for (let i = 0; i < changes.length; i++) {
      const messages = this.encode(changes[i]);
      try {
        const sent = await Promise.all(messages.map((m) => this.publisher.publish(this.channel, m)));
        if (sent.includes(false)) throw new Error('PUBLISH failed or timed out');
        this.n.published += messages.length;
      } catch (err) {
        this.n.publishFailures++;
        this.warn('bus:publish', `publish failed (invalidation bus, will retry): ${message(err)}`);
        for (let j = i; j < changes.length; j++) this.outbox.add(changes[j]);
        this.retryLater();
        return;
      }
    }
    if (this.outbox.size === 0) return;
    if (this.urgent || this.settings.overwriteWindow === 0) this.scheduleFlush();
    else this.flushAfterWindow();
  }

  /** Retried when the publisher is ready again, and on a timer in case it never dropped (e.g. a NOPERM). */
  private retryLater(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.scheduleFlush();
    }, 1_000);
    this.retryTimer.unref();
  }

  /** One change as messages within `maxMessageBytes`: long key/tag lists are split; one oversized item becomes a clear. */
  private encode(change: CacheChange): string[] {
    const raw = encodeBusMessage(this.instanceId, change);
    if (raw.length <= this.settings.maxMessageBytes) return [raw];
    const list = change.type === 'delete' || change.type === 'overwrite' ? change.keys : change.type === 'tags' ? change.tags : undefined;
    if (!list || list.length < 2) return [encodeBusMessage(this.instanceId, { type: 'clear' })];
    const mid = list.length >> 1;
    // Halves keep their kind (delete, tag-driven delete, overwrite): receivers count them differently.
    const halves: CacheChange[] =
      change.type === 'tags'
        ? [{ type: 'tags', tags: list.slice(0, mid) }, { type: 'tags', tags: list.slice(mid) }]
        : [{ ...(change as KeyChange), keys: list.slice(0, mid) }, { ...(change as KeyChange), keys: list.slice(mid) }];
    return [...this.encode(halves[0]), ...this.encode(halves[1])];
  }

  // ---------------------------------------------------------------- helpers

  /** Every message names the tier the bus runs on. */
  private warn(kind: string, msg: string): void {
    if (!this.closed) this.engine.log('warn', kind, `${this.engine.tierLabel}: ${msg}`);
  }

  private async settle(p: Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private async quit(c: RedisClient): Promise<void> {
    if (c.status === 'ready') await this.settle(c.quit(), 1_000);
    c.disconnect();
  }
}

type KeyChange = Extract<CacheChange, { keys: string[] }>;

const message = errorText;
