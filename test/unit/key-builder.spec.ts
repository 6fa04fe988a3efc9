import { argumentSegment, buildArgumentsKey, canonicalize, KeyTemplate, parameterNames, stableDigest, templateSegment } from '../../lib/core/keys';
import { defaultKeyPrefix } from '../../lib/core/keys/method-key';
import { compileGlob } from '../../lib/core/glob';

describe('stable digest', () => {
  it('ignores property order, at every depth', () => {
    expect(stableDigest({ a: 1, b: { c: [1, 2], d: 'x' } })).toBe(stableDigest({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  });

  it('keys Date, BigInt, Map and Set by value', () => {
    expect(stableDigest(new Date(5))).toBe(stableDigest(new Date(5)));
    expect(stableDigest(new Date(5))).not.toBe(stableDigest(new Date(6)));
    expect(stableDigest(10n)).not.toBe(stableDigest(11n));
    expect(stableDigest(new Map([['a', 1], ['b', 2]]))).toBe(stableDigest(new Map([['b', 2], ['a', 1]])));
    expect(stableDigest(new Map([['a', 1]]))).not.toBe(stableDigest(new Map([['a', 2]])));
    expect(stableDigest(new Set([1, 2]))).toBe(stableDigest(new Set([2, 1])));
    expect(stableDigest(new Set([1, 2]))).not.toBe(stableDigest(new Set([1, 3])));
  });

  it('tells apart values that JSON would merge', () => {
    const distinct: unknown[] = [
      1, '1', 1n, true, 'true', null, undefined, 'null', [], {}, [1], ['1'], { a: 1 }, { a: '1' },
      new Map([['a', 1]]), new Set(['a']), new Date(0), 0, -0, NaN, Infinity, '', [null], [undefined], [[]], [{}],
      { '"a"': 1 }, { a: [1, 2] }, { a: [1], b: 2 }, ['a,b'], ['a', 'b'],
    ];
    const seen = new Map<string, unknown>();
    for (const v of distinct) {
      const c = canonicalize(v);
      expect(seen.has(c) ? [seen.get(c), v] : c).toBe(c);
      seen.set(c, v);
    }
  });

  it('treats an undefined property as a missing one, as JSON does', () => {
    expect(stableDigest({ a: 1, b: undefined })).toBe(stableDigest({ a: 1 }));
  });

  it('uses toJSON of class instances that hide their state', () => {
    class Id {
      #hex: string;
      constructor(hex: string) {
        this.#hex = hex;
      }
      toJSON() {
        return this.#hex;
      }
    }
    expect(stableDigest(new Id('a'))).not.toBe(stableDigest(new Id('b')));
  });

  it('refuses what has no stable identity, with a clear error', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => stableDigest(cyclic)).toThrow(/circular/);
    expect(() => stableDigest(() => 1)).toThrow(/function/);
    class Opaque {
      #x = 1;
      get x() {
        return this.#x;
      }
    }
    expect(() => stableDigest(new Opaque())).toThrow(/Opaque exposes no enumerable state/);
  });
});

describe('default keys', () => {
  const k = (...args: unknown[]) => buildArgumentsKey('PropertyService.findById', args);

  it('are readable for short scalar arguments', () => {
    expect(k('prop-123')).toBe('PropertyService.findById:prop-123');
    expect(k(42)).toBe('PropertyService.findById:~n42');
    expect(k()).toBe('PropertyService.findById:');
  });

  it('never collide between different argument lists', () => {
    const lists: unknown[][] = [
      [], [''], [1], ['1'], ['~n1'], [1n], [true], ['true'], [null], ['null'], [undefined, 1], ['a', 'b'], ['a:b'], ['a%3Ab'],
      ['a', 'b', 'c'], ['a:b', 'c'], ['a', 'b:c'], [{ a: 1 }], [{ a: 2 }], [[1, 2]], [[1], 2], [new Date(1)], [1],
      ['*'], ['\\*'], ['{x}'], ['x'.repeat(5000)], ['x'.repeat(5001)], ['\ud800'], ['\udc00'], [' '], ['\n'],
    ];
    const keys = new Map<string, unknown[]>();
    for (const args of lists) {
      const key = k(...args);
      if (keys.has(key)) expect(keys.get(key)).toEqual(args);
      keys.set(key, args);
    }
    expect(keys.size).toBe(lists.length - 1); // [1] appears twice on purpose
  });

  it('drop trailing undefined arguments', () => {
    expect(k(1, undefined)).toBe(k(1));
    expect(k(undefined, 1)).not.toBe(k(1));
  });

  it('never collide between methods: the prefix is the class and method', () => {
    expect(buildArgumentsKey(defaultKeyPrefix('A', 'find'), [1])).not.toBe(buildArgumentsKey(defaultKeyPrefix('B', 'find'), [1]));
    expect(buildArgumentsKey(defaultKeyPrefix('A', 'find'), [1])).not.toBe(buildArgumentsKey(defaultKeyPrefix('A', 'findAll'), [1]));
  });

  it('contain no glob characters, separators or whitespace from arguments', () => {
    for (const v of ['a*b', 'a?b', '[ab]', 'a\\b', 'a:b', '{tag}', 'a b', 'a\nb', '~x', 'é']) {
      const seg = argumentSegment(v);
      expect(seg).toMatch(/^[A-Za-z0-9_.%-]+$/);
      expect(compileGlob(seg).test(seg)).toBe(true);
    }
  });
});

describe('key templates', () => {
  function fill(template: string, names: string[], args: unknown[]): string {
    return KeyTemplate.parse(template, 'test').bind(names, 'test')(args);
  }

  it('fill names, positions and property paths', () => {
    expect(fill('property:{id}', ['id'], ['p1'])).toBe('property:p1');
    expect(fill('lead:{0}:{1}', ['a', 'b'], ['l1', 'v2.1'])).toBe('lead:l1:v2.1');
    expect(fill('t:{dto.tenant.id}:{1}', ['dto', 'x'], [{ tenant: { id: 7 } }, 'y'])).toBe('t:7:y');
  });

  it('key numbers and numeric strings alike (a template keys the text)', () => {
    expect(fill('property:{id}', ['id'], [42])).toBe(fill('property:{id}', ['id'], ['42']));
  });

  it('escape filled values so one entity cannot address another', () => {
    const a = fill('property:{id}:{part}', ['id', 'part'], ['1:x', 'y']);
    const b = fill('property:{id}:{part}', ['id', 'part'], ['1', 'x:y']);
    expect(a).not.toBe(b);
    expect(fill('property:{id}', ['id'], ['*'])).toBe('property:%2A');
    expect(fill('property:{id}', ['id'], [undefined])).toBe('property:~U');
    expect(fill('property:{id}', ['id'], ['~U'])).not.toBe('property:~U');
    expect(fill('property:{id}', ['id'], ['{x}'])).toBe('property:%7Bx%7D');
  });

  it('reject unknown names and adjacent placeholders, naming the problem', () => {
    expect(() => fill('property:{idd}', ['id', 'opts'], [1])).toThrow("names 'idd', which is not a parameter (parameters: id, opts)");
    expect(() => KeyTemplate.parse('{a}{b}', 'key')).toThrow('placeholders must be separated');
  });

  it('loose segments: scalars by text', () => {
    expect(templateSegment(true)).toBe('true');
    expect(templateSegment(-0)).toBe('0');
    expect(templateSegment(null)).toBe('~N');
  });
});

describe('parameter names', () => {
  it('reads names, defaults, rest and destructuring', () => {
    class S {
      async m(id: string, opts = { a: '(,)' }, { x }: { x: number } = { x: 1 }, ...rest: unknown[]) {
        return [id, opts, x, rest];
      }
    }
    expect(parameterNames(S.prototype.m)).toEqual(['id', 'opts', undefined, 'rest']);
  });
});
