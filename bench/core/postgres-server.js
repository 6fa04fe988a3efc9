'use strict';
/**
 * A real PostgreSQL server of its own, for one test file (test/support/postgres-server.ts re-exports this) or one
 * benchmark suite (bench/tiers.bench.js). Plain CommonJS so the benchmarks, which run without ts-jest, start
 * their server with the same code as the tests; postgres-server.d.ts gives the tests its types.
 *
 * A fresh cluster (initdb) in a temp dir, on a free loopback port, with its unix socket in that dir too, so it
 * never meets the machine's own server on 5432. The data dir survives kill() and restart() (it is a persistent
 * store; a restart must find the rows again) and goes with stop().
 *
 * Root: initdb and postgres refuse to run as root, so as root every binary runs as the `postgres` OS user
 * (Node's spawn uid/gid, which execs the binary itself: the child we hold is the postmaster, not a runuser
 * wrapper that a SIGKILL would leave its postgres behind). The temp dir is then handed to that user.
 *
 * Signals go to the postmaster and every process it forked, found by parent pid, not to its process group:
 * each postmaster child (backend, checkpointer, walwriter, ...) calls setsid() as it starts (PostgreSQL's
 * InitPostmasterChild, so that the postmaster can signal a child's own children), so it leads a session and a
 * group of its own, and a signal to the postmaster's group reaches the postmaster alone: a SIGSTOPped
 * postmaster's backends go on answering on the connections they already have. Spawned detached, the postmaster
 * does not get the terminal's Ctrl-C either: whoever starts it stops it (killSync() in a process 'exit'
 * handler, where nothing asynchronous runs any more).
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./redis-server');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `signal` to the postmaster `p` and all its descendants. The postmaster is stopped first and continued last,
 * so that it forks no new backend while the list is taken (a child forked just before the stop is listed:
 * its parent pid is the postmaster's from the fork on).
 */
function signalCluster(p, signal) {
  const pid = p.pid;
  if (pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  if (signal !== 'SIGCONT') send(pid, 'SIGSTOP');
  for (const child of descendants(pid)) send(child, signal);
  send(pid, signal);
}

function send(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already (a backend whose client left).
  }
}

/** Every process below `root`, by parent pid: from /proc on Linux, from ps elsewhere (macOS). */
function descendants(root) {
  const parentOf = new Map();
  if (fs.existsSync('/proc/self/stat')) {
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      let stat;
      try {
        stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      } catch {
        continue; // exited while listed
      }
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(name), ppid);
    }
  } else {
    const r = spawnSync('ps', ['-A', '-o', 'pid=', '-o', 'ppid='], { encoding: 'utf8' });
    for (const line of (r.stdout ?? '').split('\n')) {
      const [pid, ppid] = line.trim().split(/\s+/).map(Number);
      if (Number.isInteger(pid) && Number.isInteger(ppid)) parentOf.set(pid, ppid);
    }
  }
  const out = [];
  const below = new Set([root]);
  // Parents before children is not guaranteed by pid order (pids wrap): repeat until nothing new is found.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (below.has(ppid) && !below.has(pid)) {
        below.add(pid);
        out.push(pid);
        grew = true;
      }
    }
  }
  return out;
}

class PostgresServer {
  #proc;
  #dir;
  #bin;
  #paused = false;
  #user;

  /** Use start() or initialize(). */
  constructor(port, dir, bin, user) {
    this.port = port;
    this.#dir = dir;
    this.#bin = bin;
    this.#user = user;
  }

