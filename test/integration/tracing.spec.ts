import { AsyncLocalStorage } from 'node:async_hooks';
import { context, ProxyTracer, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type ContextManager } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { TieredCache, TieredCacheOptionsError, type TieredCacheOptions } from '../../lib';
import { redisFixture } from '../support/redis-fixture';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

const quiet = { warn() {}, error() {} };

/** Context carried across awaits, as @opentelemetry/context-async-hooks does it (AsyncLocalStorage). */
class AlsContextManager implements ContextManager {
  readonly #als = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#als.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#als.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#als.disable();
    return this;
  }
}

const own = (o: object, name: string): boolean => Object.prototype.hasOwnProperty.call(o, name);

/** A latch: the factory waits on it until the test releases it. */
function latch<T = void>(): { promise: Promise<T>; release: (v: T) => void } {
  let release!: (v: T) => void;
  const promise = new Promise<T>((r) => (release = r));
  return { promise, release };
}

describe('OpenTelemetry tracing (real BasicTracerProvider + InMemorySpanExporter)', () => {
  const fx = redisFixture();
  let exporter: InMemorySpanExporter;
  let provider: BasicTracerProvider;
  let manager: AlsContextManager;

  beforeEach(async () => {
    // Each test's caches start from tr0: on an empty Redis.
    await fx.raw.flushall();
    exporter = new InMemorySpanExporter();
    provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    trace.setGlobalTracerProvider(provider);
    manager = new AlsContextManager();
    context.setGlobalContextManager(manager);
  });

  afterEach(async () => {
    trace.disable();
    context.disable();
    await provider.shutdown();
  });

  async function cache(options: TieredCacheOptions = {}): Promise<TieredCache> {
    const c = new TieredCache({ logger: quiet, redis: fx.redis.url, keyPrefix: `tr${fx.caches.length}:`, ...options });
    fx.caches.push(c);
    await c.connect();
    return c;
  }
  const spans = (name?: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => name === undefined || s.name === name);
  const only = (name: string): ReadableSpan => {
    const s = spans(name);
    expect(s.map((x) => x.name)).toEqual([name]);
    return s[0];
  };

  it('get: an L2 hit carries the tier and the cache name; the L1 hit after it has no span (by default); a miss says so', async () => {
    // Written before c is there: no change announced to c (one landing after c's read would drop its L1 copy).
    const writer = await cache({ keyPrefix: 'tr0:', l1: { enabled: false }, bus: false, tracing: false });
    await writer.set('k', 1);
    const c = await cache({ keyPrefix: 'tr0:', metrics: { name: 'users' } });
    // L1 is trusted (read and filled) once the bus hears every change.
    await waitFor('the bus is subscribed', () => c.stats().bus.subscribed);
    exporter.reset();
    expect(await c.get('k')).toBe(1);
    expect(only('cache.get').attributes).toEqual({ 'cache.name': 'users', 'cache.hit': true, 'cache.tier': 'l2' });

    exporter.reset();
    expect(await c.get('k')).toBe(1); // promoted: an L1 hit
    expect(spans()).toEqual([]);

    expect(await c.get('nope')).toBeUndefined();
    expect(only('cache.get').attributes).toEqual({ 'cache.name': 'users', 'cache.hit': false });
  });

  it('l1Hits: true spans L1 hits of get, getOrSet and peekLocal (tier l1); recordKeys adds the key', async () => {
    const c = await cache({ tracing: { l1Hits: true, recordKeys: true } });
    await c.set('k', 'v');
    exporter.reset();
    expect(await c.get('k')).toBe('v');
    expect(await c.getOrSet('k', () => 'other')).toBe('v');
    expect(c.peekLocal('k')).toBe('v');
    expect(spans().map((s) => [s.name, s.attributes])).toEqual([
      ['cache.get', { 'cache.name': 'tr0:', 'cache.key': 'k', 'cache.hit': true, 'cache.tier': 'l1' }],
      ['cache.getOrSet', { 'cache.name': 'tr0:', 'cache.key': 'k', 'cache.hit': true, 'cache.tier': 'l1' }],
      ['cache.get', { 'cache.name': 'tr0:', 'cache.key': 'k', 'cache.hit': true, 'cache.tier': 'l1' }],
    ]);
    // A miss still has one span, from below L1, not a second one for L1.
    exporter.reset();
    expect(await c.get('absent')).toBeUndefined();
    expect(spans().map((s) => [s.name, s.attributes['cache.hit']])).toEqual([['cache.get', false]]);
    expect(c.peekLocal('absent')).toBeUndefined();
    expect(spans()).toHaveLength(1);
  });

  it('getOrSet miss: the factory runs in a child span, active while it runs (its own spans nest under it)', async () => {
    const c = await cache();
    const inner = trace.getTracer('app');
    const value = await c.getOrSet('k', async () => {
      await new Promise((r) => setImmediate(r));
      inner.startSpan('db.query').end(); // the app's own span, in the factory's context
      return 42;
    });
    expect(value).toBe(42);
    const getOrSet = only('cache.getOrSet');
    const factory = only('cache.factory');
    const db = only('db.query');
    expect(getOrSet.attributes).toEqual({ 'cache.name': 'tr0:', 'cache.hit': false });
    expect(factory.attributes).toEqual({ 'cache.name': 'tr0:' });
    expect(factory.spanContext().traceId).toBe(getOrSet.spanContext().traceId);
    expect(factory.parentSpanContext?.spanId).toBe(getOrSet.spanContext().spanId);
    expect(db.parentSpanContext?.spanId).toBe(factory.spanContext().spanId);

    // The next call is an L2 hit for another instance: no factory.
    const other = await cache({ keyPrefix: 'tr0:' });
    exporter.reset();
    expect(await other.getOrSet('k', () => 0)).toBe(42);
    expect(spans().map((s) => [s.name, s.attributes])).toEqual([['cache.getOrSet', { 'cache.name': 'tr0:', 'cache.hit': true, 'cache.tier': 'l2' }]]);
  });

  it("nests under the caller's span, and the caller's context is what it leaves behind", async () => {
    const c = await cache();
    const app = trace.getTracer('app');
    const request = app.startSpan('GET /users/1');
    await context.with(trace.setSpan(context.active(), request), async () => {
      await c.getOrSet('k', () => 1);
      await c.delete('k');
      expect(trace.getActiveSpan()).toBe(request);
    });
    request.end();
    for (const name of ['cache.getOrSet', 'cache.delete']) expect(only(name).parentSpanContext?.spanId).toBe(request.spanContext().spanId);
  });

  it('a factory error is recorded on the factory span and on the getOrSet span, and reaches the caller unchanged', async () => {
    const c = await cache();
    const boom = new Error('source down');
    await expect(c.getOrSet('k', () => Promise.reject(boom))).rejects.toBe(boom);
    await expect(
      c.getOrSet('sync', () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    for (const s of [...spans('cache.factory'), ...spans('cache.getOrSet')]) {
      expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: 'source down' });
      expect(s.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([['exception', 'source down']]);
    }
    expect(spans('cache.factory')).toHaveLength(2);
    expect(spans('cache.getOrSet')).toHaveLength(2);
  });

  it('concurrent misses of one key: one factory span; the callers that joined say coalesced', async () => {
    const c = await cache();
    const gate = latch<number>();
    let runs = 0;
    const factory = () => {
      runs++;
      return gate.promise;
    };
    const calls = [c.getOrSet('k', factory), c.getOrSet('k', factory), c.getOrSet('k', factory)];
    gate.release(7);
    expect(await Promise.all(calls)).toEqual([7, 7, 7]);
    expect(runs).toBe(1);
    expect(spans('cache.factory')).toHaveLength(1);
    expect(spans('cache.getOrSet').map((s) => s.attributes)).toEqual([
      { 'cache.name': 'tr0:', 'cache.hit': false },
      { 'cache.name': 'tr0:', 'cache.coalesced': true, 'cache.hit': false },
      { 'cache.name': 'tr0:', 'cache.coalesced': true, 'cache.hit': false },
    ]);
  });

  /** `key` filled with 'old' with a short TTL, then waited past it (get() misses it): a stale copy within grace. */
  async function staleOld(c: TieredCache, key = 'k'): Promise<void> {
    await c.getOrSet(key, () => 'old', { ttl: 30 });
    await waitFor(`${key} past its TTL`, async () => (await c.get(key)) === undefined);
    exporter.reset();
  }

  it('a stale copy answered (grace): cache.stale on the call, cache.background on the refresh that finishes after it', async () => {
    const c = await cache({ l1: { enabled: false }, resilience: { grace: '1h' } });
    await staleOld(c);
    const gate = latch<string>();
    expect(await c.getOrSet('k', () => gate.promise)).toBe('old');
    expect(only('cache.getOrSet').attributes).toEqual({ 'cache.name': 'tr0:', 'cache.hit': true, 'cache.stale': true });
    expect(spans('cache.factory')).toEqual([]); // still running
    gate.release('new');
    await waitFor('the refresh ended', () => spans('cache.factory').length === 1);
    expect(only('cache.factory').attributes).toEqual({ 'cache.name': 'tr0:', 'cache.background': true });
    expect(only('cache.factory').parentSpanContext?.spanId).toBe(only('cache.getOrSet').spanContext().spanId);
  });

  it('fail-safe: the factory error is on the factory span; the getOrSet it answered with the stale copy is OK and says stale', async () => {
    const c = await cache({ l1: { enabled: false }, resilience: { grace: '1h' } });
    await staleOld(c);
    const boom = new Error('source down');
    // grace: false on the call: no stale copy at once, but fail-safe falls back on it when the factory fails.
    expect(await c.getOrSet('k', () => Promise.reject(boom), { grace: false })).toBe('old');
    const call = only('cache.getOrSet');
    expect(call.attributes).toEqual({ 'cache.name': 'tr0:', 'cache.hit': true, 'cache.stale': true });
    expect(call.status.code).toBe(SpanStatusCode.UNSET);
    await waitFor('the factory span ended', () => spans('cache.factory').length === 1);
    expect(only('cache.factory').status).toEqual({ code: SpanStatusCode.ERROR, message: 'source down' });
  });

  it('a provider registered after the cache was built gets its spans (the default tracer follows the global provider)', async () => {
    trace.disable();
    const c = await cache();
    await c.get('before');
    const late = new InMemorySpanExporter();
    const p = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(late)] });
    trace.setGlobalTracerProvider(p);
    try {
      await c.get('after');
      expect(late.getFinishedSpans().map((s) => s.name)).toEqual(['cache.get']);
    } finally {
      await p.shutdown();
    }
  });

  it('the API installed but no SDK registered: no span is even started (the plain paths run), until one registers', async () => {
    trace.disable();
    const started = jest.spyOn(ProxyTracer.prototype, 'startSpan');
    try {
      const c = await cache();
      await c.get('nobody-listens');
      expect(await c.getOrSet('nobody-listens', async () => 1)).toBe(1);
      await c.delete('nobody-listens');
      expect(started).not.toHaveBeenCalled();
      const late = new InMemorySpanExporter();
      const p = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(late)] });
      trace.setGlobalTracerProvider(p);
      try {
        await c.get('now-listened');
        expect(late.getFinishedSpans().map((s) => s.name)).toEqual(['cache.get']);
      } finally {
        await p.shutdown();
      }
    } finally {
      started.mockRestore();
    }
  });

  it('a stale copy in L1: the hit has no span (by default), its background refresh has one', async () => {
    const c = await cache({ resilience: { grace: '1h' } });
    await staleOld(c);
    const gate = latch<string>();
    expect(await c.getOrSet('k', () => gate.promise)).toBe('old');
    expect(spans()).toEqual([]);
    gate.release('new');
    await waitFor('the refresh ended', () => spans('cache.factory').length === 1);
    expect(only('cache.factory').attributes).toEqual({ 'cache.name': 'tr0:', 'cache.background': true });
    await waitFor('the refreshed value', async () => (await c.get('k')) === 'new');
  });

  it('invalidations: delete, invalidatePattern, invalidateTags, clear, with what they removed (and, with recordKeys, what they named)', async () => {
    const c = await cache({ tracing: { recordKeys: true } });
    await c.set('a', 1, { tags: ['t'] });
    await c.set('b', 2, { tags: ['t'] });
    await c.set('user:1', 3);
    await c.set('user:2', 4);
    await c.set('z', 5);
    exporter.reset();
    expect(await c.delete(['a', 'missing'])).toBe(1);
    expect(await c.invalidatePattern('user:*')).toBe(2);
    expect(await c.invalidateTags(['t', 'u'])).toBe(1);
    expect(await c.clear()).toBeGreaterThanOrEqual(1);
    const byName = Object.fromEntries(spans().map((s) => [s.name, s.attributes]));
    expect(byName['cache.delete']).toEqual({ 'cache.name': 'tr0:', 'cache.keys.count': 2, 'cache.removed': 1 });
    expect(byName['cache.invalidatePattern']).toEqual({ 'cache.name': 'tr0:', 'cache.pattern': 'user:*', 'cache.removed': 2 });
    expect(byName['cache.invalidateTags']).toEqual({ 'cache.name': 'tr0:', 'cache.tags.count': 2, 'cache.tags': ['t', 'u'], 'cache.removed': 1 });
    expect(byName['cache.clear']).toEqual({ 'cache.name': 'tr0:', 'cache.removed': expect.any(Number) });
    // The detailed form of invalidatePattern says whether every tier was walked.
    exporter.reset();
    await c.invalidatePattern('none:*', { detailed: true });
    expect(only('cache.invalidatePattern').attributes).toMatchObject({ 'cache.removed': 0, 'cache.complete': true });
    // Queued invalidations reach Redis as one batched delete, which has its span too.
    exporter.reset();
    await c.set('q', 1);
    await c.invalidate('q');
    expect(only('cache.delete').attributes).toEqual({ 'cache.name': 'tr0:', 'cache.keys.count': 1, 'cache.removed': 1 });
    // Without recordKeys, no key, pattern or tag on any span.
    const plain = await cache();
    exporter.reset();
    await plain.delete('a');
    await plain.invalidatePattern('user:*');
    await plain.invalidateTags('t');
    await plain.getOrSet('k', () => 1);
    await plain.get('k2');
    for (const s of spans()) for (const k of Object.keys(s.attributes)) expect(['cache.key', 'cache.pattern', 'cache.tags']).not.toContain(k);
  });

  it('names the tier below L2 that answered (tiers: l1, l2, l3)', async () => {
    const l3 = await RedisServer.start();
    try {
      const c = await cache({
        redis: undefined,
        tiers: [
          { name: 'near', type: 'memory' },
          { name: 'shared', type: 'redis', redis: fx.redis.url },
          { name: 'deep', type: 'redis', redis: l3.url },
        ],
      });
      await c.set('k', 'v', { tier: 'deep' });
      exporter.reset();
      expect(await c.get('k')).toBe('v');
      expect(only('cache.get').attributes).toEqual({ 'cache.name': 'tr0:', 'cache.hit': true, 'cache.tier': 'deep' });
      await c.delete('k');
      await c.set('g', 'w', { tier: 'deep' });
      exporter.reset();
      expect(await c.getOrSet('g', () => 'factory')).toBe('w');
      expect(only('cache.getOrSet').attributes).toEqual({ 'cache.name': 'tr0:', 'cache.hit': true, 'cache.tier': 'deep' });
      await c.close();
    } finally {
      await l3.stop();
    }
  });

  it('a tracer given in the options gets the spans, even with no global provider', async () => {
    trace.disable();
    const own = new InMemorySpanExporter();
    const p = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(own)] });
    try {
      const c = await cache({ tracing: { tracer: p.getTracer('mine') } });
      await c.get('x');
      expect(own.getFinishedSpans().map((s) => s.name)).toEqual(['cache.get']);
      expect(spans()).toEqual([]);
    } finally {
      await p.shutdown();
    }
  });

  it('tracing: false: no span at all, and the cache keeps its class methods (nothing wrapped)', async () => {
    const c = await cache({ tracing: false });
    await c.getOrSet('k', () => 1);
    await c.get('k');
    await c.get('nope');
    await c.delete('k');
    await c.invalidatePattern('*');
    await c.invalidateTags('t');
    await c.clear();
    expect(spans()).toEqual([]);
    for (const m of ['get', 'getOrSet', 'peekLocal', 'delete', 'invalidatePattern', 'invalidateTags', 'clear']) expect(own(c, m)).toBe(false);
    // On (the default here): the invalidations are wrapped on the instance, get/getOrSet/peekLocal only with l1Hits.
    const on = await cache();
    expect(['delete', 'invalidatePattern', 'invalidateTags', 'clear'].every((m) => own(on, m))).toBe(true);
    expect(['get', 'getOrSet', 'peekLocal'].some((m) => own(on, m))).toBe(false);
  });

  it('rejects bad tracing options at construction, naming the option', () => {
    expect(() => new TieredCache({ logger: quiet, tracing: { tracer: { startSpan: 1 } } as never })).toThrow(TieredCacheOptionsError);
    expect(() => new TieredCache({ logger: quiet, tracing: { tracer: { startSpan: 1 } } as never })).toThrow(/"tracing\.tracer"/);
  });
});
