import { Injectable } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { TieredCache } from '../../core/tiered-cache';
import type { CacheWarmerHandler, WarmerStats, WarmupContext, WarmupKeyCounts, WarmupMode, WarmupRunResult, WarmupRunStatus, WarmupTrigger } from './cache-warmer-options.interface';
import type { CronJobLike } from './schedule.loader';
import type { ResolvedWarmerOptions } from './warmer-options';
import type { KeyOutcome } from './warmup-run';

/** A warmer as the explorer compiled it. */
export interface WarmerDefinition {
  readonly name: string;
  readonly className: string;
  readonly kind: WarmerStats['kind'];
  readonly options: ResolvedWarmerOptions;
  readonly handler: CacheWarmerHandler;
  /** The cache it fills. */
  readonly engine: TieredCache;
  /** Warms one id. */
  readonly warm: (id: unknown, mode: WarmupMode, context: WarmupContext) => Promise<KeyOutcome>;
  readonly parseId: (text: string) => unknown;
  /** Why a run cannot start now (an HTTP warmer whose server does not listen); undefined when it can. */
  readonly precheck: () => string | undefined;
}

export interface RunningRun {
  readonly trigger: WarmupTrigger;
  readonly startedAt: Date;
  /** Counted as keys finish (the run's result has the final figures). */
  readonly keys: WarmupKeyCounts;
  readonly controller: AbortController;
  done: Promise<WarmupRunResult> | undefined;
}

/** What is known about a warmer's runs in this process. */
export class WarmerState {
  running: RunningRun | undefined;
  lastRun: WarmerStats['lastRun'];
  lastSkip: WarmerStats['lastSkip'];
  readonly keys: WarmupKeyCounts = { ok: 0, failed: 0, skipped: 0 };
  readonly runs: Record<WarmupRunStatus, number> = { completed: 0, cancelled: 0, failed: 0, skipped: 0 };
  job: CronJobLike | undefined;
  /** The bootstrap run, for readiness: when it started, and whether it is over. */
  bootstrap: { startedAt: number; over: boolean } | undefined;
}

export interface RegisteredWarmer {
  readonly def: WarmerDefinition;
  readonly state: WarmerState;
}

interface AppWarmers {
  claimed: boolean;
  readonly warmers: Map<string, RegisteredWarmer>;
}

const byApp = new WeakMap<object, AppWarmers>();

/**
 * Holds the app's warmers and what their runs did. One set per application, whichever TieredCacheModule import
 * asks: an app that imports the module more than once (several caches) still finds, schedules and runs each
 * warmer once. The first module to claim the set explores and schedules; every module's TieredCacheWarmup sees it.
 */
@Injectable()
export class WarmupRegistry {
  private readonly app: AppWarmers;

  constructor(container: ModulesContainer) {
    let app = byApp.get(container);
    if (app === undefined) byApp.set(container, (app = { claimed: false, warmers: new Map() }));
    this.app = app;
  }

  /** True for the first caller in the app: it explores, schedules and shuts down. */
  claim(): boolean {
    if (this.app.claimed) return false;
    this.app.claimed = true;
    return true;
  }

  add(def: WarmerDefinition): void {
    this.app.warmers.set(def.name, { def, state: new WarmerState() });
  }

  get(name: string): RegisteredWarmer | undefined {
    return this.app.warmers.get(name);
  }

  all(): RegisteredWarmer[] {
    return [...this.app.warmers.values()];
  }

  names(): string[] {
    return [...this.app.warmers.keys()];
  }
}
