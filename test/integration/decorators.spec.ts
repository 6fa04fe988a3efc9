import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Scope } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Test, type TestingModule } from '@nestjs/testing';
import { CacheEvict, CacheManagerService, CachePut, Cacheable, TieredCacheModule, type TieredCacheOptions } from '../../lib';
import { RedisServer } from '../support/redis-server';

const quiet = { warn() {}, error() {} };
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

@Injectable()
class PropertyService {
  calls = 0;
  lastThis: unknown;

  @Cacheable({ key: 'property:{id}', ttl: '1h', tags: ['property'] })
  async findById(id: string): Promise<{ id: string; n: number }> {
    this.calls++;
    this.lastThis = this;
    return { id, n: this.calls };
  }

  @CacheEvict({ keys: ['property:{id}'] })
  async update(id: string): Promise<string> {
    return `updated ${id}`;
  }

  @CacheEvict({ tags: ['property'] })
  async reindex(): Promise<void> {}

  @CachePut({ key: 'property:{id}', tags: ['property'] })
  async refresh(id: string): Promise<{ id: string; n: number }> {
    this.calls++;
    return { id, n: -this.calls };
  }
}

@Injectable()
class LeadScoringService {
  runs = 0;
  failures = 0;

  @Cacheable({ keyPrefix: 'lead_score', ttl: 200 })
  async score(leadId: string, modelVersion: string): Promise<number> {
    this.runs++;
    return leadId.length + modelVersion.length;
  }

  @Cacheable()
  async search(filter: Record<string, unknown>, when: Date): Promise<number> {
    this.runs++;
    return this.runs;
  }

  @Cacheable({ condition: (id: string) => !id.startsWith('nocache'), unless: (r: number) => r < 0 })
  async guarded(id: string, result: number): Promise<number> {
    this.runs++;
    return result;
  }

  @Cacheable()
  async flaky(id: string): Promise<string> {
    this.failures++;
    if (this.failures === 1) throw new RangeError(`boom ${id}`);
    return 'ok';
  }

  @Cacheable()
  async falsy(v: unknown): Promise<unknown> {
    this.runs++;
    return v;
  }

  @Cacheable()
  async slow(id: number): Promise<number> {
    this.runs++;
    await tick(50);
    return id * 2;
  }

  @Cacheable({ tags: (args: [string], result: { group: string }) => [`group:${result.group}`] })
  async grouped(id: string): Promise<{ id: string; group: string }> {
    this.runs++;
    return { id, group: id.slice(0, 1) };
  }
}

@Injectable()
class ListenerService {
  runs = 0;
  @OnEvent('property.viewed')
  @Cacheable({ key: 'viewed:{0}' })
  async onViewed(id: string): Promise<string> {
    this.runs++;
    return id;
  }
}

@Injectable()
class ConsumerService {
  constructor(private readonly properties: PropertyService) {}
  view(id: string) {
    return this.properties.findById(id);
  }
}

@Controller('p')
class PropertyController {
  constructor(private readonly properties: PropertyService) {}
  @Get(':id')
  get() {
    return 1;
  }
}

function moduleFor(options: TieredCacheOptions, extra: { providers?: unknown[]; controllers?: unknown[]; imports?: unknown[] } = {}) {
  @Module({
    imports: [TieredCacheModule.forRoot({ logger: quiet, ...options }), ...((extra.imports as []) ?? [])],
    providers: (extra.providers as []) ?? [PropertyService, LeadScoringService, ConsumerService],
    controllers: (extra.controllers as []) ?? [],
  })
  class AppModule {}
  return AppModule;
}

async function boot(options: TieredCacheOptions, extra?: Parameters<typeof moduleFor>[1]): Promise<TestingModule> {
  const ref = await Test.createTestingModule({ imports: [moduleFor(options, extra)] }).compile();
  await ref.init();
  return ref;
}

