import { CacheDecodeError } from './codec';

/**
 * The entry envelope: a short text header in front of the codec's payload in every value the engine stores in
 * Redis, so an entry can carry its write time and a logical expiry (for grace / stale-while-revalidate /
 * fail-safe) next to what the codec wrote.
 *
 *     \x02 <version> ":" <createdAt> [ "," <staleAt> [ "," <flags> [ "," <more>… ] ] ] "|" <payload>
 *
 * e.g. `\x021:m8oblvxd|\x01tc1:{"a":1}` (written at epoch ms 1742896553953, default codec); 12 bytes of
 * header until 2059, when `createdAt` takes a 9th digit.
 *
 * - `\x02` (STX) marks an envelope. No output of the default codec (which starts with `\x01tc1:`) or of
 *   `JSON.stringify` (`{ [ " t f n -` or a digit) can start with it, so anything else is an entry in the format
 *   written before the envelope existed: it is handed to the codec as it is (meta `undefined`). (Only a custom
 *   codec whose own output started with `\x02` could make an old entry look like an envelope; written from now
 *   on, such output is wrapped and reads back fine.)
 * - Numbers are base36 (`Number#toString(36)`: `[0-9a-z]`, lowercase), 1 to 10 digits (exact below 2^53).
 *   `createdAt` (epoch ms, when the engine encoded the value) is required; `staleAt` (epoch ms, the logical
 *   expiry; empty or absent: the Redis TTL is the only expiry) and `flags` (a bit set; empty, absent or 0: none)
 *   are optional. Fields after `flags` are ignored by this reader: a later version may append fields an older
 *   reader can skip without bumping the version.
 * - The header ends at the first `|`. No header of any version contains `|`, so the payload — which may hold
 *   any character, `|` and `,` included — always starts right after it. A reader in another language strips
 *   the header that way: if the value starts with `\x02`, drop everything up to and including the first `|`.
 * - Parsing is one pass over the header's characters (no regex, no split, nothing read past the `|`); the
 *   header is bounded (a version of at most 4 digits, at most 16 fields), so a hostile value cannot make a
 *   reader scan far.
 *
 * Unknown is not corrupt. An entry whose version is newer than this reader's (or that has a flag this reader
 * does not know) was written by a newer instance, e.g. during a rolling deploy: it decodes as `newer` — a plain
 * miss, left in Redis for the instances that can read it. Anything else that starts with `\x02` but is not a
 * well-formed header (no `|`, a bad digit, a missing `createdAt`, version 0) is corrupt: decodeEntry throws
 * CacheDecodeError, the same path as a payload the codec rejects (the engine counts it and deletes it).
 * Flags mean "must understand": a flag changes how the payload is read (compression, a tombstone…), so a
 * reader that does not know it must not use the entry. Ship a reader for a new version or flag before any
 * instance writes it.
 */

/** What the envelope records next to the payload. */
export interface EntryMeta {
  /** When the value was encoded, epoch ms. */
  createdAt: number;
  /** Logical expiry, epoch ms. Absent: the physical (Redis) TTL is the only expiry. */
  staleAt?: number;
  /** A bit set (absent or 0: none): ENTRY_GZIP, ENTRY_DEFLATE, ENTRY_BROTLI say how the payload is compressed. */
  flags?: number;
}

/**
 * The payload is the base64 of the codec's output (UTF-8) compressed with gzip / raw deflate / brotli
 * (compression.ts). Base64 because every tier stores text: a Redis string read back as UTF-8, a PostgreSQL text
 * column. At most one of them is set; two make the header corrupt.
 */
export const ENTRY_GZIP = 1;
export const ENTRY_DEFLATE = 2;
export const ENTRY_BROTLI = 4;
export const ENTRY_COMPRESSED = ENTRY_GZIP | ENTRY_DEFLATE | ENTRY_BROTLI;

