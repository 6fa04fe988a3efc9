import { Injectable } from '@nestjs/common';
import type { WarmerStats, WarmupObserver, WarmupRunOptions, WarmupRunResult } from './cache-warmer-options.interface';
import { WarmupOrchestrator } from './warmup.orchestrator';

/**
 * The app's cache warmers, on demand: `await warmup.run('customers', { ids: [1, 2] })`. Injectable wherever
 * TieredCacheModule is visible (also as the TIERED_CACHE_WARMUP token).
 */
@Injectable()
export class TieredCacheWarmup {
  constructor(private readonly orchestrator: WarmupOrchestrator) {}

  /**
   * Runs a warmer on this instance and resolves when the run is over (never rejects for a key's failure: see the
   * result's counts and errors). Without `ids` it warms what the warmer's `keys()` yields. Resolves with status
   * 'skipped' when the warmer already runs here (or, `exclusive`, on another instance holding its lease). Rejects
   * for an unknown warmer or bad options.
   */
  run(name: string, options?: WarmupRunOptions): Promise<WarmupRunResult> {
    return this.orchestrator.run(name, options, 'manual');
  }

  /** Cancels the warmer's run on this instance (keys in flight see their signal aborted); false when none runs. */
  cancel(name: string): boolean {
    return this.orchestrator.cancel(name, 'cancelled by TieredCacheWarmup.cancel()');
  }

  /** Per warmer: running or not, the run going on, the last run (start, end, keys ok/failed/skipped), totals. */
  stats(): Record<string, WarmerStats> {
    return this.orchestrator.stats();
  }

  /** The names of the app's warmers. */
  names(): string[] {
    return this.orchestrator.names();
  }

  /** Told of every run's start, each key, and its end (or skip); returns the remover. */
  observe(observer: WarmupObserver): () => void {
    return this.orchestrator.notifier.observe(observer);
  }
}
