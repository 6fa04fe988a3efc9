import { TextEncoder } from 'node:util';

/**
 * Redis globs for L1 keys. An invalidation by pattern drops keys from L1 here and from L2 with SCAN MATCH, so the
 * two must agree byte for byte: L1 must not keep a key Redis dropped, nor drop keys Redis kept. Hence no RegExp
 * (different escape and class rules, exceptions on odd classes, exponential backtracking): the glob is compiled to
 * one-byte tokens parsed exactly as Redis parses them, and matched on the key's UTF-8 bytes, which is what Redis
 * sees once ioredis has sent the string.
 */

/** A compiled Redis glob. */
export interface GlobMatcher {
  readonly glob: string;
  /** True when `key` matches the way Redis' SCAN MATCH would match it; also true (the safe side for an invalidation) when matching it would cost more than the work bound. */
  test(key: string): boolean;
}

/**
 * The work bound per key (steps of the matching loop, one step = one pattern token compared with one key byte).
 * Anchored parts cost one step per token and a floating segment at most its width per key byte, so a key of a few
 * KB against any glob people write stays in the low thousands. 20,000 steps take some 50 to 100 microseconds, so a
 * hostile glob cannot hold the event loop long on any one key, and answering true past it only drops an entry too many.
 */
export const GLOB_MAX_STEPS: number = 20_000;

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const DASH = 0x2d;

/** Codes of the non-star tokens: 0..255 a literal byte, ANY any byte, CLASS + i the i-th 256-entry class table. */
const ANY = 256;
const CLASS = 257;

/** Redis recurses once per `*` group that is followed by more pattern and answers "no match" beyond this depth. */
const MAX_NESTING = 1000;

/** Escapes a literal (a key prefix, a user-supplied segment) so SCAN MATCH treats it as plain text. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[\\*?[\]]/g, (c) => '\\' + c);
}

/** Parses the glob once, for testing many keys; never throws, whatever the glob. */
export function compileGlob(glob: string): GlobMatcher {
  // SCAN and KEYS skip matching altogether for exactly "*", so it takes even the empty key ("**" does not).
  if (glob === '*') return { glob, test: () => true };
  const exact = plainText(glob, false);
  if (exact !== null) return { glob, test: (key) => key === exact };
  let body = glob.length;
  while (body > 0 && glob.charCodeAt(body - 1) === STAR) body--;
  if (body < glob.length) {
    const prefix = plainText(glob.slice(0, body), true);
    if (prefix !== null) return { glob, test: (key) => key.length > 0 && key.startsWith(prefix) };
  }
  return new TokenMatcher(glob);
}

const encoder = new TextEncoder();

/** Shared by every matcher: test() runs to completion synchronously, so one buffer serves all. */
let scratch = new Uint8Array(1024);
/** A rare huge key gets a buffer of its own rather than pinning megabytes in the shared one. */
const SCRATCH_MAX = 64 * 1024;

/**
 * The text a glob without wildcards stands for, or null when it has wildcards or when comparing JS strings could
 * disagree with comparing UTF-8 bytes: lone surrogates and U+FFFD all encode to EF BF BD, so two different strings
 * would be one Redis key. Without them, string equality and startsWith are byte-exact (UTF-8 is prefix-free per code
 * point). `asPrefix`: the text is followed by `*`, which a trailing lone backslash would escape.
 */
function plainText(glob: string, asPrefix: boolean): string | null {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charCodeAt(i);
    if (c === STAR || c === QUESTION || c === OPEN) return null;
    if (c === BACKSLASH) {
      if (i + 1 === glob.length) {
        if (asPrefix) return null;
        out += '\\';
        continue;
      }
      i++;
    }
    out += glob[i];
  }
  return isByteExact(out) ? out : null;
}

function isByteExact(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0xfffd) return false;
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    }
  }
  return true;
}

/** The key's UTF-8 bytes (as ioredis would send them) in `out.bytes`. */
function encodeKey(key: string, out: { bytes: Uint8Array }): number {
  const worst = key.length * 3;
  let buf = scratch;
  if (buf.length < worst) {
    if (worst <= SCRATCH_MAX) buf = scratch = new Uint8Array(Math.max(worst, Math.min(SCRATCH_MAX, scratch.length * 2)));
    else buf = new Uint8Array(Buffer.byteLength(key, 'utf8'));
  }
  out.bytes = buf;
  // encodeInto copies a one-byte string natively: about twice as fast as a charCodeAt loop over an ASCII key.
  return encoder.encodeInto(key, buf).written;
}

function one(classes: Uint8Array, code: number, byte: number): boolean {
  return code < ANY ? code === byte : code === ANY || classes[((code - CLASS) << 8) | byte] === 1;
}

/** A byte as C's (signed) char on the platforms Redis runs on: Redis compares class ranges that way. */
function signedByte(b: number): number {
  return b < 0x80 ? b : b - 0x100;
}

/**
 * The glob as one-byte tokens split at its `*` groups: the first segment must match at the start of the key, the last
 * one at its end, and those in between, in order, anywhere between the two. Every token consumes exactly one byte, so placing
 * each middle segment at its leftmost fit is always right (no backtracking), and the work is at most
 * key bytes x longest segment.
 */
