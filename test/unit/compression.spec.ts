import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { CacheDecodeError, defaultCodec } from '../../lib/core/codec';
import { EntryCompressor, inflatePayload } from '../../lib/core/compression';
import { ENTRY_BROTLI, ENTRY_DEFLATE, ENTRY_GZIP, decodeEntry, encodeEntry } from '../../lib/core/entry-envelope';
import { resolveCompression } from '../../lib/core/tier-options';

const T = 1_742_896_553_953;
/** Serialized like the engine writes it: the default codec inside the envelope. */
const stored = (value: unknown, staleAt?: number): string => encodeEntry(defaultCodec.encode(value, 'k'), { createdAt: T, staleAt });
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `FR/75/${i}`, owner: `owner${i % 7}@agency.fr`, price: 100_000 + i, rooms: i % 5 }));

function unpack(raw: string, maxBytes = 1 << 20): unknown {
  const d = decodeEntry(raw);
  if (d.status !== 'current') throw new Error(d.status);
  return defaultCodec.decode(d.meta.flags ? inflatePayload(d.payload, d.meta.flags, maxBytes) : d.payload);
}

describe('entry compression', () => {
  it.each([
    ['gzip', ENTRY_GZIP],
    ['deflate', ENTRY_DEFLATE],
    ['brotli', ENTRY_BROTLI],
  ] as const)('%s: a payload at or above the threshold is stored compressed, flagged, and reads back exactly', (algorithm, flag) => {
    const c = new EntryCompressor({ algorithm, level: algorithm === 'brotli' ? 1 : 6, threshold: 1024 });
    const value = { rows: rows(200), when: new Date(T), big: 10n ** 30n };
    const raw = stored(value, T + 5_000);
    const packed = c.pack(raw);
    const d = decodeEntry(packed);
    expect(d.status).toBe('current');
    expect(d.meta).toEqual({ createdAt: T, staleAt: T + 5_000, flags: flag });
    expect(packed.length).toBeLessThan(raw.length / 3);
    expect(unpack(packed)).toEqual(value);
    // The stats count serialized bytes before and after.
    expect(c.compressed).toBe(1);
    expect(c.bytesIn).toBe(Buffer.byteLength(decodeEntry(raw).payload as string));
    expect(c.bytesOut).toBe((d.payload as string).length);
  });

  it('a payload below the threshold, one compressed already (by any algorithm), and a value without the envelope are left as they are', () => {
    const c = new EntryCompressor({ algorithm: 'brotli', level: 1, threshold: 1024 });
    const small = stored({ a: 1 });
    expect(c.pack(small)).toBe(small);
    const gz = new EntryCompressor({ algorithm: 'gzip', level: 6, threshold: 1024 }).pack(stored(rows(100)));
    expect(c.pack(gz)).toBe(gz);
    const legacy = defaultCodec.encode(rows(100), 'k');
    expect(c.pack(legacy)).toBe(legacy);
    expect(c.compressed).toBe(0);
  });

  it('the threshold counts UTF-8 bytes, not UTF-16 units', () => {
    const c = new EntryCompressor({ algorithm: 'deflate', level: 6, threshold: 1024 });
    // 400 units of a 3-byte character: 1,200 bytes.
    const raw = stored('€'.repeat(400));
    expect(decodeEntry(c.pack(raw)).meta?.flags).toBe(ENTRY_DEFLATE);
    expect(unpack(c.pack(raw))).toBe('€'.repeat(400));
  });

  it('a payload that compressing would not shrink is stored as it is', () => {
    // Random printable text (6.5 bits of entropy per byte): deflate gains little, base64 of its output loses a third.
    const s = Array.from(randomBytes(4000), (b) => String.fromCharCode(33 + (b % 90))).join('');
    const raw = stored(s);
    const c = new EntryCompressor({ algorithm: 'gzip', level: 6, threshold: 1024 });
    expect(c.pack(raw)).toBe(raw);
  });

  it('garbage under a compression flag, or a payload that expands past the limit, is a CacheDecodeError', () => {
    expect(() => inflatePayload('bm90IGd6aXA=', ENTRY_GZIP, 1 << 20)).toThrow(CacheDecodeError);
    expect(() => inflatePayload('%%%', ENTRY_BROTLI, 1 << 20)).toThrow(CacheDecodeError);
    // 1 MB of zeros compresses to about 1 KB: a reader whose limit is 64 KB refuses it before allocating it all.
    const bomb = gzipSync(Buffer.alloc(1 << 20)).toString('base64');
    expect(bomb.length).toBeLessThan(4_000);
    expect(() => inflatePayload(bomb, ENTRY_GZIP, 64 * 1024)).toThrow(/expands past 65536 bytes/);
    expect(inflatePayload(bomb, ENTRY_GZIP, 1 << 20)).toHaveLength(1 << 20);
  });
});

describe('compression options', () => {
  it('true takes the defaults (brotli, quality 1, 1 kb); an algorithm alone takes its own default level', () => {
    expect(resolveCompression('x', true)).toEqual({ algorithm: 'brotli', level: 1, threshold: 1024 });
    expect(resolveCompression('x', { algorithm: 'gzip' })).toEqual({ algorithm: 'gzip', level: 6, threshold: 1024 });
    expect(resolveCompression('x', { algorithm: 'deflate', level: 9, threshold: '4kb' })).toEqual({ algorithm: 'deflate', level: 9, threshold: 4096 });
    expect(resolveCompression('x', false)).toBeUndefined();
    expect(resolveCompression('x', undefined)).toBeUndefined();
  });

  it('a bad field fails naming it', () => {
    expect(() => resolveCompression('tiers[2].compression', { algorithm: 'zstd' as 'gzip' })).toThrow(/tiers\[2\]\.compression\.algorithm/);
    expect(() => resolveCompression('tiers[2].compression', { algorithm: 'gzip', level: 11 })).toThrow(/tiers\[2\]\.compression\.level.*1 to 9/);
    expect(() => resolveCompression('tiers[2].compression', { level: 12 })).toThrow(/tiers\[2\]\.compression\.level.*0 to 11/);
    expect(() => resolveCompression('tiers[2].compression', { threshold: 'big' })).toThrow(/tiers\[2\]\.compression\.threshold/);
    expect(() => resolveCompression('l2.compression', 'gzip' as unknown as boolean)).toThrow(/l2\.compression/);
  });
});