describe('decorators on provider methods (real Redis)', () => {
  let redis: RedisServer;
  let app: TestingModule;
  let props: PropertyService;
  let leads: LeadScoringService;
  let cache: CacheManagerService;

  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(() => redis.stop());

  beforeEach(async () => {
    app = await boot({ redis: redis.url, keyPrefix: `t${Date.now()}:` });
    props = app.get(PropertyService);
    leads = app.get(LeadScoringService);
    cache = app.get(CacheManagerService);
  });
  afterEach(() => app.close());

  it('runs a method once for N calls with the same arguments, from any caller', async () => {
    const consumer = app.get(ConsumerService);
    for (let i = 0; i < 10; i++) expect(await props.findById('p1')).toEqual({ id: 'p1', n: 1 });
    expect(await consumer.view('p1')).toEqual({ id: 'p1', n: 1 });
    expect(props.calls).toBe(1);
    expect(props.lastThis).toBe(props);
    expect(await cache.get('property:p1')).toEqual({ id: 'p1', n: 1 });
    // Stored in Redis too: a second app sharing the namespace gets it without running the method.
    const other = await boot({ redis: redis.url, keyPrefix: cache.engine.options.keyPrefix });
    expect(await other.get(PropertyService).findById('p1')).toEqual({ id: 'p1', n: 1 });
    expect(other.get(PropertyService).calls).toBe(0);
    await other.close();
  });

  it('runs again for different arguments', async () => {
    await props.findById('p1');
    await props.findById('p2');
    expect(props.calls).toBe(2);
    expect(await leads.score('l1', 'v2')).toBe(4);
    expect(await leads.score('l1', 'v3')).toBe(4);
    expect(await leads.score('l1', 'v2')).toBe(4);
    expect(leads.runs).toBe(2);
  });

  it('runs again after @CacheEvict, and @CachePut stores without reading', async () => {
    await props.findById('p1');
    expect(await props.update('p1')).toBe('updated p1');
    expect(await props.findById('p1')).toEqual({ id: 'p1', n: 2 });
    expect(await props.refresh('p1')).toEqual({ id: 'p1', n: -3 });
    expect(await props.findById('p1')).toEqual({ id: 'p1', n: -3 });
    expect(props.calls).toBe(3);
    await props.reindex(); // tag eviction
    await props.findById('p1');
    expect(props.calls).toBe(4);
  });

  it('runs again after the TTL', async () => {
    await leads.score('l1', 'v2');
    expect(await cache.ttl('lead_score:l1:v2')).toBeGreaterThan(0);
    await tick(300);
    await leads.score('l1', 'v2');
    expect(leads.runs).toBe(2);
  });

  it('keys object arguments by content, whatever the property order', async () => {
    await leads.search({ city: 'Austin', beds: 3 }, new Date(1000));
    await leads.search({ beds: 3, city: 'Austin' }, new Date(1000));
    expect(leads.runs).toBe(1);
    await leads.search({ beds: 3, city: 'Austin' }, new Date(2000));
    expect(leads.runs).toBe(2);
  });

  it('honours condition and unless', async () => {
    await leads.guarded('nocache-1', 5);
    await leads.guarded('nocache-1', 5);
    expect(leads.runs).toBe(2);
    expect(await leads.guarded('a', -1)).toBe(-1);
    expect(await leads.guarded('a', -1)).toBe(-1);
    expect(leads.runs).toBe(4);
    await leads.guarded('b', 1);
    await leads.guarded('b', 1);
    expect(leads.runs).toBe(5);
  });

  it('never caches a throw, and the caller gets the original error', async () => {
    const err = await leads.flaky('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect((err as Error).message).toBe('boom x');
    expect(await leads.flaky('x')).toBe('ok');
    expect(await leads.flaky('x')).toBe('ok');
    expect(leads.failures).toBe(2);
  });

  it('treats falsy results as hits', async () => {
    for (const v of [0, '', false]) {
      await leads.falsy(v);
      expect(await leads.falsy(v)).toBe(v);
    }
    expect(leads.runs).toBe(3);
    await leads.falsy(null);
    await leads.falsy(null);
    expect(leads.runs).toBe(5); // null is a miss without cacheNullValues
  });

  it('caches null when cacheNullValues is on', async () => {
    const other = await boot({ cacheNullValues: true });
    const s = other.get(LeadScoringService);
    expect(await s.falsy(null)).toBeNull();
    expect(await s.falsy(null)).toBeNull();
    expect(s.runs).toBe(1);
    await other.close();
  });

  it('runs the method once for 1,000 concurrent calls (stampede)', async () => {
    const results = await Promise.all(Array.from({ length: 1000 }, () => leads.slow(21)));
    expect(new Set(results)).toEqual(new Set([42]));
    expect(leads.runs).toBe(1);
  });

  it('tags computed from the result can be invalidated', async () => {
    await leads.grouped('a1');
    await leads.grouped('a2');
    await leads.grouped('b1');
    await cache.invalidateTags('group:a');
    await leads.grouped('a1');
    await leads.grouped('b1');
    expect(leads.runs).toBe(4);
  });

  it('keeps the method name and other decorators visible on the prototype', () => {
    expect(PropertyService.prototype.findById.name).toBe('findById');
    expect(Reflect.getMetadata('design:paramtypes', PropertyService.prototype, 'findById')).toEqual([String]);
  });
});

describe('decorators: wiring', () => {
  it('keeps two apps in one process separate', async () => {
    const a = await boot({});
    const b = await boot({});
    await a.get(PropertyService).findById('p1');
    await a.get(PropertyService).findById('p1');
    await b.get(PropertyService).findById('p1');
    expect(a.get(PropertyService).calls).toBe(1);
    expect(b.get(PropertyService).calls).toBe(1);
    expect(await a.get(CacheManagerService).get('property:p1')).toEqual({ id: 'p1', n: 1 });
    await a.get(CacheManagerService).delete('property:p1');
    await b.get(PropertyService).findById('p1');
    expect(b.get(PropertyService).calls).toBe(1);
    await a.close();
    await b.close();
  });

  it('keeps @OnEvent metadata: the listener is subscribed and its calls are cached', async () => {
    const app = await boot({}, { imports: [EventEmitterModule.forRoot()], providers: [ListenerService] });
    await app.get(EventEmitter2).emitAsync('property.viewed', 'p9');
    await app.get(EventEmitter2).emitAsync('property.viewed', 'p9');
    expect(app.get(ListenerService).runs).toBe(1);
    expect(await app.get(CacheManagerService).get('viewed:p9')).toBe('p9');
    await app.close();
  });

  it('leaves controllers to the interceptor (no method wrapping), and a plain instance call is uncached', async () => {
    const app = await boot({}, { providers: [PropertyService], controllers: [PropertyController] });
    expect(app.get(PropertyController).get()).toBe(1);
    await app.close();
  });

  it('rejects @Cacheable on a non-async method at bootstrap, naming it', async () => {
    @Injectable()
    class SyncService {
      @Cacheable()
      compute(x: number): number {
        return x;
      }
    }
    await expect(boot({}, { providers: [SyncService] })).rejects.toThrow(
      '@Cacheable() on SyncService.compute: the method is not async',
    );
  });

  it('rejects cached methods on request-scoped and transient providers at bootstrap', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @Cacheable()
      async find(): Promise<number> {
        return 1;
      }
    }
    @Injectable({ scope: Scope.TRANSIENT })
    class PerInjection {
      @Cacheable()
      async find(): Promise<number> {
        return 1;
      }
    }
    await expect(boot({}, { providers: [PerRequest] })).rejects.toThrow('PerRequest.find is cached but its provider is request-scoped');
    await expect(boot({}, { providers: [PerInjection] })).rejects.toThrow('PerInjection.find is cached but its provider is transient');
  });

  it('rejects a template naming no parameter, at bootstrap', async () => {
    @Injectable()
    class Typo {
      @Cacheable({ key: 'x:{idd}' })
      async find(id: string): Promise<string> {
        return id;
      }
    }
    await expect(boot({}, { providers: [Typo] })).rejects.toThrow("Typo.find: template 'x:{idd}' names 'idd', which is not a parameter (parameters: id)");
  });

  it('rejects bad options at decoration time, naming the option', () => {
    expect(() => {
      class Bad {
        @Cacheable({ ttl: 'soon' })
        async find(): Promise<number> {
          return 1;
        }
      }
      return Bad;
    }).toThrow(/"@Cacheable\(\) on Bad.find ttl" = "soon"/);
  });
});
