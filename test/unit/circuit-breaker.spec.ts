import { tieredCacheOptionsFromEnv } from '../../lib/core/env';
import { resolveOptions } from '../../lib/core/options';
import { breakerHealth, breakerMessage, CircuitBreaker, CLOSED, DEFAULT_BREAKER, HALF_OPEN, OPEN, type BreakerState } from '../../lib/core/tiers/circuit-breaker';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * The state machine alone, on a clock the test moves: no sleeps, no server. The probe is a promise the test
 * settles, so each transition happens exactly where the test says.
 */
function harness(settings = { failures: 3, window: 1_000, openFor: 500 }) {
  let now = 0;
  const probes: Array<(ok: boolean) => void> = [];
  const changes: BreakerState[] = [];
  const breaker = new CircuitBreaker(settings, () => new Promise<boolean>((resolve) => probes.push(resolve)), () => now);
  breaker.onChange((s) => changes.push(s));
  return {
    breaker,
    probes,
    changes,
    advance: (ms: number) => (now += ms),
    fail: (n: number) => {
      for (let i = 0; i < n; i++) breaker.failure();
    },
    /** Opens it, lets openFor pass, and answers the probe the next call starts with `ok`. */
    async tripAndProbe(ok: boolean): Promise<void> {
      for (let i = 0; i < settings.failures; i++) breaker.failure();
      now += settings.openFor;
      breaker.blocked();
      probes[probes.length - 1](ok);
      await flush();
    },
  };
}


