import { Redis } from 'ioredis';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { defaultCodec } from '../../lib/core/codec';
import { decodeEntry } from '../../lib/core/entry-envelope';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

const quiet = { warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('engine against a real Redis', () => {
  let redis: RedisServer;
  let raw: Redis;
  const caches: TieredCache[] = [];
  let n = 0;

  /**
   * Each test gets its own key prefix so tests cannot see each other's keys. The invalidation bus is off here:
   * these tests pin the engine's own read/write paths (the bus has its own spec), and a bus message racing a read
   * rightly blocks promotion, which would make the promotion counts below depend on delivery timing.
   */
  async function cache(opts: TieredCacheOptions = {}): Promise<TieredCache> {
    const c = new TieredCache({ redis: redis.url, keyPrefix: `t${++n}:`, logger: quiet, bus: false, ...opts });
    caches.push(c);
    await c.connect();
    return c;
  }

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  it('writes through to Redis under the key prefix with a millisecond TTL', async () => {
    const c = await cache({ keyPrefix: 'app:' });
    await c.set('user:1', { name: 'Ann' }, { ttl: 1500 });
    const pttl = await raw.pttl('app:user:1');
    expect(pttl).toBeGreaterThan(1400);
    expect(pttl).toBeLessThanOrEqual(1500);
    expect(await raw.get('app:user:1')).toContain('Ann');
  });

  it('reads L2 when L1 misses, and a second instance sees the first one\'s writes', async () => {
    const a = await cache({ keyPrefix: 'shared:' });
    const b = await cache({ keyPrefix: 'shared:' });
    await a.set('k', { when: new Date(1000), tags: new Set(['x']) });
    expect(await b.get('k')).toEqual({ when: new Date(1000), tags: new Set(['x']) });
    expect(b.stats().l1.misses).toBe(1);
    expect(b.stats().l2.hits).toBe(1);
  });

  it('promotes to L1 after one L2 hit by default', async () => {
    const a = await cache({ keyPrefix: 'p1:' });
    const b = await cache({ keyPrefix: 'p1:' });
    await a.set('k', 1);
    await b.get('k');
    expect(b.stats().l2.promotions).toBe(1);
    await b.get('k');
    expect(b.stats().l1.hits).toBe(1);
    expect(b.stats().l2.hits).toBe(1);
  });

  it('promotes after promoteAfter=2 L2 hits, as the original design did', async () => {
    const a = await cache({ keyPrefix: 'p2:' });
    const b = await cache({ keyPrefix: 'p2:', l2: { promoteAfter: 2 } });
    await a.set('k', 1);
    await b.get('k');
    expect(b.stats().l2.promotions).toBe(0);
    await b.get('k');
    expect(b.stats().l2.promotions).toBe(1);
    await b.get('k');
    expect(b.stats()).toMatchObject({ l1: { hits: 1 }, l2: { hits: 2 } });
  });

  it('a promoted L1 copy never outlives the remaining L2 TTL', async () => {
    const a = await cache({ keyPrefix: 'cap:' });
    const b = await cache({ keyPrefix: 'cap:', l1: { ttl: '1h' } });
    await a.set('k', 'v', { ttl: 200 });
    expect(await b.get('k')).toBe('v');
    const l1Ttl = b.l1!.remainingTtl('k')!;
    expect(l1Ttl).toBeLessThanOrEqual(200);
    await sleep(260);
    expect(b.l1!.has('k')).toBe(false);
    expect(await b.get('k')).toBeUndefined();
  });

  it('L1 ttl caps an entry even when L2 keeps it longer', async () => {
    const c = await cache({ l1: { ttl: 30 } });
    await c.set('k', 1, { ttl: '1h' });
    await sleep(60);
    expect(c.l1!.has('k')).toBe(false);
    expect(await c.get('k')).toBe(1);
    expect(c.stats().l2.hits).toBe(1);
  });

  it('treats a corrupted payload as a miss, deletes it and logs once', async () => {
    const warnings: string[] = [];
    const c = await cache({ keyPrefix: 'bad:', logger: { warn: (m) => warnings.push(m), error() {} } });
    await raw.set('bad:k1', 'garbage{{{');
    await raw.set('bad:k2', '\u0001tc1:{"truncated":');
    expect(await c.get('k1')).toBeUndefined();
    expect(await c.get('k2')).toBeUndefined();
    expect(await c.getOrSet('k1', () => 'fresh')).toBe('fresh');
    await sleep(20);
    expect(await raw.exists('bad:k2')).toBe(0);
    expect(c.stats().l2.corrupt).toBe(2);
    expect(warnings.filter((w) => w.includes('undecodable'))).toHaveLength(1);
  });

  it('the json codec writes plain JSON another service can read once it strips the entry header', async () => {
    const c = await cache({ keyPrefix: 'json:', codec: 'json' });
    await c.set('k', { a: [1, 2] });
    const stored = (await raw.get('json:k'))!;
    // What a reader in another language does: drop everything up to and including the first '|'.
    expect(stored.startsWith('\u0002')).toBe(true);
    expect(JSON.parse(stored.slice(stored.indexOf('|') + 1))).toEqual({ a: [1, 2] });
    expect(JSON.parse(decodeEntry(stored).payload!)).toEqual({ a: [1, 2] });
  });

  it('mget reads many keys in one pipelined batch', async () => {
    const a = await cache({ keyPrefix: 'mg:' });
    const b = await cache({ keyPrefix: 'mg:', l1: { enabled: false } });
    await a.mset(Array.from({ length: 100 }, (_, i) => [`k${i}`, { i }] as const));
    const before = Number(/total_commands_processed:(\d+)/.exec(await raw.info('stats'))![1]);
    const vals = await b.mget(Array.from({ length: 101 }, (_, i) => `k${i}`));
    const after = Number(/total_commands_processed:(\d+)/.exec(await raw.info('stats'))![1]);
    expect(vals.slice(0, 3)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    expect(vals[100]).toBeUndefined();
    // One MGET (+ the INFO call itself), not 101 GETs.
    expect(after - before).toBeLessThanOrEqual(2);
  });

  it('mget with L1 on promotes each L2 hit with its own remaining TTL, values in order', async () => {
    const a = await cache({ keyPrefix: 'mgp:' });
    const b = await cache({ keyPrefix: 'mgp:', l1: { ttl: '1h' } });
    await a.set('short', 's', { ttl: 2_000 });
    await a.set('long', 'l', { ttl: 600_000 });
    expect(await b.mget(['long', 'none', 'short'])).toEqual(['l', undefined, 's']);
    expect(b.stats().l2.promotions).toBe(2);
    expect(b.l1!.remainingTtl('short')).toBeLessThanOrEqual(2_000);
    expect(b.l1!.remainingTtl('long')).toBeGreaterThan(2_000);
    expect(b.l1!.has('none')).toBe(false);
    // Served from L1 now.
    const hits = b.stats().l1.hits;
    expect(await b.mget(['short', 'long'])).toEqual(['s', 'l']);
    expect(b.stats().l1.hits).toBe(hits + 2);
  });

  it('getOrSet falls back from L1 to L2 before running the factory', async () => {
    const a = await cache({ keyPrefix: 'gos:' });
    const b = await cache({ keyPrefix: 'gos:' });
    await a.set('k', 'from-l2');
    let runs = 0;
    expect(await b.getOrSet('k', () => (runs++, 'factory'))).toBe('from-l2');
    expect(runs).toBe(0);
    expect(await b.getOrSet('other', () => (runs++, 'factory'))).toBe('factory');
    expect(await raw.exists('gos:other')).toBe(1);
  });

  it('has/ttl/delete consult L2', async () => {
    const a = await cache({ keyPrefix: 'h:' });
    const b = await cache({ keyPrefix: 'h:' });
    await a.set('k', 1, { ttl: '10s' });
    expect(await b.has('k')).toBe(true);
    expect(await b.ttl('k')).toBeGreaterThan(9000);
    expect(await b.delete('k')).toBe(1);
    expect(await a.has('k')).toBe(true); // a's L1 still holds it: cross-instance eviction is the bus's job
    expect(await raw.exists('h:k')).toBe(0);
  });

  it('invalidatePattern uses SCAN+UNLINK inside the namespace only', async () => {
    const c = await cache({ keyPrefix: 'ns*:' });
    await raw.set('other:property:1', 'keep');
    await raw.set('nsX:property:1', 'keep'); // the prefix's '*' is literal, not a wildcard
    for (let i = 0; i < 1200; i++) await raw.set(`ns*:property:${i}`, '\u0001tc1:1');
    await c.set('property:a', 1);
    await c.set('lead:1', 1);
    expect(await c.invalidatePattern('property:*')).toBe(1201);
    expect(await raw.exists('other:property:1', 'nsX:property:1', 'ns*:lead:1')).toBe(3);
    expect(c.l1!.has('property:a')).toBe(false);
  });

  it('clear empties the namespace and nothing else (never FLUSHDB)', async () => {
    const c = await cache({ keyPrefix: 'clr:' });
    await raw.set('neighbour', 'keep');
    await c.mset({ a: 1, b: 2 });
    await c.set('t', 1, { tags: ['x'] });
    expect(await c.clear()).toBeGreaterThanOrEqual(3);
    expect(await raw.exists('clr:a', 'clr:b', 'clr:t')).toBe(0);
    expect(await raw.get('neighbour')).toBe('keep');
  });

  it('tags: invalidateTags removes tagged entries from both tiers without scanning', async () => {
    const a = await cache({ keyPrefix: 'tg:' });
    const b = await cache({ keyPrefix: 'tg:' });
    await a.set('p1', 1, { tags: ['property:1'], ttl: '1m' });
    await a.set('p2', 2, { tags: ['property:1', 'tenant:9'] });
    await a.set('p3', 3, { tags: ['tenant:9'] });
    expect(await raw.pttl('tg:__tc:tagz:property:1')).toBeGreaterThan(0);
    expect(await b.invalidateTags(['property:1'])).toBe(2);
    expect(await raw.exists('tg:p1', 'tg:p2', 'tg:p3')).toBe(1);
    expect(await b.get('p3')).toBe(3);
  });

  it('tags: keys popped from a tag set but not deleted (UNLINK refused) go back into the index', async () => {
    const writer = await cache({ keyPrefix: 'tgr:' });
    await writer.set('p1', 1, { tags: ['property:7'], ttl: '1m' });
    await writer.set('p2', 2, { tags: ['property:7'], ttl: '2m' });
    // A user allowed everything but UNLINK: SPOP succeeds, the delete that follows fails.
    await raw.call('ACL', 'SETUSER', 'nounlink', 'on', '>pw', '~*', '&*', '+@all', '-unlink');
    const url = new URL(redis.url);
    const limited = await cache({ keyPrefix: 'tgr:', redis: `redis://nounlink:pw@${url.host}` });
    try {
      expect(await limited.invalidateTags('property:7')).toBe(0);
      expect(limited.stats().l2.errors).toBeGreaterThan(0);
      expect((await raw.zrange('tgr:__tc:tagz:property:7', '0', '-1')).sort()).toEqual(['tgr:p1', 'tgr:p2']);
      const setTtl = await raw.pttl('tgr:__tc:tagz:property:7');
      expect(setTtl).toBeGreaterThan(60_000); // stretched to the longest-lived member again
      // A later invalidation by an allowed client still finds and removes both.
      expect(await writer.invalidateTags('property:7')).toBe(2);
      expect(await raw.exists('tgr:p1', 'tgr:p2')).toBe(0);
    } finally {
      await raw.call('ACL', 'DELUSER', 'nounlink');
    }
  });

  it('tags: the index holds O(live tagged keys); expired members are pruned as it is written, and it expires with its last member', async () => {
    const c = await cache({ keyPrefix: 'tgb:', bus: false });
    const index = 'tgb:__tc:tagz:t';
    await c.set('long', 1, { tags: ['t'], ttl: '1m' });
    for (let i = 0; i < 2_000; i += 500) {
      await c.mset(Array.from({ length: 500 }, (_, j) => [`short:${i + j}`, 1] as const), { ttl: 1_500, tags: ['t'] });
    }
    expect(await raw.zcard(index)).toBe(2_001);
    await waitFor('the short-lived keys expired in Redis', async () => (await raw.exists('tgb:short:0', 'tgb:short:1999')) === 0, 10_000);
    // Each tagged write prunes up to 100 expired members: 25 writes prune all 2,000.
    for (let i = 0; i < 25; i++) await c.set(`fresh:${i}`, 1, { tags: ['t'], ttl: '1m' });
    expect(await raw.zcard(index)).toBe(26);
    // The index never outlives its longest-lived member (1 minute).
    const pttl = await raw.pttl(index);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await c.invalidateTags('t')).toBe(26);
    expect(await raw.exists(index, 'tgb:long', 'tgb:fresh:0')).toBe(0);
  });

  it('tags: an index written by an earlier version (a plain set) is still invalidated', async () => {
    const c = await cache({ keyPrefix: 'tgl:', bus: false });
    await raw.set('tgl:old', '\u0001tc1:1', 'PX', 60_000);
    await raw.sadd('tgl:__tc:tag:t', 'tgl:old');
    await c.set('new', 2, { tags: ['t'] });
    expect(await c.invalidateTags('t')).toBe(2);
    expect(await raw.exists('tgl:old', 'tgl:new', 'tgl:__tc:tag:t', 'tgl:__tc:tagz:t')).toBe(0);
  });

  it('write-behind: L1 at once, L2 on the flush interval, batched', async () => {
    const c = await cache({ keyPrefix: 'wb:', writeBehind: { flushInterval: 50, batchSize: 1000 } });
    await c.set('k', 1);
    expect(await c.get('k')).toBe(1);
    expect(c.stats().writeBehind.queueLength).toBe(1);
    expect(await raw.exists('wb:k')).toBe(0);
    await sleep(150);
    expect(await raw.exists('wb:k')).toBe(1);
    expect(c.stats().writeBehind).toMatchObject({ queueLength: 0, flushed: 1 });
  });

  it('write-behind: nothing queued is lost on close, and a delete is never undone by a late flush', async () => {
    const c = await cache({ keyPrefix: 'wb2:', writeBehind: { flushInterval: '1h', batchSize: 50 } });
    for (let i = 0; i < 120; i++) await c.set(`k${i}`, i);
    await c.set('gone', 1);
    await c.delete('gone');
    await c.close();
    expect(await raw.exists(...Array.from({ length: 120 }, (_, i) => `wb2:k${i}`))).toBe(120);
    expect(await raw.exists('wb2:gone')).toBe(0);
  });

  it('write-behind: the queue is bounded and counts what it drops', async () => {
    const c = await cache({ keyPrefix: 'wb3:', writeBehind: { flushInterval: '1h', batchSize: 10_000, maxQueue: 5 } });
    for (let i = 0; i < 8; i++) await c.set(`k${i}`, i);
    expect(c.stats().writeBehind).toMatchObject({ queueLength: 5, dropped: 3 });
    expect(await c.get('k0')).toBe(0); // still in L1
  });

  it('stats().tiers reports each tier of the stack by name, in order, beside the l1/l2 fields', async () => {
    const a = await cache();
    await a.set('k', { v: 1 });
    const b = new TieredCache({ redis: redis.url, keyPrefix: a.options.keyPrefix, logger: quiet, bus: false });
    caches.push(b);
    await b.connect();
    expect(await b.get('k')).toEqual({ v: 1 }); // L1 miss, L2 hit, copied up
    expect(await b.get('k')).toEqual({ v: 1 }); // L1 hit
    expect(await b.get('absent')).toBeUndefined(); // a miss in both
    const s = b.stats();
    expect(Object.keys(s.tiers)).toEqual(['l1', 'l2']);
    expect(s.tiers.l1).toEqual({ kind: 'memory', level: 0, hits: 1, misses: 2, hitRatio: 1 / 3, promotions: 1, errors: 0, size: 1, ready: true, meanLatencyMs: expect.any(Number) });
    expect(s.tiers.l2).toEqual({
      kind: 'redis',
      level: 1,
      hits: 1,
      misses: 1,
      hitRatio: 0.5,
      promotions: 0,
      errors: 0,
      timeouts: 0,
      ready: true,
      meanLatencyMs: expect.any(Number),
      breaker: { state: 'closed', opened: 0, skipped: 0 },
    });
    expect(s.l1.hits).toBe(s.tiers.l1.hits);
    expect(s.l2.hits).toBe(s.tiers.l2.hits);
    // Lookups are timed 1 in 8: after 64 of each kind, both tiers have a mean.
    for (let i = 0; i < 64; i++) await b.get('k');
    for (let i = 0; i < 64; i++) await b.get(`absent-${i}`);
    const t = b.stats().tiers;
    expect(t.l1.meanLatencyMs).toBeGreaterThan(0);
    expect(t.l2.meanLatencyMs).toBeGreaterThan(0);
    const l1Only = new TieredCache({ logger: quiet });
    caches.push(l1Only);
    expect(Object.keys(l1Only.stats().tiers)).toEqual(['l1']);
  });

  describe('the entry envelope on the wire', () => {
    it("reads entries written in today's format (no envelope) by the default codec and by the json codec", async () => {
      const c = await cache({ keyPrefix: 'envold:' });
      const value = { when: new Date(1000), tags: new Set(['x']), n: 1n };
      // Today's bytes, written by hand (not by the codec) so a change of the codec cannot hide a change here.
      await raw.set('envold:lit', '\u0001tc1:{"a":[1,2]}', 'PX', 60_000);
      await raw.set('envold:tagged', defaultCodec.encode(value, 'tagged'), 'PX', 60_000);
      await raw.set('envold:m1', '\u0001tc1:"one"', 'PX', 60_000);
      await raw.set('envold:m2', '\u0001tc1:2', 'PX', 60_000);
      await raw.set('envold:fill', '\u0001tc1:"from-l2"', 'PX', 60_000);
      expect(await c.get('lit')).toEqual({ a: [1, 2] });
      expect(await c.get('tagged')).toEqual(value);
      expect(await c.mget(['m1', 'm2', 'none'])).toEqual(['one', 2, undefined]);
      let runs = 0;
      expect(await c.getOrSet('fill', () => (runs++, 'factory'))).toBe('from-l2');
      expect(runs).toBe(0);
      expect(c.stats().l2).toMatchObject({ hits: 5, corrupt: 0, promotions: 5 });
      // Left as they are: reading does not rewrite them.
      expect(await raw.get('envold:lit')).toBe('\u0001tc1:{"a":[1,2]}');

      const j = await cache({ keyPrefix: 'envoldj:', codec: 'json', l1: { enabled: false } });
      await raw.set('envoldj:obj', JSON.stringify({ a: [1, 2], s: 'x|y' }), 'PX', 60_000);
      await raw.set('envoldj:str', JSON.stringify('plain'), 'PX', 60_000);
      await raw.set('envoldj:num', '-12', 'PX', 60_000);
      expect(await j.get('obj')).toEqual({ a: [1, 2], s: 'x|y' });
      expect(await j.mget(['str', 'num'])).toEqual(['plain', -12]);
      expect(j.stats().l2).toMatchObject({ hits: 3, corrupt: 0 });
    });

    it('what the engine writes carries the envelope: set, mset, fills and write-behind, each with its write time', async () => {
      const c = await cache({ keyPrefix: 'envnew:' });
      const wb = await cache({ keyPrefix: 'envnew:', writeBehind: { flushInterval: '1h' } });
      const j = await cache({ keyPrefix: 'envnewj:', codec: 'json' });
      const before = Date.now();
      await c.set('set', { a: 1 });
      await c.mset([['mset', new Date(5)]]);
      expect(await c.getOrSet('fill', () => 'filled')).toBe('filled');
      await wb.set('wb', 'behind');
      await wb.flush();
      await j.set('json', { b: [2] });
      const after = Date.now();
      for (const [key, value, codec] of [
        ['envnew:set', { a: 1 }, defaultCodec],
        ['envnew:mset', new Date(5), defaultCodec],
        ['envnew:fill', 'filled', defaultCodec],
        ['envnew:wb', 'behind', defaultCodec],
        ['envnewj:json', { b: [2] }, undefined],
      ] as const) {
        const stored = (await raw.get(key))!;
        expect(stored.startsWith('\u00021:')).toBe(true);
        const e = decodeEntry(stored);
        expect(e.status).toBe('current');
        expect(e.meta!.createdAt).toBeGreaterThanOrEqual(before);
        expect(e.meta!.createdAt).toBeLessThanOrEqual(after);
        expect(e.meta!.staleAt).toBeUndefined();
        expect(codec ? codec.decode(e.payload!) : JSON.parse(e.payload!)).toEqual(value);
      }
      // And another instance reads them back.
      const other = await cache({ keyPrefix: 'envnew:' });
      expect(await other.mget(['set', 'mset', 'fill', 'wb'])).toEqual([{ a: 1 }, new Date(5), 'filled', 'behind']);
    });

    it('a malformed envelope is corrupt: a miss, counted, logged and deleted', async () => {
      const warnings: string[] = [];
      const c = await cache({ keyPrefix: 'envbad:', logger: { warn: (m) => warnings.push(m), error() {} } });
      const created = Date.now().toString(36);
      await raw.set('envbad:noterm', `\u00021:${created}`, 'PX', 60_000);
      await raw.set('envbad:nocreated', '\u00021:|\u0001tc1:1', 'PX', 60_000);
      await raw.set('envbad:digit', `\u00021:${created.toUpperCase()}|\u0001tc1:1`, 'PX', 60_000);
      // A well-formed envelope around a payload the codec rejects is the codec's corrupt, as before.
      await raw.set('envbad:payload', `\u00021:${created}|\u0001tc1:{"truncated":`, 'PX', 60_000);
      expect(await c.get('noterm')).toBeUndefined();
      expect(await c.mget(['nocreated', 'digit'])).toEqual([undefined, undefined]);
      expect(await c.getOrSet('payload', () => 'fresh')).toBe('fresh');
      expect(c.stats().l2.corrupt).toBe(4);
      await waitFor('the corrupt entries are deleted', async () => (await raw.exists('envbad:noterm', 'envbad:nocreated', 'envbad:digit')) === 0);
      expect(warnings.filter((w) => w.includes('undecodable'))).toHaveLength(1);
      expect(warnings.join('\n')).toContain('malformed entry header');
    });

    it('a newer envelope version (or an unknown flag) is a miss that is left in Redis, not corrupt', async () => {
      const warnings: string[] = [];
      const c = await cache({ keyPrefix: 'envv2:', logger: { warn: (m) => warnings.push(m), error() {} } });
      const created = Date.now().toString(36);
      const v2 = `\u00022:${created},whatever-v2-means|\u0001tc1:"from the future"`;
      const flagged = `\u00021:${created},,8|\u0001tc1:"a flag from the future"`;
      await raw.set('envv2:k', v2, 'PX', 60_000);
      await raw.set('envv2:f', flagged, 'PX', 60_000);
      await raw.set('envv2:m', v2, 'PX', 60_000);
      expect(await c.get('k')).toBeUndefined();
      expect(await c.get('f')).toBeUndefined();
      expect(await c.mget(['m', 'k'])).toEqual([undefined, undefined]);
      // A fill gets its value, but its store (SET NX) does not overwrite what the newer instance wrote.
      expect(await c.getOrSet('k', () => 'fresh')).toBe('fresh');
      expect(c.peekLocal('k')).toBeUndefined();
      await sleep(20);
      expect(c.stats().l2.corrupt).toBe(0);
      expect(c.stats().l2.misses).toBe(5);
      expect(await raw.get('envv2:k')).toBe(v2);
      expect(await raw.get('envv2:f')).toBe(flagged);
      expect(await raw.get('envv2:m')).toBe(v2);
      expect(warnings.filter((w) => w.includes('undecodable'))).toHaveLength(0);
      expect(warnings.filter((w) => w.includes('newer format'))).toHaveLength(1);
      // A plain write still replaces it (newest intent wins), in today's envelope.
      await c.set('k', 'mine');
      expect(decodeEntry((await raw.get('envv2:k'))!).status).toBe('current');
    });
  });
});
