import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Param, UseInterceptors, type INestApplication, type INestApplicationContext, type LoggerService, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Registry } from 'prom-client';
import {
  CacheManagerService,
  CacheWarmer,
  CacheWarmerError,
  Cacheable,
  TieredCacheHealthIndicator,
  TieredCacheInterceptor,
  TieredCacheModule,
  TieredCacheOptionsError,
  TieredCacheWarmup,
  WARMUP_EVENTS,
  getCacheToken,
  type CacheWarmerHandler,
  type CacheWarmerOptions,
  type TieredCacheOptions,
  type WarmupContext,
  type WarmupRunResult,
} from '../../lib';
import { expectPromtoolToAccept } from '../support/promtool';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

// The one stand-in of this file: @nestjs/schedule made unloadable through the lazy loader, as in an app that did not
// install it. Every other test loads the real package.
let mockScheduleMissing = false;
jest.mock('../../lib/nest/warmup/schedule.loader', () => {
  const real = jest.requireActual('../../lib/nest/warmup/schedule.loader');
  return { ...real, loadSchedule: () => (mockScheduleMissing ? undefined : real.loadSchedule()) };
});

const quiet = { warn() {}, error() {} };

interface Latch {
  promise: Promise<void>;
  open(): void;
}
function latch(): Latch {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** The slow "database" every warmer and service here reads: counts loads, holds them at a latch when told to. */
@Injectable()
class Source {
  ids: number[] = [1, 2, 3];
  loads = 0;
  inflight = 0;
  maxInflight = 0;
  readonly started: number[] = [];
  failing = new Set<number>();
  gate: Latch | undefined;
  sawAbort = 0;
  keysClosed = 0;

  async load(id: number, signal?: AbortSignal): Promise<{ id: number; name: string; load: number }> {
    this.loads++;
    this.started.push(id);
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    try {
      if (this.gate) {
        const gate = this.gate.promise;
        await new Promise<void>((resolve, reject) => {
          const onAbort = (): void => {
            this.sawAbort++;
            reject(signal?.reason);
          };
          if (signal?.aborted) return onAbort();
          signal?.addEventListener('abort', onAbort, { once: true });
          void gate.then(() => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          });
        });
      }
      if (this.failing.has(id)) throw new Error(`no customer ${id}`);
      return { id, name: `customer ${id}`, load: this.loads };
    } finally {
      this.inflight--;
    }
  }

  async *stream(): AsyncGenerator<number> {
    try {
      for (const id of this.ids) yield id;
    } finally {
      this.keysClosed++;
    }
  }
}

@Injectable()
class CustomerService {
  constructor(private readonly source: Source) {}

  @Cacheable({ key: 'customer:{id}', ttl: '1h', tags: ['customer:{id}', 'customers'] })
  async getCustomer(id: number): Promise<{ id: number; name: string; load: number }> {
    return this.source.load(id);
  }
}

/** A warmer through CustomerService.getCustomer, built per test with the options it needs. */
function customersWarmer(options: Partial<CacheWarmerOptions> = {}): Type<unknown> {
  @CacheWarmer({ name: 'customers', target: CustomerService, method: 'getCustomer', ...options })
  class CustomersWarmer {
    constructor(readonly source: Source) {}
    keys(): AsyncIterable<number> {
      return this.source.stream();
    }
  }
  return CustomersWarmer;
}

/** A warmer with its own load(): entries under `entry:<id>`. */
function entriesWarmer(options: Partial<CacheWarmerOptions> = {}): Type<unknown> {
  @CacheWarmer({ name: 'entries', ...options })
  class EntriesWarmer implements CacheWarmerHandler<number> {
    constructor(readonly source: Source) {}
    keys(): AsyncIterable<number> {
      return this.source.stream();
    }
    key(id: number): string {
      return `entry:${id}`;
    }
    parseId(text: string): number {
      return Number(text);
    }
    async load(id: number, context: WarmupContext) {
      const value = await this.source.load(id, context.signal);
      return { key: `entry:${id}`, value, ttl: '1h', tags: ['entries'] };
    }
  }
  return EntriesWarmer;
}

interface Booted {
  app: INestApplicationContext;
  warmup: TieredCacheWarmup;
  cache: CacheManagerService;
  source: Source;
  registry: Registry;
}

const open: INestApplicationContext[] = [];

async function boot(
  warmers: Array<Type<unknown>>,
  options: { cache?: TieredCacheOptions; imports?: unknown[]; providers?: unknown[]; metricsName?: string; logger?: LoggerService } = {},
): Promise<Booted> {
  const registry = new Registry();
  @Module({
    imports: [
      TieredCacheModule.forRoot({ logger: quiet, metrics: { registry, name: options.metricsName ?? 'app' }, ...options.cache }),
      ...((options.imports ?? []) as []),
    ],
    providers: [Source, CustomerService, ...warmers, ...((options.providers ?? []) as [])],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: options.logger ?? false, abortOnError: false });
  open.push(app);
  return { app, warmup: app.get(TieredCacheWarmup), cache: app.get(CacheManagerService), source: app.get(Source), registry };
}

