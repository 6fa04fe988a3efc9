import { isFenced, isReplayable, TIER_FAILED, type FencedTier, type FillMark, type Tier, type TierEntry, type TierFailed, type TierRemoval, type TierWrite } from '../../lib/core/tiers/tier';
import { waitFor } from '../support/wait-for';

/**
 * The contract every tier of the cache stack keeps, as a suite each implementation runs (see
 * test/integration/tier-contract.spec.ts). It is written against lib/core/tiers/tier.ts alone: it is the spec,
 * and knows no implementation. What only some tiers can do is declared by the tier (`capabilities`) or by the
 * setup (the optional fields below), and the suite then asserts exactly what was declared.
 */
export interface TierContractSetup<V> {
  /** A fresh tier, isolated from every other one create() returned (a fresh key prefix for a shared store), ready to use. */
  create(): Promise<Tier<V>>;
  /** A value to store: distinct for distinct `i` (an object for a memory tier, an encoded payload for a remote one). */
  sample(i: number): V;
  /** Releases what create() (or peer()) made; may be called on a tier that is closed already. */
  destroy(tier: Tier<V>): Promise<void> | void;
  /**
   * How the tier's tag index treats a key whose latest write no longer carries a tag:
   * - 'exact': a key belongs to the tags of its latest write only; deleteTags leaves it alone once re-written without the tag.
   * - 'sticky': the index keeps naming the key (until the tagged write's own TTL is over), so deleteTags still removes the
   *   key's newer, untagged value: over-invalidation, never a stale read.
   */
  tagIndex: 'exact' | 'sticky';
  /**
   * What the tier does once closed (every method must still resolve, never throw or reject):
   * - 'fails': it cannot be asked any more: TIER_FAILED, removals `complete: false`, health not ok, not ready (a remote tier).
   * - 'empty': it answers as an empty tier (what it held is gone).
   */
  afterClose: 'fails' | 'empty';
  /** Required when capabilities.byteBound: the bound (sum of writes' `bytes`) create() gives each tier. */
  maxBytes?: number;
  /** Required when capabilities.shared: another instance over the same store and namespace as `tier` (released through destroy). */
  peer?(tier: Tier<V>): Promise<Tier<V>>;
}

const CAPABILITY_FIELDS = ['byteBound', 'fences', 'patterns', 'persistent', 'shared', 'tags'];
const LONG = 60_000;

/** The result, after checking that the tier could be asked. */
function asked<T>(r: T | TierFailed): T {
  expect(r).not.toBe(TIER_FAILED);
  return r as T;
}

