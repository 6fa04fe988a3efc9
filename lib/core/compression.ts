import * as zlib from 'node:zlib';
import { CacheDecodeError } from './codec';
import { ENTRY_BROTLI, ENTRY_COMPRESSED, ENTRY_DEFLATE, ENTRY_GZIP, encodeEntry, readHeader, type EntryHeader } from './entry-envelope';

/**
 * Compression of stored entries, per tier. A tier that compresses rewrites each entry it is handed: when the
 * codec's payload is at least `threshold` UTF-8 bytes, the payload becomes the base64 of its compressed bytes and
 * the envelope says which algorithm (entry-envelope.ts flags). Every reader decompresses whatever it finds, so
 * instances with different settings, or a value copied up from a compressing tier into one that does not
 * compress, read each other's entries.
 *
 * Synchronous on purpose: a tier's writes leave in the order the engine issued them (a delete must never
 * overtake the write before it), and an await between the call and the command would break that order. At the
 * default settings, 10 KB of JSON takes some 20 µs and 100 KB some 110 µs (bench/compression.bench.js measures it).
 */
export type CompressionAlgorithm = 'gzip' | 'deflate' | 'brotli';

export interface ResolvedCompression {
  algorithm: CompressionAlgorithm;
  /** zlib level (gzip, deflate: 1–9) or brotli quality (0–11). */
  level: number;
  /** Payloads of fewer UTF-8 bytes are stored as they are. */
  threshold: number;
}

export const COMPRESSION_ALGORITHMS: readonly CompressionAlgorithm[] = ['gzip', 'deflate', 'brotli'];
/** Brotli at quality 1: the fastest of the three at both 10 KB and 100 KB of JSON, within 1–3 points of the best ratio. */
export const DEFAULT_COMPRESSION: ResolvedCompression = { algorithm: 'brotli', level: 1, threshold: 1024 };
export const LEVELS: Record<CompressionAlgorithm, { min: number; max: number }> = {
  gzip: { min: 1, max: 9 },
  deflate: { min: 1, max: 9 },
  brotli: { min: 0, max: 11 },
};

const FLAG: Record<CompressionAlgorithm, number> = { gzip: ENTRY_GZIP, deflate: ENTRY_DEFLATE, brotli: ENTRY_BROTLI };

/** Rewrites stored entries for a tier that compresses. One per tier; not shared across threads. */
export class EntryCompressor {
  readonly #flag: number;
  readonly #threshold: number;
  readonly #compress: (input: Buffer) => Buffer;
  readonly #header: EntryHeader = { createdAt: 0, staleAt: -1, flags: 0 };
  /** Entries compressed, and the UTF-8 bytes they had and have (what stats report as saved). */
  compressed = 0;
  bytesIn = 0;
  bytesOut = 0;

  constructor(readonly options: ResolvedCompression) {
    this.#flag = FLAG[options.algorithm];
    this.#threshold = options.threshold;
    const level = options.level;
    this.#compress =
      options.algorithm === 'gzip'
        ? (b) => zlib.gzipSync(b, { level })
        : options.algorithm === 'deflate'
          ? (b) => zlib.deflateRawSync(b, { level })
          : (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } });
  }

  /**
   * The form this tier stores `stored` in: compressed when its payload reaches the threshold and compressing
   * makes it smaller; as it is otherwise (already compressed, by any algorithm: every reader handles them all;
   * an entry without the envelope; a malformed one, which a reader will count as corrupt).
   */
  pack(stored: string): string {
    // A UTF-16 unit is at most 3 UTF-8 bytes: shorter strings cannot reach the threshold.
    if (stored.length * 3 < this.#threshold) return stored;
    const h = this.#header;
    const at = readHeader(stored, h);
    if (at <= 0 || (h.flags & ENTRY_COMPRESSED) !== 0) return stored;
    const plain = Buffer.from(stored.slice(at), 'utf8');
    if (plain.length < this.#threshold) return stored;
    const body = this.#compress(plain).toString('base64');
    if (body.length >= plain.length) return stored;
    this.compressed++;
    this.bytesIn += plain.length;
    this.bytesOut += body.length;
    return encodeEntry(body, { createdAt: h.createdAt, staleAt: h.staleAt >= 0 ? h.staleAt : undefined, flags: h.flags | this.#flag });
  }
}

/**
 * The codec's payload of a compressed entry (`flags` from its header). Throws CacheDecodeError for anything that
 * does not decompress, or that would decompress to more than `maxBytes` (the uncompressed size limit: a small
 * hostile value cannot make a reader allocate without bound).
 */
export function inflatePayload(body: string, flags: number, maxBytes: number): string {
  const input = Buffer.from(body, 'base64');
  const limit = { maxOutputLength: Math.max(1, maxBytes) };
  try {
    const out =
      (flags & ENTRY_BROTLI) !== 0
        ? zlib.brotliDecompressSync(input, limit)
        : (flags & ENTRY_GZIP) !== 0
          ? zlib.gunzipSync(input, limit)
          : zlib.inflateRawSync(input, limit);
    return out.toString('utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new CacheDecodeError(code === 'ERR_BUFFER_TOO_LARGE' ? `compressed payload expands past ${maxBytes} bytes` : `compressed payload does not decompress (${(err as Error).message})`);
  }
}
