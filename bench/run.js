'use strict';
/**
 * `npm run bench`: starts a private redis-server, runs the core suite (ours vs raw floors vs peers, every
 * case interleaved in the same process), the heap measurements (each in its own process), then every other
 * bench/*.bench.js suite as a child process with REDIS_URL set. The redis-server is stopped on every exit path.
 *
 *   node --expose-gc bench/run.js [--write]     --write also rewrites bench/RESULTS.md
 *   BENCH_ROUNDS=25 BENCH_SLICE_MS=120 BENCH_HEAP_ROUNDS=3 BENCH_ONLY=core|suites BENCH_GROUPS=<regex on case group> BENCH_CASES=<regex on contender name>
 *   BENCH_SUITES=<regex on a bench/*.bench.js file name>  (optional)
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startRedis } = require('./core/redis-server');
const { runRounds } = require('./core/harness');
const { formatCoreTable, formatHeapTable, machineSection, serializeResult, deserializeResult } = require('./core/report');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 120);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const HEAP_ROUNDS = Number(process.env.BENCH_HEAP_ROUNDS ?? 3);
const ONLY = process.env.BENCH_ONLY;
const SUITE_TIMEOUT_MS = 10 * 60_000;

const log = (m) => process.stderr.write(`[bench] ${m}\n`);

let redis;
let exiting = false;
/** Child processes running now: a suite among them may have started servers of its own, which it stops on SIGTERM. */
const children = new Set();

/** SIGTERM, so a suite can stop the servers it started (a SIGKILL would leave them behind); SIGKILL if it hangs. */
function stopChild(child, graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

process.on('exit', () => {
  // Last resort on an abrupt exit: signals are synchronous, so neither the server nor a suite outlives us.
  for (const child of children) child.kill('SIGTERM');
  redis?.killSync();
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    log(`${sig}: stopping the running suite and redis-server`);
    Promise.all([...children].map((c) => stopChild(c)))
      .then(() => redis?.stop())
      .finally(() => process.exit(130));
  });
}

function runChild(args, env, { timeoutMs, onStdout }) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      onStdout?.(d);
    });
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => stopChild(child), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, out, err });
    });
  });
}

async function heapMeasurements() {
  const { names } = require('./core/heap-child');
  const child = path.join(__dirname, 'core', 'heap-child.js');
  const samples = new Map(names.map((n) => [n, []]));
  for (let r = 0; r < HEAP_ROUNDS; r++) {
    const order = names.slice(r % names.length).concat(names.slice(0, r % names.length));
    for (const name of order) {
      const res = await runChild(['--expose-gc', child, name], {}, { timeoutMs: 120_000 });
      if (res.code !== 0) throw new Error(`heap measurement "${name}" failed (${res.code ?? res.signal}): ${res.err.trim()}`);
      samples.get(name).push(JSON.parse(res.out.trim().split('\n').pop()));
    }
  }
  return names.map((name) => ({ name, samples: samples.get(name) }));
}

/**
 * Sub-microsecond, in-memory groups run in a process of their own (all their contenders together): there,
 * a case is a handful of inlined calls, and JIT feedback left behind by forty other cases (every library's
 * Redis paths) tilts them by up to 2x from one run to the next — an artifact of the bench, not of any
 * library. The I/O-bound groups stay together in this process.
 */
const MEMORY_GROUPS = /^(L1 hit|mget of 100 keys, all L1)/i;

async function coreSuite(url, part) {
  const { buildContenders, verify } = require('./core/contenders');
  log(`building contenders for the ${part} groups (Nest app contexts, peers, 1,000 keys each)`);
  const built = await buildContenders(url);
  const groupOrder = [...new Set(built.cases.map((c) => c.group))];
  built.cases = built.cases.filter((c) => MEMORY_GROUPS.test(c.group) === (part === 'in-memory'));
  if (process.env.BENCH_GROUPS) {
    const re = new RegExp(process.env.BENCH_GROUPS, 'i');
    built.cases = built.cases.filter((c) => re.test(c.group));
  }
  if (process.env.BENCH_CASES) {
    // Development only: keeps the floors, and the contenders whose name matches.
    const re = new RegExp(process.env.BENCH_CASES, 'i');
    built.cases = built.cases.filter((c) => c.floor || re.test(c.name));
  }
  if (built.cases.length === 0) {
    await built.close();
    return { results: [], l1Check: undefined, groupOrder };
  }
  try {
    await verify(built.cases);
    const t0 = Date.now();
    log(`${built.cases.length} cases x ${ROUNDS} rounds x ${SLICE_MS} ms (+ warm-up)`);
    const results = await runRounds(built.cases, {
      rounds: ROUNDS,
      sliceMs: SLICE_MS,
      warmupMs: WARMUP_MS,
      onProgress: (r, n) => log(`round ${r}/${n} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`),
    });
    const s = built.ours.tiered.stats();
    // The L1 case must really be L1 hits: any L2 traffic on the L1 instance would show up here.
    const l1Check =
      part === 'in-memory'
        ? `ours L1 instance: ${s.l1.hits} L1 hits, ${s.l2.hits} L2 hits, ${s.l2.errors} L2 errors, ${s.l2.timeouts} timeouts`
        : undefined;
    return { results, l1Check, groupOrder };
  } finally {
    await built.close();
  }
}