export function describeTierContract<V>(title: string, setup: TierContractSetup<V>): void {
  describe(`Tier contract: ${title}`, () => {
    let tier: Tier<V>;
    const extra: Array<Tier<V>> = [];

    beforeEach(async () => {
      tier = await setup.create();
    });
    afterEach(async () => {
      for (const t of extra.splice(0)) await setup.destroy(t);
      await setup.destroy(tier);
    });

    async function another(): Promise<Tier<V>> {
      const t = await setup.create();
      extra.push(t);
      return t;
    }

    const w = (key: string, i: number, ttl = LONG, tags?: readonly string[]): TierWrite<V> => ({ key, value: setup.sample(i), ttl, ...(tags ? { tags } : {}) });

    async function put(t: Tier<V>, ...writes: Array<TierWrite<V>>): Promise<void> {
      for (const x of writes) expect(await t.setEntry(x)).toBe(true);
    }

    async function value(t: Tier<V>, key: string): Promise<V | undefined> {
      return asked(await t.getEntry(key))?.value;
    }

    /** Which of `keys` are present (in order). */
    async function present(t: Tier<V>, keys: readonly string[]): Promise<string[]> {
      const rows = asked(await t.getEntries(keys));
      expect(rows).toHaveLength(keys.length);
      return keys.filter((_, i) => rows[i] !== undefined);
    }

    /** Writes `keys` (untagged), deletes `glob`, and checks that exactly `expected` went and the rest stayed. */
    async function expectPattern(glob: string, keys: readonly string[], expected: readonly string[]): Promise<void> {
      expect(asked(await tier.setEntries(keys.map((k, i) => w(k, i))))).toBe(true);
      expect(await present(tier, keys)).toEqual(keys);
      const r: TierRemoval = await tier.deletePattern(glob);
      expect({ glob, ...r }).toEqual({ glob, removed: expected.length, complete: true });
      expect({ glob, left: await present(tier, keys) }).toEqual({ glob, left: keys.filter((k) => !expected.includes(k)) });
    }

    describe('identity and state', () => {
      it('has a name, a kind, and capabilities: an object of exactly six booleans', () => {
        expect(typeof tier.name).toBe('string');
        expect(tier.name.length).toBeGreaterThan(0);
        expect(['memory', 'redis', 'postgres']).toContain(tier.kind);
        const caps = tier.capabilities as unknown as Record<string, unknown>;
        expect(typeof caps).toBe('object');
        expect(Object.keys(caps).sort()).toEqual(CAPABILITY_FIELDS);
        for (const f of CAPABILITY_FIELDS) expect({ [f]: typeof caps[f] }).toEqual({ [f]: 'boolean' });
        if (tier.capabilities.shared) expect(typeof setup.peer).toBe('function');
        if (tier.capabilities.byteBound) expect(typeof setup.maxBytes).toBe('number');
      });

      it('is ready after setup, and healthy', async () => {
        expect(tier.ready).toBe(true);
        const h = await tier.health();
        expect(h.ok).toBe(true);
        expect(typeof h.status).toBe('string');
      });
    });

    describe('reads and writes', () => {
      it('an absent key: getEntry and ttlOf give undefined, getEntries a hole', async () => {
        expect(await tier.getEntry('absent')).toBeUndefined();
        expect(await tier.ttlOf('absent')).toBeUndefined();
        expect(await tier.getEntries(['absent', 'also-absent'])).toEqual([undefined, undefined]);
      });

      it('setEntry then getEntry: the value, and a remaining ttl in (0, ttl]', async () => {
        expect(await tier.setEntry(w('k', 1, 10_000))).toBe(true);
        const e = asked(await tier.getEntry('k')) as TierEntry<V>;
        expect(e.value).toEqual(setup.sample(1));
        expect(e.ttl).toBeGreaterThan(0);
        expect(e.ttl).toBeLessThanOrEqual(10_000);
        const t = asked(await tier.ttlOf('k')) as number;
        expect(t).toBeGreaterThan(0);
        expect(t).toBeLessThanOrEqual(10_000);
      });

      it('an overwrite replaces the value and the lifetime', async () => {
        await put(tier, w('k', 1, LONG));
        await put(tier, w('k', 2, 5_000));
        const e = asked(await tier.getEntry('k')) as TierEntry<V>;
        expect(e.value).toEqual(setup.sample(2));
        expect(e.value).not.toEqual(setup.sample(1));
        expect(e.ttl).toBeGreaterThan(0);
        expect(e.ttl).toBeLessThanOrEqual(5_000);
        expect(asked(await tier.ttlOf('k'))).toBeLessThanOrEqual(5_000);
      });

      it('getEntries answers in the order asked, with holes for absent keys (and repeats)', async () => {
        await put(tier, w('a', 1), w('c', 3, 7_000));
        const rows = asked(await tier.getEntries(['c', 'b', 'a', 'missing', 'c']));
        expect(rows.map((r) => r?.value)).toEqual([setup.sample(3), undefined, setup.sample(1), undefined, setup.sample(3)]);
        expect(rows[0]!.ttl).toBeGreaterThan(0);
        expect(rows[0]!.ttl).toBeLessThanOrEqual(7_000);
        expect(rows[2]!.ttl).toBeLessThanOrEqual(LONG);
        expect(await tier.getEntries([])).toEqual([]);
      });

      it('setEntries writes every entry, each with its own lifetime', async () => {
        const writes = [w('x', 1, 3_000), w('y', 2, LONG), w('z', 3, 9_000)];
        expect(await tier.setEntries(writes)).toBe(true);
        const rows = asked(await tier.getEntries(['x', 'y', 'z']));
        expect(rows.map((r) => r?.value)).toEqual([setup.sample(1), setup.sample(2), setup.sample(3)]);
        writes.forEach((x, i) => {
          expect(rows[i]!.ttl).toBeGreaterThan(0);
          expect(rows[i]!.ttl).toBeLessThanOrEqual(x.ttl);
        });
        expect(asked(await tier.ttlOf('x'))).toBeLessThanOrEqual(3_000);
        expect(await tier.setEntries([])).toBe(true);
      });

      it('deleteKeys resolves to how many were present; they become absent, the others stay', async () => {
        await put(tier, w('a', 1), w('b', 2), w('c', 3), w('keep', 4));
        expect(await tier.deleteKeys(['a', 'b', 'missing', 'c', 'a'])).toBe(3);
        expect(await present(tier, ['a', 'b', 'c', 'keep'])).toEqual(['keep']);
        expect(await tier.ttlOf('a')).toBeUndefined();
        expect(await tier.deleteKeys(['a', 'b'])).toBe(0);
        expect(await tier.deleteKeys([])).toBe(0);
        expect(await value(tier, 'keep')).toEqual(setup.sample(4));
      });

      it('ttlOf: undefined when absent, in (0, ttl] when present, undefined again once deleted', async () => {
        expect(await tier.ttlOf('k')).toBeUndefined();
        await put(tier, w('k', 1, 4_000));
        const t = asked(await tier.ttlOf('k')) as number;
        expect(t).toBeGreaterThan(0);
        expect(t).toBeLessThanOrEqual(4_000);
        expect(await tier.deleteKeys(['k'])).toBe(1);
        expect(await tier.ttlOf('k')).toBeUndefined();
      });

      it('an entry past its TTL is absent to every method; a longer-lived one is not', async () => {
        await put(tier, w('short', 1, 40), w('tagged-short', 2, 40, ['exp']), w('long', 3, LONG));
        await waitFor('the 40 ms entries to expire', async () => (await tier.getEntry('short')) === undefined && (await tier.getEntry('tagged-short')) === undefined);
        expect(await tier.ttlOf('short')).toBeUndefined();
        expect(asked(await tier.getEntries(['short', 'long'])).map((e) => e?.value)).toEqual([undefined, setup.sample(3)]);
        // An expired entry is no entry: not counted by any delete.
        expect(await tier.deleteKeys(['short'])).toBe(0);
        expect(await tier.deleteTags(['exp'])).toEqual({ removed: 0, complete: true });
        expect(await tier.deletePattern('*short')).toEqual({ removed: 0, complete: true });
        expect(await value(tier, 'long')).toEqual(setup.sample(3));
      });

      it('a key written again after expiring is a fresh entry', async () => {
        await put(tier, w('k', 1, 30));
        await waitFor('k to expire', async () => (await tier.getEntry('k')) === undefined);
        await put(tier, w('k', 2, LONG));
        expect(await value(tier, 'k')).toEqual(setup.sample(2));
      });
    });

    describe('deletePattern (Redis glob syntax)', () => {
      it('`*` removes every entry, reports complete, and a second walk finds nothing', async () => {
        const keys = Array.from({ length: 25 }, (_, i) => `all:${i}`).concat(['x', 'y:z', 'ü']);
        await expectPattern('*', keys, keys);
        expect(await tier.deletePattern('*')).toEqual({ removed: 0, complete: true });
      });

      it('a prefix glob removes exactly the keys with that prefix', async () => {
        const keys = ['user:1', 'user:2', 'user:1:profile', 'user:', 'users:1', 'user', 'account:user:1', 'User:1'];
        await expectPattern('user:*', keys, ['user:1', 'user:2', 'user:1:profile', 'user:']);
      });

      it('`*` inside and at the start of a glob', async () => {
        const keys = ['order:1:line', 'order:22:line', 'order::line', 'order:1:lines', 'order:1:line:x', 'xorder:1:line'];
        await expectPattern('order:*:line', keys, ['order:1:line', 'order:22:line', 'order::line']);
        await expectPattern('*:line:x', ['order:1:line:x', 'a:line:x', 'line:x'], ['order:1:line:x', 'a:line:x']);
      });

      it('`?` matches exactly one character', async () => {
        await expectPattern('item?', ['item1', 'itemX', 'item', 'item10', 'xitem1'], ['item1', 'itemX']);
      });

      it('`[abc]`, ranges and negated classes match one character of the set', async () => {
        await expectPattern('k[abc]', ['ka', 'kb', 'kc', 'kd', 'kab', 'k'], ['ka', 'kb', 'kc']);
        await expectPattern('r[0-2]', ['r0', 'r1', 'r2', 'r3', 'ra'], ['r0', 'r1', 'r2']);
        await expectPattern('n[^a]', ['na', 'nb', 'n1', 'nab'], ['nb', 'n1']);
      });

      it('escaped specials (`\\*`, `\\?`, `\\[`) match themselves only', async () => {
        const keys = ['a*b', 'axb', 'a?b', 'a[b]', 'ab', 'a\\b'];
        await expectPattern('a\\*b', keys, ['a*b']);
        await expectPattern('a\\?b', ['a?b', 'axb'], ['a?b']);
        await expectPattern('a\\[b\\]', ['a[b]', 'ab', 'a]'], ['a[b]']);
        await expectPattern('star\\*:*', ['star*:1', 'star*:', 'starx:1', 'star:1'], ['star*:1', 'star*:']);
      });

      it('a glob that matches nothing removes nothing, and is complete', async () => {
        await expectPattern('nomatch:*', ['a', 'b:c'], []);
      });

      it('keys written with tags are removed by pattern like any other; only entries are counted, and tags keep working for the rest', async () => {
        await put(tier, w('a:1', 1, LONG, ['grp:1']), w('b', 2, LONG, ['grp:1']), w('c:1', 3, LONG, ['other']));
        // The glob matches the tag's name too: a tier's own bookkeeping for 'grp:1' is not an entry.
        expect(await tier.deletePattern('*:1')).toEqual({ removed: 2, complete: true });
        expect(await present(tier, ['a:1', 'b', 'c:1'])).toEqual(['b']);
        expect(await tier.deleteTags(['grp:1'])).toEqual({ removed: 1, complete: true });
        expect(await present(tier, ['b'])).toEqual([]);
        await put(tier, w('d', 4, LONG, ['t']), w('e', 5, LONG, ['t']));
        expect(await tier.deletePattern('*')).toEqual({ removed: 2, complete: true });
      });
    });

    describe('deleteTags', () => {
      it('removes every key tagged with any of the tags, counting each once, and no other key', async () => {
        await put(tier, w('a', 1, LONG, ['t1']), w('b', 2, LONG, ['t2']), w('c', 3, LONG, ['t1', 't2']), w('d', 4), w('e', 5, LONG, ['t3']));
        expect(await tier.deleteTags(['t1', 't2'])).toEqual({ removed: 3, complete: true });
        expect(await present(tier, ['a', 'b', 'c', 'd', 'e'])).toEqual(['d', 'e']);
        expect(await tier.deleteTags(['t1'])).toEqual({ removed: 0, complete: true });
        expect(await tier.deleteTags(['t3', 't3'])).toEqual({ removed: 1, complete: true });
        expect(await present(tier, ['d', 'e'])).toEqual(['d']);
      });

      it('no tags, or an unknown tag, removes nothing', async () => {
        await put(tier, w('a', 1, LONG, ['t']));
        expect(await tier.deleteTags([])).toEqual({ removed: 0, complete: true });
        expect(await tier.deleteTags(['unknown'])).toEqual({ removed: 0, complete: true });
        expect(await present(tier, ['a'])).toEqual(['a']);
      });

      it('tags given through setEntries are indexed', async () => {
        expect(await tier.setEntries([w('a', 1, LONG, ['g']), w('b', 2), w('c', 3, LONG, ['g', 'h'])])).toBe(true);
        expect(await tier.deleteTags(['g'])).toEqual({ removed: 2, complete: true });
        expect(await present(tier, ['a', 'b', 'c'])).toEqual(['b']);
      });

      it('a key deleted and never written again is not counted', async () => {
        await put(tier, w('a', 1, LONG, ['t']), w('b', 2, LONG, ['t']));
        expect(await tier.deleteKeys(['a'])).toBe(1);
        expect(await tier.deleteTags(['t'])).toEqual({ removed: 1, complete: true });
      });

      it('a key re-written with the tag again is removed by it', async () => {
        await put(tier, w('a', 1, LONG, ['t']));
        await put(tier, w('a', 2, LONG, ['t']));
        expect(await tier.deleteTags(['t'])).toEqual({ removed: 1, complete: true });
        expect(await present(tier, ['a'])).toEqual([]);
      });

      const stickyNote = setup.tagIndex === 'exact' ? 'is no longer removed by that tag' : 'is still removed by that tag (declared: sticky index)';

      it(`a key re-written (another value) without the tag ${stickyNote}`, async () => {
        await put(tier, w('a', 1, LONG, ['t']), w('b', 2, LONG, ['t']));
        await put(tier, w('a', 3, LONG));
        await put(tier, w('b', 4, LONG, ['u']));
        const r = await tier.deleteTags(['t']);
        if (setup.tagIndex === 'exact') {
          expect(r).toEqual({ removed: 0, complete: true });
          expect(await present(tier, ['a', 'b'])).toEqual(['a', 'b']);
        } else {
          expect(r).toEqual({ removed: 2, complete: true });
          expect(await present(tier, ['a', 'b'])).toEqual([]);
        }
        // The tags of the latest write do work.
        await put(tier, w('b', 5, LONG, ['u']));
        expect(await tier.deleteTags(['u'])).toEqual({ removed: 1, complete: true });
      });

      it(`a key re-written with the very same value without the tag ${stickyNote}`, async () => {
        const v = setup.sample(1);
        expect(await tier.setEntry({ key: 'a', value: v, ttl: LONG, tags: ['t'] })).toBe(true);
        expect(await tier.setEntry({ key: 'a', value: v, ttl: LONG, tags: ['u'] })).toBe(true);
        const r = await tier.deleteTags(['t']);
        expect(r).toEqual({ removed: setup.tagIndex === 'exact' ? 0 : 1, complete: true });
        if (setup.tagIndex === 'exact') {
          expect(await present(tier, ['a'])).toEqual(['a']);
          expect(await tier.deleteTags(['u'])).toEqual({ removed: 1, complete: true });
        }
        expect(await present(tier, ['a'])).toEqual([]);
      });
    });

    describe('keys and tags of any text', () => {
      const odd = ['ключ:1', '键/值', '🔑 emoji', 'with space', 'a:b:c', 'path/to/x', '{user}:1', '{user}:2', 'brace{}', 'tab\tand\nnewline', 'é'];

      it('unicode, spaces, `:`, `/` and `{}` braces round-trip through every method', async () => {
        expect(await tier.setEntries(odd.map((k, i) => w(k, i, LONG, ['tag:ü/{x}'])))).toBe(true);
        const rows = asked(await tier.getEntries(odd));
        expect(rows.map((r) => r?.value)).toEqual(odd.map((_, i) => setup.sample(i)));
        for (const [i, k] of odd.entries()) {
          expect({ k, v: await value(tier, k) }).toEqual({ k, v: setup.sample(i) });
          expect(asked(await tier.ttlOf(k))).toBeGreaterThan(0);
        }
        expect(await tier.deleteKeys(['ключ:1', '🔑 emoji'])).toBe(2);
        expect(await tier.deletePattern('{user}:*')).toEqual({ removed: 2, complete: true });
        expect(await tier.deleteTags(['tag:ü/{x}'])).toEqual({ removed: odd.length - 4, complete: true });
        expect(await present(tier, odd)).toEqual([]);
      });

      it('globs match UTF-8 bytes, as Redis does: `?` is one byte, not one character', async () => {
        await expectPattern('ключ:*', ['ключ:1', 'ключ:2', 'ключи', 'клю'], ['ключ:1', 'ключ:2']);
        // 'é' is two bytes, 'e' one, '€' three.
        await expectPattern('x?', ['xe', 'xé', 'x€'], ['xe']);
        await expectPattern('y??', ['ye', 'yé', 'y€'], ['yé']);
        await expectPattern('z???', ['zé', 'z€'], ['z€']);
      });
    });

    describe('isolation and sharing', () => {
      it('tiers from separate create() calls do not see each other', async () => {
        const other = await another();
        await put(tier, w('k', 1, LONG, ['t']), w('only-here', 2));
        await put(other, w('k', 3, LONG, ['t']));
        expect(await value(other, 'k')).toEqual(setup.sample(3));
        expect(await other.getEntry('only-here')).toBeUndefined();
        expect(await tier.deletePattern('*')).toEqual({ removed: 2, complete: true });
        expect(await value(other, 'k')).toEqual(setup.sample(3));
        expect(await other.deleteTags(['t'])).toEqual({ removed: 1, complete: true });
      });

      it('a shared tier: another instance over the same store sees writes and deletes (a local one: declared not shared)', async () => {
        if (!tier.capabilities.shared) {
          expect(setup.peer).toBeUndefined();
          return;
        }
        const peer = await setup.peer!(tier);
        extra.push(peer);
        await put(tier, w('k', 1, LONG, ['t']), w('p:1', 2));
        expect(await value(peer, 'k')).toEqual(setup.sample(1));
        expect(await peer.deleteTags(['t'])).toEqual({ removed: 1, complete: true });
        expect(await tier.getEntry('k')).toBeUndefined();
        expect(await peer.deletePattern('p:*')).toEqual({ removed: 1, complete: true });
        expect(await tier.getEntry('p:1')).toBeUndefined();
      });
    });

    describe('byte bound', () => {
      it('a byte-bound tier refuses a write larger than its bound (and drops the old value); others ignore `bytes`', async () => {
        if (!tier.capabilities.byteBound) {
          expect(await tier.setEntry({ ...w('big', 1), bytes: 1e12 })).toBe(true);
          expect(await value(tier, 'big')).toEqual(setup.sample(1));
          return;
        }
        const max = setup.maxBytes as number;
        expect(await tier.setEntry({ ...w('fits', 1), bytes: Math.floor(max / 2) })).toBe(true);
        expect(await tier.setEntry({ ...w('big', 2), bytes: max + 1 })).toBe(false);
        expect(await tier.getEntry('big')).toBeUndefined();
        expect(await value(tier, 'fits')).toEqual(setup.sample(1));
        // An overwrite the tier cannot hold must not leave the previous value readable.
        expect(await tier.setEntry({ ...w('fits', 3), bytes: max + 1 })).toBe(false);
        expect(await tier.getEntry('fits')).toBeUndefined();
        expect(await tier.setEntries([{ ...w('a', 4), bytes: 1 }, { ...w('b', 5), bytes: max * 2 }])).toBe(false);
        expect(await present(tier, ['a', 'b'])).toEqual(['a']);
      });
    });

    describe('close', () => {
      it(`can be closed (twice); afterwards no method throws or rejects, and the tier ${setup.afterClose === 'fails' ? 'answers TIER_FAILED' : 'answers as an empty tier'}`, async () => {
        await put(tier, w('k', 1, LONG, ['t']));
        await tier.close();
        await tier.close();
        const get = await tier.getEntry('k');
        const gets = await tier.getEntries(['k', 'x']);
        const set = await tier.setEntry(w('n', 2));
        const sets = await tier.setEntries([w('n2', 3)]);
        const del = await tier.deleteKeys(['k']);
        const ttl = await tier.ttlOf('k');
        const pattern = await tier.deletePattern('*');
        const tags = await tier.deleteTags(['t']);
        const health = await tier.health();
        expect(typeof health.ok).toBe('boolean');
        if (setup.afterClose === 'fails') {
          expect({ get, gets, set, sets, del, ttl }).toEqual({ get: TIER_FAILED, gets: TIER_FAILED, set: TIER_FAILED, sets: TIER_FAILED, del: TIER_FAILED, ttl: TIER_FAILED });
          expect(pattern.complete).toBe(false);
          expect(tags.complete).toBe(false);
          expect(pattern.removed + tags.removed).toBe(0);
          expect(health.ok).toBe(false);
          expect(tier.ready).toBe(false);
        } else {
          expect({ get, gets, del, ttl }).toEqual({ get: undefined, gets: [undefined, undefined], del: 0, ttl: undefined });
          expect(typeof set).toBe('boolean');
          expect(typeof sets).toBe('boolean');
          expect(pattern.complete).toBe(true);
          expect(tags).toEqual({ removed: 0, complete: true });
        }
      });
    });
    describe('fenced fills', () => {
      const RACE_ROUNDS = 100;

      /** The tier as a fenced one, or undefined when it declares no fences; a claim it does not back fails here. */
      function fenced(t: Tier<V>): (Tier<V> & FencedTier<V>) | undefined {
        if (!t.capabilities.fences) return undefined;
        if (!isFenced(t)) throw new Error(`${t.name} (${t.kind}) declares capabilities.fences but does not implement readFenced and storeFenced`);
        return t;
      }

      /** Another instance over the same store (the tier itself when it is not shared): where invalidations come from. */
      async function other(): Promise<Tier<V>> {
        if (!tier.capabilities.shared) return tier;
        const p = await setup.peer!(tier);
        extra.push(p);
        return p;
      }

      /** A fill's read of `key`, which must find it missing. */
      async function readMissing(f: FencedTier<V>, key: string): Promise<FillMark> {
        const r = asked(await f.readFenced(key));
        expect(r.entry).toBeUndefined();
        expect(typeof r.mark.fence).toBe('string');
        expect(typeof r.mark.generation).toBe('string');
        return r.mark;
      }

      it('a tier without fences does not pass for a fenced one; a tier that declares them implements them', () => {
        if (!tier.capabilities.fences) {
          expect(isFenced(tier)).toBe(false);
          return;
        }
        expect(fenced(tier)).toBe(tier);
      });

      it('a miss, then storeFenced: stored, readable, and indexed by its tags', async () => {
        const f = fenced(tier);
        if (!f) return;
        const mark = await readMissing(f, 'k');
        expect(await f.storeFenced(w('k', 1, 10_000, ['t']), mark)).toBe(true);
        const e = asked(await tier.getEntry('k')) as TierEntry<V>;
        expect(e.value).toEqual(setup.sample(1));
        expect(e.ttl).toBeGreaterThan(0);
        expect(e.ttl).toBeLessThanOrEqual(10_000);
        expect(await tier.deleteTags(['t'])).toEqual({ removed: 1, complete: true });
        expect(await tier.getEntry('k')).toBeUndefined();
      });

      it("another instance's deleteKeys of the key between the read and the store: refused, the key stays absent", async () => {
        const f = fenced(tier);
        if (!f) return;
        const peer = await other();
        const mark = await readMissing(f, 'k');
        expect(await peer.deleteKeys(['k'])).toBe(0);
        expect(await f.storeFenced(w('k', 1), mark)).toBe(false);
        expect(await tier.getEntry('k')).toBeUndefined();
        // A present key deleted in between, too (the read of it found it gone already).
        await put(tier, w('j', 2));
        expect(await tier.deleteKeys(['j'])).toBe(1);
        const markJ = await readMissing(f, 'j');
        await put(peer, w('j', 3));
        expect(await peer.deleteKeys(['j'])).toBe(1);
        expect(await f.storeFenced(w('j', 4), markJ)).toBe(false);
        expect(await tier.getEntry('j')).toBeUndefined();
      });

      it("another instance's deletePattern or deleteTags, even of unrelated keys, between the read and the store: refused (the generation moved)", async () => {
        const f = fenced(tier);
        if (!f) return;
        const peer = await other();
        await put(tier, w('unrelated:1', 1, LONG, ['other']), w('unrelated:2', 2, LONG, ['other']));
        const invalidations: Array<[string, () => Promise<TierRemoval>, number]> = [
          ['deletePattern of an unrelated key', () => peer.deletePattern('unrelated:1'), 1],
          ['deletePattern matching nothing', () => peer.deletePattern('nomatch:*'), 0],
          ['deleteTags of an unrelated tag', () => Promise.resolve(peer.deleteTags(['other'])), 1],
          ['deleteTags of an unknown tag', () => Promise.resolve(peer.deleteTags(['unknown'])), 0],
        ];
        for (const [what, invalidate, removed] of invalidations) {
          const mark = await readMissing(f, 'k');
          expect({ what, r: await invalidate() }).toEqual({ what, r: { removed, complete: true } });
          expect({ what, stored: await f.storeFenced(w('k', 1, LONG, ['t']), mark) }).toEqual({ what, stored: false });
          expect({ what, present: await present(tier, ['k']) }).toEqual({ what, present: [] });
        }
      });

      it("another instance's write of the key between the read and the store: refused, that write stays", async () => {
        const f = fenced(tier);
        if (!f) return;
        const peer = await other();
        const mark = await readMissing(f, 'k');
        await put(peer, w('k', 2));
        expect(await f.storeFenced(w('k', 1), mark)).toBe(false);
        expect(await value(tier, 'k')).toEqual(setup.sample(2));
      });

      it('a read made after an invalidation stores: it saw the tombstone, the moved generation', async () => {
        const f = fenced(tier);
        if (!f) return;
        const peer = await other();
        await put(tier, w('k', 1, LONG, ['t']));
        expect(await peer.deleteKeys(['k'])).toBe(1);
        expect(await f.storeFenced(w('k', 2), await readMissing(f, 'k'))).toBe(true);
        expect(await value(tier, 'k')).toEqual(setup.sample(2));
        expect(await peer.deletePattern('k')).toEqual({ removed: 1, complete: true });
        expect(await f.storeFenced(w('k', 3, LONG, ['t']), await readMissing(f, 'k'))).toBe(true);
        expect(await value(peer, 'k')).toEqual(setup.sample(3));
        expect(await peer.deleteTags(['t'])).toEqual({ removed: 1, complete: true });
        expect(await f.storeFenced(w('k', 4), await readMissing(f, 'k'))).toBe(true);
        expect(await value(peer, 'k')).toEqual(setup.sample(4));
        // Twice with one read: the second finds the key present.
        expect(await tier.deleteKeys(['k'])).toBe(1);
        const mark = await readMissing(f, 'k');
        expect(await f.storeFenced(w('k', 5), mark)).toBe(true);
        expect(await f.storeFenced(w('k', 6), mark)).toBe(false);
        expect(await value(tier, 'k')).toEqual(setup.sample(5));
      });

      it('a read that found the entry expired stores', async () => {
        const f = fenced(tier);
        if (!f) return;
        await put(tier, w('k', 1, 40));
        await waitFor('k to expire', async () => (await tier.getEntry('k')) === undefined);
        // An entry in its last millisecond reads as missing while the server still holds the key, and a store
        // over a key that is still there is refused (safe: the fill is returned, not stored). Once the server
        // has dropped it, the store must go through: that is what this asserts, whatever the machine's speed.
        await waitFor('a fill read after the expiry to store', async () => (await f.storeFenced(w('k', 2), await readMissing(f, 'k'))) === true);
        expect(await value(tier, 'k')).toEqual(setup.sample(2));
      });

      it('an existing key: readFenced returns its entry, and a store over it is refused', async () => {
        const f = fenced(tier);
        if (!f) return;
        await put(tier, w('k', 1, 10_000));
        const r = asked(await f.readFenced('k'));
        expect(r.entry?.value).toEqual(setup.sample(1));
        expect(r.entry!.ttl).toBeGreaterThan(0);
        expect(r.entry!.ttl).toBeLessThanOrEqual(10_000);
        expect(await f.storeFenced(w('k', 2), r.mark)).toBe(false);
        expect(await value(tier, 'k')).toEqual(setup.sample(1));
      });

      it('a byte-bound tier refuses a fill larger than its bound and writes nothing', async () => {
        const f = fenced(tier);
        if (!f || !tier.capabilities.byteBound) return;
        const mark = await readMissing(f, 'big');
        expect(await f.storeFenced({ ...w('big', 1), bytes: (setup.maxBytes as number) + 1 }, mark)).toBe(false);
        expect(await tier.getEntry('big')).toBeUndefined();
        expect(await f.storeFenced({ ...w('big', 2), bytes: 1 }, mark)).toBe(true);
      });

      // Whichever of the two runs first, the value must be gone once both are done: stored then removed, or refused.
      const races: Array<[string, (peer: Tier<V>) => Promise<unknown>]> = [
        ['deleteTags of its tag', (peer) => Promise.resolve(peer.deleteTags(['t']))],
        ['deleteKeys of the key', (peer) => Promise.resolve(peer.deleteKeys(['k']))],
        ['deletePattern matching the key', (peer) => peer.deletePattern('k*')],
      ];
      it.each(races)(`a store racing another instance's %s, ${RACE_ROUNDS} rounds: never left behind`, async (_what, invalidate) => {
        const f = fenced(tier);
        if (!f) return;
        const peer = await other();
        for (let round = 0; round < RACE_ROUNDS; round++) {
          const mark = await readMissing(f, 'k');
          const [s] = await Promise.all([f.storeFenced(w('k', round, LONG, ['t']), mark), invalidate(peer)]);
          expect(typeof asked(s)).toBe('boolean');
          expect({ round, stored: s, left: asked(await tier.getEntry('k'))?.value }).toEqual({ round, stored: s, left: undefined });
        }
      });

      describe('replayed writes (replaceFenced)', () => {
        /** What the replay of a write made now is checked against: no fence, the generation as it reads now. */
        async function replayMark(t: Tier<V>): Promise<FillMark | undefined> {
          if (!isReplayable(t)) return undefined;
          return { fence: '', generation: asked(await t.currentGeneration()) };
        }

        it('currentGeneration is what readFenced marks, and moves with a pattern or tag invalidation', async () => {
          if (!isReplayable(tier)) return;
          const g = asked(await tier.currentGeneration());
          expect((await readMissing(tier, 'k')).generation).toBe(g);
          await (await other()).deletePattern('nomatch:*');
          expect(asked(await tier.currentGeneration())).not.toBe(g);
        });

        it('stores over nothing, and over exactly the entry it read; refuses over any other', async () => {
          if (!isReplayable(tier)) return;
          const mark = (await replayMark(tier)) as FillMark;
          expect(await tier.replaceFenced(w('k', 1), mark, undefined)).toBe(true);
          const read = asked(await tier.readFenced('k'));
          expect(await tier.replaceFenced(w('k', 2), mark, read.entry?.value)).toBe(true);
          expect(await value(tier, 'k')).toEqual(setup.sample(2));
          // What it read before is gone: the entry there now is not the one it was told to replace.
          expect(await tier.replaceFenced(w('k', 3), mark, read.entry?.value)).toBe(false);
          expect(await tier.replaceFenced(w('k', 3), mark, undefined)).toBe(false);
          expect(await value(tier, 'k')).toEqual(setup.sample(2));
        });

        it("refused after another instance's delete of the key (its fence), or any pattern or tag invalidation (the generation)", async () => {
          if (!isReplayable(tier)) return;
          const peer = await other();
          const mark = (await replayMark(tier)) as FillMark;
          await put(tier, w('k', 1));
          expect(await peer.deleteKeys(['k'])).toBe(1);
          expect(await tier.replaceFenced(w('k', 2), mark, undefined)).toBe(false);
          expect(await tier.getEntry('k')).toBeUndefined();
          await put(tier, w('j', 1));
          const read = asked(await tier.readFenced('j'));
          expect(await peer.deletePattern('nomatch:*')).toEqual({ removed: 0, complete: true });
          expect(await tier.replaceFenced(w('j', 2), mark, read.entry?.value)).toBe(false);
          expect(await value(tier, 'j')).toEqual(setup.sample(1));
        });
      });

      it(`once closed, readFenced and storeFenced resolve (${setup.afterClose === 'fails' ? 'TIER_FAILED' : 'as an empty tier'})`, async () => {
        const f = fenced(tier);
        if (!f) return;
        const mark = await readMissing(f, 'k');
        await tier.close();
        const read = await f.readFenced('k');
        const store = await f.storeFenced(w('k', 1), mark);
        if (setup.afterClose === 'fails') expect({ read, store }).toEqual({ read: TIER_FAILED, store: TIER_FAILED });
        else {
          expect(asked(read).entry).toBeUndefined();
          expect(typeof store).toBe('boolean');
        }
      });
    });

  });
}
