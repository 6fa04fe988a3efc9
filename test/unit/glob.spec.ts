import * as globModule from '../../lib/core/glob';
import { compileGlob, escapeGlob, GLOB_MAX_STEPS } from '../../lib/core/glob';
import { prng } from '../support/prng';

const matches = (glob: string, key: string) => compileGlob(glob).test(key);
const ascii = Array.from({ length: 128 }, (_, c) => String.fromCharCode(c));
/** The single ASCII characters a glob accepts, as one string, for compact expectations. */
const acceptedAscii = (glob: string) => ascii.filter((c) => matches(glob, c)).join('');


/**
 * Redis' own recursive matcher, transcribed statement by statement (signed chars, the terminating NUL it reads past
 * the end, the shared "skip longer matches" flag, the nesting limit), as an oracle for the fuzz test below. It is
 * exponential-proof only thanks to that flag, and recursive, which is why the library does not work this way.
 */
function redisStringMatch(pattern: Uint8Array, str: Uint8Array): boolean {
  const at = (i: number) => (i < pattern.length ? pattern[i] : 0);
  const sc = (b: number) => (b < 0x80 ? b : b - 0x100);
  const skip = { longer: false };
  const impl = (p: number, pl: number, s: number, sl: number, nesting: number): boolean => {
    if (nesting > 1000) return false;
    while (pl && sl) {
      const c = at(p);
      if (c === 0x2a) {
        while (pl && at(p + 1) === 0x2a) {
          p++;
          pl--;
        }
        if (pl === 1) return true;
        while (sl) {
          if (impl(p + 1, pl - 1, s, sl, nesting + 1)) return true;
          if (skip.longer) return false;
          s++;
          sl--;
        }
        skip.longer = true;
        return false;
      } else if (c === 0x3f) {
        s++;
        sl--;
      } else if (c === 0x5b) {
        p++;
        pl--;
        const not = at(p) === 0x5e;
        if (not) {
          p++;
          pl--;
        }
        let match = false;
        for (;;) {
          if (at(p) === 0x5c && pl >= 2) {
            p++;
            pl--;
            if (at(p) === str[s]) match = true;
          } else if (at(p) === 0x5d) {
            break;
          } else if (pl === 0) {
            p--;
            pl++;
            break;
          } else if (pl >= 3 && at(p + 1) === 0x2d) {
            let start = sc(at(p));
            let end = sc(at(p + 2));
            if (start > end) [start, end] = [end, start];
            const ch = sc(str[s]);
            p += 2;
            pl -= 2;
            if (ch >= start && ch <= end) match = true;
          } else if (at(p) === str[s]) {
            match = true;
          }
          p++;
          pl--;
        }
        if (not) match = !match;
        if (!match) return false;
        s++;
        sl--;
      } else {
        if (c === 0x5c && pl >= 2) {
          p++;
          pl--;
        }
        if (at(p) !== str[s]) return false;
        s++;
        sl--;
      }
      p++;
      pl--;
      if (sl === 0) {
        while (at(p) === 0x2a) {
          p++;
          pl--;
        }
        break;
      }
    }
    return pl === 0 && sl === 0;
  };
  return impl(0, pattern.length, 0, str.length, 0);
}

const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));

