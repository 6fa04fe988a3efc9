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