describe('CircuitBreaker', () => {
  it('stays closed below the failure count, and opens at the count within the window', () => {
    const h = harness();
    h.fail(2);
    expect(h.breaker.state).toBe(CLOSED);
    expect(h.breaker.blocked()).toBe(false);
    h.fail(1);
    expect(h.breaker.state).toBe(OPEN);
    expect(h.breaker.stats()).toEqual({ state: 'open', opened: 1, skipped: 0 });
    expect(h.changes).toEqual([OPEN]);
  });

  it('failures spread wider than the window never open it (only the last `failures` of them count)', () => {
    const h = harness();
    for (let i = 0; i < 20; i++) {
      h.breaker.failure();
      h.advance(501); // 3 failures span 1,002 ms > window
    }
    expect(h.breaker.state).toBe(CLOSED);
    // Then a burst within the window does.
    h.fail(3);
    expect(h.breaker.state).toBe(OPEN);
  });

  it('open: every call is skipped and counted, and no probe starts before openFor has passed', () => {
    const h = harness();
    h.fail(3);
    expect(h.breaker.blocked()).toBe(true);
    h.advance(499);
    expect(h.breaker.blocked()).toBe(true);
    expect(h.probes).toHaveLength(0);
    expect(h.breaker.stats()).toEqual({ state: 'open', opened: 1, skipped: 2 });
  });

  it('after openFor the next call (still skipped) starts one probe; the calls while it is out are skipped without another', async () => {
    const h = harness();
    h.fail(3);
    h.advance(500);
    expect(h.breaker.blocked()).toBe(true);
    expect(h.breaker.state).toBe(HALF_OPEN);
    expect(h.breaker.blocked()).toBe(true);
    expect(h.breaker.blocked()).toBe(true);
    expect(h.probes).toHaveLength(1);
    expect(h.breaker.stats()).toEqual({ state: 'half-open', opened: 1, skipped: 3 });
    h.probes[0](true);
    await flush();
    expect(h.breaker.state).toBe(CLOSED);
    expect(h.breaker.blocked()).toBe(false);
    expect(h.changes).toEqual([OPEN, HALF_OPEN, CLOSED]);
  });

  it('a failed probe opens it again for another openFor, counted as an open', async () => {
    const h = harness();
    await h.tripAndProbe(false);
    expect(h.breaker.stats()).toEqual({ state: 'open', opened: 2, skipped: 1 });
    h.advance(499);
    h.breaker.blocked();
    expect(h.probes).toHaveLength(1);
    h.advance(1);
    h.breaker.blocked();
    expect(h.probes).toHaveLength(2);
  });

  it('a probe that rejects counts as failed', async () => {
    const b = new CircuitBreaker({ failures: 1, window: 1_000, openFor: 0 }, () => Promise.reject(new Error('boom')), () => 0);
    b.failure();
    expect(b.state).toBe(OPEN);
    b.blocked();
    await flush();
    expect(b.stats()).toEqual({ state: 'open', opened: 2, skipped: 1 });
  });

  it('failures arriving while open or half-open (late answers to calls sent before) change nothing', async () => {
    const h = harness();
    h.fail(3);
    h.fail(10);
    expect(h.breaker.stats()?.opened).toBe(1);
    h.advance(500);
    h.breaker.blocked();
    h.fail(10); // the half-open breaker waits for its probe alone
    expect(h.breaker.state).toBe(HALF_OPEN);
    h.probes[0](true);
    await flush();
    expect(h.breaker.state).toBe(CLOSED);
    // Closed afresh: earlier failures are forgotten, the count starts again.
    h.fail(2);
    expect(h.breaker.state).toBe(CLOSED);
  });

  it('succeeded() (a handshake answered) closes an open breaker at once; the probe answering later is ignored', async () => {
    const h = harness();
    h.fail(3);
    h.breaker.succeeded();
    expect(h.breaker.state).toBe(CLOSED);
    h.fail(3);
    h.advance(500);
    h.breaker.blocked();
    h.breaker.succeeded();
    h.probes[0](false);
    await flush();
    expect(h.breaker.state).toBe(CLOSED);
    expect(h.changes).toEqual([OPEN, CLOSED, OPEN, HALF_OPEN, CLOSED]);
  });

  it('succeeded() on a closed breaker (a reconnect) forgets the failures before it; a late timeout of a call sent before it is not counted', () => {
    const h = harness();
    h.fail(2);
    h.advance(10);
    h.breaker.succeeded();
    h.fail(2);
    expect(h.breaker.state).toBe(CLOSED);
    h.breaker.failure(5); // sent before the reconnect, timed out after it
    expect(h.breaker.state).toBe(CLOSED);
    h.breaker.failure(10);
    expect(h.breaker.state).toBe(OPEN);
    expect(h.changes).toEqual([OPEN]);
  });

  it('a call sent before the breaker closed does not count once it has (its late timeout says nothing about now)', async () => {
    const h = harness();
    await h.tripAndProbe(true);
    expect(h.breaker.state).toBe(CLOSED);
    for (let i = 0; i < 5; i++) h.breaker.failure(100);
    expect(h.breaker.state).toBe(CLOSED);
  });

  it('poll() (a health check) starts a due probe without counting a skipped call', () => {
    const h = harness();
    h.fail(3);
    h.breaker.poll();
    expect(h.probes).toHaveLength(0);
    h.advance(500);
    expect(breakerHealth(h.breaker)).toEqual({ ok: false, status: 'breaker half-open', breaker: 'half-open' });
    expect(h.probes).toHaveLength(1);
    expect(h.breaker.stats()?.skipped).toBe(0);
  });

  it('a stopped breaker (its tier closed) ignores its probe and every later event', async () => {
    const h = harness();
    h.fail(3);
    h.advance(500);
    h.breaker.blocked();
    h.breaker.stop();
    h.probes[0](true);
    h.breaker.succeeded();
    await flush();
    expect(h.breaker.state).toBe(HALF_OPEN);
  });

  it('turned off: never opens and reports nothing', () => {
    const b = new CircuitBreaker(undefined, () => Promise.resolve(true));
    for (let i = 0; i < 100; i++) b.failure();
    expect(b.state).toBe(CLOSED);
    expect(b.stats()).toBeUndefined();
    expect(breakerMessage('l2', b, OPEN)).toBeUndefined();
  });

  it('a health report and a log line name the state; closed has no report of its own', () => {
    const h = harness();
    expect(breakerHealth(h.breaker)).toBeUndefined();
    h.fail(3);
    expect(breakerHealth(h.breaker)).toEqual({ ok: false, status: 'breaker open', breaker: 'open' });
    const label = 'L3 redis tier "l3"';
    expect(breakerMessage(label, h.breaker, OPEN)).toMatch(/^L3 redis tier "l3": circuit breaker open after 3 .* within 1000 ms; .* 500 ms/);
    expect(breakerMessage(label, h.breaker, HALF_OPEN)).toBeUndefined();
    expect(breakerMessage(label, h.breaker, CLOSED)).toMatch(/^L3 redis tier "l3": circuit breaker closed/);
  });
});

