import { Client } from 'pg';
import { TieredCache } from '../../lib';
import { PostgresTier, type PostgresTierOptions } from '../../lib/core/tiers/postgres.tier';
import { TIER_FAILED, type FillMark, type TierWrite } from '../../lib/core/tiers/tier';
import { PostgresServer } from '../support/postgres-server';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * A PostgreSQL that hangs, two ways: every server process SIGSTOPped (pause(): connections stay open, nothing
 * answers, new connections wait in the listen backlog), and a server that is fine while another session holds
 * an ACCESS EXCLUSIVE lock on the tier's table (each statement waits until statement_timeout). No timing
 * assertions: a call that hung would fail the test on jest's timeout; what the calls resolve to, the counts
 * and the health reports say the rest.
 */

const COMMAND_TIMEOUT = 500;
const TABLE = 'public.tiered_cache';
const quiet = { warn() {}, error() {} };
const noop = (): void => undefined;

let pg: PostgresServer;
let redis: RedisServer;
const tiers: PostgresTier[] = [];
const clients: Client[] = [];
const caches: TieredCache[] = [];
let seq = 0;

beforeAll(async () => {
  [pg, redis] = await Promise.all([PostgresServer.start(), RedisServer.start()]);
}, 60_000);
afterEach(async () => {
  // A test that failed while the server was stopped: nothing below could close against it.
  if (pg.isPaused) pg.resume();
  await Promise.all(caches.splice(0).map((c) => c.close()));
  await Promise.all(tiers.splice(0).map((t) => t.close()));
  await Promise.all(clients.splice(0).map((c) => c.end().catch(noop)));
});
afterAll(async () => {
  if (pg?.isPaused) pg.resume();
  await Promise.all([pg?.stop(), redis?.stop()]);
});

/** A connection of the test's own, not through the tier. */
async function raw(queryTimeout?: number): Promise<Client> {
  const c = new Client({ connectionString: pg.url, ...(queryTimeout ? { query_timeout: queryTimeout } : {}) });
  c.on('error', noop);
  clients.push(c);
  await c.connect();
  return c;
}

async function tierOf(options: Partial<PostgresTierOptions> = {}): Promise<{ tier: PostgresTier; errors: string[] }> {
  const errors: string[] = [];
  const tier = new PostgresTier(
    { url: pg.url, namespace: `faults:${++seq}`, commandTimeout: COMMAND_TIMEOUT, maintenanceInterval: 60_000, ...options },
    (op, err) => errors.push(`${op}: ${String(err)}`),
  );
  tiers.push(tier);
  expect(await tier.connect()).toBe(true);
  return { tier, errors };
}

async function markOf(tier: PostgresTier, key: string): Promise<FillMark> {
  const r = await tier.readFenced(key);
  if (typeof r === 'symbol') throw new Error(`readFenced(${key}) failed`);
  expect(r.entry).toBeUndefined();
  return r.mark;
}

const w = (key: string, value: string, tags?: string[]): TierWrite<string> => ({ key, value, ttl: 60_000, ...(tags ? { tags } : {}) });

/** Every call of the tier that sends one query; each must resolve TIER_FAILED while the database hangs. */
function everySingleQueryCall(tier: PostgresTier, mark: FillMark): Array<Promise<unknown>> {
  return [
    tier.getEntry('k'),
    tier.getEntries(['k', 'absent']),
    tier.ttlOf('k'),
    tier.readFenced('k'),
    tier.setEntry(w('k', 'v2')),
    tier.setEntries([w('a', '1'), w('b', '2', ['t'])]),
    tier.storeFenced(w('fill', 'filled'), mark),
    tier.deleteKeys(['k']),
  ];
}

/** Errors the tier reported, but for its lost connections (a new connection to a stopped server times out). */
const notConnection = (errors: string[]): string[] => errors.filter((e) => !/connect/i.test(e));

