import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  Cacheable,
  CacheManagerService,
  InvalidationStrategyFor,
  PropertyInvalidationStrategy,
  ScoreInvalidationStrategy,
  TieredCacheModule,
  TimelineInvalidationStrategy,
  type InvalidationStrategy,
  type TieredCacheOptions,
} from '../../lib';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/** Stands in for a repository a strategy injects. */
@Injectable()
class ListingRepository {
  listingsOf(propertyId: string): string[] {
    return [`listing:${propertyId}:a`, `listing:${propertyId}:b`];
  }
}

@InvalidationStrategyFor('listing.*')
class ListingStrategy implements InvalidationStrategy {
  constructor(private readonly repo: ListingRepository) {}
  supports(_event: string, payload: unknown): boolean {
    return typeof (payload as { propertyId?: unknown })?.propertyId === 'string';
  }
  invalidate(_event: string, payload: unknown, cache: CacheManagerService): Promise<number> {
    return cache.delete(this.repo.listingsOf((payload as { propertyId: string }).propertyId));
  }
}

@InvalidationStrategyFor('listing.**')
class ThrowingStrategy implements InvalidationStrategy {
  supports(): boolean {
    return true;
  }
  async invalidate(): Promise<number> {
    throw new Error('repository down');
  }
}

@Module({ providers: [ListingRepository, ListingStrategy, ThrowingStrategy] })
class ListingModule {}

/** The README's service: what a rule must find, whatever the ids hold. */
@Injectable()
class PropertyService {
  reads = 0;
  @Cacheable({ key: 'property:detail:{id}', tags: ['property:{id}'] })
  async findById(id: string): Promise<{ id: string; read: number }> {
    return { id, read: ++this.reads };
  }
  @Cacheable({ key: 'properties:list:{tenantId}:{page}' })
  async list(tenantId: string, page: number): Promise<{ tenantId: string; read: number }> {
    return { tenantId, read: ++this.reads };
  }
}

@Module({ providers: [PropertyService] })
class PropertyModule {}

/** A @Cacheable read held open by the test: it has read the old row and returns only when released. */
@Injectable()
class HeldPropertyService {
  started = 0;
  lastId: string | undefined;
  private release: ((row: string) => void) | undefined;
  private readonly startedListeners: Array<() => void> = [];
  @Cacheable({ key: 'property:detail:{id}', tags: ['property:{id}'] })
  findById(id: string): Promise<string> {
    this.started++;
    this.lastId = id;
    for (const l of this.startedListeners.splice(0)) l();
    return new Promise((resolve) => (this.release = resolve));
  }
  whenStarted(): Promise<void> {
    return this.started > 0 ? Promise.resolve() : new Promise((resolve) => this.startedListeners.push(resolve));
  }
  finish(row: string): void {
    this.release?.(row);
  }
}

@Module({ providers: [HeldPropertyService] })
class HeldPropertyModule {}