describe('compileGlob', () => {
  it('replaces globToRegExp and keeps the glob it was given', () => {
    expect('globToRegExp' in globModule).toBe(false);
    expect(compileGlob('user:[0-9]*').glob).toBe('user:[0-9]*');
    expect(compileGlob('*').glob).toBe('*');
  });

  describe('fast paths', () => {
    it('"*" alone matches everything, even the empty key (SCAN skips matching for it), "**" everything but ""', () => {
      for (const k of ['', 'a', '*', 'é', '😀', 'a'.repeat(50_000)]) expect(matches('*', k)).toBe(true);
      expect(matches('**', '')).toBe(false);
      expect(matches('***', 'x')).toBe(true);
    });

    it('a glob without wildcards is an equality test; the empty glob matches only the empty key', () => {
      expect(matches('', '')).toBe(true);
      expect(matches('', 'a')).toBe(false);
      expect(matches('user:1', 'user:1')).toBe(true);
      expect(matches('user:1', 'user:10')).toBe(false);
      expect(matches('user:1', 'user:')).toBe(false);
      expect(matches('a]b^c-d', 'a]b^c-d')).toBe(true);
      expect(matches('ab\\*', 'ab*')).toBe(true);
      expect(matches('ab\\*', 'abc')).toBe(false);
      expect(matches('\\a\\b', 'ab')).toBe(true);
      expect(matches('é€😀', 'é€😀')).toBe(true);
    });

    it('a literal prefix and a trailing * is startsWith', () => {
      expect(matches('user:*', 'user:')).toBe(true);
      expect(matches('user:*', 'user:1:profile')).toBe(true);
      expect(matches('user:*', 'use')).toBe(false);
      expect(matches('user:*', 'xuser:1')).toBe(false);
      expect(matches('user:**', 'user:1')).toBe(true);
      expect(matches('\\[x\\]:*', '[x]:1')).toBe(true);
      expect(matches('é*', 'éa')).toBe(true);
      expect(matches('é*', 'e')).toBe(false);
      // `a\**`: the backslash escapes the first star, so this is startsWith("a*"), not startsWith("a\").
      expect(matches('a\\**', 'a*b')).toBe(true);
      expect(matches('a\\**', 'a\\b')).toBe(false);
      expect(matches('a\\\\*', 'a\\b')).toBe(true);
    });

    it('compares bytes where JS strings and UTF-8 disagree: lone surrogates and U+FFFD are the same key bytes', () => {
      expect(matches('\uD800', '\uFFFD')).toBe(true);
      expect(matches('\uFFFD', '\uDC00')).toBe(true);
      expect(matches('\uFFFD*', '\uD800x')).toBe(true);
      expect(matches('x\uD83D*', 'x\uFFFDy')).toBe(true);
      // A lone high surrogate is EF BF BD, not the F0 lead byte of the emoji it would start in UTF-16.
      expect(matches('\uD83D*', '😀')).toBe(false);
      expect(matches('\uD83D', '\uD83D')).toBe(true);
      expect(matches('???', '\uDC00')).toBe(true);
    });
  });

  describe('Redis rules', () => {
    it('* matches any run of bytes, consecutive stars collapse', () => {
      expect(matches('a*b', 'ab')).toBe(true);
      expect(matches('a*b', 'axxb')).toBe(true);
      expect(matches('a*b', 'axxbx')).toBe(false);
      expect(matches('*b', 'b')).toBe(true);
      expect(matches('*:profile', 'user:1:profile')).toBe(true);
      expect(matches('a***b', 'aXb')).toBe(true);
      expect(matches('*aba*aba*', 'ababa')).toBe(false);
      expect(matches('*aba*aba*', 'abaaba')).toBe(true);
      expect(matches('ab*ab', 'ab')).toBe(false);
      expect(matches('ab*ab', 'abab')).toBe(true);
    });

    it('? matches one byte, not one character', () => {
      expect(matches('?', 'a')).toBe(true);
      expect(matches('?', '')).toBe(false);
      expect(matches('?', 'é')).toBe(false);
      expect(matches('??', 'é')).toBe(true);
      expect(matches('???', '€')).toBe(true);
      expect(matches('????', '😀')).toBe(true);
      expect(matches('???', '😀')).toBe(false);
      expect(matches('x?', 'x😀')).toBe(false);
      expect(matches('x?*', 'x😀')).toBe(true);
      expect(matches('?\u00a9', 'é')).toBe(false); // é is C3 A9; U+00A9 is C2 A9
    });

    it('\\x is a literal x; a trailing lone backslash is a literal backslash', () => {
      expect(matches('\\*', '*')).toBe(true);
      expect(matches('\\*', 'a')).toBe(false);
      expect(matches('\\?', '?')).toBe(true);
      expect(matches('\\?', 'a')).toBe(false);
      expect(matches('\\[a]', '[a]')).toBe(true);
      expect(matches('\\[a]', 'a')).toBe(false);
      expect(matches('\\\\', '\\')).toBe(true);
      expect(matches('\\', '\\')).toBe(true);
      expect(matches('a\\', 'a\\')).toBe(true);
      expect(matches('*\\', 'xy\\')).toBe(true);
      expect(matches('?\\', 'x')).toBe(false);
      expect(matches('\\é', 'é')).toBe(true);
    });

    it('[...] is a one-byte class; a leading ^ negates it', () => {
      expect(acceptedAscii('[abc]')).toBe('abc');
      expect(acceptedAscii('[^abc]')).toBe(ascii.filter((c) => !'abc'.includes(c)).join(''));
      expect(matches('[abc]', 'ab')).toBe(false);
      expect(matches('[abc]', '')).toBe(false);
      expect(matches('x[0-9]y', 'x5y')).toBe(true);
      expect(acceptedAscii('[*]')).toBe('*');
      expect(acceptedAscii('[?]')).toBe('?');
      expect(acceptedAscii('[[]')).toBe('[');
      expect(acceptedAscii('[\\^]')).toBe('^');
      expect(acceptedAscii('[a^]')).toBe('^a');
    });

    it('ranges work either way round', () => {
      expect(acceptedAscii('[a-e]')).toBe('abcde');
      expect(acceptedAscii('[e-a]')).toBe('abcde');
      expect(acceptedAscii('[z-a]')).toBe(acceptedAscii('[a-z]'));
      expect(acceptedAscii('[^z-a]')).toBe(acceptedAscii('[^a-z]'));
      expect(acceptedAscii('[A-z]')).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz');
      expect(acceptedAscii('[a-a]')).toBe('a');
      expect(acceptedAscii('[0-9a-c]')).toBe('0123456789abc');
      expect(acceptedAscii('[-a]')).toBe('-a');
      expect(acceptedAscii('[a\\-z]')).toBe('-az');
      // The escape is read first, so `\a-z` is `a`, `-`, `z`, not a range.
      expect(acceptedAscii('[\\a-z]')).toBe('-az');
    });

    it('ranges compare bytes as signed chars: bytes from 0x80 up sort below 0x00', () => {
      // é is C3 A9: `[a-é]` is the range C3..a (signed -61..97), so all of ASCII up to `a`, then the byte A9.
      expect(acceptedAscii('[a-é]')).toBe(ascii.slice(0, 0x62).join(''));
      expect(acceptedAscii('[é-a]')).toBe(ascii.slice(0, 0x62).join(''));
      expect(matches('[a-é]', 'b')).toBe(false);
      expect(matches('[a-é]', 'é')).toBe(false);
      expect(matches('[a-é]?', 'é')).toBe(true); // C3 in the range, A9 for the ?
      expect(matches('[a-é][a-é]', 'é')).toBe(true); // A9 is a member too
      expect(matches('[\u0080-\u07ff]?', 'é')).toBe(true); // C2, range 80..DF, BF: C3 is in it
      expect(matches('[\x00-\x7f]', 'é')).toBe(false);
    });

    it('a class of a multi-byte character is a class of its bytes', () => {
      expect(matches('[é]', 'é')).toBe(false);
      expect(matches('[é][é]', 'é')).toBe(true);
      expect(matches('[^é]', 'é')).toBe(false);
      expect(matches('[^é]?', 'é')).toBe(false);
      expect(matches('[^é]??', '€')).toBe(true); // € is E2 82 AC
    });

    it('] ends a class: [] is empty, []a] is an empty class and then a literal "a]"', () => {
      for (const k of ['', ']', 'a', '[]', 'a]', ']a]', 'xa]']) {
        expect(matches('[]', k)).toBe(false);
        expect(matches('[]a]', k)).toBe(false);
        expect(matches('[]-a]', k)).toBe(false);
      }
      expect(matches('x[]', 'x')).toBe(false);
      // An empty negated class matches any one byte.
      expect(acceptedAscii('[^]')).toBe(ascii.join(''));
      expect(matches('[^]]', ']]')).toBe(true);
      expect(matches('[^]]', ']')).toBe(false);
    });

    it('\\x inside a class is a literal x, so [\\]] matches "]"', () => {
      expect(acceptedAscii('[\\]]')).toBe(']');
      expect(matches('k:[\\]]', 'k:]')).toBe(true);
      expect(matches('k:[\\]]', 'k:\\]')).toBe(false);
      expect(matches('k:[\\]]', 'k:\\')).toBe(false);
      expect(acceptedAscii('[^\\]]')).toBe(ascii.filter((c) => c !== ']').join(''));
      expect(acceptedAscii('[\\\\]')).toBe('\\');
      expect(acceptedAscii('[\\-]')).toBe('-');
    });

    it('a range needs three bytes left: [a-] is the range "]".."a" with the class left open', () => {
      expect(acceptedAscii('[a-]')).toBe(']^_`a');
      expect(matches('[a-]', '-')).toBe(false);
      expect(matches('[a-]', 'a]')).toBe(false);
      // The `]` went into the range, so the class runs on to the end: `b` is a member, not a following literal.
      expect(acceptedAscii('[a-]b')).toBe(']^_`ab');
      expect(matches('[a-]b', 'ab')).toBe(false);
      // Range a..`\`, then z.
      expect(acceptedAscii('[a-\\z]')).toBe('\\]^_`az');
    });

    it('an unterminated class acts as the class read so far; a lone [ matches nothing', () => {
      expect(acceptedAscii('[abc')).toBe('abc');
      expect(matches('x[abc', 'xb')).toBe(true);
      expect(matches('x[abc', 'xbc')).toBe(false);
      expect(acceptedAscii('[a-c')).toBe('abc');
      expect(acceptedAscii('[\\]')).toBe(']');
      expect(acceptedAscii('[a\\')).toBe('\\a');
      expect(acceptedAscii('[^a')).toBe(ascii.filter((c) => c !== 'a').join(''));
      expect(acceptedAscii('[^')).toBe(ascii.join(''));
      expect(matches('[^', 'é')).toBe(false);
      expect(acceptedAscii('[')).toBe('');
      expect(matches('x[', 'x')).toBe(false);
      expect(matches('x[', 'x[')).toBe(false);
    });

    it('the empty key matches only the empty glob (and "*")', () => {
      for (const g of ['**', '?', '[^]', '[^', '\\', '*a', 'a*', '[]', '[', '*\\*']) expect(matches(g, '')).toBe(false);
      expect(matches('', '')).toBe(true);
      expect(matches('*', '')).toBe(true);
    });

    it('NUL bytes are ordinary bytes', () => {
      expect(matches('a\0b', 'a\0b')).toBe(true);
      expect(matches('a?b', 'a\0b')).toBe(true);
      expect(matches('*\0', 'x\0')).toBe(true);
      expect(matches('[\0]', '\0')).toBe(true);
      expect(matches('[\0', '\0')).toBe(true);
      expect(matches('[^\0]', '\0')).toBe(false);
    });

    it('more than 1000 * groups followed by more pattern never match (Redis stops recursing)', () => {
      const a1000 = 'a'.repeat(1000);
      const a1001 = 'a'.repeat(1001);
      expect(matches('*a'.repeat(1000), a1000)).toBe(true);
      expect(matches('*a'.repeat(1000) + '*', a1001)).toBe(true);
      expect(matches('*a'.repeat(1001), a1001)).toBe(false);
      expect(matches('*a'.repeat(1001) + '*', a1001 + 'a')).toBe(false);
      expect(matches('x' + '*a'.repeat(1001), 'x' + a1001)).toBe(false);
      // A trailing star is not a group Redis recurses into; stars that collapse are one group.
      expect(matches('**a'.repeat(1000) + '**', a1001)).toBe(true);
      expect(matches('*?'.repeat(1000), a1001)).toBe(true);
      expect(matches('*?'.repeat(1001), a1001)).toBe(false);
    });
  });

  describe('never throws and stays bounded', () => {
    it('compiles and runs any string, however malformed', () => {
      const nasty = ['[z-a]', '[', '\\', '[^', '[^\\', '[\\', ']', '[]', '[]]', '[---]', '[a-', '[a--]', '[-]', '[^-]', '*[', '\\[', '[*', '\uD800',
        '\uDFFF', '[\uD800-\uDBFF]', '\uDBFF*\uD800', '(', ')', '{', '+', '.', '$', '^', '|', '(?<x>', '\\k<x>', '\0', '[\0-\uffff]', '*'.repeat(10_000),
        '['.repeat(5_000), '\\'.repeat(5_001), '[^]'.repeat(3_000), '*a'.repeat(5_000)];
      const keys = ['', 'a', ']', '\\', '[', '\uD800', '\uDC00\uD800', 'é😀', 'a'.repeat(3_000), '\0'];
      for (const g of nasty) {
        expect(() => {
          const m = compileGlob(g);
          for (const k of keys) m.test(k);
        }).not.toThrow();
      }
      expect(matches('[z-a]', 'm')).toBe(true);
      expect(matches('(a|b)+', '(a|b)+')).toBe(true);
      expect(matches('.*', 'xyz')).toBe(false);
      expect(matches('.*', '.xyz')).toBe(true);
    });

    it('a hostile pattern against a long run of one letter answers at once, exactly', () => {
      const hostile = '*a'.repeat(14) + '*b';
      expect(matches(hostile, 'a'.repeat(40))).toBe(false);
      expect(matches(hostile, 'a'.repeat(40) + 'b')).toBe(true);
      expect(matches(hostile + '*', 'a'.repeat(40))).toBe(false);
      expect(matches('*a'.repeat(14) + '*b*', 'a'.repeat(40) + 'bc')).toBe(true);
      expect(matches('*a'.repeat(2000), 'a'.repeat(30_000))).toBe(false);
      expect(matches('*a'.repeat(500), 'a'.repeat(30_000))).toBe(true);
      expect(matches('*a'.repeat(500) + '*b', 'a'.repeat(30_000))).toBe(false);
    });

    it('past GLOB_MAX_STEPS a key counts as matching (the safe side); realistic pairs stay exact', () => {
      expect(GLOB_MAX_STEPS).toBeGreaterThanOrEqual(10_000);
      expect(GLOB_MAX_STEPS).toBeLessThanOrEqual(100_000);
      // Each of the key's positions costs up to 21 steps for the floating segment: far past the bound.
      const costly = '*' + 'a'.repeat(20) + 'b*';
      expect(matches(costly, 'a'.repeat(GLOB_MAX_STEPS))).toBe(true);
      expect(matches(costly, 'a'.repeat(200))).toBe(false);
      const key = 'tenant:42:user:' + 'x'.repeat(4_000) + ':profile';
      expect(matches('*:profile', key)).toBe(true);
      expect(matches('tenant:*:items', key)).toBe(false);
      expect(matches('tenant:4?:*:profile', key)).toBe(true);
      expect(matches('*:42:*:user:*', key)).toBe(false);
      expect(matches('*:user:*x:*', key)).toBe(true);
      expect(matches('*x[^x]x*', key)).toBe(false);
    });
  });

  it('agrees with a transcription of Redis\' recursive matcher on thousands of random pairs', () => {
    const rand = prng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const globChars = ['*', '?', '[', ']', '^', '-', '\\', 'a', 'b', 'c', 'é', '€', '😀', '\0', '\uD800', 'z', '`', '_'];
    const keyChars = ['a', 'b', 'c', ']', '[', '\\', '^', '-', '*', '?', 'é', '€', '😀', '\0', '\uDC00', 'z', '`', '_', 'A', '0'];
    const failures: string[] = [];
    for (let i = 0; i < 4_000; i++) {
      let glob = '';
      for (let n = 1 + Math.floor(rand() * 8); n > 0; n--) glob += pick(globChars);
      const m = compileGlob(glob);
      const pg = utf8(glob);
      for (let j = 0; j < 8; j++) {
        let key = '';
        for (let n = Math.floor(rand() * 7); n > 0; n--) key += pick(keyChars);
        const expected = glob === '*' || redisStringMatch(pg, utf8(key));
        if (m.test(key) !== expected) failures.push(`${JSON.stringify(glob)} vs ${JSON.stringify(key)}: Redis says ${expected}`);
      }
    }
    expect(failures.slice(0, 20)).toEqual([]);
  });
});