/** Both parts of the core suite; results in the groups' usual order. */
async function fullCoreSuite(url) {
  const child = await runChild(['--expose-gc', __filename], { BENCH_CORE_CHILD: 'in-memory', BENCH_REDIS_URL: url }, {
    timeoutMs: SUITE_TIMEOUT_MS,
  });
  if (child.err.trim()) process.stderr.write(child.err);
  if (child.code !== 0) throw new Error(`in-memory core groups failed (${child.code ?? child.signal})`);
  const mem = JSON.parse(child.out.trim().split('\n').pop());
  const io = await coreSuite(url, 'I/O');
  const order = io.groupOrder;
  const results = [...mem.results.map(deserializeResult), ...io.results];
  results.sort((a, b) => order.indexOf(a.c.group) - order.indexOf(b.c.group));
  return { results, l1Check: mem.l1Check ?? io.l1Check };
}

async function otherSuites(url) {
  const only = process.env.BENCH_SUITES ? new RegExp(process.env.BENCH_SUITES, 'i') : undefined;
  const files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.js') && (!only || only.test(f)))
    .sort();
  if (only && files.length === 0) throw new Error(`BENCH_SUITES=${process.env.BENCH_SUITES} matches no bench/*.bench.js`);
  const { Redis } = require('ioredis');
  const outputs = [];
  let failed = 0;
  for (const f of files) {
    const admin = new Redis(url);
    await admin.flushall(); // our own bench server only: each suite starts from an empty Redis
    admin.disconnect();
    log(`suite ${f}`);
    process.stdout.write(`\n## ${f}\n\n`);
    const res = await runChild(['--expose-gc', path.join(__dirname, f)], { REDIS_URL: url }, {
      timeoutMs: SUITE_TIMEOUT_MS,
      onStdout: (d) => process.stdout.write(d),
    });
    if (res.code !== 0) {
      failed++;
      process.stdout.write(`\n**${f} failed** (${res.code ?? res.signal})\n\n\`\`\`\n${res.err.trim().slice(-2000)}\n\`\`\`\n`);
    } else if (res.err.trim()) {
      process.stderr.write(res.err);
    }
    outputs.push({ file: f, code: res.code, out: res.out });
  }
  return { outputs, failed };
}

async function main() {
  if (!global.gc) throw new Error('run with node --expose-gc (npm run bench does)');
  const started = new Date();
  const load0 = os.loadavg();
  redis = await startRedis();
  log(`redis-server pid ${redis.pid} on ${redis.url}`);
  let md = '';
  let failed = 0;
  try {
    if (ONLY !== 'suites') {
      const core = await fullCoreSuite(redis.url);
      log('heap measurements (one process each)');
      const heap = !process.env.BENCH_GROUPS || new RegExp(process.env.BENCH_GROUPS, 'i').test('heap') ? await heapMeasurements() : [];
      const load1 = os.loadavg();
      md += machineSection({ started, load0, load1, rounds: ROUNDS, sliceMs: SLICE_MS, heapRounds: HEAP_ROUNDS });
      md += '\n## Core suite\n\n' + formatCoreTable(core.results) + '\n' + (heap.length ? formatHeapTable(heap) : '') + '\n';
      if (core.l1Check) md += `\nSanity: ${core.l1Check}.\n`;
      process.stdout.write(md);
    }
    if (ONLY !== 'core') {
      const suites = await otherSuites(redis.url);
      failed += suites.failed;
      for (const s of suites.outputs) md += `\n## ${s.file}\n\n${s.out}\n`;
    }
  } finally {
    await redis.stop();
    log('redis-server stopped');
  }
  if (process.argv.includes('--write')) {
    fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), '# Benchmark results\n\n' + md);
    log('wrote bench/RESULTS.md');
  }
  if (failed > 0) process.exitCode = 1;
}

async function coreChild() {
  const part = await coreSuite(process.env.BENCH_REDIS_URL, process.env.BENCH_CORE_CHILD);
  process.stdout.write(JSON.stringify({ results: part.results.map(serializeResult), l1Check: part.l1Check }) + '\n');
}

(process.env.BENCH_CORE_CHILD ? coreChild() : main()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

// Every connection is closed above; if a library still holds a handle, do not hang the npm script on it.
process.on('beforeExit', () => setTimeout(() => process.exit(), 2_000).unref());