describe('PostgreSQL that hangs: the tier', () => {
  it('pause() stops every server process: a query on an open connection and a new connection get no answer until resume(), then both are answered', async () => {
    const open = await raw();
    // Its own read timeout ends what it asks: a bounded probe of "no answer".
    const other = await raw(200);
    pg.pause();
    let answered = false;
    const pending = open.query<{ one: number }>('SELECT 1 AS one').then((r) => {
      answered = true;
      return r.rows[0].one;
    });
    try {
      // Each backend is a process group of its own (PostgreSQL setsid()s its children): a signal to the
      // postmaster's group alone left these answering.
      await expect(other.query('SELECT 1')).rejects.toThrow(/Query read timeout/);
      const late = new Client({ connectionString: pg.url, connectionTimeoutMillis: 200 });
      late.on('error', noop);
      await expect(late.connect()).rejects.toThrow(/timeout/);
      expect(answered).toBe(false);
    } finally {
      pg.resume();
    }
    expect(await pending).toBe(1);
    expect((await other.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('a hung database (SIGSTOP): reads, writes, deletes and fenced stores resolve TIER_FAILED within the command deadline, health reports not ok, and the tier answers again after SIGCONT', async () => {
    const { tier, errors } = await tierOf({ maxConnections: 2, connectTimeout: 1_000 });
    expect(await tier.setEntry(w('k', 'v', ['t']))).toBe(true);
    const mark = await markOf(tier, 'fill');
    const missed = tier.deadlines.timeouts;
    pg.pause();
    try {
      // The connections are open: only the deadlines can tell.
      expect(tier.ready).toBe(true);
      expect(await Promise.all(everySingleQueryCall(tier, mark))).toEqual(new Array(8).fill(TIER_FAILED));
      expect(await tier.deletePattern('k*')).toEqual({ removed: 0, complete: false });
      expect(await tier.deleteTags(['t'])).toEqual({ removed: 0, complete: false });
      expect(await tier.sweep()).toBe(TIER_FAILED);
      const health = await tier.health();
      expect(health).toMatchObject({ ok: false, status: expect.stringMatching(/^(unresponsive|down)$/) });
      expect(tier.deadlines.timeouts).toBeGreaterThan(missed);
    } finally {
      pg.resume();
    }
    await waitFor('the tier to answer again', async () => (await tier.health()).ok, 20_000);
    expect(await tier.setEntry(w('after', 'v'))).toBe(true);
    expect(await tier.getEntry('after')).toMatchObject({ value: 'v' });
    expect(await tier.storeFenced(w('fill 2', 'v'), await markOf(tier, 'fill 2'))).toBe(true);
    // Missed deadlines are counted (deadlines.timeouts), not reported: only the lost connections were.
    expect(notConnection(errors)).toEqual([]);
  });

  it('a call that missed its deadline while waiting for a pooled connection is not sent once the database answers again', async () => {
    // One connection, and connectTimeout far beyond the pause: the writes below wait in pg-pool's queue past
    // their deadline, and are still queued when the server answers again.
    const { tier, errors } = await tierOf({ maxConnections: 1, connectTimeout: 20_000 });
    expect(await tier.getEntry('warm')).toBeUndefined();
    pg.pause();
    try {
      // The read takes the connection (sent, never answered); the writes queue behind it.
      const calls = [tier.getEntry('x'), tier.setEntry(w('queued', 'stale 1')), tier.setEntry(w('queued', 'stale 2')), tier.deleteKeys(['tombstone'])];
      expect(await Promise.all(calls)).toEqual([TIER_FAILED, TIER_FAILED, TIER_FAILED, TIER_FAILED]);
    } finally {
      pg.resume();
    }
    // The health query queues behind whatever is still waiting: once it answers with none waiting, the queue
    // has been worked off.
    await waitFor('the pool queue worked off', async () => {
      const h = await tier.health();
      return h.ok && h.pool.waiting === 0;
    }, 20_000);
    // Their callers had TIER_FAILED long before: run now, they would have written what nobody waits for.
    expect(await tier.getEntry('queued')).toBeUndefined();
    const c = await raw();
    const rows = await c.query('SELECT key FROM public.tiered_cache WHERE ns = $1 AND key IN ($2, $3)', [tier.namespace, 'queued', 'tombstone']);
    expect(rows.rows).toEqual([]);
    expect(notConnection(errors)).toEqual([]);
  });

  it('a query held by a table lock resolves TIER_FAILED by the deadline and the pool does not leak (maxConnections queries later still run)', async () => {
    const max = 2;
    const { tier, errors } = await tierOf({ maxConnections: max });
    expect(await tier.setEntry(w('k', 'v', ['t']))).toBe(true);
    const mark = await markOf(tier, 'fill');
    const missed = tier.deadlines.timeouts;
    const locker = await raw();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE ${TABLE} IN ACCESS EXCLUSIVE MODE`);
    try {
      // More calls than connections: some wait for the lock on the server, the rest for a connection.
      const calls = [...everySingleQueryCall(tier, mark), ...everySingleQueryCall(tier, mark)];
      expect(await Promise.all(calls)).toEqual(new Array(calls.length).fill(TIER_FAILED));
      expect(await tier.deletePattern('k*')).toEqual({ removed: 0, complete: false });
      expect(await tier.deleteTags(['t'])).toEqual({ removed: 0, complete: false });
      expect(await tier.health()).toMatchObject({ ok: false, status: 'unresponsive' });
      // Each missed deadline counted once, whichever bound ended it (the sweep, pg's query_timeout, the
      // server's statement_timeout, or a queue wait past it): 16 calls, 2 queries per delete, 1 health query.
      expect(tier.deadlines.timeouts - missed).toBe(calls.length + 4 + 1);
      // The server answers; only the table is held.
      expect((await locker.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(tier.ready).toBe(true);
    } finally {
      await locker.query('ROLLBACK');
    }
    const again = await Promise.all(Array.from({ length: max * 3 }, () => tier.getEntry('k')));
    expect(again).toEqual(new Array(max * 3).fill({ value: 'v', ttl: expect.any(Number) }));
    expect(await tier.setEntry(w('after', 'v'))).toBe(true);
    const health = await tier.health();
    expect(health).toMatchObject({ ok: true, pool: { waiting: 0 } });
    expect(health.pool.total).toBeLessThanOrEqual(max);
    // The connections discarded after a timeout end on the server too, once their statement is cancelled.
    const c = await raw();
    await waitFor('at most maxConnections tier connections on the server', async () => {
      const r = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'tiered-cache'");
      return r.rows[0].n <= max;
    });
    expect(errors).toEqual([]);
  });
});

describe('PostgreSQL that hangs: the engine over it (memory l1, redis l2, postgres l4)', () => {
  function cache(prefix: string): TieredCache {
    const c = new TieredCache({
      logger: quiet,
      keyPrefix: prefix,
      tiers: [
        { name: 'l1', type: 'memory' },
        { name: 'l2', type: 'redis', redis: redis.url },
        // connectTimeout beyond the pause: no connection fails meanwhile, so the counts below are the missed deadlines.
        { name: 'l4', type: 'postgres', postgres: { url: pg.url, commandTimeout: COMMAND_TIMEOUT, connectTimeout: 20_000, maintenanceInterval: '1h' } },
      ],
    });
    caches.push(c);
    return c;
  }

  async function inL4(sql: Client, prefix: string, key: string): Promise<boolean> {
    const r = await sql.query('SELECT 1 FROM public.tiered_cache WHERE ns = $1 AND key = $2 AND value IS NOT NULL AND expires_at > now()', [prefix, key]);
    return r.rowCount === 1;
  }

  it('a hung database (SIGSTOP): getOrSet returns the factory value, a key cached in L2 is still read, set and delete resolve, errors are counted and health reports l4 not ok; after SIGCONT the tier takes writes again', async () => {
    const p = `fe${++seq}:`;
    const sql = await raw();
    const a = cache(p);
    const b = cache(p);
    expect(await a.connect()).toBe(true);
    expect(await b.connect()).toBe(true);
    expect(await a.set('cached', 'in l2')).toBe(true);
    expect(await a.set('doomed', 'old')).toBe(true);
    expect(await inL4(sql, p, 'cached')).toBe(true);
    expect((await a.lowerTierHealth()).l4).toMatchObject({ kind: 'postgres', ok: true });
    const errorsBefore = a.stats().tiers.l4.errors;
    pg.pause();
    try {
      expect(await a.getOrSet('fill', () => 'from the factory')).toBe('from the factory');
      // B's L1 is empty: this read is answered by L2, with L4 never asked.
      expect(await b.get('cached')).toBe('in l2');
      expect(await a.set('written', 1)).toBe(true);
      expect(await a.delete('doomed')).toBeGreaterThanOrEqual(0);
      expect(await b.get('doomed')).toBeUndefined();
      const health = await a.lowerTierHealth();
      expect(health.l4).toMatchObject({ kind: 'postgres', ok: false });
      expect(a.stats().tiers.l4.errors).toBeGreaterThan(errorsBefore);
    } finally {
      pg.resume();
    }
    await waitFor('l4 healthy again', async () => (await a.lowerTierHealth()).l4?.ok === true, 20_000);
    expect(await a.set('late', 2)).toBe(true);
    expect(await inL4(sql, p, 'late')).toBe(true);
    // The delete that could not reach L4 while it hung lands there (replayed, or run once the server resumed).
    await waitFor('the delete made meanwhile reached L4', async () => !(await inL4(sql, p, 'doomed')), 20_000);
    expect(await b.get('doomed')).toBeUndefined();
  }, 60_000);
});