describe('escapeGlob', () => {
  it('escapes \\ * ? [ ] and nothing else', () => {
    expect(escapeGlob('a*b?c[d]e\\f')).toBe('a\\*b\\?c\\[d\\]e\\\\f');
    expect(escapeGlob('user:1^-{x}é')).toBe('user:1^-{x}é');
    expect(escapeGlob('')).toBe('');
  });

  it('compiled, matches exactly the literal it escaped', () => {
    const awkward = ['', '*', '**', '?', '[', ']', '[]', '[a-z]', '[^a]', '\\', '\\\\', 'a\\', '\\*', 'k:[\\]]', 'é', '€😀', '\uD800', '\uFFFD', 'a\0b',
      'user:*:profile', '[x]:?', '^-', 'a-]'];
    for (const x of awkward) {
      const m = compileGlob(escapeGlob(x));
      expect(m.test(x)).toBe(true);
      for (const y of awkward) {
        // Two strings with the same UTF-8 bytes are the same Redis key.
        if (Buffer.from(y).equals(Buffer.from(x))) continue;
        expect([x, y, m.test(y)]).toEqual([x, y, false]);
      }
      expect(m.test(x + 'a')).toBe(false);
      expect(m.test('a' + x)).toBe(false);
    }
    expect(compileGlob(escapeGlob('k:') + '*').test('k:[x]')).toBe(true);
    expect(compileGlob(escapeGlob('k*:') + '*').test('kx:1')).toBe(false);
  });
});