/** What readHeader() leaves in its `into` argument: staleAt -1 and flags 0 when absent. */
export interface EntryHeader {
  createdAt: number;
  staleAt: number;
  flags: number;
}

export type DecodedEntry =
  /** An enveloped entry this reader understands. */
  | { status: 'current'; payload: string; meta: EntryMeta }
  /** An entry in the format written before the envelope, returned as it is. */
  | { status: 'legacy'; payload: string; meta: undefined }
  /**
   * Written by a newer version (or with a flag this reader does not know; `version` is then this reader's own):
   * a miss, not corrupt — leave it in place.
   */
  | { status: 'newer'; version: number; payload: undefined; meta: undefined };

/** The envelope version this module writes and reads. */
export const ENTRY_VERSION = 1;
/** payloadStart() for an entry this reader cannot read: a newer version, or an unknown flag. */
export const ENTRY_NEWER = -1;
/** payloadStart() for a value that starts like an envelope but is not a well-formed one. */
export const ENTRY_CORRUPT = -2;

const MARK = 0x02;
const COLON = 0x3a;
const COMMA = 0x2c;
const BAR = 0x7c;
const PREFIX = '\u0002' + ENTRY_VERSION.toString(36) + ':';
const MAX_VERSION_DIGITS = 4;
const MAX_DIGITS = 10;
const MAX_FIELDS = 16;
/** 36^10: every value below it has at most MAX_DIGITS base36 digits (and is below 2^53). */
const MAX_NUMBER = 3_656_158_440_062_976;
/** The flags this version knows. */
const KNOWN_FLAGS = ENTRY_COMPRESSED;

let lastCreatedAt = -1;
let lastCreatedHeader = '';

/** Whether an entry whose header read `staleAt` (-1: none) is past its logical expiry: a stale copy within grace. */
export function pastStaleAt(staleAt: number): boolean {
  return staleAt >= 0 && Date.now() >= staleAt;
}

/** Wraps a codec payload in the envelope. Throws RangeError for a time that is not an integer epoch ms, or an undefined flag. */
export function encodeEntry(payload: string, meta: EntryMeta): string {
  const { createdAt, staleAt, flags } = meta;
  checkTime('createdAt', createdAt);
  // Number#toString(36) costs several times Date.now(): writes within the same millisecond share one header.
  if (createdAt !== lastCreatedAt) {
    lastCreatedHeader = PREFIX + createdAt.toString(36);
    lastCreatedAt = createdAt;
  }
  let header = lastCreatedHeader;
  if (flags !== undefined && flags !== 0) {
    if (!Number.isInteger(flags) || flags < 0 || (flags & KNOWN_FLAGS) !== flags) throw new RangeError(`entry flags ${flags}: no such flag is defined`);
    const c = flags & ENTRY_COMPRESSED;
    if ((c & (c - 1)) !== 0) throw new RangeError(`entry flags ${flags}: at most one compression`);
    header += ',' + (staleAt === undefined ? '' : checkTime('staleAt', staleAt).toString(36)) + ',' + flags.toString(36);
  } else if (staleAt !== undefined) {
    header += ',' + checkTime('staleAt', staleAt).toString(36);
  }
  return header + '|' + payload;
}

/**
 * Splits a stored value into the codec payload and its meta. A value without the envelope (the format written
 * before it) comes back as it is, `status: 'legacy'`, meta undefined. Throws CacheDecodeError for a malformed
 * envelope (corrupt); returns `status: 'newer'` for one this reader cannot read (a miss, not corrupt).
 */
export function decodeEntry(raw: string): DecodedEntry {
  const h: EntryHeader = { createdAt: 0, staleAt: -1, flags: 0 };
  const at = scan(raw, h);
  if (at === 0) return { status: 'legacy', payload: raw, meta: undefined };
  if (at === ENTRY_NEWER) return { status: 'newer', version: versionOf(raw), payload: undefined, meta: undefined };
  if (at === ENTRY_CORRUPT) throw new CacheDecodeError('malformed entry header');
  const meta: EntryMeta = { createdAt: h.createdAt };
  if (h.staleAt >= 0) meta.staleAt = h.staleAt;
  if (h.flags !== 0) meta.flags = h.flags;
  return { status: 'current', payload: raw.slice(at), meta };
}

