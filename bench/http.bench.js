'use strict';
/**
 * HTTP load on the sample app (issue 6): a cached GET (`GET /properties/:id`, @Cacheable +
 * TieredCacheInterceptor, every response an X-Cache HIT; the sample turns on `http.fastPath`, so once a URL is
 * known its hits are answered by the fast-path middleware before Nest routing) next to a trivial route of the same app
 * (`GET /ping`, no interceptor, no cache: the baseline) and next to the uncached route
 * (`GET /properties/:id/uncached`, the fake database's simulated latency). A third baseline,
 * `GET /ping/property` (the cached route's body, no cache), separates the cache layer's cost from the cost
 * of sending a bigger body.
 *
 * The app runs in a child process (compiled sample, `REDIS_URL` from the environment: L1 + real Redis when
 * set, L1 only otherwise); autocannon runs here, in the bench process, so client and server are separate
 * processes (on a 2-core machine they still share the cores). Throughput rounds interleave the routes
 * (order rotated every round, reversed every other) and report medians; ratios are medians of per-round ratios.
 * Target: cached >= 85% of the req/s of a trivial route returning the same body (`/ping/property`): a
 * cache hit cannot avoid serializing and sending its body, so that is the cost a hit is measured against.
 * The ratio to the smallest trivial route (`/ping`, 11 B) is reported next to it.
 *
 *   node bench/http.bench.js     (compiles sample-app into dist-sample/ when it is missing or older than its sources)
 *   HTTP_BENCH_ROUNDS=9 HTTP_BENCH_SECONDS=2 HTTP_BENCH_CONNECTIONS=10 HTTP_BENCH_UNCACHED_SECONDS=4 HTTP_BENCH_IDS=10 (optional)
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const autocannon = require('autocannon');
const { freePort } = require('./core/redis-server');

const ROUNDS = Number(process.env.HTTP_BENCH_ROUNDS ?? 9);
const SECONDS = Number(process.env.HTTP_BENCH_SECONDS ?? 2);
const CONNECTIONS = Number(process.env.HTTP_BENCH_CONNECTIONS ?? 10);
const UNCACHED_SECONDS = Number(process.env.HTTP_BENCH_UNCACHED_SECONDS ?? 4);
const WARMUP_SECONDS = 1;
const LATENCY_SECONDS = 2; // the 1-connection (unloaded) latency runs
const TARGET = 0.85;
const IDS = Array.from({ length: Number(process.env.HTTP_BENCH_IDS ?? 10) }, (_, i) => String(i + 1)); // warmed ids (1-50), requested in turn

const ROOT = path.join(__dirname, '..');
const OUT = path.join(ROOT, 'dist-sample');
const MAIN = path.join(OUT, 'sample-app', 'src', 'main.js');

const log = (m) => process.stderr.write(`[http.bench] ${m}\n`);

// ---------------------------------------------------------------------------------------------------
// The app child: started once, stopped on every exit path.

let app; // { proc, port, base, cpu() }

function killApp(signal) {
  if (app && app.proc.exitCode === null && app.proc.signalCode === null) {
    try {
      app.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', () => killApp('SIGKILL')); // synchronous last resort
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping the app`);
    killApp('SIGKILL');
    process.exit(130);
  });
}

function stopApp() {
  if (!app) return Promise.resolve();
  const { proc } = app;
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM'); // Nest shutdown hooks: closes Redis cleanly
    setTimeout(() => killApp('SIGKILL'), 3_000).unref();
  });
}

function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = 0;
  for (const e of fs.readdirSync(p)) max = Math.max(max, newestMtime(path.join(p, e)));
  return max;
}

/** Compiles sample-app (and the lib sources it imports) unless dist-sample is newer than every source. */
function compileSampleIfStale() {
  const sources = ['sample-app/src', 'lib', 'sample-app/tsconfig.json', 'tsconfig.json'].map((p) => path.join(ROOT, p));
  const built = fs.existsSync(MAIN) && fs.existsSync(path.join(OUT, 'sample-app', 'src', 'ping.controller.js')) ? fs.statSync(MAIN).mtimeMs : 0;
  if (built > Math.max(...sources.map(newestMtime))) return false;
  log('compiling sample-app (tsc -p sample-app/tsconfig.json)');
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'sample-app', 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`sample-app does not compile:\n${res.stdout}${res.stderr}`);
  return true;
}

