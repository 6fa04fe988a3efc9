import { Redis } from 'ioredis';
import { compileGlob, escapeGlob } from '../../lib/core/glob';
import { RedisServer } from '../support/redis-server';
import { prng } from '../support/prng';

/**
 * Differential test: for every pattern, the keys a real redis-server returns for SCAN MATCH must be exactly the
 * corpus keys compileGlob(pattern).test() accepts. Keys are compared by their UTF-8 bytes (what Redis stores), so
 * two JS strings that encode alike (a lone surrogate and U+FFFD) are one key, as they are in Redis.
 */


const SEED = 20_250_601;
const rand = prng(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];

/** Characters whose bytes sit on every side of the signed-char boundary and of the glob metacharacters. */
const AWKWARD = [']', '[', '\\', '^', '-', '*', '?', '!', '/', '_', '`', 'é', '€', '😀', 'ÿ', '\u07ff', '\uffff', '\u{10ffff}', '\u0080', '\0', '\x7f', ' '];
const KEY_CHARS = ['a', 'b', 'c', 'z', 'A', ':', '0', '9', ...AWKWARD];
const hex = (k: string) => Buffer.from(k, 'utf8').toString('hex');

function buildCorpus(): string[] {
  const keys: string[] = [
    '', 'a', 'b', 'ab', 'abc', 'ba', 'a]', '[]', '[a]', 'a-b', 'a\\b', '\\\\', 'é€', 'ée', 'e', 'aé', 'a😀', '😀😀',
    '\uD800', '\uDC00', '\uD83D', 'x\uD83Dy', '\uFFFD', 'x\uFFFDy', 'a\0b', 'user:1', 'user:1:profile', 'user:22:profile',
    'user:*', 'user:*x', 'user:?', '*', '**', '***', '?', '??', 'a*', 'a*b', 'aaa', 'ababa', 'abaaba', 'abab', 'k:]', 'k:\\]', 'k:\\', 'x5y', 'xb', 'xbc', 'x[', '.xyz', 'xyz', '(a|b)+', 'x😀', 'x\0', 'axxb', 'axxbx', '€', 'ab*', 'a'.repeat(1100), 'a'.repeat(1000) + 'b', 'ab'.repeat(300),
  ];
  // Every single byte-range character, so classes and ranges are probed at every boundary.
  for (let c = 0; c < 0x80; c++) keys.push(String.fromCharCode(c));
  for (const c of AWKWARD) keys.push(c, 'a' + c, c + 'a', c + c, 'x' + c + 'y');
  for (let i = 0; i < 1200; i++) {
    let k = '';
    for (let n = int(7); n >= 0; n--) k += pick(KEY_CHARS);
    keys.push(k);
  }
  for (let i = 0; i < 800; i++) {
    let k = '';
    for (let n = int(12); n >= 0; n--) k += String.fromCharCode(32 + int(95));
    keys.push(k);
  }
  for (let i = 0; i < 300; i++) keys.push(`${pick(['user', 'order', 'é', '[x]'])}:${int(50)}:${pick(['profile', 'items', '*', '?', ''])}`);
  // One JS string per stored key: a lone surrogate and U+FFFD are the same bytes.
  const byBytes = new Map<string, string>();
  for (const k of keys) if (!byBytes.has(hex(k))) byBytes.set(hex(k), k);
  return [...byBytes.values()];
}

const HAND_PICKED = [
  '*', '**', '***', '', '?', '??', '???', 'a', 'a*', '*a', '*a*', 'a*b', 'a?b', '*b*', '?*', '*?', '\\', 'a\\', '\\\\', '\\*', '\\?', '\\[', '\\]',
  '\\a', 'a\\b', '[', '[a', '[ab', '[^', '[^a', '[]', '[]]', '[]a]', '[^]', '[^]]', '[]-a]', '[\\]]', '[\\]', '[\\', '[a\\', '[^\\]]', '[a-]', '[a-]b',
  '[a-\\z]', '[-a]', '[a\\-z]', '[\\a-z]', '[a-z]', '[z-a]', '[A-z]', '[z-A]', '[!-/]', '[^a-z]', '[^z-a]', '[a-c]*', '*[a-c]', '[[]', '[[]]',
  '[*]', '[?]', '[^*]', '[\\^]', '[\\-]', '[a-a]', '[é]', '[^é]', '[é-a]', '[a-é]', '[€]', '[😀]', '[\u0080-\u07ff]', '[\x7f-\u0080]', '[\0-\x7f]',
  '[\u{10ffff}-\0]', '?\u00a9', '\u00c3?', '??\u0082\u00ac', 'é', '?é', 'é?', '??', '????', '?😀', '😀', '\\é', '\\😀', '*é*', '*€', '€*',
  '\uD800', '\uFFFD', '\uD800*', '\uFFFD*', '*\uD800', '\uD83D*', 'x\uD83D*', 'x\uFFFD*', 'a\0b', 'a?b', '\0', '*\0*', 'user:*', 'user:*:profile',
  'user:?:*', 'user:[0-9]*', 'user:\\*', 'user:\\?', '[x]:*', '\\[x\\]:*', 'é:*', '*:*:*', '*:', ':*', 'ab*ab*ab', '*ab*ab*', 'a*a*a*a*a*a*a*b',
  '*a'.repeat(999) + '*', '*a'.repeat(1000), '*a'.repeat(1000) + '*', '*a'.repeat(1001), '*a'.repeat(1001) + '*', 'a' + '*a'.repeat(1000),
  '*a'.repeat(14) + '*b', '*'.repeat(2000) + 'a', 'a'.repeat(1100), 'a'.repeat(1000) + '*', '*b', '*?b', '[^b]*b',
  '[A-z]', '[a^]', '[0-9a-c]', '[^]]', '[^é]', '[^é]?', '[^é]??', '[é][é]', '[a-é]?', '[a-é][a-é]', '[\u0080-\u07ff]?', 'x[abc', 'x[', '[a-c', '[^a',
  '*\\', '?\\', 'x?', 'x?*', '[\0', '[^\0]', '*\0', '**a'.repeat(1000) + '**', '*?'.repeat(1000), '*?'.repeat(1001), '.*', '(a|b)+', 'k:[\\]]',
  'a***b', 'a*b', 'x[0-9]y', 'ab\\*', '\\a\\b', '*?'.repeat(3) + '[^a-z]', '[---]', '[a--]', '[-]', '[^-]', '[a-', '*[',
  '*aba*aba*', '*aa*aa*', 'a*ab*ba', 'ab*ab', 'a\\**', 'user:\\**', 'a\\*', '\\**', 'a\\\\*',
];

