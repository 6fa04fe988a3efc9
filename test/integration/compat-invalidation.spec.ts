import { createCache, type Cache } from '../../lib/compat';
import { EngineProcess } from '../support/engine-process';
import { redisFixture } from '../support/redis-fixture';
import { waitFor } from '../support/wait-for';

/**
 * What cache-manager cannot do with an in-memory store in front of Redis: a delete, overwrite or clear made
 * through the compat Cache on one instance removes the copies other instances hold in their in-process tier,
 * in this process and in separate Node processes (test/support/engine-process.ts: run `npm run build` first).
 */

const quiet = { warn() {}, error() {} };
let seq = 0;

describe('compat Cache: invalidation across instances', () => {
  const fx = redisFixture();
  const made: Cache[] = [];
  afterEach(async () => {
    await Promise.all(made.splice(0).map((c) => c.disconnect()));
  });

  function pair(): { a: Cache; b: Cache; ns: string } {
    const ns = `inv${++seq}`;
    const a = createCache({ namespace: ns, tiered: { redis: fx.redis.url, logger: quiet } });
    const b = createCache({ namespace: ns, tiered: { redis: fx.redis.url, logger: quiet } });
    made.push(a, b);
    return { a, b, ns };
  }

  /** Reads through `c` until its in-process tier serves the value (it does once its bus subscription is confirmed). */
  async function warm(c: Cache, key: string, expected: unknown): Promise<void> {
    await expect(c.get(key)).resolves.toEqual(expected);
    await waitFor(`${key} served from L1`, async () => {
      await c.get(key);
      return JSON.stringify(c.tiered.peekLocal(key)) === JSON.stringify(expected);
    });
  }

  it("del on A: B's in-process copy is dropped, B reads the key as absent", async () => {
    const { a, b } = pair();
    await a.set('k', { v: 1 });
    await warm(b, 'k', { v: 1 });
    await a.del('k');
    await waitFor("B's L1 lost k", () => b.tiered.peekLocal('k') === undefined);
    await expect(b.get('k')).resolves.toBeUndefined();
  });

  it('set, mset, mdel and clear on A reach B', async () => {
    const { a, b } = pair();
    await a.mset([
      { key: 'x', value: 'x1' },
      { key: 'y', value: 'y1' },
      { key: 'z', value: 'z1' },
    ]);
    for (const [k, v] of [['x', 'x1'], ['y', 'y1'], ['z', 'z1']]) await warm(b, k, v);
    await a.set('x', 'x2');
    await waitFor('B reads the new x', async () => (await b.get('x')) === 'x2');
    await a.mset([{ key: 'y', value: 'y2' }]);
    await waitFor('B reads the new y', async () => (await b.get('y')) === 'y2');
    await a.mdel(['x', 'y']);
    await waitFor("B's L1 lost x and y", () => b.tiered.peekLocal('x') === undefined && b.tiered.peekLocal('y') === undefined);
    await expect(b.mget(['x', 'y', 'z'])).resolves.toEqual([undefined, undefined, 'z1']);
    await warm(b, 'z', 'z1');
    await a.clear();
    await waitFor("B's L1 lost z", () => b.tiered.peekLocal('z') === undefined);
    await expect(b.get('z')).resolves.toBeUndefined();
  });

  it('null written on A is null on B (not a miss)', async () => {
    const { a, b } = pair();
    await a.set('n', null);
    await expect(b.get('n')).resolves.toBeNull();
    const fn = jest.fn(() => 'computed');
    await expect(b.wrap('n', fn)).resolves.toBeNull();
    expect(fn).not.toHaveBeenCalled();
  });

  describe('with an instance in a separate process (the engine from dist/)', () => {
    async function start(ns: string): Promise<EngineProcess> {
      const p = await EngineProcess.start({ redis: fx.redis.url, keyPrefix: `${ns}:`, cacheNullValues: true });
      fx.procs.push(p);
      expect(await p.call('connect')).toBe(true);
      return p;
    }

    it("del, set and clear on the compat Cache drop the other process' copies, and its deletes drop ours", async () => {
      const { a, ns } = pair();
      const p = await start(ns);
      await a.set('k', 'v1');
      expect(await p.call('get', 'k')).toBe('v1');
      expect(await p.call('inL1', 'k')).toBe(true);
      await a.del('k');
      await waitFor("the process' L1 lost k", async () => (await p.call('inL1', 'k')) === false);
      expect(await p.call('get', 'k')).toBeUndefined();

      await a.set('k', 'v2');
      expect(await p.call('get', 'k')).toBe('v2');
      await a.set('k', 'v3');
      await waitFor('the process reads v3', async () => (await p.call('get', 'k')) === 'v3');

      await p.call('set', 'theirs', 't1');
      await warm(a, 'theirs', 't1');
      await p.call('delete', 'theirs');
      await waitFor("our L1 lost theirs", () => a.tiered.peekLocal('theirs') === undefined);
      await expect(a.get('theirs')).resolves.toBeUndefined();

      expect(await p.call('get', 'k')).toBe('v3');
      await a.clear();
      await waitFor("the process' L1 was cleared", async () => (await p.call('inL1', 'k')) === false);
      expect(await p.call('get', 'k')).toBeUndefined();
    });

    it("wrap waits for the other process' running fill of the key instead of running its own function", async () => {
      const { a, ns } = pair();
      const p = await start(ns);
      // The other process' getOrSet holds the key's fill lock until released (a latch in the child).
      await p.call('startFill', 'sf');
      const fn = jest.fn(() => 'ours');
      const ours = a.wrap('sf', fn, 60_000);
      await waitFor('our wrap waits on the lock', () => a.tiered.stats().lock.waited === 1);
      const theirs = p.call('releaseFill', 'sf', 'from the other process');
      await expect(ours).resolves.toBe('from the other process');
      await expect(theirs).resolves.toBe('from the other process');
      expect(fn).not.toHaveBeenCalled();
    });
  });
});
