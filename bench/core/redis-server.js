'use strict';
/**
 * Private redis-server processes on free loopback ports: the benchmarks' (bench/run.js, bench/tiers.bench.js)
 * and the tests' (test/support/redis-server.ts wraps this file). Plain CommonJS so the benchmarks, which run
 * without ts-jest, start their servers with the same code as the tests; redis-server.d.ts gives the tests
 * its types.
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

/** Persistence off: a flush costs nothing and nothing touches the disk. */
const BASE_ARGS = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'];

/** A free loopback port (never 6379: the OS picks one). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** `n` free ports, all distinct: the OS may hand the same free port out twice in a row. */
async function distinctPorts(n, taken = new Set()) {
  const out = [];
  while (out.length < n) {
    const p = await freePort();
    if (!taken.has(p)) {
      taken.add(p);
      out.push(p);
    }
  }
  return out;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = new net.Socket();
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    // A paused (SIGSTOPped) server accepts in the kernel and never answers: do not wait on it.
    s.setTimeout(200, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, '127.0.0.1', () => done(true));
  });
}

/**
 * One redis-server on `port` (a free one when not given), `args` appended to the base arguments; resolves once
 * it accepts connections. `stop()` asks it to exit (SIGTERM, SIGKILL after 2 s), `kill()` SIGKILLs it (a host
 * that died), `killSync()` is for a process 'exit' handler, where nothing asynchronous runs any more. Each is
 * safe to call more than once.
 */
async function startRedis({ args = [], port } = {}) {
  if (port === undefined) port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), ...BASE_ARGS, ...args], { stdio: 'ignore' });
  let exited = false;
  let failure;
  let onGone;
  const gone = new Promise((resolve) => (onGone = resolve));
  proc.once('exit', () => {
    exited = true;
    onGone();
  });
  const spawnError = new Promise((_, reject) =>
    proc.once('error', (err) => {
      // Not started at all (no binary): no 'exit' may follow.
      exited = true;
      failure = new Error(`cannot start redis-server: ${err.message}`);
      onGone();
      reject(failure);
    }),
  );
  spawnError.catch(() => undefined);
  const signal = (sig) => {
    if (exited) return;
    try {
      proc.kill(sig);
    } catch {
      /* already gone */
    }
  };
  const kill = () => {
    if (exited) return Promise.resolve();
    signal('SIGKILL');
    // A SIGSTOPped process only dies once it runs again.
    signal('SIGCONT');
    return gone;
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw failure ?? new Error(`redis-server exited early (code ${proc.exitCode}) on port ${port}`);
    const up = await Promise.race([canConnect(port), spawnError]);
    if (up) break;
    if (Date.now() > deadline) {
      await kill();
      throw new Error(`redis-server did not start on port ${port} within 10s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const stop = () => {
    if (exited) return Promise.resolve();
    signal('SIGTERM');
    signal('SIGCONT');
    setTimeout(() => signal('SIGKILL'), 2_000).unref();
    return gone;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid,
    get running() {
      return !exited;
    },
    stop,
    kill,
    signal,
    killSync: () => signal('SIGKILL'),
  };
}

/** One redis-cli call; '' when it fails. */
function redisCli(port, args, timeout = 2_000) {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout });
  return r.status === 0 ? r.stdout : '';
}

/**
 * A 3-master Redis Cluster (no replicas) on free loopback ports, created with `redis-cli --cluster create`;
 * resolves once every node says cluster_state:ok, knows every node and sees all 16384 slots served. Each node has
 * its own config file in a fresh temp dir (removed by stop()). `startNode(args, port)` starts one node: the tests
 * pass their own, which can kill, pause and restart it; it resolves to something with `port`, `stop()` and
 * optionally `killSync()`. cluster-node-timeout 2000 ms: a master killed with no replica to take over loses its
 * slots within seconds, which the tests rely on.
 */
async function startRedisCluster({ masters = 3, startNode = (args, port) => startRedis({ args, port }) } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiered-cache-cluster-'));
  const servers = [];
  let stopped = false;
  const cluster = {
    servers,
    dir,
    get nodes() {
      return servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
    },
    /** CLUSTER INFO of node `i`, as text ('' when it does not answer). */
    info: (i) => redisCli(servers[i].port, ['CLUSTER', 'INFO']),
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
      if (!stopped) fs.rmSync(dir, { recursive: true, force: true });
      stopped = true;
    },
    killSync() {
      for (const s of servers) s.killSync?.();
      fs.rmSync(dir, { recursive: true, force: true });
      stopped = true;
    },
  };
  try {
    // The cluster bus gets a free port of its own: port + 10000 may be taken, or beyond 65535.
    const ports = await distinctPorts(masters * 2);
    for (let i = 0; i < masters; i++) {
      const port = ports[2 * i];
      const args = [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '2000',
        '--cluster-port', String(ports[2 * i + 1]),
        '--dir', dir,
      ];
      servers.push(await startNode(args, port));
    }
    const r = spawnSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.error || r.status !== 0) {
      throw new Error(`redis-cli --cluster create failed (exit ${r.status ?? r.error?.message}):\n${r.stdout ?? ''}${r.stderr ?? ''}`);
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      const infos = servers.map((_, i) => cluster.info(i));
      const ok = infos.every(
        (t) => /^cluster_state:ok\r?$/m.test(t) && new RegExp(`^cluster_known_nodes:${masters}\\r?$`, 'm').test(t) && /^cluster_slots_ok:16384\r?$/m.test(t),
      );
      if (ok) return cluster;
      if (Date.now() > deadline) throw new Error(`Redis Cluster did not reach cluster_state:ok within 20s:\n${infos.join('\n---\n')}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

module.exports = { startRedis, startRedisCluster, freePort, distinctPorts, canConnect, redisCli };