  /** initdb + start; resolves once the server accepts connections. */
  static async start() {
    const server = await PostgresServer.initialize();
    try {
      await server.boot();
      return server;
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  /** initdb only, port chosen and not listening yet (a database that is down at the app's boot); boot() starts it. */
  static async initialize() {
    const bin = findBinaries();
    const user = runAs();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiered-cache-pg-'));
    let port = await freePort();
    // Never the machine's own server, whatever the OS hands out.
    while (port === 5432) port = await freePort();
    const server = new PostgresServer(port, dir, bin, user);
    try {
      fs.mkdirSync(server.socketDir);
      if (user) for (const p of [dir, server.socketDir]) fs.chownSync(p, user.uid, user.gid);
      const r = spawnSync(
        bin.initdb,
        ['-D', server.#dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
        { ...server.#spawnOptions(), encoding: 'utf8', timeout: 120_000 },
      );
      if (r.error || r.status !== 0) throw new Error(`initdb failed (exit ${r.status ?? r.error?.message}):\n${r.stdout ?? ''}${r.stderr ?? ''}`);
      return server;
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get running() {
    return this.#proc !== undefined;
  }

  get socketDir() {
    return path.join(this.#dir, 'sock');
  }

  get #dataDir() {
    return path.join(this.#dir, 'data');
  }

  /** Starts the postmaster on this server's port and waits until it accepts connections. */
  async boot() {
    if (this.#proc) return;
    // A restart right after a SIGKILL can meet the dead cluster's shared memory still attached by a dying backend:
    // the postmaster then exits at once, and a moment later the same start works.
    let lastError;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.#launch();
        return;
      } catch (err) {
        lastError = err;
        await this.kill();
        await sleep(200 * (attempt + 1));
      }
    }
    throw lastError;
  }

  /** SIGKILL to the postmaster and every backend: no shutdown, no goodbye to clients (a host that died). */
  async kill() {
    const p = this.#proc;
    this.#proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((resolve) => p.once('exit', () => resolve()));
    // SIGKILL takes stopped processes too: a paused server dies here as well, no SIGCONT needed.
    signalCluster(p, 'SIGKILL');
    this.#paused = false;
    await exited;
  }

  /** Killed and started again on the same port, over the same data (crash recovery runs). */
  async restart() {
    await this.kill();
    await this.boot();
  }

  /**
   * SIGSTOP to the postmaster and every backend: connections stay open (the kernel keeps them and queues new
   * ones in the listen backlog) and nothing answers, like a hung host. kill() and stop() take a paused server
   * too; tests resume() it first all the same, so that their clients' sockets close before the server goes.
   */
  pause() {
    if (!this.#proc) return;
    signalCluster(this.#proc, 'SIGSTOP');
    this.#paused = true;
  }

  /** SIGCONT to every process pause() stopped: the queued queries and connections are answered. */
  resume() {
    if (!this.#proc) return;
    signalCluster(this.#proc, 'SIGCONT');
    this.#paused = false;
  }

  /** Between pause() and resume(). */
  get isPaused() {
    return this.#paused;
  }

  /** Runs SQL through psql over the unix socket (no driver involved); throws with psql's output when it fails. */
  psql(sql) {
    const r = spawnSync(this.#bin.psql, ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
      ...this.#spawnOptions(),
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.error || r.status !== 0) throw new Error(`psql failed (exit ${r.status ?? r.error?.message}): ${r.stderr ?? ''}`);
    return r.stdout.trim();
  }

  async stop() {
    await this.kill();
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  /** stop() without waiting, for a process 'exit' handler: SIGKILL to every server process, the temp dir removed. */
  killSync() {
    const p = this.#proc;
    this.#proc = undefined;
    if (p && p.exitCode === null && p.signalCode === null) signalCluster(p, 'SIGKILL');
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  #spawnOptions() {
    return {
      cwd: this.#dir,
      // LC_ALL: the cluster's messages and locale checks do not depend on the host's; HOME: the user's own,
      // a root HOME it cannot read makes psql warn.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', HOME: this.#dir, PGTZ: 'UTC' },
      ...(this.#user ? { uid: this.#user.uid, gid: this.#user.gid } : {}),
    };
  }

  async #launch() {
    const args = [
      '-D', this.#dataDir,
      '-p', String(this.port),
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${this.socketDir}`,
      // A test server: durability is not what is tested, and fsync on a loaded CI disk costs seconds.
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=100',
      '-c', 'shared_buffers=32MB',
      '-c', 'logging_collector=off',
    ];
    const proc = spawn(this.#bin.postgres, args, { ...this.#spawnOptions(), stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.#proc = proc;
    let log = '';
    proc.stderr?.on('data', (chunk) => {
      // Only the start-up lines matter, for the error below; a long run must not grow this without end.
      if (log.length < 16_384) log += chunk.toString('utf8');
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`postgres exited (${proc.exitCode ?? proc.signalCode}) on port ${this.port}:\n${log}`);
      }
      if (this.#isReady()) return;
      await sleep(50);
    }
    throw new Error(`postgres did not accept connections on port ${this.port} within 60s:\n${log}`);
  }

  /** pg_isready over TCP: 0 once the server accepts connections (not merely listening while it recovers). */
  #isReady() {
    const r = spawnSync(this.#bin.pgIsReady, ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-t', '2'], { stdio: 'ignore', timeout: 5_000 });
    return r.status === 0;
  }
}

let found;

/**
 * The server binaries: on PATH, in /usr/local/bin, or in Debian's versioned dir (/usr/lib/postgresql/<ver>/bin,
 * the newest), where psql and pg_isready also live. Each tool is looked up in that dir first, so all come
 * from one version.
 */
function findBinaries() {
  if (found) return found;
  const dirs = [];
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    const versions = fs
      .readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(path.join(debian, v, 'bin'));
  }
  dirs.push('/usr/local/bin', ...(process.env.PATH ?? '').split(':').filter(Boolean));
  const locate = (name) => {
    for (const d of dirs) {
      const p = path.join(d, name);
      if (fs.existsSync(p)) return p;
    }
    return undefined;
  };
  const initdb = locate('initdb');
  const postgres = locate('postgres');
  const psql = locate('psql');
  const pgIsReady = locate('pg_isready');
  if (!initdb || !postgres || !psql || !pgIsReady) {
    throw new Error(
      'PostgreSQL server binaries (initdb, postgres, psql, pg_isready) were not found on PATH, in /usr/local/bin or under ' +
        '/usr/lib/postgresql/<version>/bin. The PostgreSQL tier tests and benchmarks start their own server; install it with ' +
        '`apt-get install -y postgresql` (Debian/Ubuntu) or `brew install postgresql` (macOS), then run them again.',
    );
  }
  found = { initdb, postgres, psql, pgIsReady };
  return found;
}

/** As root: the `postgres` OS user (the Debian package creates it); otherwise undefined (run as ourselves). */
function runAs() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const id = (flag) => {
    const r = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
    const n = Number(r.stdout.trim());
    if (r.status !== 0 || !Number.isInteger(n) || n === 0) {
      throw new Error(
        "Running as root, and there is no `postgres` OS user to run initdb/postgres as (initdb refuses root). Create one (`useradd -r postgres`) or install Debian's postgresql package.",
      );
    }
    return n;
  };
  return { uid: id('-u'), gid: id('-g') };
}

module.exports = { PostgresServer };