/**
 * The engine's read path: where the codec payload starts in `raw` — 0 for a value without the envelope, the
 * index after the header's `|` for a current one — or ENTRY_NEWER / ENTRY_CORRUPT. Validates the header as
 * decodeEntry does (the same scan) and allocates nothing; the caller slices.
 */
export function payloadStart(raw: string): number {
  return scan(raw, undefined);
}

/**
 * payloadStart() that also reports the header's fields into `into` (a caller's reusable object, so a read
 * allocates nothing). `into` is written for every enveloped entry this reader accepts, and left as it was for
 * anything else (a legacy value: 0; ENTRY_NEWER; ENTRY_CORRUPT).
 */
export function readHeader(raw: string, into: EntryHeader): number {
  return scan(raw, into);
}

/** The one parser. Fills `out` only for an entry it accepts. */
function scan(raw: string, out: EntryHeader | undefined): number {
  if (raw.charCodeAt(0) !== MARK) return 0;
  const len = raw.length;
  let i = 1;
  let version = 0;
  for (; i < len && i <= MAX_VERSION_DIGITS; i++) {
    const d = digit36(raw.charCodeAt(i));
    if (d < 0) break;
    version = version * 36 + d;
  }
  if (i === 1 || version === 0 || raw.charCodeAt(i) !== COLON) return ENTRY_CORRUPT;
  if (version !== ENTRY_VERSION) return ENTRY_NEWER;
  i++;
  let createdAt = 0;
  let staleAt = -1;
  let flags = 0;
  for (let field = 0; ; field++) {
    const start = i;
    let v = 0;
    // One digit past the limit is enough to tell a field too long: a hostile value is not scanned further.
    const end = Math.min(len, start + MAX_DIGITS + 1);
    for (; i < end; i++) {
      const d = digit36(raw.charCodeAt(i));
      if (d < 0) break;
      v = v * 36 + d;
    }
    const digits = i - start;
    if (digits > MAX_DIGITS) return ENTRY_CORRUPT;
    if (field === 0) {
      if (digits === 0) return ENTRY_CORRUPT;
      createdAt = v;
    } else if (field === 1) {
      if (digits > 0) staleAt = v;
    } else if (field === 2) {
      flags = v;
    }
    const c = raw.charCodeAt(i);
    if (c === BAR) break;
    // Anything else, the end of the string (NaN) included: not a header.
    if (c !== COMMA || field + 1 >= MAX_FIELDS) return ENTRY_CORRUPT;
    i++;
  }
  // flags & KNOWN_FLAGS truncates to 32 bits: any value that is not made only of known bits differs from it.
  if ((flags & KNOWN_FLAGS) !== flags) return ENTRY_NEWER;
  // Two compressions at once: no writer sets that.
  const c = flags & ENTRY_COMPRESSED;
  if ((c & (c - 1)) !== 0) return ENTRY_CORRUPT;
  if (out !== undefined) {
    out.createdAt = createdAt;
    out.staleAt = staleAt;
    out.flags = flags;
  }
  return i + 1;
}

function digit36(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 122) return c - 87; // a-z
  return -1;
}

function versionOf(raw: string): number {
  let version = 0;
  for (let i = 1; i < raw.length; i++) {
    const d = digit36(raw.charCodeAt(i));
    if (d < 0) break;
    version = version * 36 + d;
  }
  return version;
}

function checkTime(name: string, t: number): number {
  if (!Number.isInteger(t) || t < 0 || t >= MAX_NUMBER) throw new RangeError(`entry ${name} ${t}: expected an integer epoch ms`);
  return t;
}
