import { randomUUID } from 'node:crypto';
import type { RedisClient, RedisConnectionFactory } from '../engine/redis-connection';
import type { CacheChange, TieredCache } from '../engine/tiered-cache';
import { BUS_WIRE_VERSION, decodeBusMessage, encodeBusMessage } from './bus-message';
import { BusOutbox } from './bus-outbox';

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
}

export interface InvalidationBusSettings {
  maxMessageBytes: number;
  retryQueueSize: number;
  heartbeatInterval: number;
  overwriteWindow: number;
}

/**
 * Where the subscription stands: `subscribed` (hears every change); `connecting` (not subscribed yet since
 * start); `down` (the subscription was lost; L1 is emptied once it is back); `closed`.
 */
/** `publishing`: an engine without L1 has nothing to drop, so it only publishes (no subscriber connection). */
export type BusState = 'subscribed' | 'publishing' | 'connecting' | 'down' | 'closed';

export interface BusStats {
  enabled: boolean;
  /** The subscription is confirmed: this instance hears every change published from now on. */
  subscribed: boolean;
  instanceId: string;
  published: number;
  publishFailures: number;
  received: number;
  /** Own messages coming back on the channel (ignored). */
  echoes: number;
  /** Received messages dropped as malformed, oversized or of another format. */
  malformed: number;
  /** L1 entries dropped because of other instances' messages. */
  l1Dropped: number;
  /** Times L1 was emptied because the subscription had been lost (messages may have been missed). */
  l1ClearsOnReconnect: number;
  /** Changes waiting to be (re)published. */
  retryQueue: number;
  /** Times the waiting changes overflowed `retryQueueSize` and were collapsed into one L1 clear. */
  retryOverflows: number;
}

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
  private everSubscribed = false;
  private subscribedNow = false;
  private closed = false;
  private readonly onceSubscribed: Array<() => void> = [];
  private readonly n = zeroCounts();

  constructor(
    private readonly engine: TieredCache,
    factory: RedisConnectionFactory,
    private readonly settings: InvalidationBusSettings,
    private readonly publisher: BusPublisher,
  ) {
    this.channel = `${engine.options.keyPrefix}__tc:bus:v${BUS_WIRE_VERSION}`;
    this.outbox = new BusOutbox(settings.retryQueueSize);
    // We subscribe ourselves on every `ready`, so we know when the subscription is confirmed.
    this.ownPrefix = encodeBusMessage(this.instanceId, { type: 'clear' }).split('"change"')[0];
    publisher.onReady(() => this.scheduleFlush());
    this.unsubscribeChange = engine.onChange((change) => this.send(change));
    if (!engine.l1) return; // nothing local to drop: publish only
    const sub = factory.create('bus-sub', { autoResubscribe: false });
    this.sub = sub;
    sub.on('error', (err: unknown) => this.warn('bus:sub', `invalidation bus subscriber: ${message(err)}`));
    sub.on('ready', () => void this.subscribe());
    sub.on('close', () => this.lost());
    sub.on('message', (channel: string, raw: string) => this.receive(channel, raw));
    this.heartbeat = setInterval(() => {
      if (sub.status === 'ready') (sub as { ping(): Promise<unknown> }).ping().catch(() => undefined);
    }, settings.heartbeatInterval);
    this.heartbeat.unref();
    engine.setL1Trusted(false);
  }

  get subscribed(): boolean {
    return this.subscribedNow;
  }

  get state(): BusState {
    if (this.closed) return 'closed';
    if (!this.sub) return 'publishing';
    if (this.subscribedNow) return 'subscribed';
    return this.everSubscribed ? 'down' : 'connecting';
  }

  /** ioredis state of the subscriber connection (ready, connecting, reconnecting, …). */
  get connection(): string {
    return this.sub ? this.sub.status : 'none (publish only)';
  }

  /** Connects both connections; resolves once subscribed, or false after `timeoutMs` (it keeps trying). */
  async connect(timeoutMs: number): Promise<boolean> {
    if (!this.sub) return true;
    const subscribed = new Promise<boolean>((resolve) => {
      if (this.subscribedNow) resolve(true);
      else this.onceSubscribed.push(() => resolve(true));
    });
    this.sub.connect().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const ok = await Promise.race([subscribed, timeout]);
    clearTimeout(timer);
    this.onceSubscribed.length = 0;
    return ok;
  }

  /** Publishes what is still waiting (bounded wait) and closes both connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.unsubscribeChange();
    if (this.outbox.size > 0 || this.flushScheduled) await this.settle(this.flush(), 1_000);
    else if (this.publishing) await this.settle(this.publishing, 1_000);
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    clearTimeout(this.windowTimer);
    if (this.sub) await this.quit(this.sub);
    // Deaf from now on: L1 may not be trusted any more (matters only if the engine lives on).
    this.subscribedNow = false;
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
      subscribed: this.subscribedNow,
      instanceId: this.instanceId,
      ...this.n,
      retryQueue: this.outbox.size,
      retryOverflows: this.outbox.collapsed,
    };
  }

  // ---------------------------------------------------------------- receiving

  private async subscribe(): Promise<void> {
    try {
      await (this.sub as unknown as { subscribe(channel: string): Promise<unknown> }).subscribe(this.channel);
    } catch (err) {
      // The connection dropped again before the reply: the next `ready` retries.
      this.warn('bus:subscribe', `invalidation bus could not subscribe to ${this.channel}: ${message(err)}`);
      return;
    }
    if (this.closed || this.subscribedNow) return;
    this.subscribedNow = true;
    // Anything published while we were not subscribed is lost: what L1 holds may be stale. Not a 'bus'
    // invalidation (nothing was received); re-subscribes are counted in l1ClearsOnReconnect.
    const dropped = this.engine.dropL1({ type: 'clear' });
    if (this.everSubscribed) {
      this.n.l1ClearsOnReconnect++;
      this.warn('bus:resubscribed', `invalidation bus re-subscribed; cleared ${dropped} L1 entries that may have missed changes`);
    }
    this.everSubscribed = true;
    this.engine.setL1Trusted(true);
    for (const f of this.onceSubscribed.splice(0)) f();
  }

  private lost(): void {
    if (!this.subscribedNow) return;
    this.subscribedNow = false;
    this.engine.setL1Trusted(false);
  }

  private receive(channel: string, raw: string): void {
    if (channel !== this.channel) return;
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
    this.n.l1Dropped += this.engine.dropLocal(m.change);
  }

  // ---------------------------------------------------------------- publishing

  private send(change: CacheChange): void {
    if (this.closed) return;
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
        this.warn('bus:publish', `invalidation bus publish failed (will retry): ${message(err)}`);
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

  private warn(kind: string, msg: string): void {
    if (!this.closed) this.engine.log('warn', kind, msg);
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

/** The bus's own counters, all zero: a new bus starts from these. */
function zeroCounts() {
  return { published: 0, publishFailures: 0, received: 0, echoes: 0, malformed: 0, l1Dropped: 0, l1ClearsOnReconnect: 0 };
}

/** `stats().bus` of an engine without a bus. */
export const DISABLED_BUS_STATS: BusStats = Object.freeze({
  enabled: false,
  subscribed: false,
  instanceId: '',
  ...zeroCounts(),
  retryQueue: 0,
  retryOverflows: 0,
});

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
