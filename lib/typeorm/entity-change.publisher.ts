import type { LogThrottle } from '../core/log-throttle';
import type { EventEmitterLike } from '../nest/events/event-emitter-lookup';
import { eventOf, payloadOf } from './entity-change.builder';
import type { PendingChange } from './transaction-changes';

export interface PublisherCounters {
  /** Events emitted. */
  emitted: number;
  /** Emissions whose listeners rejected (logged). */
  listenerFailures: number;
  /** Commits that stopped waiting for their listeners at `listenerTimeout`. */
  listenerTimeouts: number;
  /** `payload` mappers that threw (the event went out without their fields). */
  payloadFailures: number;
}

/**
 * Emits changes as `<entity>.<operation>` on the app's EventEmitter2 (where the cache's invalidation listener
 * hears every event), after the write is durable. It never throws: it runs inside TypeORM's commit, and an
 * error there would make the caller roll back a transaction that is already committed.
 */
export class EntityChangePublisher {
  readonly counters: PublisherCounters = { emitted: 0, listenerFailures: 0, listenerTimeouts: 0, payloadFailures: 0 };

  constructor(
    private readonly emitter: EventEmitterLike,
    private readonly logs: LogThrottle,
    private readonly awaitListeners: boolean,
    private readonly timeoutMs: number,
  ) {}

  /** Resolves once the listeners of every event settled (or at the timeout, or at once without awaitListeners). */
  async publish(changes: readonly PendingChange[]): Promise<void> {
    if (changes.length === 0) return;
    // All at once: EventEmitter2 calls the listeners in emit order; what they return runs side by side.
    const jobs = changes.map((p) => this.emitOne(p));
    if (!this.awaitListeners) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
    });
    try {
      const r = await Promise.race([Promise.all(jobs), timedOut]);
      if (r === 'timeout') {
        this.counters.listenerTimeouts++;
        this.logs.log('warn', 'listener-timeout', `entity events: listeners did not settle within ${this.timeoutMs} ms (typeorm.listenerTimeout); the commit goes on while they finish`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private emitOne(p: PendingChange): Promise<void> {
    const event = eventOf(p.change);
    let extra: Record<string, unknown> | undefined;
    if (p.target.payload) {
      try {
        const r = p.target.payload(p.change);
        extra = r && typeof r === 'object' ? r : undefined;
      } catch (err) {
        this.counters.payloadFailures++;
        this.logs.log('error', `payload:${p.change.entity}`, `entity events: the payload mapper of "${p.change.entity}" threw (${describe(err)}); "${event}" goes out without its fields`);
      }
    }
    let result: Promise<unknown>;
    try {
      result = this.emitter.emitAsync(event, payloadOf(p.change, extra));
    } catch (err) {
      result = Promise.reject(err);
    }
    this.counters.emitted++;
    return result.then(
      () => undefined,
      (err: unknown) => {
        this.counters.listenerFailures++;
        this.logs.log('error', `listener:${event}`, `entity events: a listener of "${event}" failed: ${describe(err)}`);
      },
    );
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
