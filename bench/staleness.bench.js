'use strict';
/**
 * Cross-instance staleness: two app instances in separate processes share one Redis. Instance A changes a
 * key (overwrite — announced to B by Redis itself through CLIENT TRACKING —, delete, tag invalidation, both
 * published on the bus); instance B, holding the old value in L1, reads it in a loop.
 * Window = from A's call resolving to B's first read returning something else. Also counted: B's reads that
 * started after A's call resolved and still returned the old value. Floor: one-way raw PUBLISH latency
 * between the same two processes. Target: p99 < 20 ms on loopback.
 *
 *   REDIS_URL=redis://127.0.0.1:PORT node bench/staleness.bench.js   (bench/run.js sets REDIS_URL;
 *   without it a private redis-server is started). STALENESS_ROUNDS=200 by default.
 */
const path = require('node:path');
const { fork, spawn } = require('node:child_process');
const net = require('node:net');

const ROUNDS = Number(process.env.STALENESS_ROUNDS ?? 200);
const TARGET_P99_MS = 20;

async function main() {
  let server;
  let url = process.env.REDIS_URL;
  if (!url) {
    server = await startRedis();
    url = `redis://127.0.0.1:${server.port}`;
  }
  const prefix = `staleness-bench:${process.pid}:`;
  const a = instance(url, prefix);
  const b = instance(url, prefix);
  try {
    const [ia, ib] = await Promise.all([a.call('init'), b.call('init')]);
    if (!ia.subscribed || !ib.subscribed) throw new Error('an instance is not subscribed to the invalidation bus');
    const rows = [];
    rows.push(summarise('raw PUBLISH A→B (floor)', await runFloor(a, b)));
    rows.push(summarise('overwrite (set)', await runScenario(a, b, 'set')));
    rows.push(summarise('delete', await runScenario(a, b, 'delete')));
    rows.push(summarise('invalidateTags', await runScenario(a, b, 'tags')));
    const busB = await b.call('stats');
    print(rows, busB);
  } finally {
    await Promise.allSettled([a.call('close'), b.call('close')]);
    a.kill();
    b.kill();
    if (server) await server.stop();
  }
}

async function runFloor(a, b) {
  const out = [];
  for (let i = 0; i < ROUNDS; i++) {
    const seen = b.next('watch-result');
    await b.call('floorWatch', { value: i });
    const { t0 } = await a.call('change', { op: 'floor', value: i });
    const r = await seen;
    out.push({ windowMs: r.firstNewAt - t0, staleAfter: 0 });
  }
  return out;
}

async function runScenario(a, b, op) {
  const key = `k:${op}`;
  const out = [];
  for (let i = 0; i < ROUNDS; i++) {
    const old = `v${i}`;
    const tag = `t:${op}:${i}`;
    await a.call('change', { op: 'set', key, value: old, tag: op === 'tags' ? tag : undefined });
    const held = await b.call('hold', { key, old });
    if (!held.ok) throw new Error(`reader never held ${key}=${old}`);
    const seen = b.next('watch-result');
    await b.call('watch', { key, old });
    const change = op === 'set' ? { op: 'set', key, value: `v${i}'` } : op === 'delete' ? { op: 'delete', key } : { op: 'tags', tag };
    const { t1 } = await a.call('change', change);
    const r = await seen;
    if (Number.isNaN(r.firstNewAt)) throw new Error(`${op}: reader still saw the old value after 5 s`);
    out.push({ windowMs: Math.max(0, r.firstNewAt - t1), staleAfter: r.staleStarts.filter((s) => s > t1).length });
  }
  return out;
}

function summarise(name, samples) {
  const w = samples.map((s) => s.windowMs).sort((x, y) => x - y);
  const q = (p) => w[Math.min(w.length - 1, Math.ceil(p * w.length) - 1)];
  return {
    name,
    n: w.length,
    p50: q(0.5),
    p99: q(0.99),
    max: w[w.length - 1],
    staleAfter: samples.reduce((s, x) => s + x.staleAfter, 0),
    roundsWithStale: samples.filter((x) => x.staleAfter > 0).length,
  };
}

function print(rows, busB) {
  const floor = rows[0];
  const f = (x) => x.toFixed(2);
  const lines = [
    '## Cross-instance staleness (two processes, one Redis, invalidation bus)',
    '',
    `Window: from A's call resolving to B's first read that no longer returns the old value (floor: from A's PUBLISH to B receiving it). ${ROUNDS} rounds each. Target p99 < ${TARGET_P99_MS} ms.`,
    '',
    '| scenario | rounds | p50 ms | p99 ms | max ms | p50 / floor p50 | p99 / target | stale reads after A resolved (rounds with any) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const isFloor = r === floor;
    lines.push(
      `| ${r.name} | ${r.n} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${isFloor ? '1.00' : f(r.p50 / Math.max(floor.p50, 0.001))} | ${f(r.p99 / TARGET_P99_MS)}${!isFloor && r.p99 >= TARGET_P99_MS ? ' ✗' : ''} | ${isFloor ? '–' : `${r.staleAfter} (${r.roundsWithStale})`} |`,
    );
  }
  lines.push('', `Reader's bus: received ${busB.received}, malformed ${busB.malformed}, L1 cleared on reconnect ${busB.l1ClearsOnReconnect}.`, '');
  process.stdout.write(lines.join('\n') + '\n');
}

// ---------------------------------------------------------------- processes

function instance(url, prefix) {
  const child = fork(path.join(__dirname, 'staleness-instance.js'), [], {
    env: { ...process.env, REDIS_URL: url, STALENESS_PREFIX: prefix },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map();
  child.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve(m.result);
  });
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`instance exited (${code})`));
    pending.clear();
  });
  return {
    call(cmd, args) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, args });
      });
    },
    next(id) {
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
    kill() {
      if (child.exitCode === null) child.kill();
    },
  };
}

async function startRedis() {
  const port = await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 500; i++) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    stop: () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.once('exit', r), proc.kill('SIGKILL')))),
  };
}

main().catch((err) => {
  process.stderr.write(`staleness bench failed: ${err.stack || err}\n`);
  process.exit(1);
});
