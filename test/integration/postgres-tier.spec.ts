import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { postgresTierDdl, PostgresTier, type PostgresTierOptions } from '../../lib/core/tiers/postgres.tier';
import { TIER_FAILED, type FillMark, type Tier, type TierEntry, type TierFailed } from '../../lib/core/tiers/tier';
import { describeTierContract } from '../contract/tier-contract';
import { PostgresServer } from '../support/postgres-server';
import { waitFor } from '../support/wait-for';

/** The PostgreSQL tier against the shared tier contract, on a server of its own (never the machine's 5432). */

const MAX_BYTES = 64 * 1024;
let server: PostgresServer;
let namespaces = 0;
const errors = new Map<Tier<string>, string[]>();

beforeAll(async () => {
  server = await PostgresServer.start();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

async function build(namespace: string): Promise<Tier<string>> {
  const seen: string[] = [];
  const tier = new PostgresTier({ url: server.url, namespace, commandTimeout: 2_000, maxBytes: MAX_BYTES, maintenanceInterval: 60_000 }, (op, err) => seen.push(`${op}: ${String(err)}`));
  errors.set(tier, seen);
  expect(await tier.connect()).toBe(true);
  return tier;
}

const namespaceOf = new Map<Tier<string>, string>();

describeTierContract<string>('PostgresTier', {
  create: async () => {
    const ns = `ns[${++namespaces}]*?%_`;
    const t = await build(ns);
    namespaceOf.set(t, ns);
    return t;
  },
  peer: async (t) => build(namespaceOf.get(t) as string),
  sample: (i) => `payload ${i} · ✓ ключ`,
  destroy: async (t) => {
    await t.close();
    expect(errors.get(t)).toEqual([]);
  },
  tagIndex: 'exact',
  afterClose: 'fails',
  maxBytes: MAX_BYTES,
});

describe('PostgresTier: what only the PostgreSQL tier does', () => {
  const TABLE = '"public"."tiered_cache"';
  const GEN = '__tc:gen';
  const open: PostgresTier[] = [];
  const clients: Client[] = [];
  let n = 0;

  async function tierOf(namespace: string, options: Partial<PostgresTierOptions> = {}, errors: string[] = []): Promise<PostgresTier> {
    const t = new PostgresTier({ url: server.url, namespace, commandTimeout: 2_000, maintenanceInterval: 60_000, ...options }, (op, err) => errors.push(`${op}: ${String(err)}`));
    open.push(t);
    expect(await t.connect()).toBe(true);
    return t;
  }

  async function raw(): Promise<Client> {
    const c = new Client({ connectionString: server.url });
    clients.push(c);
    await c.connect();
    return c;
  }

  /** The namespace's rows as they are in the table, entries or not. */
  async function rows(ns: string, table = TABLE): Promise<Array<{ key: string; value: string | null; fence: string | null; infinite: boolean }>> {
    const c = await raw();
    const r = await c.query(`SELECT key, value, fence, expires_at = 'infinity' AS infinite FROM ${table} WHERE ns = $1 ORDER BY key`, [ns]);
    return r.rows;
  }

  async function generation(ns: string, table = TABLE): Promise<string | undefined> {
    const g = (await rows(ns, table)).find((r) => r.key === GEN);
    if (g) expect(g).toMatchObject({ value: null, infinite: true });
    return g?.fence ?? undefined;
  }

  /** The answer, after checking that the tier could be asked. */
  function asked<T>(r: T | TierFailed): T {
    expect(r).not.toBe(TIER_FAILED);
    return r as T;
  }

  async function readMissing(t: PostgresTier, key: string): Promise<FillMark> {
    const r = asked(await t.readFenced(key));
    expect(r.entry).toBeUndefined();
    return r.mark;
  }

  /** Waits until `count` of the tier's connections wait for a lock (pg_stat_activity): no sleeping on a guess. */
  async function lockWaiters(count: number): Promise<void> {
    const c = await raw();
    await waitFor(`${count} tier connection(s) waiting for a lock`, async () => {
      const r = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'tiered-cache' AND wait_event_type = 'Lock'");
      return r.rows[0].n === count;
    });
  }

  const ns = (): string => `pg-only:${++n}`;
  const w = (key: string, value: string, tags?: string[]) => ({ key, value, ttl: 60_000, ...(tags ? { tags } : {}) });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  });

  it('sql/postgres-tier.sql is postgresTierDdl() for public.tiered_cache, its comments aside', () => {
    const file = readFileSync(join(__dirname, '../../sql/postgres-tier.sql'), 'utf8');
    const statements = file
      .split('\n')
      .filter((line) => !line.startsWith('--'))
      .join('\n');
    expect(statements).toBe(postgresTierDdl());
    expect(postgresTierDdl('s', 't', true)).toContain('CREATE UNLOGGED TABLE IF NOT EXISTS "s"."t" (');
  });

  it('boot creates the namespace generation, with createTable: false as well, and a second instance keeps it', async () => {
    const a = ns();
    await tierOf(a);
    const g = await generation(a);
    expect(g).toEqual(expect.any(String));
    await tierOf(a);
    expect(await generation(a)).toBe(g);

    const c = await raw();
    await c.query(postgresTierDdl('public', 'shipped_ddl'));
    const b = ns();
    const t = await tierOf(b, { createTable: false, table: 'shipped_ddl' });
    expect(await generation(b, '"public"."shipped_ddl"')).toEqual(expect.any(String));
    expect(await t.storeFenced(w('k', 'v'), await readMissing(t, 'k'))).toBe(true);
    expect(await t.getEntry('k')).toMatchObject({ value: 'v' });
  });

  it('the generation row survives every delete and the sweep; pattern and tag deletes move it, deleteKeys does not; none counts it', async () => {
    const a = ns();
    const t = await tierOf(a);
    const g0 = await generation(a);
    await t.setEntries([w('x', '1', ['t']), w('y', '2')]);
    expect(await t.deleteKeys(['y', 'never'])).toBe(1);
    expect(await generation(a)).toBe(g0);
    // Tombstones and the generation are not entries: `*` and `__tc*` count (and take) value rows only.
    expect(await t.deletePattern('__tc*')).toEqual({ removed: 0, complete: true });
    const g1 = await generation(a);
    expect(g1).not.toBe(g0);
    expect(await t.deletePattern('*')).toEqual({ removed: 1, complete: true });
    const g2 = await generation(a);
    expect(g2).not.toBe(g1);
    expect(await t.deletePattern('?_tc:gen')).toEqual({ removed: 0, complete: true });
    expect(await t.deleteTags(['t'])).toEqual({ removed: 0, complete: true });
    expect(await generation(a)).not.toBe(g2);
    expect(await t.sweep()).toEqual(expect.any(Number));
    expect((await rows(a)).map((r) => [r.key, r.value === null])).toEqual([
      [GEN, true],
      ['never', true],
      ['y', true],
    ]);
    // deleteKeys, setEntry and a fill over the generation's key leave it alone (the engine never sends it).
    const g3 = await generation(a);
    expect(await t.deleteKeys([GEN])).toBe(0);
    expect(await t.setEntry(w(GEN, 'v'))).toBe(false);
    expect(await t.storeFenced(w(GEN, 'v'), { fence: g3 as string, generation: g3 as string })).toBe(false);
    expect(await generation(a)).toBe(g3);
    expect(await t.getEntry(GEN)).toBeUndefined();
  });

  it('deleteKeys leaves a tombstone per key with a fresh fence, expiring after fillWindow; the sweep takes it, not the generation', async () => {
    const a = ns();
    const t = await tierOf(a, { fillWindow: 50 });
    await t.setEntry(w('k', 'v', ['t']));
    expect(await t.deleteKeys(['k', 'j'])).toBe(1);
    const first = (await rows(a)).filter((r) => r.key !== GEN);
    expect(first.map((r) => [r.key, r.value, r.infinite])).toEqual([
      ['j', null, false],
      ['k', null, false],
    ]);
    expect(asked(await t.readFenced('k')).mark.fence).toBe(first[1].fence);
    expect(await t.deleteKeys(['k'])).toBe(0);
    const again = (await rows(a)).find((x) => x.key === 'k');
    expect(again?.fence).not.toBe(first[1].fence);
    // Past the window the tombstone no longer fences: it reads as no row at all.
    await waitFor('the tombstones to expire', async () => asked(await t.readFenced('k')).mark.fence === '');
    expect(await t.sweep()).toBeGreaterThanOrEqual(2);
    expect((await rows(a)).map((x) => x.key)).toEqual([GEN]);
  });

  it('size and trim count and take entries only: tombstones and the generation are left alone', async () => {
    const a = ns();
    const t = await tierOf(a, { maxEntries: 2 });
    await t.setEntries([w('a', '1'), w('b', '2')]);
    expect(await t.deleteKeys(['t1', 't2', 't3'])).toBe(0);
    expect(await t.trim()).toBe(0);
    await t.setEntry(w('c', '3'));
    expect(await t.trim()).toBe(1);
    expect((await rows(a)).map((r) => [r.key, r.value])).toEqual([
      [GEN, null],
      ['b', '2'],
      ['c', '3'],
      ['t1', null],
      ['t2', null],
      ['t3', null],
    ]);
    const b = ns();
    const bytes = await tierOf(b, { maxBytes: 100 });
    await bytes.setEntries([{ ...w('a', '1'), bytes: 60 }, { ...w('b', '2'), bytes: 40 }]);
    expect(await bytes.deleteKeys(['x'])).toBe(0);
    expect(await bytes.trim()).toBe(0);
    await bytes.setEntry({ ...w('c', '3'), bytes: 30 });
    expect(await bytes.trim()).toBe(1);
    expect((await rows(b)).map((r) => r.key)).toEqual([GEN, 'b', 'c', 'x']);
  });

  it('trim takes the oldest writes first, at most batchSize × maxBatches rows a run, and catches up over later runs', async () => {
    const a = ns();
    const t = await tierOf(a, { maxEntries: 1_000, batchSize: 200, maxBatches: 2 });
    const c = await raw();
    // 2,000 entries, written_at one second apart in key order (oldest first): the trim must go by age, not by key.
    await c.query(
      `INSERT INTO ${TABLE} (ns, key, value, expires_at, tags, bytes, written_at) ` +
        "SELECT $1, 'k' || lpad(i::text, 5, '0'), 'v', now() + interval '1 hour', '{}', 1, now() - (2000 - i) * interval '1 second' FROM generate_series(1, 2000) AS i",
      [a],
    );
    expect(await t.trim()).toBe(400);
    expect(await t.trim()).toBe(400);
    expect(await t.trim()).toBe(200);
    expect(await t.trim()).toBe(0);
    const left = (await rows(a)).filter((r) => r.value !== null).map((r) => r.key);
    expect(left).toHaveLength(1_000);
    expect(left[0]).toBe('k01001');
    expect(left[left.length - 1]).toBe('k02000');
    expect(t.lastSize).toBe(1_000);
  });

  it('the sweep takes expired rows in bounded batches, leaves live ones, and keeps up with writes made meanwhile', async () => {
    const a = ns();
    const errs: string[] = [];
    // A table of its own: the sweep takes every namespace's expired rows, and other tests leave some behind.
    const table = `sweep_${n}`;
    const t = await tierOf(a, { batchSize: 250, maxBatches: 2, table }, errs);
    const c = await raw();
    await c.query(
      `INSERT INTO "public"."${table}" (ns, key, value, expires_at, tags, bytes, written_at) ` +
        "SELECT $1, 'old' || i, 'v', now() - interval '1 second', '{}', 1, now() FROM generate_series(1, 1200) AS i",
      [a],
    );
    // Writes and reads go on while the sweeps run: none of them fails or is held by it.
    const traffic = Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        expect(await t.setEntry(w(`live${i}`, String(i)))).toBe(true);
        expect((await t.getEntry(`live${i}`)) as TierEntry<string>).toMatchObject({ value: String(i) });
      }),
    );
    const swept = [await t.sweep(), await t.sweep(), await t.sweep()];
    await traffic;
    expect(swept).toEqual([500, 500, 200]);
    expect(await t.sweep()).toBe(0);
    const left = await rows(a, `"public"."${table}"`);
    expect(left.filter((r) => r.key.startsWith('old'))).toEqual([]);
    expect(left.filter((r) => r.key.startsWith('live'))).toHaveLength(200);
    expect(errs).toEqual([]);
  });

  it('a namespace without its generation row stores no fill, and the next read puts a new one back', async () => {
    const a = ns();
    const t = await tierOf(a);
    const old = await readMissing(t, 'k');
    const c = await raw();
    await c.query(`DELETE FROM ${TABLE} WHERE ns = $1`, [a]);
    const mark = await readMissing(t, 'k');
    expect(mark).toEqual({ fence: '', generation: '' });
    expect(await t.storeFenced(w('k', 'v'), mark)).toBe(false);
    await waitFor('the generation row to be back', async () => (await generation(a)) !== undefined);
    expect(await t.storeFenced(w('k', 'v'), old)).toBe(false);
    expect(await t.getEntry('k')).toBeUndefined();
    expect(await t.storeFenced(w('k', 'v'), await readMissing(t, 'k'))).toBe(true);
  });

  it('a store waits for a generation move in flight, then re-checks the moved row: refused on commit, written on rollback', async () => {
    const a = ns();
    const t = await tierOf(a);
    const c = await raw();
    for (const end of ['COMMIT', 'ROLLBACK'] as const) {
      await t.deleteKeys(['k']);
      const mark = await readMissing(t, 'k');
      await c.query('BEGIN');
      await c.query(`UPDATE ${TABLE} SET fence = 'moved by hand ' || $2 WHERE ns = $1 AND key = $3`, [a, end, GEN]);
      const store = t.storeFenced(w('k', 'v'), mark);
      await lockWaiters(1);
      await c.query(end);
      expect({ end, stored: await store }).toEqual({ end, stored: end === 'ROLLBACK' });
      expect({ end, present: (await t.getEntry('k')) !== undefined }).toEqual({ end, present: end === 'ROLLBACK' });
    }
  });

  it('a generation move waits for a store that holds the generation row: the delete after it then takes the stored row', async () => {
    const a = ns();
    const t = await tierOf(a);
    const c = await raw();
    const g = await generation(a);
    // What storeFenced does, held open: the generation row locked FOR SHARE, the tagged row written.
    await c.query('BEGIN');
    expect((await c.query(`SELECT 1 FROM ${TABLE} WHERE ns = $1 AND key = $2 AND fence = $3 FOR SHARE`, [a, GEN, g])).rowCount).toBe(1);
    await c.query(`INSERT INTO ${TABLE} (ns, key, value, expires_at, tags) VALUES ($1, 'k', 'held', now() + interval '1 minute', '{t}')`, [a]);
    const removal = t.deleteTags(['t']);
    await lockWaiters(1);
    await c.query('COMMIT');
    expect(await removal).toEqual({ removed: 1, complete: true });
    expect(await t.getEntry('k')).toBeUndefined();
    expect(await generation(a)).not.toBe(g);
  });

  it('a delete whose generation move fails still deletes what it reaches, and reports complete: false', async () => {
    const a = ns();
    const errors: string[] = [];
    const t = await tierOf(a, { commandTimeout: 300 }, errors);
    await t.setEntries([w('p:1', '1', ['t']), w('p:2', '2', ['t'])]);
    const c = await raw();
    await c.query('BEGIN');
    await c.query(`SELECT 1 FROM ${TABLE} WHERE ns = $1 AND key = $2 FOR UPDATE`, [a, GEN]);
    expect(await t.deletePattern('p:1')).toEqual({ removed: 1, complete: false });
    expect(await t.deleteTags(['t'])).toEqual({ removed: 1, complete: false });
    await c.query('ROLLBACK');
    expect(await t.getEntries(['p:1', 'p:2'])).toEqual([undefined, undefined]);
    // The deadline's misses and the server's cancellations are all that was reported.
    expect(errors.filter((e) => !/statement timeout/.test(e))).toEqual([]);
  });

  it('readFenced answers entry and marks in one query: an entry, a tombstone, an expired row, nothing', async () => {
    const a = ns();
    const t = await tierOf(a);
    await t.setEntries([w('live', 'v'), { key: 'short', value: 's', ttl: 30 }]);
    await t.deleteKeys(['gone']);
    const g = await generation(a);
    const fenceOf = (await rows(a)).find((r) => r.key === 'gone')?.fence;
    const live = await t.readFenced('live');
    expect(live).toEqual({ entry: { value: 'v', ttl: expect.any(Number) }, mark: { fence: '', generation: g } });
    expect((live as { entry: TierEntry<string> }).entry.ttl).toBeLessThanOrEqual(60_000);
    expect(await t.readFenced('gone')).toEqual({ entry: undefined, mark: { fence: fenceOf, generation: g } });
    expect(await t.readFenced('none')).toEqual({ entry: undefined, mark: { fence: '', generation: g } });
    await waitFor('short to expire', async () => (await t.getEntry('short')) === undefined);
    expect(await t.readFenced('short')).toEqual({ entry: undefined, mark: { fence: '', generation: g } });
  });
});