describe('breaker options', () => {
  const redis = 'redis://127.0.0.1:1';
  const pg = 'postgres://u:p@127.0.0.1:1/db';

  it('default on for L2 and every remote tier below it: 5 failures in 10 s, open 5 s', () => {
    expect(DEFAULT_BREAKER).toEqual({ failures: 5, window: 10_000, openFor: 5_000 });
    expect(resolveOptions({ redis }).redis?.breaker).toEqual(DEFAULT_BREAKER);
    const o = resolveOptions({
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis },
        { name: 'l3', type: 'redis', redis },
        { name: 'l4', type: 'postgres', postgres: pg },
      ],
    });
    expect(o.redis?.breaker).toEqual(DEFAULT_BREAKER);
    expect(o.lower[0]).toMatchObject({ redis: redis });
    expect(o.lower[1]).toMatchObject({ postgres: { breaker: DEFAULT_BREAKER } });
  });

  it('durations and counts are parsed; false turns it off', () => {
    expect(resolveOptions({ redis: { url: redis, breaker: { failures: 2, window: '3s', openFor: '250ms' } } }).redis?.breaker).toEqual({ failures: 2, window: 3_000, openFor: 250 });
    expect(resolveOptions({ redis: { url: redis, breaker: false } }).redis?.breaker).toBe(false);
    const o = resolveOptions({
      tiers: [
        { name: 'l2', type: 'redis', redis, breaker: { failures: 7 } },
        { name: 'l3', type: 'redis', redis: { url: redis }, breaker: false },
        { name: 'l4', type: 'postgres', postgres: pg, breaker: false },
      ],
    });
    expect(o.redis?.breaker).toEqual({ ...DEFAULT_BREAKER, failures: 7 });
    expect(o.lower[0]).toMatchObject({ redis: { url: redis, breaker: false } });
    expect((o.lower[1] as { postgres: { breaker?: unknown } }).postgres.breaker).toBeUndefined();
  });

  it.each([
    { option: 'redis.breaker.failures', options: { redis: { url: redis, breaker: { failures: 0 } } } },
    { option: 'redis.breaker.failures', options: { redis: { url: redis, breaker: { failures: 1.5 } } } },
    { option: 'redis.breaker.failures', options: { redis: { url: redis, breaker: { failures: 10_001 } } } },
    { option: 'redis.breaker.window', options: { redis: { url: redis, breaker: { window: '-1s' } } } },
    { option: 'redis.breaker.openFor', options: { redis: { url: redis, breaker: { openFor: 'soon' } } } },
    { option: 'redis.breaker', options: { redis: { url: redis, breaker: true } } },
    { option: 'tiers[2].breaker.failures', options: { tiers: [{ name: 'l2', type: 'redis', redis }, { name: 'l3', type: 'redis', redis }, { name: 'l4', type: 'postgres', postgres: pg, breaker: { failures: -1 } }] } },
    { option: 'tiers[0].breaker.openFor', options: { tiers: [{ name: 'l2', type: 'redis', redis, breaker: { openFor: 0 } }] } },
    { option: 'tiers[0].breaker', options: { tiers: [{ name: 'l2', type: 'redis', redis: { url: redis, breaker: false }, breaker: { failures: 2 } }] } },
    { option: 'tiers[0].breaker', options: { tiers: [{ name: 'l1', type: 'memory', breaker: false }, { name: 'l2', type: 'redis', redis }] } },
  ])('an invalid breaker fails at construction with an error naming $option', ({ options, option }) => {
    expect(() => resolveOptions(options as never)).toThrow(expect.objectContaining({ name: 'TieredCacheOptionsError', option }));
  });
});

describe('breaker environment variables', () => {
  const REDIS_URL = 'redis://127.0.0.1:1';

  it('CACHE_L2_BREAKER=off turns it off; the _FAILURES/_WINDOW/_OPEN_FOR variables tune it (bare numbers are seconds)', () => {
    expect(resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL, CACHE_L2_BREAKER: 'off' })).redis?.breaker).toBe(false);
    expect(resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL, CACHE_L2_BREAKER_FAILURES: '3', CACHE_L2_BREAKER_OPEN_FOR: '2' })).redis?.breaker).toEqual({ ...DEFAULT_BREAKER, failures: 3, openFor: 2_000 });
    expect(resolveOptions(tieredCacheOptionsFromEnv({ REDIS_URL })).redis?.breaker).toEqual(DEFAULT_BREAKER);
  });

  it('L3 and L4 have their own', () => {
    const o = resolveOptions(
      tieredCacheOptionsFromEnv({ REDIS_URL, CACHE_L3_REDIS_URL: REDIS_URL, CACHE_L3_BREAKER: 'off', CACHE_L4_POSTGRES_URL: 'postgres://u@127.0.0.1:1/db', CACHE_L4_BREAKER_WINDOW: '500ms' }),
    );
    expect(o.redis?.breaker).toEqual(DEFAULT_BREAKER);
    expect(o.lower[0]).toMatchObject({ name: 'l3', redis: { breaker: false } });
    expect(o.lower[1]).toMatchObject({ name: 'l4', postgres: { breaker: { ...DEFAULT_BREAKER, window: 500 } } });
  });

  it.each([
    [{ CACHE_L2_BREAKER_FAILURES: '0' }, 'CACHE_L2_BREAKER_FAILURES'],
    [{ CACHE_L2_BREAKER: 'maybe' }, 'CACHE_L2_BREAKER'],
    [{ CACHE_L2_BREAKER: 'off', CACHE_L2_BREAKER_OPEN_FOR: '1' }, 'CACHE_L2_BREAKER_OPEN_FOR'],
  ])('a bad value fails naming the variable (%j)', (vars, option) => {
    expect(() => tieredCacheOptionsFromEnv({ REDIS_URL, ...vars })).toThrow(expect.objectContaining({ option }));
  });
});