/** A metric's value for the given labels (the scrape's collect callbacks run). */
async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

describe('cache warmers (@CacheWarmer, TieredCacheWarmup)', () => {
  let redis: RedisServer;

  beforeAll(async () => (redis = await RedisServer.start()));
  afterAll(() => redis.stop());
  afterEach(async () => {
    mockScheduleMissing = false;
    await Promise.all(open.splice(0).map((a) => a.close()));
  });
  const withRedis = (): TieredCacheOptions => ({ redis: { url: redis.url, commandTimeout: 500 }, keyPrefix: `w${Math.random().toString(36).slice(2, 8)}:` });

  describe('on demand', () => {
    it('warms the ids it is given through load(), into L1 and Redis, and reports the run', async () => {
      const { warmup, cache, source, app } = await boot([entriesWarmer()], { cache: withRedis() });
      const result = await warmup.run('entries', { ids: [7, 8] });
      expect(result).toMatchObject({ warmer: 'entries', trigger: 'manual', status: 'completed', keys: { ok: 2, failed: 0, skipped: 0 }, errors: [] });
      expect(result.endedAt.getTime()).toBeGreaterThanOrEqual(result.startedAt.getTime());
      expect(source.started.sort()).toEqual([7, 8]);
      expect(await cache.get('entry:7')).toEqual({ id: 7, name: 'customer 7', load: expect.any(Number) });
      // In Redis too, with the entry's TTL: a second instance reads it without loading.
      const other = await boot([entriesWarmer()], { cache: { ...withRedis(), keyPrefix: cache.engine.options.keyPrefix } });
      expect(await other.cache.get('entry:8')).toEqual({ id: 8, name: 'customer 8', load: expect.any(Number) });
      expect(other.source.loads).toBe(0);
      expect(await cache.ttl('entry:7')).toBeGreaterThan(59 * 60_000);
      // And under its tags.
      expect(await cache.invalidateTags('entries')).toBe(2);
      const s = warmup.stats().entries;
      expect(s).toMatchObject({ name: 'entries', kind: 'load', mode: 'refresh', concurrency: 8, running: false, totals: { runs: 1, skippedRuns: 0, keys: { ok: 2, failed: 0, skipped: 0 } } });
      expect(s.lastRun).toMatchObject({ trigger: 'manual', status: 'completed', keys: { ok: 2, failed: 0, skipped: 0 } });
      expect(s.lastRun?.startedAt).toBeInstanceOf(Date);
      expect(s.lastRun?.endedAt).toBeInstanceOf(Date);
      expect(app.get(TieredCacheWarmup).names()).toEqual(['entries']);
    });

    it('warms what keys() yields, reading it as it goes, and closes the generator at the end', async () => {
      const { warmup, cache, source } = await boot([entriesWarmer({ concurrency: 4 })], { cache: withRedis() });
      source.ids = Array.from({ length: 500 }, (_, i) => i + 1);
      const result = await warmup.run('entries');
      expect(result).toMatchObject({ status: 'completed', keys: { ok: 500, failed: 0, skipped: 0 } });
      expect(source.keysClosed).toBe(1);
      expect(source.maxInflight).toBeLessThanOrEqual(4);
      expect(await cache.mget(['entry:1', 'entry:250', 'entry:500'])).toEqual([
        expect.objectContaining({ id: 1 }),
        expect.objectContaining({ id: 250 }),
        expect.objectContaining({ id: 500 }),
      ]);
    });

    it("parses text ids with the warmer's parseId (what the CLI passes)", async () => {
      const { warmup, cache } = await boot([entriesWarmer()], { cache: withRedis() });
      expect((await warmup.run('entries', { ids: ['4', '5'], parseIds: true })).keys.ok).toBe(2);
      expect(await cache.get('entry:4')).toEqual(expect.objectContaining({ id: 4 }));
    });

    it("mode 'missing' loads only what no tier holds", async () => {
      const { warmup, cache, source } = await boot([entriesWarmer({ mode: 'missing' })], { cache: withRedis() });
      await cache.set('entry:1', { id: 1, name: 'already there', load: 0 });
      const result = await warmup.run('entries');
      expect(result.keys).toEqual({ ok: 2, failed: 0, skipped: 1 });
      expect(source.started.sort()).toEqual([2, 3]);
      expect(await cache.get('entry:1')).toEqual({ id: 1, name: 'already there', load: 0 });
      // A run's own mode overrides the warmer's.
      expect((await warmup.run('entries', { mode: 'refresh' })).keys).toEqual({ ok: 3, failed: 0, skipped: 0 });
      expect(await cache.get('entry:1')).toEqual(expect.objectContaining({ name: 'customer 1' }));
    });

    it('fills the default cache, or the named cache its `cache` names, whichever cache module is imported first', async () => {
      const registry = new Registry();
      const scoresWarmer = entriesWarmer({ name: 'scores-entries', cache: 'scores' });
      @Module({
        imports: [
          // The named cache first: its module's warm-up explorer may be the one that runs.
          TieredCacheModule.forRoot({ name: 'scores', logger: quiet, metrics: { registry }, ...withRedis() }),
          TieredCacheModule.forRoot({ logger: quiet, metrics: { registry }, ...withRedis() }),
        ],
        providers: [Source, entriesWarmer(), scoresWarmer],
      })
      class TwoCaches {}
      const app = await NestFactory.createApplicationContext(TwoCaches, { logger: false, abortOnError: false });
      open.push(app);
      const warmup = app.get(TieredCacheWarmup);
      const byDefault = app.get(CacheManagerService);
      const scores = app.get<CacheManagerService>(getCacheToken('scores'));
      expect((await warmup.run('entries', { ids: [1] })).keys.ok).toBe(1);
      expect((await warmup.run('scores-entries', { ids: [2] })).keys.ok).toBe(1);
      expect(await byDefault.get('entry:1')).toEqual(expect.objectContaining({ id: 1 }));
      expect(await scores.get('entry:1')).toBeUndefined();
      expect(await scores.get('entry:2')).toEqual(expect.objectContaining({ id: 2 }));
      expect(await byDefault.get('entry:2')).toBeUndefined();
    });

    it('rejects an unknown warmer and bad run options, naming them', async () => {
      const { warmup } = await boot([entriesWarmer()]);
      await expect(warmup.run('nope')).rejects.toThrow(CacheWarmerError);
      await expect(warmup.run('nope')).rejects.toThrow('no warmer named "nope" (warmers: entries)');
      await expect(warmup.run('entries', { ids: 'abc' as never })).rejects.toThrow('ids must be an array');
      await expect(warmup.run('entries', { concurrency: 0 })).rejects.toThrow('concurrency');
    });
  });

  describe('through a @Cacheable method', () => {
    it("stores each result under the method's own key, TTL and tags; the method then answers from the cache", async () => {
      const { warmup, cache, source, app } = await boot([customersWarmer()], { cache: withRedis() });
      const result = await warmup.run('customers');
      expect(result).toMatchObject({ status: 'completed', keys: { ok: 3, failed: 0, skipped: 0 } });
      expect(source.loads).toBe(3);
      const customers = app.get(CustomerService);
      expect(await customers.getCustomer(2)).toEqual({ id: 2, name: 'customer 2', load: expect.any(Number) });
      expect(source.loads).toBe(3);
      // The decorator's key and TTL, in Redis: another instance's cached method answers without its source.
      expect(await cache.ttl('customer:2')).toBeGreaterThan(59 * 60_000);
      const other = await boot([customersWarmer()], { cache: { ...withRedis(), keyPrefix: cache.engine.options.keyPrefix } });
      expect(await other.app.get(CustomerService).getCustomer(3)).toEqual(expect.objectContaining({ id: 3 }));
      expect(other.source.loads).toBe(0);
      // The decorator's tags.
      expect(await cache.invalidateTags('customer:1')).toBe(1);
      expect(await cache.has('customer:1')).toBe(false);
      expect(await cache.has('customer:3')).toBe(true);
    });

    it("refreshes what is cached in mode 'refresh' and leaves it in mode 'missing'", async () => {
      const { warmup, source, app } = await boot([customersWarmer()], { cache: withRedis() });
      const customers = app.get(CustomerService);
      const before = await customers.getCustomer(1);
      expect((await warmup.run('customers', { ids: [1] })).keys.ok).toBe(1);
      const refreshed = await customers.getCustomer(1);
      expect(refreshed.load).toBeGreaterThan(before.load);
      const loads = source.loads;
      expect((await warmup.run('customers', { ids: [1, 2], mode: 'missing' })).keys).toEqual({ ok: 1, failed: 0, skipped: 1 });
      expect(source.loads).toBe(loads + 1);
      expect(await customers.getCustomer(1)).toEqual(refreshed);
    });

    it("reads text ids as numbers when the method's parameter is a number", async () => {
      const { warmup, app, source } = await boot([customersWarmer()], { cache: withRedis() });
      const r = await warmup.run('customers', { ids: ['2', 'x'], parseIds: true });
      expect(r.keys).toEqual({ ok: 1, failed: 1, skipped: 0 });
      expect(r.errors).toEqual([{ id: 'x', message: expect.stringContaining('"x" is not a number') }]);
      const loads = source.loads;
      await app.get(CustomerService).getCustomer(2);
      expect(source.loads).toBe(loads);
    });

    it('refuses at boot a method that is not @Cacheable, a target that is not a provider, and two warmers of one name', async () => {
      @CacheWarmer({ name: 'bad', method: 'nothing' })
      class NoMethod {
        async *keys() {}
      }
      await expect(boot([NoMethod])).rejects.toThrow('NoMethod.nothing is not a @Cacheable() method (no such method)');
      class Stranger {}
      @CacheWarmer({ name: 'bad', target: Stranger, method: 'x' })
      class NoTarget {}
      await expect(boot([NoTarget])).rejects.toThrow('target Stranger is not a provider of the app');
      await expect(boot([customersWarmer(), customersWarmer()])).rejects.toThrow('two warmers are named "customers"');
      @CacheWarmer({ name: 'nothing', onBootstrap: true })
      class NoKeys {
        async load() {
          return true;
        }
      }
      await expect(boot([NoKeys])).rejects.toThrow('has onBootstrap but no keys() method');
    });

    it('refuses bad options where the decorator is applied, naming the option', () => {
      expect(() => CacheWarmer({ name: 'a b' })(class X {})).toThrow(TieredCacheOptionsError);
      expect(() => CacheWarmer({ name: 'a b' })(class X {})).toThrow('"@CacheWarmer() on X name"');
      expect(() => CacheWarmer({ name: 'ok', concurrency: 0 })(class X {})).toThrow('"@CacheWarmer() on X concurrency" = 0');
      expect(() => CacheWarmer({ name: 'ok', cron: 'daily' })(class X {})).toThrow('"@CacheWarmer() on X cron"');
      expect(() => CacheWarmer({ name: 'ok', onBootstrap: { wait: -1 } })(class X {})).toThrow('onBootstrap.wait');
      expect(() => CacheWarmer({ name: 'ok', lease: { ttl: 'soon' } })(class X {})).toThrow('lease.ttl');
      expect(() => CacheWarmer({ name: 'ok', http: { baseUrl: 'http://x:1' } })(class X {})).toThrow("set mode: 'missing'");
      expect(() => CacheWarmer({ name: 'ok', nme: 1 } as never)(class X {})).toThrow('unknown option');
    });
  });

  describe('keys that fail, concurrency, cancellation', () => {
    it('counts and reports a failing key and goes on with the others', async () => {
      const logged: string[] = [];
      const log = (m: unknown, context?: string) => {
        if (context === 'TieredCacheWarmup') logged.push(String(m));
      };
      const { warmup, cache, source } = await boot([entriesWarmer({ concurrency: 1 })], {
        cache: withRedis(),
        logger: { log, warn: log, error: log },
      });
      source.ids = [1, 2, 3, 4, 5];
      source.failing = new Set([2, 4]);
      const progress: string[] = [];
      const result = await warmup.run('entries', { observer: { progress: (e) => progress.push(`${e.id}:${e.result}`) } });
      expect(result).toMatchObject({ status: 'completed', keys: { ok: 3, failed: 2, skipped: 0 } });
      expect(result.errors).toEqual([
        { id: '2', message: 'no customer 2' },
        { id: '4', message: 'no customer 4' },
      ]);
      expect(progress).toEqual(['1:ok', '2:failed', '3:ok', '4:failed', '5:ok']);
      expect(await cache.mget(['entry:1', 'entry:2', 'entry:5'])).toEqual([expect.objectContaining({ id: 1 }), undefined, expect.objectContaining({ id: 5 })]);
      expect(logged).toEqual([
        'warm-up "entries": id 2 failed: no customer 2',
        'warm-up "entries": id 4 failed: no customer 4',
        expect.stringMatching(/^warm-up "entries" \(manual\) completed in \d+\.\d s: 3 ok, 2 failed, 0 skipped$/),
      ]);
      expect(warmup.stats().entries.totals.keys).toEqual({ ok: 3, failed: 2, skipped: 0 });
      // A run logs its first five failures; the rest are counted.
      logged.length = 0;
      source.ids = Array.from({ length: 9 }, (_, i) => i + 1);
      source.failing = new Set(source.ids);
      expect((await warmup.run('entries')).keys.failed).toBe(9);
      expect(logged.slice(5, 7)).toEqual(['warm-up "entries": more keys failed; they are counted, not logged (see the run\'s result and stats())', expect.stringContaining('9 failed')]);
      expect(logged).toHaveLength(7);
    });

    it('never has more than `concurrency` keys in flight, and starts the next one as soon as one is done', async () => {
      const { warmup, source } = await boot([entriesWarmer({ concurrency: 3 })]);
      source.ids = Array.from({ length: 10 }, (_, i) => i + 1);
      let gate = latch();
      source.gate = gate;
      const run = warmup.run('entries');
      await waitFor('three keys in flight', () => source.inflight === 3);
      // Turns of the event loop in which a fourth key would have started, had the bound let it.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(source.started).toEqual([1, 2, 3]);
      expect(warmup.stats().entries).toMatchObject({ running: true, current: { trigger: 'manual', keys: { ok: 0, failed: 0, skipped: 0 } } });
      const first = gate;
      gate = latch();
      source.gate = gate;
      first.open();
      await waitFor('the next three keys in flight', () => source.started.length === 6 && source.inflight === 3);
      expect(warmup.stats().entries.current?.keys.ok).toBe(3);
      source.gate = undefined;
      gate.open();
      expect((await run).keys.ok).toBe(10);
      expect(source.maxInflight).toBe(3);
    });

    it('cancels a run at shutdown: the keys in flight see their signal aborted, the run ends cancelled, close() completes', async () => {
      const booted = await boot([entriesWarmer({ concurrency: 2 })], { cache: withRedis() });
      const { warmup, source } = booted;
      source.ids = [1, 2, 3, 4];
      source.gate = latch();
      const run = warmup.run('entries');
      await waitFor('two keys in flight', () => source.inflight === 2);
      open.splice(open.indexOf(booted.app), 1);
      await booted.app.close();
      const result = await run;
      expect(result).toMatchObject({ status: 'cancelled', reason: 'the application is shutting down', keys: { ok: 0, failed: 0, skipped: 0 } });
      expect(source.sawAbort).toBe(2);
      expect(source.started).toEqual([1, 2]);
      expect(source.keysClosed).toBe(1);
    });

    it('cancel() stops a run on demand; a key past keyTimeout fails with its signal aborted', async () => {
      const { warmup, source } = await boot([entriesWarmer({ concurrency: 1, keyTimeout: 50 })]);
      source.gate = latch();
      const r = await warmup.run('entries', { ids: [1, 2] });
      expect(r.keys).toEqual({ ok: 0, failed: 2, skipped: 0 });
      expect(r.errors[0].message).toBe('not warmed within 50 ms (keyTimeout)');
      expect(source.sawAbort).toBe(2);

      const slow = await boot([entriesWarmer({ keyTimeout: false })]);
      slow.source.gate = latch();
      const run = slow.warmup.run('entries');
      await waitFor('keys in flight', () => slow.source.inflight === 3);
      expect(slow.warmup.cancel('entries')).toBe(true);
      expect(await run).toMatchObject({ status: 'cancelled', reason: 'cancelled by TieredCacheWarmup.cancel()' });
      expect(slow.warmup.cancel('entries')).toBe(false);
    });

    it('skips a run of a warmer that is already running on this instance', async () => {
      const { warmup, source } = await boot([entriesWarmer()]);
      const gate = latch();
      source.gate = gate;
      const first = warmup.run('entries');
      await waitFor('running', () => source.inflight > 0);
      const second = await warmup.run('entries', { ids: [9] });
      expect(second).toMatchObject({ status: 'skipped', reason: 'a manual run is still going on on this instance' });
      gate.open();
      expect((await first).status).toBe('completed');
      expect(warmup.stats().entries.totals).toMatchObject({ runs: 1, skippedRuns: 1 });
      expect(warmup.stats().entries.lastSkip).toMatchObject({ trigger: 'manual', reason: expect.stringContaining('still going on') });
    });
  });

  describe('on bootstrap', () => {
    it('lets bootstrap go on after `wait`; readiness (requireWarmup) is down until the run is over', async () => {
      // The source is held before the app exists: the bootstrap run starts inside boot().
      const gate = latch();
      const prime = Source.prototype.load;
      let held = 0;
      const spy = jest.spyOn(Source.prototype, 'load').mockImplementation(async function (this: Source, id: number, signal?: AbortSignal) {
        held++;
        await gate.promise;
        return prime.call(this, id, signal);
      });
      try {
        const { warmup, app } = await boot([entriesWarmer({ onBootstrap: { wait: 100, readiness: '1m' } })], { cache: withRedis() });
        // boot() resolved: bootstrap did not wait for the held run past its bound.
        expect(held).toBeGreaterThan(0);
        expect(warmup.stats().entries).toMatchObject({ running: true, onBootstrap: true, current: { trigger: 'bootstrap' } });
        const health = app.get(TieredCacheHealthIndicator);
        const ready = await health.isHealthy('cache', { requireWarmup: true });
        expect(ready.cache).toMatchObject({ status: 'down', warmup: { state: 'warming', ready: false, warming: ['entries'], bootstrap: { entries: 'running' } } });
        // A liveness check (no requireWarmup) is not affected.
        expect((await health.isHealthy('cache')).cache.status).toBe('up');
        gate.open();
        await waitFor('the bootstrap run is over', () => warmup.stats().entries.running === false);
        expect(warmup.stats().entries.lastRun).toMatchObject({ trigger: 'bootstrap', status: 'completed', keys: { ok: 3 } });
        expect((await health.isHealthy('cache', { requireWarmup: true })).cache).toMatchObject({ status: 'up', warmup: { state: 'ready', ready: true, bootstrap: { entries: 'completed' } } });
      } finally {
        spy.mockRestore();
      }
    });

    it('waits for a run that ends within `wait`; onBootstrap: true does not wait at all', async () => {
      const waited = await boot([entriesWarmer({ onBootstrap: { wait: '30s' } })], { cache: withRedis() });
      expect(waited.warmup.stats().entries.lastRun).toMatchObject({ trigger: 'bootstrap', status: 'completed', keys: { ok: 3 } });
      expect(await waited.cache.get('entry:3')).toEqual(expect.objectContaining({ id: 3 }));

      const gate = latch();
      const spy = jest.spyOn(Source.prototype, 'stream').mockImplementation(async function* (): AsyncGenerator<number> {
        await gate.promise;
        yield 1;
      } as () => AsyncGenerator<number>);
      try {
        const background = await boot([entriesWarmer({ onBootstrap: true })]);
        expect(background.warmup.stats().entries.running).toBe(true);
        gate.open();
        await waitFor('the background run is over', () => background.warmup.stats().entries.running === false);
        expect(background.warmup.stats().entries.lastRun?.keys.ok).toBe(1);
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('on a schedule (@nestjs/schedule)', () => {
    const JOB = 'tiered-cache-warmup:customers';

    it('mounts the cron in the app’s SchedulerRegistry; of two instances sharing Redis only one runs a tick, the other skips', async () => {
      const cache = withRedis();
      const warmer = customersWarmer({ cron: '0 2 * * *', lease: { ttl: '2s', holdAtLeast: 0 } });
      const a = await boot([warmer], { cache, imports: [ScheduleModule.forRoot()], metricsName: 'a' });
      const b = await boot([warmer], { cache, imports: [ScheduleModule.forRoot()], metricsName: 'b' });
      const jobA = a.app.get(SchedulerRegistry).getCronJob(JOB);
      const jobB = b.app.get(SchedulerRegistry).getCronJob(JOB);
      expect(jobA.cronTime.source).toBe('0 2 * * *');
      expect(jobA.isActive).toBe(true);
      expect(a.warmup.stats().customers).toMatchObject({ cron: '0 2 * * *', nextRun: expect.any(Date) });
      expect(a.warmup.stats().customers.nextRun?.getHours()).toBe(2);

      const gateA = latch();
      a.source.gate = gateA;
      void jobA.fireOnTick();
      await waitFor('instance A runs the tick', () => a.source.inflight > 0);
      expect(a.warmup.stats().customers.current?.trigger).toBe('schedule');
      const skipped = new Promise<WarmupRunResult>((resolve) => b.warmup.observe({ finished: resolve }));
      void jobB.fireOnTick();
      expect(await skipped).toMatchObject({ trigger: 'schedule', status: 'skipped', reason: 'another instance holds the lease and runs it' });
      expect(b.source.loads).toBe(0);
      expect(b.warmup.stats().customers).toMatchObject({ running: false, totals: { runs: 0, skippedRuns: 1 }, lastSkip: { trigger: 'schedule' } });
      expect(await metric(b.registry, 'cache_warmup_runs_total', { warmer: 'customers', result: 'skipped' })).toBe(1);
      expect(await metric(b.registry, 'cache_warmup_runs_total', { warmer: 'customers', result: 'completed' })).toBe(0);

      const done = new Promise<WarmupRunResult>((resolve) => a.warmup.observe({ finished: resolve }));
      gateA.open();
      expect(await done).toMatchObject({ trigger: 'schedule', status: 'completed', keys: { ok: 3 } });
      expect(await metric(a.registry, 'cache_warmup_runs_total', { warmer: 'customers', result: 'completed' })).toBe(1);
      expect(await metric(a.registry, 'cache_warmup_keys_total', { warmer: 'customers', result: 'ok' })).toBe(3);
      // Released at the end: the next tick may run anywhere.
      const next = new Promise<WarmupRunResult>((resolve) => b.warmup.observe({ finished: resolve }));
      void jobB.fireOnTick();
      expect(await next).toMatchObject({ status: 'completed', keys: { ok: 3 } });
    });

    it('keeps the lease for holdAtLeast after a short run, so a tick that fires a little later elsewhere skips too', async () => {
      const cache = withRedis();
      const warmer = customersWarmer({ cron: '0 2 * * *', lease: { holdAtLeast: '1m' } });
      const a = await boot([warmer], { cache });
      const b = await boot([warmer], { cache });
      const ranA = new Promise<WarmupRunResult>((resolve) => a.warmup.observe({ finished: resolve }));
      // Without ScheduleModule.forRoot() the job lives in the warm-up's own registry; its tick is the same.
      await a.app.get(TieredCacheWarmup).run('customers', { exclusive: true });
      expect(await ranA).toMatchObject({ status: 'completed' });
      expect(await b.warmup.run('customers', { exclusive: true })).toMatchObject({ status: 'skipped', reason: 'another instance holds the lease and runs it' });
      // A manual run takes no lease.
      expect((await b.warmup.run('customers')).status).toBe('completed');
    });

    it('without Redis every instance runs its own schedule', async () => {
      const warmer = customersWarmer({ cron: '0 2 * * *' });
      const a = await boot([warmer], { imports: [ScheduleModule.forRoot()] });
      const b = await boot([warmer], { imports: [ScheduleModule.forRoot()] });
      const results = await Promise.all(
        [a, b].map((x) => {
          const done = new Promise<WarmupRunResult>((resolve) => x.warmup.observe({ finished: resolve }));
          void x.app.get(SchedulerRegistry).getCronJob(JOB).fireOnTick();
          return done;
        }),
      );
      expect(results.map((r) => r.status)).toEqual(['completed', 'completed']);
      expect(a.source.loads + b.source.loads).toBe(6);
    });

    it('a cron without @nestjs/schedule installed fails the boot, naming the warmer and the package', async () => {
      mockScheduleMissing = true;
      await expect(boot([customersWarmer({ cron: '0 2 * * *' })])).rejects.toThrow(CacheWarmerError);
      await expect(boot([customersWarmer({ cron: '0 2 * * *' })])).rejects.toThrow('warmer "customers" sets a cron, which needs @nestjs/schedule: npm install @nestjs/schedule');
      // Warmers without a cron do not need it.
      const { warmup } = await boot([customersWarmer()]);
      expect((await warmup.run('customers')).status).toBe('completed');
    });

    it('an invalid cron expression fails the boot, naming the option', async () => {
      await expect(boot([customersWarmer({ cron: '99 2 * * *' })])).rejects.toThrow('"@CacheWarmer() on CustomersWarmer cron" = "99 2 * * *"');
    });
  });

  describe('metrics and events', () => {
    it('counts keys by result and records the last run, per warmer', async () => {
      const { warmup, source, registry } = await boot([entriesWarmer()], { cache: withRedis() });
      expect(await metric(registry, 'cache_warmup_last_run_duration_seconds', { warmer: 'entries' })).toBeUndefined();
      source.failing = new Set([3]);
      await warmup.run('entries');
      await warmup.run('entries', { ids: [1], mode: 'missing' });
      expect(await metric(registry, 'cache_warmup_keys_total', { cache: 'app', warmer: 'entries', result: 'ok' })).toBe(2);
      expect(await metric(registry, 'cache_warmup_keys_total', { warmer: 'entries', result: 'failed' })).toBe(1);
      expect(await metric(registry, 'cache_warmup_keys_total', { warmer: 'entries', result: 'skipped' })).toBe(1);
      expect(await metric(registry, 'cache_warmup_runs_total', { warmer: 'entries', result: 'completed' })).toBe(2);
      expect(await metric(registry, 'cache_warmup_running', { warmer: 'entries' })).toBe(0);
      const last = warmup.stats().entries.lastRun!;
      expect(await metric(registry, 'cache_warmup_last_run_duration_seconds', { warmer: 'entries' })).toBe(last.durationMs / 1000);
      expect(await metric(registry, 'cache_warmup_last_run_timestamp_seconds', { warmer: 'entries' })).toBe(last.endedAt.getTime() / 1000);
      // The real Prometheus parser and linter accept the scrape.
      const text = await registry.metrics();
      expect(text).toContain('cache_warmup_keys_total{cache="app",warmer="entries",result="ok"} 2');
      expectPromtoolToAccept(text);
    });

    it('emits started, progress and finished on the app’s EventEmitter2', async () => {
      const seen: Array<[string, unknown]> = [];
      @Injectable()
      class Listener {
        @OnEvent('tiered-cache.warmup.*')
        on(payload: { warmer: string }): void {
          seen.push(['event', payload]);
        }
      }
      const { warmup } = await boot([entriesWarmer()], { imports: [EventEmitterModule.forRoot({ wildcard: true })], providers: [Listener] });
      const events: string[] = [];
      const { EventEmitter2 } = await import('@nestjs/event-emitter');
      const emitter = open[open.length - 1].get(EventEmitter2);
      for (const e of Object.values(WARMUP_EVENTS)) emitter.on(e, () => events.push(e));
      await warmup.run('entries');
      expect(events[0]).toBe(WARMUP_EVENTS.started);
      expect(events[events.length - 1]).toBe(WARMUP_EVENTS.finished);
      expect(events).toContain(WARMUP_EVENTS.progress);
      expect(seen[seen.length - 1][1]).toMatchObject({ warmer: 'entries', status: 'completed', keys: { ok: 3 } });
    });
  });

  describe('HTTP responses', () => {
    let handled = 0;

    @Controller('customers')
    @UseInterceptors(TieredCacheInterceptor)
    class CustomersController {
      @Get(':id')
      @Cacheable({ keyPrefix: 'http:customer', ttl: '1h', tags: ['customer:{id}'] })
      async one(@Param('id') id: string) {
        handled++;
        return { id, handled };
      }

      @Get(':id/plain')
      async plain(@Param('id') id: string) {
        return { id };
      }
    }

    /** The warmers below extend it, each with its own @CacheWarmer. */
    class PagesWarmer implements CacheWarmerHandler<string> {
      async *keys() {
        yield* ['1', '2'];
      }
      path(id: string): string {
        return `/customers/${id}`;
      }
    }

    async function bootHttp(warmer: Type<unknown>, options: TieredCacheOptions): Promise<{ app: INestApplication; warmup: TieredCacheWarmup; url: string }> {
      @Module({ imports: [TieredCacheModule.forRoot({ logger: quiet, metrics: false, ...options })], controllers: [CustomersController], providers: [warmer] })
      class HttpModule {}
      const app = await NestFactory.create(HttpModule, { logger: false, abortOnError: false });
      open.push(app);
      await app.listen(0, '127.0.0.1');
      return { app, warmup: app.get(TieredCacheWarmup), url: await app.getUrl() };
    }

    function httpPages(): Type<unknown> {
      @CacheWarmer({ name: 'pages', http: true })
      class HttpPages extends PagesWarmer {}
      return HttpPages;
    }

    beforeEach(() => (handled = 0));

    it('requests each path through the app, so the interceptor stores the response under its own key; refresh runs the handler again', async () => {
      const Pages = httpPages();
      const { warmup, url, app } = await bootHttp(Pages, { ...withRedis(), http: { fastPath: true } });
      expect(await warmup.run('pages')).toMatchObject({ status: 'completed', keys: { ok: 2, failed: 0, skipped: 0 } });
      expect(handled).toBe(2);
      const res = await fetch(`${url}/customers/1`);
      expect(res.headers.get('x-cache')).toBe('HIT');
      expect(await res.json()).toEqual({ id: '1', handled: 1 });
      expect(handled).toBe(2);
      // Under the route's tags too.
      expect(await app.get(CacheManagerService).invalidateTags('customer:2')).toBe(1);
      // Refresh: the handler runs though the response is cached (also past the fast path), and the new one is served.
      expect((await warmup.run('pages', { ids: ['1'] })).keys.ok).toBe(1);
      expect(handled).toBe(3);
      expect(await (await fetch(`${url}/customers/1`)).json()).toEqual({ id: '1', handled: 3 });
      // Missing: what is cached is left alone, what is not is filled.
      expect((await warmup.run('pages', { mode: 'missing' })).keys).toEqual({ ok: 1, failed: 0, skipped: 1 });
      expect(handled).toBe(4);
      // A client cannot use the warm-up header: without the process's token it is an ordinary request.
      const forged = await fetch(`${url}/customers/1`, { headers: { 'x-tiered-cache-warm': 'guess refresh' } });
      expect(forged.headers.get('x-cache')).toBe('HIT');
      expect(forged.headers.get('x-tiered-cache-warm-result')).toBeNull();
      expect(handled).toBe(4);
    });

    it('counts a path that is not a cached route, or that fails, as a failed key', async () => {
      const Pages = httpPages();
      const { warmup } = await bootHttp(Pages, withRedis());
      const r = await warmup.run('pages', { ids: ['1/plain', '/nowhere'] });
      expect(r.keys).toEqual({ ok: 0, failed: 2, skipped: 0 });
      expect(r.errors.map((e) => e.message)).toEqual([expect.stringContaining('not a cached route'), expect.stringContaining('answered 404')]);
    });

    it("against another process's server (http.baseUrl) fills what is missing, told by X-Cache", async () => {
      const Pages = httpPages();
      const server = await bootHttp(Pages, withRedis());
      @CacheWarmer({ name: 'remote', http: { baseUrl: server.url }, mode: 'missing' })
      class Remote extends PagesWarmer {}
      const { warmup } = await boot([Remote]);
      expect((await warmup.run('remote')).keys).toEqual({ ok: 2, failed: 0, skipped: 0 });
      expect((await warmup.run('remote')).keys).toEqual({ ok: 0, failed: 0, skipped: 2 });
      expect(handled).toBe(2);
    });

    it('fails the run, saying why, when the app has no HTTP server to request', async () => {
      const Pages = httpPages();
      const { warmup } = await boot([Pages]);
      expect(await warmup.run('pages')).toMatchObject({ status: 'failed', reason: expect.stringContaining('the app has no HTTP server (an application context; in the CLI, pass --http)') });
    });
  });
});
