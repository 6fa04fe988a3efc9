'use strict';
/**
 * Compression of stored entries (docs/options.md, "Compression"): for 10 KB and 100 KB of JSON, what each algorithm saves
 * once the engine has stored it (base64 inside the entry envelope: every tier stores text), and the engine's
 * compress and decompress against raw node:zlib on the same bytes at the same level, measured in the same run.
 *
 *   npm run build && node --expose-gc bench/compression.bench.js
 *
 * "ours, compress" is EntryCompressor.pack: the envelope's header read, the payload's UTF-8 bytes, zlib, base64,
 * the header written again. "ours, decompress" is inflatePayload: base64 decoded, zlib (bounded by maxValueBytes),
 * UTF-8 decoded. The floors do only the zlib call (and the UTF-8 decode on the way back): the ratio is the price
 * of storing text.
 */
const zlib = require('node:zlib');
const { defaultCodec } = require('../dist');
const { EntryCompressor, inflatePayload, DEFAULT_COMPRESSION } = require('../dist/core/compression');
const { decodeEntry, encodeEntry } = require('../dist/core/entry-envelope');
const { runRounds } = require('./core/harness');
const { formatCoreTable } = require('./core/report');
const { makeValue } = require('./core/data');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 120);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const MAX_BYTES = 1024 * 1024;

/** A JSON array of the suite's usual objects, at least `bytes` long once serialized. */
function payloadOf(bytes) {
  const rows = [];
  let size = 2;
  for (let i = 0; size < bytes; i++) {
    const v = makeValue(i);
    rows.push(v);
    size += JSON.stringify(v).length + 1;
  }
  return defaultCodec.encode(rows, 'bench');
}

const ALGORITHMS = [
  ['brotli', DEFAULT_COMPRESSION.level, (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: DEFAULT_COMPRESSION.level, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }), (b) => zlib.brotliDecompressSync(b)],
  ['gzip', 6, (b) => zlib.gzipSync(b, { level: 6 }), (b) => zlib.gunzipSync(b)],
  ['deflate', 6, (b) => zlib.deflateRawSync(b, { level: 6 }), (b) => zlib.inflateRawSync(b)],
];

async function main() {
  const cases = [];
  const sizes = [];
  for (const [label, bytes] of [
    ['10 KB', 10 * 1024],
    ['100 KB', 100 * 1024],
  ]) {
    const payload = payloadOf(bytes);
    const plain = Buffer.from(payload, 'utf8');
    const stored = encodeEntry(payload, { createdAt: Date.now() });
    for (const [algorithm, level, compress, decompress] of ALGORITHMS) {
      const c = new EntryCompressor({ algorithm, level, threshold: 1024 });
      const packed = c.pack(stored);
      const d = decodeEntry(packed);
      if (d.status !== 'current' || !d.meta.flags) throw new Error(`${algorithm} ${label}: not compressed`);
      if (inflatePayload(d.payload, d.meta.flags, MAX_BYTES) !== payload) throw new Error(`${algorithm} ${label}: does not round-trip`);
      const raw = compress(plain);
      sizes.push({ label, algorithm, level, json: plain.length, raw: raw.length, stored: Buffer.byteLength(packed), storedPlain: Buffer.byteLength(stored) });
      const body = d.payload;
      const flags = d.meta.flags;
      const g = `${label} JSON, ${algorithm} ${algorithm === 'brotli' ? 'quality' : 'level'} ${level}`;
      cases.push(
        { group: `${g}: compress`, name: `raw zlib (${algorithm}) of the UTF-8 bytes`, floor: true, op: () => compress(plain) },
        { group: `${g}: compress`, name: 'ours: EntryCompressor.pack of the stored entry', op: () => c.pack(stored) },
        { group: `${g}: decompress`, name: `raw zlib (${algorithm}) + UTF-8 decode`, floor: true, op: () => decompress(raw).toString('utf8') },
        { group: `${g}: decompress`, name: 'ours: inflatePayload of the stored payload', op: () => inflatePayload(body, flags, MAX_BYTES) },
      );
    }
  }
  const results = await runRounds(cases, { rounds: ROUNDS, sliceMs: SLICE_MS, warmupMs: WARMUP_MS });
  const mbps = (ops, bytes) => `${((ops * bytes) / 1024 / 1024).toFixed(0)} MB/s`;
  const lines = [
    '### Compression of stored entries (10 KB and 100 KB of JSON)',
    '',
    `node:zlib, synchronous. Warm-up slice per case, then ${ROUNDS} rounds of one ${SLICE_MS} ms slice per case, order rotated each round; "vs floor" = median over rounds of (case ÷ raw zlib in the same round).`,
    '',
    '| Data | Algorithm | JSON bytes | raw zlib bytes | stored bytes (base64 in the envelope) | saved vs storing it plain |',
    '|---|---|--:|--:|--:|--:|',
    ...sizes.map((s) => `| ${s.label} | ${s.algorithm} ${s.level} | ${s.json.toLocaleString('en-US')} | ${s.raw.toLocaleString('en-US')} | ${s.stored.toLocaleString('en-US')} | ${(100 * (1 - s.stored / s.storedPlain)).toFixed(1)} % |`),
    '',
    formatCoreTable(results).trimEnd(),
    '',
    'Throughput of ours, in uncompressed JSON per second: ' +
      results
        .filter((r) => !r.c.floor)
        .map((r) => `${r.c.group.replace(/ JSON, /, ' ').replace(/ (quality|level) \d+/, '')} ${mbps(r.ops, sizes.find((s) => r.c.group.startsWith(s.label))?.json ?? 0)}`)
        .join('; ') +
      '.',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
