import { expectPromtoolToAccept } from '../support/promtool';
import { PostgresServer } from '../support/postgres-server';
import { freePort, RedisServer } from '../support/redis-server';
import { buildSample, SampleAppProcess } from '../support/sample-app-process';
import { waitFor } from '../support/wait-for';

/**
 * End to end, as deployed: two processes of the built sample app (dist-sample/, built here through
 * scripts/sample.js when a source changed), each with its own L1, on one redis-server and one PostgreSQL that
 * this file starts. The data lives in PostgreSQL (DATABASE_URL), so a write through one instance is the other's
 * data too, and only the cache could make the other serve an old copy: the bus must drop it.
 */

const ADMIN_TOKEN = 'two-process-admin-token';

interface PropertyBody {
  id: string;
  tenantId: string;
  price: number;
  state: string;
  updatedAt: string;
}

async function get(app: SampleAppProcess, path: string, headers: Record<string, string> = {}): Promise<{ status: number; cache: string | null; body: unknown; text: string }> {
  const res = await fetch(`${app.url}${path}`, { headers });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('json');
  return { status: res.status, cache: res.headers.get('x-cache'), body: json ? JSON.parse(text) : undefined, text };
}

async function send(app: SampleAppProcess, method: 'PUT' | 'POST', path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${app.url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as unknown };
}

const property = async (app: SampleAppProcess, id: string) => {
  const r = await get(app, `/properties/${id}`);
  expect(r.status).toBe(200);
  return { cache: r.cache, body: r.body as PropertyBody };
};

const acmePriceOf = async (app: SampleAppProcess, id: string) => {
  const r = await get(app, '/properties?tenantId=acme');
  expect(r.status).toBe(200);
  return { cache: r.cache, price: (r.body as PropertyBody[]).find((p) => p.id === id)?.price };
};

describe('sample app: two processes, one Redis, one PostgreSQL', () => {
  let redis: RedisServer;
  let pg: PostgresServer;
  let a: SampleAppProcess;
  let b: SampleAppProcess;

  beforeAll(async () => {
    buildSample();
    [redis, pg] = await Promise.all([RedisServer.start(), PostgresServer.start()]);
    const portA = await freePort();
    let portB = await freePort();
    while (portB === portA) portB = await freePort();
    const env = { REDIS_URL: redis.url, DATABASE_URL: pg.url, ADMIN_TOKEN };
    // Together, on an empty database: both want to create the schema and seed it at the same moment.
    const started = await Promise.allSettled([SampleAppProcess.start(portA, env), SampleAppProcess.start(portB, env)]);
    for (const s of started) if (s.status === 'fulfilled') (s.value.port === portA ? (a = s.value) : (b = s.value));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }, 240_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([redis?.stop(), pg?.stop()]);
  }, 60_000);

  it('started together, the two instances migrated and seeded the database exactly once', () => {
    // At the first attempt: without the lock, the one that lost the race would fail ("relation already exists")
    // and succeed only at TypeOrmModule's retry, 3 s later.
    for (const app of [a, b]) expect(app.output).not.toMatch(/Unable to connect to the database|ERROR/);
    expect(pg.psql('SELECT count(*) FROM migrations')).toBe('1');
    expect(pg.psql('SELECT count(*) FROM property')).toBe('50');
    expect(pg.psql("SELECT tenant_id || ' ' || address || ' ' || price || ' ' || state FROM property WHERE id = '2'")).toBe('acme 2 Market Street 252000 listed');
  });

  it('PUT on A: B serves the new property and the new tenant list (its cached copies dropped over the bus)', async () => {
    // B caches property 2: it reads the database once, then answers from its L1.
    expect(await property(b, '2')).toMatchObject({ cache: 'MISS', body: { id: '2', tenantId: 'acme', price: 252_000, state: 'listed' } });
    expect(await property(b, '2')).toMatchObject({ cache: 'HIT', body: { price: 252_000 } });
    expect(await acmePriceOf(b, '2')).toEqual({ cache: 'MISS', price: 252_000 });
    expect(await acmePriceOf(b, '2')).toEqual({ cache: 'HIT', price: 252_000 });

    const put = await send(a, 'PUT', '/properties/2', { price: 999_000, state: 'under_offer' });
    expect(put.status).toBe(200);
    const updated = put.body as PropertyBody;
    expect(updated).toMatchObject({ id: '2', tenantId: 'acme', price: 999_000, state: 'under_offer' });

    // The data is shared: B's uncached path reads the new row at once (committed before A answered).
    expect((await get(b, '/properties/2/uncached')).body).toEqual(updated);
    expect(pg.psql("SELECT price || ' ' || state FROM property WHERE id = '2'")).toBe('999000 under_offer');

    // B's copies go when A's bus message arrives (milliseconds; pub/sub is asynchronous, so poll briefly).
    let fresh: { cache: string | null; body: PropertyBody } | undefined;
    await waitFor('B to serve the updated property', async () => {
      fresh = await property(b, '2');
      return fresh.body.price === 999_000;
    });
    expect(fresh!.body).toEqual(updated);
    expect(await property(b, '2')).toEqual({ cache: 'HIT', body: updated });
    await waitFor("B to serve acme's updated list", async () => (await acmePriceOf(b, '2')).price === 999_000);

    // A dropped its own copies too and reads the new row.
    expect((await property(a, '2')).body).toEqual(updated);
  });

  it('POST /cache/invalidate on B (with the admin token) drops the entry on A too', async () => {
    expect(await property(a, '3')).toMatchObject({ cache: 'MISS' });
    expect(await property(a, '3')).toMatchObject({ cache: 'HIT' });
    expect((await send(b, 'POST', '/cache/invalidate', { tags: ['property:3'] })).status).toBe(401);
    const inv = await send(b, 'POST', '/cache/invalidate', { tags: ['property:3'] }, { 'x-admin-token': ADMIN_TOKEN });
    expect(inv.status).toBe(200);
    await waitFor('A to drop property 3', async () => (await property(a, '3')).cache === 'MISS');
  });

  it('/health and /metrics answer on both instances, each from its own process', async () => {
    for (const app of [a, b]) {
      const health = await get(app, '/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'ok', info: { cache: { status: 'up', l2: { status: 'up', reachable: true, mode: 'standalone' } } } });
      await waitFor('the bus to be subscribed', async () => ((await get(app, '/health')).body as { info: { cache: { bus: { state: string } } } }).info.cache.bus.state === 'subscribed');
      expect((await get(app, '/health/ready')).status).toBe(200);

      const metrics = await get(app, '/metrics');
      expect(metrics.status).toBe(200);
      expectPromtoolToAccept(metrics.text);
      expect(metrics.text).toMatch(/^cache_hits_total\{cache="realestate:",tier="l1"\} [1-9]/m);
      expect(metrics.text).toContain('process_cpu_user_seconds_total');
    }
    // B applied A's invalidation from the bus; A applied B's.
    for (const app of [a, b]) expect((await get(app, '/metrics')).text).toMatch(/^cache_invalidations_total\{cache="realestate:",source="bus"\} [1-9]/m);
  });

  it('SIGTERM stops each instance: it exits and frees its port', async () => {
    for (const app of [a, b]) {
      await app.stop();
      // Ended by the signal itself (Nest's shutdown hooks re-raise it once the app closed), not by stop()'s SIGKILL.
      expect(app.exitSignal).toBe('SIGTERM');
      await expect(fetch(app.url + '/health')).rejects.toThrow();
    }
  });
});