class TokenMatcher implements GlobMatcher {
  private readonly codes: Int32Array;
  private readonly classes: Uint8Array;
  /** Token index where each segment starts; segment k is codes[starts[k] .. starts[k + 1]). */
  private readonly starts: Int32Array;
  private readonly hasStar: boolean;
  private readonly never: boolean;
  private readonly out = { bytes: scratch };
  /**
   * The glob's leading literal bytes when they are all ASCII, as a string: an ASCII character is its own UTF-8
   * byte and no other character encodes to one, so `key.startsWith(lead)` decides them without encoding the key
   * (most keys of an L1 fail there for a glob such as `property:*:detail`).
   */
  private readonly lead: string;

  constructor(readonly glob: string) {
    const p = encoder.encode(glob);
    const len = p.length;
    const at = (i: number): number => (i < len ? p[i] : 0); // Redis reads the terminating NUL at the end
    const codes: number[] = [];
    const tables: Uint8Array[] = [];
    const starts = [0];
    for (let i = 0; i < len; i++) {
      const c = p[i];
      if (c === STAR) {
        while (i + 1 < len && p[i + 1] === STAR) i++;
        starts.push(codes.length);
      } else if (c === QUESTION) {
        codes.push(ANY);
      } else if (c === OPEN) {
        const table = new Uint8Array(256);
        i++;
        const negate = at(i) === CARET;
        if (negate) i++;
        for (;;) {
          if (at(i) === BACKSLASH && len - i >= 2) {
            i++;
            table[p[i]] = 1;
          } else if (at(i) === CLOSE) {
            break;
          } else if (i === len) {
            // Unterminated: the class read so far; step back so the main loop's i++ lands on the end.
            i--;
            break;
          } else if (len - i >= 3 && p[i + 1] === DASH) {
            // Either way round; the end may be `]` (so `[a-]` is the range `]`..`a`, class still open).
            let lo = signedByte(p[i]);
            let hi = signedByte(p[i + 2]);
            if (lo > hi) [lo, hi] = [hi, lo];
            for (let b = 0; b < 256; b++) {
              const s = signedByte(b);
              if (s >= lo && s <= hi) table[b] = 1;
            }
            i += 2;
          } else {
            table[p[i]] = 1;
          }
          i++;
        }
        if (negate) for (let b = 0; b < 256; b++) table[b] ^= 1;
        codes.push(CLASS + tables.length);
        tables.push(table);
      } else if (c === BACKSLASH) {
        // A trailing lone backslash is a literal backslash.
        if (len - i >= 2) i++;
        codes.push(p[i]);
      } else {
        codes.push(c);
      }
    }
    starts.push(codes.length);
    this.codes = Int32Array.from(codes);
    this.starts = Int32Array.from(starts);
    this.classes = new Uint8Array(tables.length * 256);
    tables.forEach((t, k) => this.classes.set(t, k * 256));
    let lead = '';
    for (let j = 0; j < starts[1] && codes[j] < 0x80; j++) lead += String.fromCharCode(codes[j]);
    this.lead = lead;
    this.hasStar = starts.length > 2;
    const groups = starts.length - 2;
    const trailing = this.hasStar && starts[starts.length - 2] === codes.length ? 1 : 0;
    this.never = groups - trailing > MAX_NESTING;
  }

  test(key: string): boolean {
    // Redis never enters its loop for an empty key: only the empty glob matches it, and that one is not compiled here.
    if (key.length === 0 || this.never) return false;
    if (this.lead.length !== 0 && !key.startsWith(this.lead)) return false;
    const n = encodeKey(key, this.out);
    const b = this.out.bytes;
    const codes = this.codes;
    const classes = this.classes;
    const starts = this.starts;
    const total = codes.length;
    if (n < total) return false;
    let steps = 0;

    if (!this.hasStar) {
      if (n !== total) return false;
      for (let j = 0; j < total; j++) {
        if (++steps > GLOB_MAX_STEPS) return true;
        if (!one(classes, codes[j], b[j])) return false;
      }
      return true;
    }

    const segments = starts.length - 1;
    const firstEnd = starts[1];
    // The bytes `lead` covers were checked by startsWith.
    for (let j = this.lead.length; j < firstEnd; j++) {
      if (++steps > GLOB_MAX_STEPS) return true;
      if (!one(classes, codes[j], b[j])) return false;
    }
    const lastStart = starts[segments - 1];
    const end = n - (total - lastStart);
    for (let j = lastStart; j < total; j++) {
      if (++steps > GLOB_MAX_STEPS) return true;
      if (!one(classes, codes[j], b[end + j - lastStart])) return false;
    }
    let pos = firstEnd;
    for (let s = 1; s < segments - 1; s++) {
      const from = starts[s];
      const width = starts[s + 1] - from;
      let found = false;
      for (let q = pos; q + width <= end; q++) {
        let j = 0;
        while (j < width) {
          if (++steps > GLOB_MAX_STEPS) return true;
          if (!one(classes, codes[from + j], b[q + j])) break;
          j++;
        }
        if (j === width) {
          pos = q + width;
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return true;
  }
}