async function startApp() {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--require', path.join(__dirname, 'core', 'app-child.js'), MAIN], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output = (output + d).slice(-4000)));
  proc.stderr.on('data', (d) => (output = (output + d).slice(-4000)));
  const pending = new Map();
  let seq = 0;
  proc.on('message', (m) => {
    const p = pending.get(m?.cpu);
    if (p) {
      pending.delete(m.cpu);
      p(m.usage);
    }
  });
  app = {
    proc,
    port,
    base: `http://127.0.0.1:${port}`,
    output: () => output,
    /** The app's process.cpuUsage() (µs), user + system. */
    cpu: () =>
      new Promise((resolve, reject) => {
        const id = ++seq;
        pending.set(id, (u) => resolve(u.user + u.system));
        proc.send({ cpu: id });
        setTimeout(() => pending.delete(id) && reject(new Error('app did not report its CPU usage')), 2_000).unref();
      }),
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the sample app exited (${proc.exitCode ?? proc.signalCode}):\n${output}`);
    try {
      const res = await fetch(`${app.base}/ping`);
      if (res.ok) {
        await res.arrayBuffer();
        return app;
      }
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`the sample app did not answer GET /ping within 20s:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------------
// Load runs.

/**
 * One autocannon run. Latencies are recorded here at full precision (autocannon's own histogram has 1 ms
 * resolution, too coarse for sub-millisecond responses); X-Cache values and statuses are tallied per
 * response. Every route gets a request list of the same length, so the client does the same work for each.
 */
async function load(route, { connections = CONNECTIONS, seconds = SECONDS } = {}) {
  const xcache = {};
  const onResponse = (status, body, ctx, headers) => {
    const v = headers['X-Cache'] ?? headers['x-cache'] ?? '(none)';
    xcache[v] = (xcache[v] ?? 0) + 1;
  };
  const paths = typeof route.path === 'function' ? IDS.map(route.path) : IDS.map(() => route.path);
  const lat = [];
  const cpu0 = await app.cpu();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const tracker = autocannon({
    url: app.base,
    connections,
    pipelining: 1,
    duration: seconds,
    sampleInt: 250, // a run ends at the first sample tick after `duration`: keep the overshoot short
    requests: paths.map((p) => ({ method: 'GET', path: p, onResponse })),
  });
  tracker.on('response', (client, status, bytes, ms) => lat.push(ms));
  const result = await new Promise((resolve, reject) => tracker.then(resolve, reject));
  const wallS = (performance.now() - t0) / 1000;
  const clientCpu = process.cpuUsage(client0);
  const serverCpuUs = (await app.cpu()) - cpu0;
  lat.sort((a, b) => a - b);
  const n = lat.length;
  return {
    n,
    rps: n / result.duration,
    mean: n ? lat.reduce((a, b) => a + b, 0) / n : NaN,
    p50: n ? lat[Math.floor(n * 0.5)] : NaN,
    p99: n ? lat[Math.min(n - 1, Math.ceil(n * 0.99) - 1)] : NaN,
    max: n ? lat[n - 1] : NaN,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    xcache,
    serverCpuPerReqUs: n ? serverCpuUs / n : NaN,
    serverCpuShare: serverCpuUs / 1e6 / wallS,
    clientCpuShare: (clientCpu.user + clientCpu.system) / 1e6 / wallS,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const int = (n) => Math.round(n).toLocaleString('en-US');
const ms = (x) => (x >= 10 ? `${x.toFixed(0)} ms` : x >= 1 ? `${x.toFixed(2)} ms` : `${x.toFixed(3)} ms`);
const pct = (x) => `${Math.round(x * 100)}%`;
const tally = (x) =>
  Object.entries(x)
    .map(([k, v]) => `${k} ${int(v)}`)
    .join(', ');

async function getJson(p) {
  const res = await fetch(app.base + p);
  return { status: res.status, xcache: res.headers.get('x-cache'), body: await res.json() };
}

const TRIVIAL = { key: 'trivial', name: '`GET /ping` (trivial baseline)', path: '/ping' };
const SAME_BODY = { key: 'sameBody', name: '`GET /ping/property` (same body as cached, no cache)', path: '/ping/property' };
const CACHED = { key: 'cached', name: '`GET /properties/:id` (cached, X-Cache HIT)', path: (id) => `/properties/${id}` };
const UNCACHED = { key: 'uncached', name: '`GET /properties/:id/uncached` (no cache)', path: (id) => `/properties/${id}/uncached` };
const INTERLEAVED = [TRIVIAL, CACHED, SAME_BODY];

let warmRequests = 0;
/** Stores every id's response (a MISS runs the handler once) outside any measured run; route TTL is 1 minute. */
async function warmIds() {
  warmRequests += IDS.length;
  const res = await Promise.all(IDS.map((id) => getJson(CACHED.path(id))));
  if (res.some((r) => r.status !== 200)) throw new Error(`warming the cached route failed: ${res.map((r) => r.status).join(',')}`);
}

async function main() {
  const started = Date.now();
  const load0 = os.loadavg();
  const compiled = compileSampleIfStale();
  await startApp();
  log(`app pid ${app.proc.pid} on ${app.base} (${process.env.REDIS_URL ? 'L1 + Redis' : 'L1 only: REDIS_URL not set'})`);

  await warmIds();
  const sample = await getJson(CACHED.path(IDS[0]));
  if (sample.xcache !== 'HIT' || sample.body?.id !== IDS[0]) throw new Error(`expected an X-Cache HIT for /properties/${IDS[0]}, got ${sample.xcache} ${JSON.stringify(sample.body)}`);
  const bytes = {};
  for (const r of [TRIVIAL, SAME_BODY]) bytes[r.key] = JSON.stringify((await getJson(r.path)).body).length;
  bytes.cached = JSON.stringify(sample.body).length;
  log(`warmed ${IDS.length} ids; sample request: X-Cache ${sample.xcache}`);

  // JIT warm-up of every route (results discarded).
  for (const r of INTERLEAVED) await load(r, { seconds: WARMUP_SECONDS });

  const stats0 = (await getJson('/cache/stats')).body;
  const warm0 = warmRequests;
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order every round and reverse it every other round, so drift hits every route alike.
    let order = INTERLEAVED.slice(r % INTERLEAVED.length).concat(INTERLEAVED.slice(0, r % INTERLEAVED.length));
    if (r % 2 === 1) order = order.reverse();
    const round = {};
    for (const route of order) {
      if (route === CACHED) await warmIds(); // a no-op (all HITs) unless an entry expired
      round[route.key] = await load(route);
    }
    rounds.push(round);
    log(`round ${r + 1}/${ROUNDS}: ` + INTERLEAVED.map((x) => `${x.key} ${int(round[x.key].rps)}`).join(', ') + ' req/s');
  }
  const stats1 = (await getJson('/cache/stats')).body;
  const roundWarm = warmRequests - warm0;

  // Unloaded latency (one connection), then the slow path.
  const trivial1 = await load(TRIVIAL, { connections: 1, seconds: LATENCY_SECONDS });
  await warmIds();
  const cached1 = await load(CACHED, { connections: 1, seconds: LATENCY_SECONDS });
  log('uncached route');
  const uncached = await load(UNCACHED, { seconds: UNCACHED_SECONDS });
  const load1 = os.loadavg();

  // Medians over the rounds; ratios are medians of per-round ratios.
  const med = (key, f) => median(rounds.map((r) => f(r[key])));
  const summary = (key) => ({
    rps: med(key, (x) => x.rps),
    mean: med(key, (x) => x.mean),
    p99: med(key, (x) => x.p99),
    cpu: med(key, (x) => x.serverCpuPerReqUs),
  });
  const T = summary('trivial');
  const S = summary('sameBody');
  const C = summary('cached');
  const ratioOf = (a, b) => median(rounds.map((r) => r[a].rps / r[b].rps));
  const ratio = ratioOf('cached', 'trivial');
  const ratioSame = ratioOf('sameBody', 'trivial');
  const ratioCacheOnly = ratioOf('cached', 'sameBody');
  const cpuRatio = median(rounds.map((r) => r.trivial.serverCpuPerReqUs / r.cached.serverCpuPerReqUs));

  const all = rounds.flatMap((r) => Object.values(r)).concat([trivial1, cached1, uncached]);
  const sum = (f) => all.reduce((a, x) => a + f(x), 0);
  const cachedRuns = rounds.map((r) => r.cached).concat([cached1]);
  const cachedX = {};
  for (const x of cachedRuns) for (const [k, v] of Object.entries(x.xcache)) cachedX[k] = (cachedX[k] ?? 0) + v;
  const cachedN = cachedRuns.reduce((a, x) => a + x.n, 0);
  const roundCachedN = rounds.reduce((a, r) => a + r.cached.n, 0);
  const share = (f) => median(rounds.flatMap((r) => Object.values(r).map(f)));
  const us = (x) => `${int(x)} µs`;
  const signed = (x) => `${x >= 0 ? '+' : '−'}${int(Math.abs(x))} µs`;

  const row = (name, conns, x, cpu, vs) => `| ${name} | ${conns} | ${int(x.rps)} | ${ms(x.mean)} | ${ms(x.p99)} | ${cpu} | ${vs} |`;
  const lines = [
    `### HTTP load: sample app under autocannon (${ROUNDS} interleaved rounds of ${SECONDS} s per route, ${CONNECTIONS} connections, medians)`,
    '',
    '| endpoint | connections | req/s | mean latency | p99 latency | app CPU / request | req/s vs trivial |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row(TRIVIAL.name, CONNECTIONS, T, us(T.cpu), '1.00'),
    row(CACHED.name, CONNECTIONS, C, us(C.cpu), `**${ratio.toFixed(2)}**`),
    row(SAME_BODY.name, CONNECTIONS, S, us(S.cpu), ratioSame.toFixed(2)),
    row(UNCACHED.name, CONNECTIONS, uncached, '—', (uncached.rps / T.rps).toFixed(3)),
    row(`${TRIVIAL.name}, unloaded`, 1, trivial1, us(trivial1.serverCpuPerReqUs), '—'),
    row(`${CACHED.name}, unloaded`, 1, cached1, us(cached1.serverCpuPerReqUs), '—'),
    '',
    `**Target: cached >= ${TARGET * 100}% of a trivial route returning the same body (\`/ping/property\`), req/s: ${ratioCacheOnly >= TARGET ? 'PASS' : 'FAIL'}** ` +
      `(median of per-round ratios ${ratioCacheOnly.toFixed(2)}; rounds ${rounds.map((r) => (r.cached.rps / r.sameBody.rps).toFixed(2)).join(', ')}). ` +
      `Against the smallest trivial route (\`/ping\`, ${bytes.trivial} B): ${ratio.toFixed(2)} ` +
      `(rounds ${rounds.map((r) => (r.cached.rps / r.trivial.rps).toFixed(2)).join(', ')}); by app CPU per request, which a busy neighbour usually ` +
      `disturbs less than req/s: trivial ÷ cached = ${cpuRatio.toFixed(2)} (cached ${signed(C.cpu - T.cpu)} per request).`,
    '',
    `Where the difference goes: the same body without the cache (\`/ping/property\`) costs ${signed(S.cpu - T.cpu)} of CPU per request over \`/ping\` ` +
      `(serializing and sending ${bytes.sameBody} B instead of ${bytes.trivial} B); the cache layer (the sample app turns on http.fastPath: a known URL's L1 hit is answered by our middleware before Nest routing; the first request of a URL goes through TieredCacheInterceptor) ${signed(C.cpu - S.cpu)}. ` +
      `req/s: cached ÷ same body = ${ratioCacheOnly.toFixed(2)}, same body ÷ trivial = ${ratioSame.toFixed(2)}.`,
    '',
    `**Uncached → cached:** mean ${ms(uncached.mean)} → ${ms(cached1.mean)} unloaded (1 connection; p99 ${ms(uncached.p99)} → ${ms(cached1.p99)}); ` +
      `${ms(C.mean)} at ${CONNECTIONS} connections, which saturate the app (that latency is mostly queueing: ${CONNECTIONS} in flight ÷ req/s). ` +
      `The uncached route waits on the fake database's simulated lookup (median ${ms(uncached.p50)}); req/s ${int(uncached.rps)} → ${int(C.rps)}.`,
    '',
    `${Object.keys(cachedX).some((k) => k !== 'HIT') ? '**WARNING: not every cached response was a HIT.** ' : ''}` +
      `Checks: cached responses X-Cache ${tally(cachedX)} of ${int(cachedN)} (warm-up runs excluded); ` +
      `cache stats over the rounds: +${int(stats1.l1_hits - stats0.l1_hits)} L1 hits for ${int(roundCachedN)} counted cached responses + ${roundWarm} re-warm requests ` +
      `(the rest: requests still in flight when a run stops, up to ${CONNECTIONS} a run), ` +
      `+${int(stats1.l1_misses - stats0.l1_misses)} L1 misses, +${int(stats1.l2_hits - stats0.l2_hits)} L2 hits, L2 ${stats1.l2_status}; ` +
      `errors ${sum((x) => x.errors)}, timeouts ${sum((x) => x.timeouts)}, non-2xx ${sum((x) => x.non2xx)}.`,
    '',
    `Setup: the compiled sample app (${process.env.REDIS_URL ? 'L1 + Redis' : 'L1 only, no REDIS_URL'}) in a child process, autocannon in the bench process; ` +
      `they share the machine's ${os.cpus().length} CPU(s) with each other and anything else running ` +
      `(median CPU use during the rounds: app ${pct(share((x) => x.serverCpuShare))} of a core, autocannon ${pct(share((x) => x.clientCpuShare))}). ` +
      `Load average ${load0.map((l) => l.toFixed(2)).join(' ')} → ${load1.map((l) => l.toFixed(2)).join(' ')}; ` +
      `${((Date.now() - started) / 1000).toFixed(0)} s${compiled ? ' including the sample compile' : ''}. ` +
      'Latencies are recorded per response at full precision (autocannon’s own histogram is 1 ms-grained).',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main()
  .catch((err) => {
    process.stderr.write(`http bench failed: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopApp());
