import type { Server } from 'node:http';
import { Injectable, Logger, Optional, type OnApplicationBootstrap, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost, ModuleRef } from '@nestjs/core';
import { TieredCacheOptionsError } from '../../core/errors';
import type { TieredCache } from '../../core/tiered-cache';
import { TieredCacheHealthIndicator, type CacheComponentHealth } from '../health/tiered-cache.health';
import { reportWarmupMetrics, type WarmupMetrics } from '../metrics/cache-metrics';
import type { WarmerStats, WarmupMode, WarmupObserver, WarmupRunOptions, WarmupRunResult, WarmupTrigger } from './cache-warmer-options.interface';
import { loadSchedule, type SchedulerRegistryLike } from './schedule.loader';
import { MAX_CONCURRENCY } from './warmer-options';
import { CacheWarmerError, WarmupCancelledError } from './warmup-errors';
import { WarmupNotifier } from './warmup-events';
import { WarmupLease } from './warmup-lease';
import { describeId, executeRun, type RunOutcome } from './warmup-run';
import { WarmupExplorer } from './warmup.explorer';
import { WarmupRegistry, type RegisteredWarmer } from './warmup.registry';

/** How long keys in flight are waited for when a run is cancelled (shutdown included). */
const CANCEL_GRACE_MS = 5_000;
const CRON_PREFIX = 'tiered-cache-warmup:';
/** Failed keys logged one by one per run; the rest are counted (a source that is down fails every key). */
const MAX_LOGGED_FAILURES = 5;

/**
 * Acts on the app's warmers: explores them at module init (the claiming module only, see WarmupRegistry), mounts
 * their cron jobs and starts their bootstrap runs at application bootstrap, runs them (with the cluster-wide lease
 * for scheduled and exclusive runs), and cancels what runs at shutdown, before the cache closes.
 *
 * `CACHE_WARMUP_AUTORUN=false` in the environment mounts no schedule and starts no bootstrap run (the CLI sets it:
 * it runs one warmer, in a process of its own).
 */
