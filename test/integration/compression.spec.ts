import { Redis } from 'ioredis';
import { TieredCache, type TieredCacheOptions } from '../../lib';
import { decodeEntry, encodeEntry, ENTRY_BROTLI, ENTRY_GZIP } from '../../lib/core/entry-envelope';
import { EngineProcess } from '../support/engine-process';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * Compressed entries in Redis, among instances that compress and instances that do not (two in this process,
 * one in a Node process of its own): each reads what the others wrote, in either form.
 */

const quiet = { warn() {}, error() {} };
let seq = 0;
/** About 20 KB of JSON that compresses well, as listing pages and scoring payloads do. */
const big = (tag: string) => ({ tag, rows: Array.from({ length: 200 }, (_, i) => ({ id: `FR/75/${i}`, owner: `owner${i % 9}@agency.fr`, price: 250_000 + i * 10, rooms: i % 6 })) });

describe('compression in the Redis tier', () => {
  let server: RedisServer;
  let raw: Redis;
  const caches: TieredCache[] = [];
  const procs: EngineProcess[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    raw?.disconnect();
    await server?.stop();
  });

  function options(prefix: string, extra: Partial<TieredCacheOptions> = {}): TieredCacheOptions {
    return { keyPrefix: prefix, redis: server.url, bus: false, ...extra };
  }

  async function cache(prefix: string, extra: Partial<TieredCacheOptions> = {}): Promise<TieredCache> {
    const c = new TieredCache({ logger: quiet, ...options(prefix, extra) });
    caches.push(c);
    expect(await c.connect()).toBe(true);
    return c;
  }

  /** The flags of what Redis holds under `key` (0: stored plain). */
  async function flagsOf(prefix: string, key: string): Promise<number> {
    const v = await raw.get(prefix + key);
    if (v === null) throw new Error(`nothing under ${prefix + key}`);
    const d = decodeEntry(v);
    if (d.status !== 'current') throw new Error(d.status);
    return d.meta.flags ?? 0;
  }

  it('an instance that compresses and one that does not read each other\'s entries; small ones stay plain', async () => {
    const p = `cz${++seq}:`;
    const zipping = await cache(p, { l1: { enabled: false }, l2: { compression: { algorithm: 'gzip', threshold: '1kb' } } });
    const plain = await cache(p, { l1: { enabled: false } });
    await zipping.set('z', big('z'));
    await zipping.set('small', { a: 1 });
    await plain.set('p', big('p'));
    expect(await flagsOf(p, 'z')).toBe(ENTRY_GZIP);
    expect(await flagsOf(p, 'small')).toBe(0);
    expect(await flagsOf(p, 'p')).toBe(0);
    expect(await plain.get('z')).toEqual(big('z'));
    expect(await plain.get('small')).toEqual({ a: 1 });
    expect(await zipping.get('p')).toEqual(big('p'));
    // What Redis holds is much smaller than the serialized value.
    expect(await raw.strlen(p + 'z')).toBeLessThan((await raw.strlen(p + 'p')) / 4);
    expect(zipping.stats().tiers.l2.compression).toMatchObject({ entries: 1 });
    expect(plain.stats().tiers.l2.compression).toBeUndefined();
  });

  it('every write path compresses: set with tags, mset, a getOrSet fill, write-behind', async () => {
    const p = `cz${++seq}:`;
    const c = await cache(p, { l2: { compression: true } });
    await c.set('tagged', big('t'), { tags: ['listing'] });
    await c.mset([
      ['m1', big('m1')],
      ['m2', big('m2')],
    ]);
    expect(await c.getOrSet('filled', async () => big('f'))).toEqual(big('f'));
    for (const k of ['tagged', 'm1', 'm2']) expect(await flagsOf(p, k)).toBe(ENTRY_BROTLI);
    await waitFor('the fill stored', async () => (await raw.exists(p + 'filled')) === 1);
    expect(await flagsOf(p, 'filled')).toBe(ENTRY_BROTLI);
    // A compressed tagged entry goes with its tag like any other.
    await c.invalidateTags(['listing']);
    expect(await raw.exists(p + 'tagged')).toBe(0);

    const behind = await cache(`${p}wb:`, { l2: { compression: true }, writeBehind: { flushInterval: '10ms' } });
    await behind.set('q', big('q'));
    await behind.flush();
    expect(await flagsOf(`${p}wb:`, 'q')).toBe(ENTRY_BROTLI);
  });

  it('an instance in another process reads the compressed entries and writes plain ones this one reads', async () => {
    const p = `cz${++seq}:`;
    const zipping = await cache(p, { l1: { enabled: false }, l2: { compression: { algorithm: 'brotli' } } });
    const other = await EngineProcess.start(options(p, { l1: { enabled: false } }));
    procs.push(other);
    expect(await other.call('connect')).toBe(true);
    await zipping.set('from-here', big('here'));
    expect(await flagsOf(p, 'from-here')).toBe(ENTRY_BROTLI);
    expect(await other.call('get', 'from-here')).toEqual(big('here'));
    await other.call('set', 'from-there', big('there'));
    expect(await flagsOf(p, 'from-there')).toBe(0);
    expect(await zipping.get('from-there')).toEqual(big('there'));
  });

  it('maxValueBytes applies to the uncompressed value: one too big is refused before anything is written, however well it compresses', async () => {
    const p = `cz${++seq}:`;
    const c = await cache(p, { maxValueBytes: 4096, l2: { compression: true } });
    await expect(c.set('huge', 'a'.repeat(10_000))).rejects.toThrow(/exceeds maxValueBytes 4096/);
    expect(await raw.exists(p + 'huge')).toBe(0);
    expect(c.peekLocal('huge')).toBeUndefined();
  });

  it('a compressed entry that does not decompress, or expands past maxValueBytes, is a miss: counted corrupt and deleted', async () => {
    const p = `cz${++seq}:`;
    const writer = await cache(p, { l2: { compression: true } });
    const reader = await cache(p, { l1: { enabled: false }, maxValueBytes: 8 * 1024 });
    await raw.set(p + 'garbage', encodeEntry('bm90IGJyb3RsaQ==', { createdAt: Date.now(), flags: ENTRY_BROTLI }), 'PX', 60_000);
    // 40 KB when decompressed, a few hundred bytes stored: past the reader's limit, within the writer's.
    await writer.set('bomb', 'x'.repeat(40_000));
    expect(await raw.strlen(p + 'bomb')).toBeLessThan(1_000);
    expect(await reader.get('garbage')).toBeUndefined();
    expect(await reader.get('bomb')).toBeUndefined();
    expect(reader.stats().l2.corrupt).toBe(2);
    await waitFor('the corrupt entries deleted', async () => (await raw.exists(p + 'garbage', p + 'bomb')) === 0);
    // A factory fills the key again, and the next read finds the fresh value.
    expect(await reader.getOrSet('bomb', async () => 'fresh')).toBe('fresh');
    expect(await reader.get('bomb')).toBe('fresh');
  });
});