const PATTERN_ALPHABET = ['*', '?', '[', ']', '^', '-', '\\', 'a', 'b', 'c', 'é'];

function randomPattern(): string {
  let p = '';
  for (let n = 1 + int(9); n > 0; n--) p += rand() < 0.75 ? pick(PATTERN_ALPHABET) : pick(KEY_CHARS);
  return p;
}

/** A corpus key with some characters turned into wildcards, classes or escapes, so most patterns match something. */
function mutatedPattern(corpus: readonly string[]): string {
  const key = [...pick(corpus)];
  let p = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i];
    const r = rand();
    if (r < 0.35) p += c;
    else if (r < 0.45) p += '?';
    else if (r < 0.55) p += '*';
    else if (r < 0.65) p += `[${c}${pick(KEY_CHARS)}]`;
    else if (r < 0.72) p += `[^${pick(KEY_CHARS)}]`;
    else if (r < 0.8) p += `[${pick(KEY_CHARS)}-${pick(KEY_CHARS)}]`;
    else if (r < 0.9) p += '\\' + c;
    else p += escapeGlob(c);
  }
  return rand() < 0.2 ? p + '*' : p;
}

/** Long patterns and keys (the nesting-limit ones) cut short, so a failure report stays readable. */
function brief(s: string): string {
  return s.length <= 80 ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, 40))}...(${s.length} chars)...${JSON.stringify(s.slice(-20))}`;
}
const show = (hs: string[]) => `[${hs.slice(0, 10).map((h) => brief(Buffer.from(h, 'hex').toString('utf8'))).join(', ')}]${hs.length > 10 ? ` and ${hs.length - 10} more` : ''}`;

describe('compileGlob against a real Redis (SCAN MATCH)', () => {
  let server: RedisServer;
  let redis: Redis;
  const corpus = buildCorpus();

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: false });
    for (let i = 0; i < corpus.length; i += 500) {
      await redis.mset(...corpus.slice(i, i + 500).flatMap((k) => [k, '1']));
    }
  }, 20_000);

  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  async function scanMatch(pattern: string): Promise<Set<string>> {
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next.toString();
      for (const k of keys) found.add(k.toString('hex'));
    } while (cursor !== '0');
    return found;
  }

  it('stores every corpus key (the comparison below is over all of them)', async () => {
    expect(corpus.length).toBeGreaterThan(2000);
    expect(await redis.dbsize()).toBe(corpus.length);
    expect((await scanMatch('*')).size).toBe(corpus.length);
  });

  it('selects exactly the keys Redis selects, for hand-picked, random and mutated patterns', async () => {
    const patterns = [...HAND_PICKED];
    for (let i = 0; i < 250; i++) patterns.push(randomPattern());
    for (let i = 0; i < 250; i++) patterns.push(mutatedPattern(corpus));
    for (let i = 0; i < 30; i++) patterns.push(escapeGlob(pick(corpus)));

    const failures: string[] = [];
    let selective = 0;
    for (const pattern of patterns) {
      const expected = await scanMatch(pattern);
      const matcher = compileGlob(pattern);
      const actual = new Set(corpus.filter((k) => matcher.test(k)).map(hex));
      const extra = [...actual].filter((h) => !expected.has(h));
      const missing = [...expected].filter((h) => !actual.has(h));
      if (extra.length > 0 || missing.length > 0) {
        failures.push(`pattern ${brief(pattern)} (seed ${SEED}): also matched ${show(extra)}, missed ${show(missing)}`);
      }
      if (expected.size > 0 && expected.size < corpus.length) selective++;
    }
    expect(failures).toEqual([]);
    // Enough patterns split the corpus for the comparison to mean something.
    expect(selective).toBeGreaterThan(patterns.length / 3);
  }, 20_000);
});
