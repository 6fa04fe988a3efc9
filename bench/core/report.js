'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median } = require('./harness');

const root = path.join(__dirname, '..', '..');
const PACKAGES = ['lru-cache', 'ioredis', '@nestjs/core', 'bentocache', 'cache-manager', 'keyv', '@keyv/redis', 'cacheable', '@cacheable/memory'];

function version(pkg) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return 'n/a';
  }
}

function redisVersion() {
  try {
    return require('node:child_process').execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1] ?? '?';
  } catch {
    return '?';
  }
}

function cpuModel() {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model;
  } catch {
    return os.cpus()[0]?.model ?? '?';
  }
}

const fmtOps = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const fmtLat = (us) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(us < 10 ? 2 : 1)} µs`);
const pct = (r) => `${(r * 100).toFixed(r < 0.1 ? 1 : 0)} %`;

function machineSection({ started, load0, load1, rounds, sliceMs, heapRounds }) {
  const la = (l) => l.map((x) => x.toFixed(2)).join(' ');
  return [
    `- Date: ${started.toISOString()}`,
    `- Machine: ${os.cpus().length} cores (nproc), ${cpuModel()}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`,
    `- Node ${process.version}, redis-server ${redisVersion()} (private, loopback, no persistence)`,
    `- Load average at start / end: ${la(load0)} / ${la(load1)}`,
    `- Versions: ${PACKAGES.map((p) => `${p} ${version(p)}`).join(', ')}`,
    `- Method: warm-up slice per case, then ${rounds} rounds of one ${sliceMs} ms slice per case (minor GC before each slice); ops/s = median over rounds. ` +
      `A round measures each group's cases back to back (group order and order within a group rotate each round), so "vs floor" = median over rounds of (case ops/s ÷ floor ops/s in the same round); "range" = lowest–highest of those per-round ratios. ` +
      `Each case has its own compiled timing loop. The in-memory groups (L1 hit, mget of L1 hits) run in a process of their own, all their contenders together; the Redis groups share another. ` +
      `Mean latency = calls in flight ÷ throughput. Heap: ${heapRounds} runs per contender, each in its own process, median.`,
    '',
  ].join('\n');
}

function formatCoreTable(results) {
  const groups = new Map();
  for (const r of results) {
    if (!groups.has(r.c.group)) groups.set(r.c.group, []);
    groups.get(r.c.group).push(r);
  }
  const lines = ['| Case | Contender | ops/s | mean latency | vs floor | range | target |', '|---|---|--:|--:|--:|--:|---|'];
  for (const [group, rows] of groups) {
    const floor = rows.find((r) => r.c.floor);
    for (const r of rows) {
      const inflight = r.c.inflight ?? 1;
      const unit = r.c.unit === 'burst' ? ' bursts' : '';
      const per = r.samples.map((s, i) => s / floor.samples[i]);
      const ratio = median(per);
      const range = r.c.floor ? '' : `${pct(Math.min(...per))}–${pct(Math.max(...per))}`;
      let target = '';
      if (r.c.target !== undefined) target = `≥ ${pct(r.c.target)}: **${ratio >= r.c.target ? 'PASS' : 'FAIL'}**`;
      const name = r.c.factoryRuns ? `${r.c.name} (factory runs/burst: ${r.c.factoryRuns().toFixed(2)})` : r.c.name;
      lines.push(
        `| ${r === rows[0] ? group : ''} | ${r.c.floor ? `*floor:* ${name}` : name} | ${fmtOps(r.ops)}${unit} | ${fmtLat((inflight * 1e6) / r.ops)} | ${
          r.c.floor ? '100 %' : pct(ratio)
        } | ${range} | ${target} |`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

const HEAP_TARGET = 1.05;

function formatHeapTable(heap) {
  const rows = heap.map((h) => ({ name: h.name, bytes: median(h.samples.map((s) => s.total)), spread: h.samples.map((s) => s.total) }));
  const floor = rows.find((r) => r.name === 'raw lru-cache');
  const lines = [
    '| Heap: 100,000 ~200-byte objects in L1 | retained (heapUsed + arrayBuffers) | per entry | vs floor | target |',
    '|---|--:|--:|--:|---|',
  ];
  for (const r of rows) {
    const ratio = r.bytes / floor.bytes;
    const isOurs = r.name === 'ours';
    lines.push(
      `| ${r === floor ? `*floor:* ${r.name} (max 100,000, ttl)` : r.name} | ${(r.bytes / 2 ** 20).toFixed(1)} MiB | ${Math.round(r.bytes / 100_000)} B | ${ratio.toFixed(2)}× | ${
        isOurs ? `≤ ${HEAP_TARGET.toFixed(2)}×: **${ratio <= HEAP_TARGET ? 'PASS' : 'FAIL'}**` : ''
      } |`,
    );
  }
  return lines.join('\n') + '\n';
}

/** What the report needs of a result, as JSON (a case's op and hooks stay behind). */
function serializeResult(r) {
  const { group, name, floor, inflight, unit, target } = r.c;
  return { c: { group, name, floor, inflight, unit, target, runs: r.c.factoryRuns?.() }, samples: r.samples, ops: r.ops };
}

function deserializeResult(r) {
  const c = { ...r.c };
  if (c.runs !== undefined) c.factoryRuns = () => c.runs;
  return { ...r, c };
}

module.exports = { formatCoreTable, formatHeapTable, machineSection, serializeResult, deserializeResult };
