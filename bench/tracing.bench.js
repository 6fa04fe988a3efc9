'use strict';
/**
 * Cost of OpenTelemetry tracing on the read paths, each row against the same engine with tracing off
 * (`tracing: false`: the class's methods, nothing wrapped — what an app without @opentelemetry/api runs):
 *
 * 1. L1 hit (get): tracing on with OpenTelemetry's no-op tracer (the API installed, no provider registered), with
 *    a real SDK provider (BasicTracerProvider + BatchSpanProcessor into an exporter that drops the batches), and
 *    with `l1Hits: true` on that provider (a span per hit). By default an L1 hit has no span.
 * 2. L2 hit (get, L1 off): every call goes to Redis and has a span; the same three settings.
 *
 * Redis at REDIS_URL (bench/run.js sets it), else a private redis-server is started.
 *
 *   npm run build && node --expose-gc bench/tracing.bench.js
 *   (or: BENCH_ONLY=suites BENCH_SUITES=tracing npm run bench)
 */
const { trace } = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { TieredCache } = require('../dist');
const { runRounds } = require('./core/harness');
const { formatCoreTable } = require('./core/report');
const { startRedis } = require('./core/redis-server');
const { KEYS, makeValue, keys } = require('./core/data');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 120);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const quiet = { warn() {}, error() {} };
const k = (i) => keys[i % KEYS];
const log = (m) => process.stderr.write(`[tracing] ${m}\n`);

/** Takes every batch and drops it: the SDK's work per span without a network. */
class DroppingExporter {
  constructor() {
    this.spans = 0;
  }
  export(spans, done) {
    this.spans += spans.length;
    done({ code: 0 });
  }
  shutdown() {
    return Promise.resolve();
  }
}

async function main() {
  const own = process.env.REDIS_URL ? undefined : await startRedis();
  const url = process.env.REDIS_URL ?? own.url;
  const exporter = new DroppingExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 8192, maxExportBatchSize: 1024, scheduledDelayMillis: 50 })] });
  // No global provider is registered: the API's tracer is the no-op one.
  const noop = trace.getTracer('bench');
  const real = provider.getTracer('bench');
  const engines = [];
  try {
    const engine = async (prefix, options) => {
      const c = new TieredCache({ redis: url, keyPrefix: prefix, logger: quiet, l1: { maxEntries: 10_000 }, ...options });
      engines.push(c);
      await c.connect();
      for (let i = 0; i < KEYS; i++) await c.set(k(i), makeValue(i));
      return c;
    };
    const settings = [
      ['tracing off', { tracing: false }],
      ['tracing on, no-op tracer (API, no provider)', { tracing: { tracer: noop } }],
      ['tracing on, SDK provider (batch processor)', { tracing: { tracer: real } }],
    ];
    const cases = [];
    const l1 = [];
    let g = 'L1 hit (get, 1 in flight)';
    for (const [name, options] of settings) {
      const c = await engine(`bench-trace-l1-${l1.length}:`, options);
      l1.push(c);
      cases.push({ group: g, name, floor: options.tracing === false, op: (i) => c.get(k(i)) });
    }
    const spanned = await engine('bench-trace-l1-spanned:', { tracing: { tracer: real, l1Hits: true } });
    l1.push(spanned);
    cases.push({ group: g, name: 'tracing on, SDK provider, l1Hits: true (a span per hit)', op: (i) => spanned.get(k(i)) });
    g = 'L2 hit (get, L1 off, 1 in flight)';
    const l2 = [];
    for (const [name, options] of settings) {
      const c = await engine(`bench-trace-l2-${l2.length}:`, { ...options, l1: { enabled: false } });
      l2.push(c);
      cases.push({ group: g, name, floor: options.tracing === false, op: (i) => c.get(k(i)) });
    }
    for (const c of [...l1, ...l2]) if ((await c.get(k(0))) === undefined) throw new Error('expected a hit');

    const before = l1.map((c) => c.stats().l2.hits + c.stats().l2.misses);
    log(`${cases.length} cases x ${ROUNDS} rounds x ${SLICE_MS} ms`);
    const results = await runRounds(cases, { rounds: ROUNDS, sliceMs: SLICE_MS, warmupMs: WARMUP_MS });
    l1.forEach((c, j) => {
      const lookups = c.stats().l2.hits + c.stats().l2.misses - before[j];
      if (lookups !== 0) throw new Error(`${lookups} L2 lookups in an L1-hit row`);
    });
    await provider.forceFlush();
    process.stdout.write(
      [
        '### Tracing cost (OpenTelemetry)',
        '',
        `Engines with L1 + L2, ${KEYS} keys (the L2 rows with L1 off). Warm-up slice per case, then ${ROUNDS} rounds of one ${SLICE_MS} ms slice per case, order rotated each round; "vs floor" = median over rounds of (case ÷ the same engine with tracing off, in the same round). No L2 lookup in the L1 rows (checked). Spans exported by the SDK provider: ${exporter.spans.toLocaleString('en-US')}.`,
        '',
        formatCoreTable(results).trimEnd(),
        '',
      ].join('\n') + '\n',
    );
  } finally {
    for (const c of engines.reverse()) await c.close();
    await provider.shutdown();
    await own?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
