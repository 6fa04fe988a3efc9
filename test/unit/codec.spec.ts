import { CacheSerializationError, defaultCodec, jsonCodec, CacheDecodeError } from '../../lib';

describe('default codec', () => {
  const roundTrip = (v: unknown) => defaultCodec.decode(defaultCodec.encode(v, 'k'));

  it('round-trips Date, BigInt, Map, Set and nesting exactly', () => {
    const value = {
      when: new Date('2026-01-02T03:04:05.678Z'),
      big: 12345678901234567890n,
      map: new Map<unknown, unknown>([
        ['a', new Set([1, 2])],
        [3, [new Date(0), { x: 1n }]],
      ]),
      list: [[1, [2, [3]]], 'x', null, true],
      nested: { deep: { deeper: new Set(['s']) } },
    };
    expect(roundTrip(value)).toEqual(value);
    const back = roundTrip(value) as typeof value;
    expect(back.when).toBeInstanceOf(Date);
    expect(typeof back.big).toBe('bigint');
  });

  it('keeps values JSON would lose', () => {
    expect(roundTrip([NaN, Infinity, -Infinity, -0, undefined])).toEqual([NaN, Infinity, -Infinity, -0, undefined]);
    expect(Object.is((roundTrip([-0]) as number[])[0], -0)).toBe(true);
    const invalid = roundTrip(new Date(NaN)) as Date;
    expect(invalid).toBeInstanceOf(Date);
    expect(Number.isNaN(invalid.getTime())).toBe(true);
  });

  it('escapes plain objects that use the tag key, without prototype pollution', () => {
    const tricky = { $t: 'd', v: 5 };
    expect(roundTrip(tricky)).toEqual(tricky);
    const proto = JSON.parse('{"$t":"x","__proto__":{"polluted":true}}');
    const back = roundTrip(proto) as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['function', { f: () => 1 }],
    ['symbol', { s: Symbol('x') }],
    ['typed array', { b: new Uint8Array(2) }],
  ])('rejects a %s with a typed error', (_n, v) => {
    expect(() => defaultCodec.encode(v, 'key1')).toThrow(CacheSerializationError);
    expect(() => defaultCodec.encode(v, 'key1')).toThrow(/key1/);
  });

  it('rejects circular structures but accepts shared references', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => defaultCodec.encode(a, 'k')).toThrow(/circular/);
    const shared = { x: 1 };
    expect(roundTrip({ a: shared, b: shared })).toEqual({ a: { x: 1 }, b: { x: 1 } });
  });

  it('refuses payloads it did not write', () => {
    expect(() => defaultCodec.decode('{"a":1}')).toThrow(CacheDecodeError);
    expect(() => defaultCodec.decode('\u0001tc1:{not json')).toThrow();
  });
});

describe('json codec', () => {
  it('writes plain JSON another language can read', () => {
    expect(jsonCodec.encode({ a: 1, d: new Date(0) }, 'k')).toBe('{"a":1,"d":"1970-01-01T00:00:00.000Z"}');
    expect(jsonCodec.decode('{"a":[1,2]}')).toEqual({ a: [1, 2] });
  });

  it('rejects what JSON cannot carry', () => {
    expect(() => jsonCodec.encode({ m: new Map() }, 'k')).toThrow(CacheSerializationError);
    expect(() => jsonCodec.encode({ b: 1n }, 'k')).toThrow(CacheSerializationError);
    expect(() => jsonCodec.encode({ n: NaN }, 'k')).toThrow(CacheSerializationError);
  });
});

describe('default codec: plain values skip the tagging copy, with the same result', () => {
  const { defaultCodec: codec } = jest.requireActual<typeof import('../../lib/core/codec')>('../../lib/core/codec');
  const deep = (n: number, leaf: unknown): unknown => (n === 0 ? leaf : { d: deep(n - 1, leaf) });

  it.each([
    ['a plain object', { a: 1, b: 'x', c: [true, null, { d: 2.5 }] }],
    ['undefined properties (dropped, as JSON does)', { a: undefined, b: 1 }],
    ['null-prototype objects', Object.assign(Object.create(null) as object, { a: 1 })],
    ['-0 nested in a plain object', { a: { b: [1, -0] } }],
    ['undefined in an array', { a: [1, undefined, 2] }],
    ['NaN nested', { a: [{ b: NaN }] }],
    ['a Date nested', { at: { when: new Date(1_700_000_000_000) } }],
    ['a "$t" key nested', { a: { $t: 'd', v: 1 } }],
    ['a class instance', { a: new (class Point { x = 1; y = 2; })() }],
    ['nesting deeper than the fast path looks', deep(100, { $t: 'x', v: new Set([1]) })],
    ['plain nesting deeper than the fast path looks', deep(100, [1, 'two'])],
  ])('%s', (_name, value) => {
    expect(codec.decode(codec.encode(value, 'k'))).toEqual(value);
  });

  it('keeps -0 and undefined array slots nested in plain data (toEqual cannot tell)', () => {
    const out = codec.decode(codec.encode({ a: [-0, undefined] }, 'k')) as { a: unknown[] };
    expect(Object.is(out.a[0], -0)).toBe(true);
    expect(out.a.length).toBe(2);
    expect(out.a[1]).toBeUndefined();
  });

  it('still rejects a function or a cycle hidden deep in plain data', () => {
    expect(() => codec.encode({ a: [{ b: () => 1 }] }, 'k')).toThrow(/function/);
    const cyclic: Record<string, unknown> = { a: { b: {} } };
    (cyclic.a as Record<string, Record<string, unknown>>).b.c = cyclic;
    expect(() => codec.encode(cyclic, 'k')).toThrow(/circular/);
  });
});