describe('event-driven invalidation across two Nest apps sharing one Redis', () => {
  let redis: RedisServer;
  let raw: Redis;
  const apps: INestApplicationContext[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const logger = { warn: (m: string) => warnings.push(m), error: (m: string) => errors.push(m) };

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await raw.flushall();
    errors.length = 0;
    warnings.length = 0;
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  const rules: TieredCacheOptions['invalidationRules'] = [
    { event: 'property.updated', keys: ['property:detail:{propertyId}'], patterns: ['properties:list:{tenantId}:*'], tags: ['property:{propertyId}'] },
    { event: 'order.*', keys: ['order:{orderId}'] },
  ];

  async function app(options: Partial<TieredCacheOptions> = {}, withEvents = true, extra: unknown[] = []): Promise<{ cache: CacheManagerService; events: EventEmitter2 | undefined; ctx: INestApplicationContext }> {
    const mod = await Test.createTestingModule({
      imports: [
        ...(withEvents ? [EventEmitterModule.forRoot({ wildcard: true })] : []),
        TieredCacheModule.forRoot({ redis: redis.url, keyPrefix: 'ev:', logger, invalidationRules: rules, ...options }),
        ...(extra as never[]),
      ],
    }).compile();
    const ctx = await mod.init();
    apps.push(ctx);
    return { cache: ctx.get(CacheManagerService), events: withEvents ? ctx.get(EventEmitter2) : undefined, ctx };
  }

  async function inL1(cache: CacheManagerService, key: string): Promise<boolean> {
    return cache.engine.l1!.has(key);
  }

  /** B reads A's entries so they sit in B's L1, after A's own change messages have reached B. */
  async function warmOn(a: CacheManagerService, b: CacheManagerService, keys: string[]): Promise<void> {
    await a.engine.bus!.drain();
    const sent = a.stats().bus.published;
    await waitFor('B applied A’s messages', () => b.stats().bus.received >= sent);
    for (const k of keys) expect(await b.get(k)).toBeDefined();
    for (const k of keys) expect(await inL1(b, k)).toBe(true);
  }

  it('a bad rule fails the module at boot, naming the rule (rules are compiled by the Nest layer, not the engine)', async () => {
    const bad = Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ keyPrefix: 'ev-bad:', logger, invalidationRules: [{ event: 'x', keys: ['ok'] }, { event: 'y', keys: ['a:{id'] }] })],
    }).compile();
    await expect(bad).rejects.toThrow(/invalidationRules\[1\]\.keys\[0\]/);
  });

  it('an event on A invalidates keys, patterns and tags in B’s L1 and in L2', async () => {
    const A = await app();
    const B = await app();
    await A.cache.set('property:detail:p1', { id: 'p1' });
    await A.cache.set('properties:list:t1:page1', ['p1']);
    await A.cache.set('properties:list:t2:page1', ['p9']);
    await A.cache.set('property:photos:p1', ['x.jpg'], { tags: ['property:p1'] });
    await A.cache.set('property:detail:p2', { id: 'p2' });
    const affected = ['property:detail:p1', 'properties:list:t1:page1', 'property:photos:p1'];
    const untouched = ['properties:list:t2:page1', 'property:detail:p2'];
    await warmOn(A.cache, B.cache, [...affected, ...untouched]);

    await A.events!.emitAsync('property.updated', { propertyId: 'p1', tenantId: 't1' });

    await waitFor('B’s L1 dropped the affected entries', async () => !(await Promise.all(affected.map((k) => inL1(B.cache, k)))).some(Boolean));
    for (const k of affected) {
      expect(await B.cache.get(k)).toBeUndefined();
      expect(await raw.exists(`ev:${k}`)).toBe(0);
    }
    for (const k of untouched) expect(await inL1(B.cache, k)).toBe(true);
    expect(A.cache.stats().invalidation).toMatchObject({ events: 1, rulesApplied: 1, rulesSkipped: 0 });
  });

  it('a rule builds the same key as the @Cacheable template for ids with / @ : spaces, unicode and glob characters', async () => {
    const A = await app({}, true, [PropertyModule]);
    const B = await app({}, true, [PropertyModule]);
    const ids = ['FR/75/001', 'owner@agency.fr', 'a:b', 'with space', 'Zürich-€-日本', 'x*y?[z]\\', '~n42', '42'];
    const serviceA = A.ctx.get(PropertyService);
    const serviceB = B.ctx.get(PropertyService);
    for (const id of ids) {
      const first = await serviceA.findById(id);
      expect(await serviceB.findById(id)).toEqual(first); // B reads A's entry from Redis
      expect(await serviceB.findById(id)).toEqual(first); // and now from its L1
      await serviceA.list(id, 1);
      await serviceB.list(id, 1);
    }
    const readsOnB = serviceB.reads;
    for (const id of ids) await A.events!.emitAsync('property.updated', { propertyId: id, tenantId: id });
    expect(A.cache.stats().invalidation).toMatchObject({ rulesApplied: ids.length, rulesSkipped: 0 });
    // Every cached entry is gone, on both instances and in Redis: B has to run its method again for each.
    await A.cache.engine.bus!.drain();
    const sent = A.cache.stats().bus.published;
    await waitFor('B applied all of A’s invalidations', () => B.cache.stats().bus.received >= sent);
    for (const id of ids) {
      expect((await serviceB.findById(id)).read).toBeGreaterThan(readsOnB);
      expect((await serviceB.list(id, 1)).read).toBeGreaterThan(readsOnB);
    }
    expect(serviceB.reads).toBe(readsOnB + 2 * ids.length);
    // Only the entries B just stored again, one per id, under the segment the template made of it.
    expect(await raw.keys('ev:property:detail:*')).toHaveLength(ids.length);
    expect(await raw.exists('ev:property:detail:FR%2F75%2F001')).toBe(1);
  });

  it('a domain event on A overtaking a @Cacheable read on B: B returns the old row but stores it in no tier', async () => {
    const A = await app();
    const B = await app({}, true, [HeldPropertyModule]);
    const held = B.ctx.get(HeldPropertyService);
    // B's method has read the old row (the key is absent from Redis) when A updates it and emits the event.
    const reading = held.findById('p7');
    await held.whenStarted();
    expect(held.lastId).toBe('p7');
    await A.events!.emitAsync('property.updated', { propertyId: 'p7', tenantId: 't7' });
    expect(A.cache.stats().invalidation).toMatchObject({ rulesApplied: 1 });
    // The method returns the old row the instant the event's invalidation resolved.
    held.finish('OLD');
    expect(await reading).toBe('OLD');
    expect(await raw.exists('ev:property:detail:p7')).toBe(0);
    expect(await inL1(B.cache, 'property:detail:p7')).toBe(false);
    expect(await A.cache.get('property:detail:p7')).toBeUndefined();
    expect(B.cache.stats().l2.fillsRefused).toBe(1);
  });

  it('tags set on B are invalidated from A (L1 of both, and L2)', async () => {
    const A = await app();
    const B = await app();
    await B.cache.set('b:only', 1, { tags: ['t'] });
    await A.cache.set('a:only', 2, { tags: ['t'] });
    await warmOn(A.cache, B.cache, ['a:only', 'b:only']);
    await waitFor('A sees B’s entry', async () => (await A.cache.get('b:only')) === 1);
    expect(await A.cache.invalidateTags(['t'])).toBe(2);
    await waitFor('B’s L1 drops both', async () => !(await inL1(B.cache, 'a:only')) && !(await inL1(B.cache, 'b:only')));
    expect(await inL1(A.cache, 'b:only')).toBe(false);
    expect(await raw.exists('ev:a:only', 'ev:b:only')).toBe(0);
  });

  it('a rule whose placeholder is missing from the payload invalidates nothing (no widening), and is logged and counted', async () => {
    const A = await app();
    await A.cache.set('property:detail:p1', 1);
    await A.cache.set('property:detail:undefined', 2);
    await A.cache.set('properties:list:t1:page', 3);
    await A.cache.set('properties:list:undefined:page', 4);
    await A.events!.emitAsync('property.updated', { propertyId: 'p1' }); // no tenantId
    for (const k of ['property:detail:p1', 'property:detail:undefined', 'properties:list:t1:page', 'properties:list:undefined:page']) {
      expect(await A.cache.has(k)).toBe(true);
    }
    expect(A.cache.stats().invalidation).toMatchObject({ rulesSkipped: 1, rulesApplied: 0 });
    expect(errors.join('\n')).toMatch(/invalidationRules\[0\].*property\.updated.*\{tenantId\}/);
  });

  it('payload values cannot smuggle glob characters into a pattern', async () => {
    const A = await app();
    await A.cache.set('properties:list:t1:page', 1);
    await A.events!.emitAsync('property.updated', { propertyId: 'p', tenantId: '*' });
    expect(await A.cache.has('properties:list:t1:page')).toBe(true);
  });

  it('a throwing strategy is logged and counted; other strategies and rules still run; emit() is not broken', async () => {
    const A = await app({}, true, [ListingModule]);
    const B = await app({}, true, [ListingModule]);
    await A.cache.set('listing:p1:a', 1);
    await A.cache.set('listing:p1:b', 2);
    await warmOn(A.cache, B.cache, ['listing:p1:a', 'listing:p1:b']);
    expect(() => A.events!.emit('listing.changed', { propertyId: 'p1' })).not.toThrow();
    await waitFor('L2 entries removed by the injected strategy', async () => (await raw.exists('ev:listing:p1:a', 'ev:listing:p1:b')) === 0);
    await waitFor('B’s L1 follows', async () => !(await inL1(B.cache, 'listing:p1:a')) && !(await inL1(B.cache, 'listing:p1:b')));
    await waitFor('failure counted', () => A.cache.stats().invalidation.strategyFailures === 1);
    expect(A.cache.stats().invalidation.strategyRuns).toBe(2);
    expect(errors.join('\n')).toMatch(/ThrowingStrategy failed for event "listing\.changed": repository down/);
  });

  it('the ready-made strategies invalidate the original design’s key layout, and take another layout', async () => {
    const A = await app({ invalidationRules: [] }, true, [
      { module: class ReadyMade {}, providers: [PropertyInvalidationStrategy, ScoreInvalidationStrategy, TimelineInvalidationStrategy.withLayout({ timeline: 'tl:{propertyId}' })] },
    ]);
    const set = (k: string) => A.cache.set(k, 1);
    await Promise.all(['property:detail:p1', 'property:score:p1', 'tl:p1', 'properties:list:t1:x', 'property:detail:p2'].map(set));
    await A.events!.emitAsync('score.calculated', { property_id: 'p1' });
    expect(await A.cache.has('property:score:p1')).toBe(false);
    expect(await A.cache.has('property:detail:p1')).toBe(false); // the detail embeds the score
    await set('property:detail:p1');
    await A.events!.emitAsync('timeline.note_added', { propertyId: 'p1' });
    expect(await A.cache.has('tl:p1')).toBe(false);
    await A.events!.emitAsync('property.created', { tenantId: 't1', propertyId: 'p3' });
    expect(await A.cache.has('properties:list:t1:x')).toBe(false);
    expect(await A.cache.has('property:detail:p1')).toBe(true);
    await A.events!.emitAsync('property.state_changed', { propertyId: 'p1', tenantId: 't1' });
    expect(await A.cache.has('property:detail:p1')).toBe(false);
    expect(await A.cache.has('property:detail:p2')).toBe(true);
  });

  it('works without EventEmitterModule (rules do not run, and it says so)', async () => {
    const A = await app({}, false);
    await A.cache.set('k', 1);
    expect(await A.cache.get('k')).toBe(1);
    expect(warnings.join('\n')).toMatch(/EventEmitterModule is not imported/);
  });

  describe('invalidate(key) batching', () => {
    it('flushes when a batch is full', async () => {
      const A = await app({ invalidation: { batchSize: 3, maxDelay: '1h' } });
      await A.cache.mset({ a: 1, b: 2, c: 3 });
      const done = Promise.all([A.cache.invalidate('a'), A.cache.invalidate(['b', 'c'])]);
      await done;
      expect(await raw.exists('ev:a', 'ev:b', 'ev:c')).toBe(0);
      expect(A.cache.stats().invalidation).toMatchObject({ queued: 3, applied: 3, batches: 1, queueLength: 0 });
    });

    it('flushes after maxDelay', async () => {
      const A = await app({ invalidation: { batchSize: 1000, maxDelay: 30 } });
      await A.cache.set('a', 1);
      const p = A.cache.invalidate('a');
      expect(await A.cache.engine.l1!.has('a')).toBe(false); // dropped locally at once
      expect(await raw.exists('ev:a')).toBe(1); // L2 waits for the batch
      await p;
      expect(await raw.exists('ev:a')).toBe(0);
    });

    it('flushes on shutdown, and the other instance hears it', async () => {
      const A = await app({ invalidation: { batchSize: 1000, maxDelay: '1h' } });
      const B = await app();
      await A.cache.set('a', 1);
      await warmOn(A.cache, B.cache, ['a']);
      void A.cache.invalidate('a');
      expect(await raw.exists('ev:a')).toBe(1);
      await A.ctx.close();
      apps.splice(apps.indexOf(A.ctx), 1);
      expect(await raw.exists('ev:a')).toBe(0);
      await waitFor('B drops a', async () => !(await inL1(B.cache, 'a')));
    });
  });
});