@Injectable()
export class WarmupOrchestrator implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('TieredCacheWarmup');
  readonly notifier = new WarmupNotifier((where, err) => this.logger.error(`warm-up ${where} observer failed: ${err instanceof Error ? err.message : String(err)}`));
  private owner = false;
  private closing = false;
  private scheduler: SchedulerRegistryLike | undefined;
  private readonly disposers: Array<() => void> = [];

  constructor(
    private readonly registry: WarmupRegistry,
    private readonly explorer: WarmupExplorer,
    private readonly moduleRef: ModuleRef,
    private readonly health: TieredCacheHealthIndicator,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {}

  onModuleInit(): void {
    if (!this.registry.claim()) return;
    this.owner = true;
    for (const def of this.explorer.explore()) this.registry.add(def);
    this.mountSchedules();
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.owner) return;
    this.notifier.attachEmitter(this.moduleRef);
    this.reportMetrics();
    const warmers = this.registry.all();
    if (warmers.some((w) => w.def.options.onBootstrap !== undefined)) {
      this.disposers.push(this.health.registerComponent('warmup', () => this.readiness()));
    }
    if (!autorun()) return;
    for (const { state } of warmers) state.job?.start();
    const waits: Array<Promise<void>> = [];
    for (const w of warmers) {
      const b = w.def.options.onBootstrap;
      if (b === undefined) continue;
      if (w.def.kind === 'http' && w.def.options.http?.baseUrl === undefined) {
        this.bootstrapOverHttp(w);
        continue;
      }
      const run = this.startBootstrap(w);
      if (b.wait > 0) waits.push(within(run, b.wait));
    }
    await Promise.all(waits);
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    if (!this.owner) return;
    for (const d of this.disposers.splice(0)) d();
    for (const { def, state } of this.registry.all()) {
      if (state.job === undefined) continue;
      const name = CRON_PREFIX + def.name;
      if (this.scheduler?.doesExist('cron', name)) this.scheduler.deleteCronJob(name);
      else void state.job.stop();
    }
    const runs: Array<Promise<unknown>> = [];
    for (const { state } of this.registry.all()) {
      const r = state.running;
      if (r === undefined) continue;
      r.controller.abort(new WarmupCancelledError('the application is shutting down'));
      if (r.done) runs.push(r.done);
    }
    await Promise.all(runs);
  }

  /** Runs a warmer now (see TieredCacheWarmup.run). */
  async run(name: string, options: WarmupRunOptions = {}, trigger: WarmupTrigger = 'manual'): Promise<WarmupRunResult> {
    const w = this.registry.get(name);
    if (w === undefined) {
      const names = this.registry.names();
      throw new CacheWarmerError(`no warmer named "${name}" (${names.length > 0 ? `warmers: ${names.join(', ')}` : 'the app has none'})`);
    }
    const o = checkRunOptions(options);
    const { def, state } = w;
    if (this.closing) return this.skipped(w, trigger, 'the application is shutting down', o.observer);
    if (state.running !== undefined) return this.skipped(w, trigger, `a ${state.running.trigger} run is still going on on this instance`, o.observer);
    if (o.ids === undefined && typeof def.handler.keys !== 'function') {
      throw new CacheWarmerError(`warmer "${name}" has no keys() method: give the ids to warm (run(name, { ids }))`);
    }
    const controller = new AbortController();
    const running = { trigger, startedAt: new Date(), keys: { ok: 0, failed: 0, skipped: 0 }, controller, done: undefined as Promise<WarmupRunResult> | undefined };
    state.running = running;
    const settle = (): void => {
      if (state.running === running) state.running = undefined;
    };
    const done = this.execute(w, o, trigger, running, settle).finally(settle);
    running.done = done;
    return done;
  }

  /** Cancels a warmer's run on this instance; false when none runs. */
  cancel(name: string, reason = 'cancelled'): boolean {
    const r = this.registry.get(name)?.state.running;
    if (r === undefined) return false;
    r.controller.abort(new WarmupCancelledError(reason));
    return true;
  }

  stats(): Record<string, WarmerStats> {
    const out: Record<string, WarmerStats> = {};
    for (const { def, state } of this.registry.all()) {
      const o = def.options;
      const s: WarmerStats = {
        name: def.name,
        kind: def.kind,
        mode: o.mode,
        concurrency: o.concurrency,
        onBootstrap: o.onBootstrap !== undefined,
        running: state.running !== undefined,
        totals: { runs: state.runs.completed + state.runs.cancelled + state.runs.failed, skippedRuns: state.runs.skipped, keys: { ...state.keys } },
      };
      if (o.http !== undefined) s.baseUrl = o.http.baseUrl ?? null;
      if (o.cron !== undefined) {
        s.cron = o.cron;
        const job = state.job;
        s.nextRun = job !== undefined && (job.isActive ?? job.running) === true ? nextDate(job) : null;
      }
      const r = state.running;
      if (r !== undefined) s.current = { trigger: r.trigger, startedAt: r.startedAt, keys: { ...r.keys } };
      if (state.lastRun) s.lastRun = { ...state.lastRun, keys: { ...state.lastRun.keys } };
      if (state.lastSkip) s.lastSkip = { ...state.lastSkip };
      out[def.name] = s;
    }
    return out;
  }

  names(): string[] {
    return this.registry.names();
  }

  /** `settle`: the run is over on this instance (called before anyone is told, so stats() agrees with what they hear). */
  private async execute(
    w: RegisteredWarmer,
    o: CheckedRunOptions,
    trigger: WarmupTrigger,
    running: { startedAt: Date; keys: { ok: number; failed: number; skipped: number }; controller: AbortController },
    settle: () => void,
  ): Promise<WarmupRunResult> {
    const { def, state } = w;
    const controller = running.controller;
    const outer = o.signal;
    const onOuterAbort = (): void => controller.abort(outer?.reason ?? new WarmupCancelledError('cancelled'));
    if (outer?.aborted) onOuterAbort();
    else outer?.addEventListener('abort', onOuterAbort, { once: true });
    let lease: WarmupLease | undefined;
    try {
      const leaseOptions = def.options.lease;
      const l2 = def.engine.l2;
      if ((trigger === 'schedule' || o.exclusive === true) && leaseOptions !== undefined && l2 !== undefined) {
        const got = await WarmupLease.acquire(def.engine, l2, def.name, leaseOptions.ttl, leaseOptions.holdAtLeast, () =>
          controller.abort(new WarmupCancelledError('the lease was lost: another instance took it over')),
        );
        if (got !== 'held' && got !== 'unavailable') lease = got;
        else {
          settle();
          const why = got === 'held' ? 'another instance holds the lease and runs it' : 'Redis could not be asked for the lease, so no instance can be sure to run it alone';
          return this.skipped(w, trigger, why, o.observer);
        }
      }
      const problem = def.precheck();
      const startedAt = running.startedAt;
      this.notifier.started({ warmer: def.name, trigger, startedAt }, o.observer);
      const context = { warmer: def.name, trigger, signal: controller.signal };
      let outcome: RunOutcome | undefined;
      let ids: WarmupRunOptions['ids'];
      try {
        ids = o.ids ?? (def.handler.keys as NonNullable<typeof def.handler.keys>).call(def.handler, context);
      } catch (err) {
        outcome = failedRun(`keys() failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (problem !== undefined) outcome = failedRun(problem);
      if (outcome === undefined) {
        const mode = o.mode ?? def.options.mode;
        const parse = o.parseIds === true;
        const live = running.keys;
        let logged = 0;
        outcome = await executeRun({
          warmer: def.name,
          trigger,
          ids: ids as NonNullable<WarmupRunOptions['ids']>,
          concurrency: o.concurrency ?? def.options.concurrency,
          keyTimeout: def.options.keyTimeout,
          signal: controller.signal,
          cancelGrace: CANCEL_GRACE_MS,
          warm: (id, ctx) => def.warm(parse ? def.parseId(String(id)) : id, mode, ctx),
          onKey: (id, result, error) => {
            live[result]++;
            if (result === 'failed' && logged <= MAX_LOGGED_FAILURES) {
              logged++;
              if (logged <= MAX_LOGGED_FAILURES) this.logger.warn(`warm-up "${def.name}": id ${describeId(id)} failed: ${error instanceof Error ? error.message : String(error)}`);
              else this.logger.warn(`warm-up "${def.name}": more keys failed; they are counted, not logged (see the run's result and stats())`);
            }
            this.notifier.progress({ warmer: def.name, trigger, id, result, error, keys: live }, o.observer);
          },
        }).catch((err: unknown): RunOutcome => ({ status: 'failed', reason: err instanceof Error ? err.message : String(err), keys: { ...live }, errors: [] }));
      }
      // Released before anyone hears of the end: the next run, here or anywhere, may start as soon as they do.
      await lease?.release();
      lease = undefined;
      settle();
      const endedAt = new Date();
      const result: WarmupRunResult = {
        warmer: def.name,
        trigger,
        status: outcome.status,
        ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
        startedAt,
        endedAt,
        durationMs: endedAt.getTime() - startedAt.getTime(),
        keys: outcome.keys,
        errors: outcome.errors,
      };
      state.runs[result.status]++;
      for (const k of ['ok', 'failed', 'skipped'] as const) state.keys[k] += result.keys[k];
      const { warmer: _w, errors: _e, ...last } = result;
      state.lastRun = last;
      this.logResult(result);
      this.notifier.finished(result, o.observer);
      return result;
    } finally {
      outer?.removeEventListener('abort', onOuterAbort);
      await lease?.release();
    }
  }

  private skipped(w: RegisteredWarmer, trigger: WarmupTrigger, reason: string, observer?: WarmupObserver): WarmupRunResult {
    const now = new Date();
    w.state.runs.skipped++;
    w.state.lastSkip = { trigger, at: now, reason };
    this.logger.log(`warm-up "${w.def.name}" (${trigger}) skipped: ${reason}`);
    const result: WarmupRunResult = { warmer: w.def.name, trigger, status: 'skipped', reason, startedAt: now, endedAt: now, durationMs: 0, keys: { ok: 0, failed: 0, skipped: 0 }, errors: [] };
    this.notifier.finished(result, observer);
    return result;
  }

  private logResult(r: WarmupRunResult): void {
    const k = r.keys;
    const line = `warm-up "${r.warmer}" (${r.trigger}) ${r.status}${r.reason ? ` (${r.reason})` : ''} in ${(r.durationMs / 1000).toFixed(1)} s: ${k.ok} ok, ${k.failed} failed, ${k.skipped} skipped`;
    if (r.status === 'failed' || k.failed > 0) this.logger.warn(line);
    else this.logger.log(line);
  }

  private startBootstrap(w: RegisteredWarmer): Promise<WarmupRunResult | undefined> {
    const mark = { startedAt: performance.now(), over: false };
    w.state.bootstrap = mark;
    return this.run(w.def.name, {}, 'bootstrap')
      .catch((err: unknown) => {
        this.logger.error(`bootstrap warm-up "${w.def.name}" failed: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      })
      .finally(() => {
        mark.over = true;
      });
  }

  /** An HTTP warmer of this app's own routes starts once the server listens (after bootstrap, in app.listen()). */
  private bootstrapOverHttp(w: RegisteredWarmer): void {
    const server = (this.adapterHost?.httpAdapter as { getHttpServer?(): unknown } | undefined)?.getHttpServer?.() as Server | undefined;
    if (server === undefined || server === null || typeof server.once !== 'function') {
      this.skipped(w, 'bootstrap', 'the app has no HTTP server to request its routes from');
      return;
    }
    w.state.bootstrap = { startedAt: performance.now(), over: false };
    if (server.listening) {
      void this.startBootstrap(w);
      return;
    }
    const start = (): void => void this.startBootstrap(w);
    server.once('listening', start);
    this.disposers.push(() => server.removeListener('listening', start));
  }

  /** The health component: not ready while a bootstrap run is going on, within its readiness bound. */
  private readiness(): CacheComponentHealth {
    const now = performance.now();
    const warming: string[] = [];
    const bootstrap: Record<string, string> = {};
    for (const { def, state } of this.registry.all()) {
      const b = state.bootstrap;
      const bound = def.options.onBootstrap?.readiness ?? 0;
      if (b === undefined) continue;
      const status = b.over ? (state.lastRun?.trigger === 'bootstrap' ? state.lastRun.status : 'skipped') : 'running';
      bootstrap[def.name] = status;
      if (!b.over && bound > 0 && now - b.startedAt < bound) warming.push(def.name);
    }
    return { state: warming.length > 0 ? 'warming' : 'ready', healthy: true, ready: warming.length === 0, warming, bootstrap };
  }

  private mountSchedules(): void {
    const scheduled = this.registry.all().filter((w) => w.def.options.cron !== undefined);
    if (scheduled.length === 0) return;
    const kit = loadSchedule();
    if (kit === undefined) {
      throw new CacheWarmerError(
        `warmer${scheduled.length > 1 ? 's' : ''} ${scheduled.map((w) => `"${w.def.name}"`).join(', ')} set${scheduled.length > 1 ? '' : 's'} a cron, which needs @nestjs/schedule: npm install @nestjs/schedule (ScheduleModule.forRoot() is optional)`,
      );
    }
    let scheduler: SchedulerRegistryLike | undefined;
    try {
      scheduler = this.moduleRef.get(kit.SchedulerRegistry, { strict: false });
    } catch {
      scheduler = undefined;
    }
    // Without ScheduleModule.forRoot() the jobs live in a registry of our own, started and stopped with the app.
    this.scheduler = scheduler ?? new kit.SchedulerRegistry();
    for (const w of scheduled) {
      const o = w.def.options;
      const name = w.def.name;
      try {
        w.state.job = kit.cronJob({ cronTime: o.cron as string, timeZone: o.timeZone, start: false, name: CRON_PREFIX + name, onTick: () => this.tick(name) });
      } catch (err) {
        throw new TieredCacheOptionsError(`@CacheWarmer() on ${w.def.className} cron`, o.cron, `not a valid cron expression (${err instanceof Error ? err.message : String(err)})`);
      }
      this.scheduler.addCronJob(CRON_PREFIX + name, w.state.job);
    }
  }

  /** A cron tick: a scheduled run, never a rejection (a scheduler has no one to report it to). */
  private async tick(name: string): Promise<void> {
    try {
      await this.run(name, {}, 'schedule');
    } catch (err) {
      this.logger.error(`scheduled warm-up "${name}" failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private reportMetrics(): void {
    const byEngine = new Map<TieredCache, RegisteredWarmer[]>();
    for (const w of this.registry.all()) {
      const list = byEngine.get(w.def.engine) ?? [];
      list.push(w);
      byEngine.set(w.def.engine, list);
    }
    for (const [engine, list] of byEngine) {
      this.disposers.push(
        reportWarmupMetrics(engine, () =>
          list.map(({ def, state }): WarmupMetrics => {
            const last = state.lastRun;
            return {
              warmer: def.name,
              keys: state.keys,
              runs: state.runs,
              running: state.running !== undefined,
              last: last ? { durationSeconds: last.durationMs / 1000, endedAtMs: last.endedAt.getTime() } : undefined,
            };
          }),
        ),
      );
    }
  }
}

interface CheckedRunOptions extends WarmupRunOptions {
  readonly mode?: WarmupMode;
}

function failedRun(reason: string): RunOutcome {
  return { status: 'failed', reason, keys: { ok: 0, failed: 0, skipped: 0 }, errors: [] };
}

function checkRunOptions(o: WarmupRunOptions): CheckedRunOptions {
  if (o === null || typeof o !== 'object') throw new TypeError('run(name, options): options must be an object');
  if (o.ids !== undefined) {
    const ids = o.ids as { [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown };
    if (ids === null || (typeof ids[Symbol.iterator] !== 'function' && typeof ids[Symbol.asyncIterator] !== 'function') || typeof ids === 'string') {
      throw new TypeError('run(name, { ids }): ids must be an array, another iterable or an async iterable');
    }
  }
  if (o.concurrency !== undefined && (!Number.isSafeInteger(o.concurrency) || o.concurrency < 1 || o.concurrency > MAX_CONCURRENCY)) {
    throw new TypeError(`run(name, { concurrency }): expected a whole number from 1 to ${MAX_CONCURRENCY}, got ${String(o.concurrency)}`);
  }
  if (o.mode !== undefined && o.mode !== 'refresh' && o.mode !== 'missing') throw new TypeError(`run(name, { mode }): expected 'refresh' or 'missing', got ${String(o.mode)}`);
  return o;
}

function nextDate(job: { nextDate(): { toJSDate(): Date } }): Date | null {
  try {
    return job.nextDate().toJSDate();
  } catch {
    return null;
  }
}

function autorun(): boolean {
  const v = process.env.CACHE_WARMUP_AUTORUN?.trim().toLowerCase();
  return v === undefined || v === '' || !['false', '0', 'off', 'no'].includes(v);
}

/** Waits for `p` at most `ms` (the run goes on). */
function within(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    p.then(done, done);
  });
}
