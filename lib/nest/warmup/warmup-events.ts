import type { ModuleRef } from '@nestjs/core';
import type { WarmupObserver, WarmupProgressEvent, WarmupRunResult, WarmupStartedEvent } from './cache-warmer-options.interface';
import { WARMUP_EVENTS } from './warmup.constants';

interface EmitterLike {
  emit(event: string, payload: unknown): unknown;
}

const PROGRESS_EVERY_MS = 1_000;

/**
 * Tells the world how runs go: every observer (`TieredCacheWarmup.observe`, a run's own) of every key, and the
 * app's EventEmitter2 (when EventEmitterModule is imported) of each run's start and end, and of its progress at
 * most once a second (a warm-up of a million keys must not emit a million events). An observer or listener that
 * throws is reported to `onError` and the run goes on.
 */
export class WarmupNotifier {
  private readonly observers = new Set<WarmupObserver>();
  private emitter: EmitterLike | undefined;
  private readonly lastProgress = new Map<string, number>();

  constructor(private readonly onError: (where: string, err: unknown) => void) {}

  /** Looks for the app's EventEmitter2 (optional peer, optional module). */
  attachEmitter(moduleRef: ModuleRef): void {
    let token: unknown;
    try {
      token = (require('@nestjs/event-emitter') as { EventEmitter2: unknown }).EventEmitter2;
    } catch {
      return;
    }
    try {
      const emitter = moduleRef.get(token as new () => EmitterLike, { strict: false });
      if (emitter && typeof emitter.emit === 'function') this.emitter = emitter;
    } catch {
      // EventEmitterModule is not imported: observers only.
    }
  }

  observe(observer: WarmupObserver): () => void {
    this.observers.add(observer);
    return () => {
      this.observers.delete(observer);
    };
  }

  started(e: WarmupStartedEvent, own?: WarmupObserver): void {
    this.lastProgress.set(e.warmer, performance.now());
    for (const o of this.each(own)) this.call('started', () => o.started?.(e));
    this.emit(WARMUP_EVENTS.started, e);
  }

  progress(e: WarmupProgressEvent, own?: WarmupObserver): void {
    for (const o of this.each(own)) if (o.progress) this.call('progress', () => o.progress?.(e));
    if (this.emitter === undefined) return;
    const now = performance.now();
    if (now - (this.lastProgress.get(e.warmer) ?? 0) < PROGRESS_EVERY_MS) return;
    this.lastProgress.set(e.warmer, now);
    this.emit(WARMUP_EVENTS.progress, { warmer: e.warmer, trigger: e.trigger, keys: { ...e.keys } });
  }

  finished(r: WarmupRunResult, own?: WarmupObserver): void {
    this.lastProgress.delete(r.warmer);
    if (r.status !== 'skipped') this.emit(WARMUP_EVENTS.progress, { warmer: r.warmer, trigger: r.trigger, keys: { ...r.keys } });
    for (const o of this.each(own)) this.call('finished', () => o.finished?.(r));
    this.emit(WARMUP_EVENTS.finished, r);
  }

  private *each(own: WarmupObserver | undefined): Iterable<WarmupObserver> {
    if (own !== undefined) yield own;
    yield* this.observers;
  }

  private emit(event: string, payload: unknown): void {
    if (this.emitter === undefined) return;
    this.call(event, () => this.emitter?.emit(event, payload));
  }

  private call(where: string, fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      this.onError(where, err);
    }
  }
}
