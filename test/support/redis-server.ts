import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, redisCli as cli, startRedis, startRedisCluster, type RedisClusterProcess, type RedisProcess } from '../../bench/core/redis-server';

export { freePort };

/**
 * A real redis-server on a free loopback port, owned by one test file: started, killed and restarted at will.
 * No mocks: the cache is tested against the same server it meets in production. The process itself is started
 * by bench/core/redis-server.js, which the benchmarks use too (plain JS: they run without ts-jest).
 */
export class RedisServer {
  private proc: RedisProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  static async start(extraArgs: string[] = [], port?: number): Promise<RedisServer> {
    assertRedisInstalled();
    const server = new RedisServer(port ?? (await freePort()), extraArgs);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** Kills the server (SIGKILL: no goodbye to clients, as when a host dies). */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    await p?.kill();
  }

  /** Starts it again on the same port, empty. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** SIGSTOP: the port stays open but nothing answers, like a hung or black-holed host. */
  pause(): void {
    this.proc?.signal('SIGSTOP');
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  stop(): Promise<void> {
    return this.kill();
  }

  private async launch(): Promise<void> {
    this.proc = await startRedis({ args: this.extraArgs, port: this.port });
  }
}

const installed = new Set<string>();
/** Fails with `howTo` when `binary --version` does not run (checked once per binary). */
function assertInstalled(binary: string, howTo: string): void {
  if (installed.has(binary)) return;
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`${binary} is not on PATH. ${howTo}`);
  installed.add(binary);
}

function assertRedisInstalled(): void {
  assertInstalled(
    'redis-server',
    'The integration tests start their own Redis servers; install one with `apt-get install -y redis-server` ' +
      '(Debian/Ubuntu) or `brew install redis` (macOS), then run the tests again.',
  );
}

function assertRedisCliInstalled(): void {
  assertInstalled(
    'redis-cli',
    'The Cluster and Sentinel tests drive their servers with redis-cli (`redis-cli --cluster create`, SENTINEL queries); ' +
      'it ships with redis-server (`apt-get install -y redis-server` or `brew install redis`).',
  );
}

/**
 * A real 3-master Redis Cluster (no replicas) on free loopback ports, created with `redis-cli --cluster create`.
 * Each node has its own config file in a fresh temp dir (removed on stop). `kill(i)` SIGKILLs one master, as
 * when a host dies; with no replica to promote, the cluster loses that master's slots once it notices
 * (cluster-node-timeout 2000 ms).
 */
export class RedisCluster {
  private constructor(private readonly cluster: RedisClusterProcess<RedisServer>) {}

  static async start(masters = 3): Promise<RedisCluster> {
    assertRedisInstalled();
    assertRedisCliInstalled();
    return new RedisCluster(await startRedisCluster({ masters, startNode: (args, port) => RedisServer.start(args, port) }));
  }

  get nodes(): Array<{ host: string; port: number }> {
    return this.cluster.nodes;
  }

  /** CLUSTER INFO of one node, as text ('' when it does not answer). */
  info(i: number): string {
    return this.cluster.info(i);
  }

  /** SIGSTOPs master `i`: its port stays open and nothing answers (a hung host). Resume it within the node timeout (2 s). */
  pause(i: number): void {
    this.cluster.servers[i].pause();
  }

  resume(i: number): void {
    this.cluster.servers[i].resume();
  }

  /** SIGKILLs master `i` (it stays dead until stop()). */
  kill(i: number): Promise<void> {
    return this.cluster.servers[i].kill();
  }

  stop(): Promise<void> {
    return this.cluster.stop();
  }
}

/**
 * A real Sentinel setup on free loopback ports: one master, one replica (`--replicaof`), and one Sentinel
 * (`redis-server <conf> --sentinel`, the same binary) watching them with quorum 1, so it can fail over alone.
 * down-after-milliseconds 500: a killed master is replaced within a few seconds. Config and state live in a
 * fresh temp dir (Sentinel rewrites its config file), removed on stop.
 */
export class RedisSentinelGroup {
  readonly name = 'mymaster';
  private sentinelProc: ChildProcess | undefined;

  private constructor(
    readonly master: RedisServer,
    readonly replica: RedisServer,
    readonly sentinelPort: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<RedisSentinelGroup> {
    assertRedisInstalled();
    assertRedisCliInstalled();
    const dir = mkdtempSync(join(tmpdir(), 'tiered-cache-sentinel-'));
    // No 5 s wait for more replicas before the first sync (Redis 7's repl-diskless-sync-delay default).
    const master = await RedisServer.start(['--dir', dir, '--repl-diskless-sync-delay', '0']);
    let replicaPort = await freePort();
    while (replicaPort === master.port) replicaPort = await freePort();
    const replica = await RedisServer.start(['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)], replicaPort);
    let sentinelPort = await freePort();
    while (sentinelPort === master.port || sentinelPort === replica.port) sentinelPort = await freePort();
    const group = new RedisSentinelGroup(master, replica, sentinelPort, dir);
    try {
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${sentinelPort}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
          'sentinel down-after-milliseconds mymaster 500',
          'sentinel failover-timeout mymaster 3000',
          '',
        ].join('\n'),
      );
      // In sync before Sentinel starts: Sentinel learns of replicas from the master's INFO, which it asks for
      // on connecting and then only every 10 s.
      await group.waitUntil('the replica is in sync', () => /master_link_status:up/.test(cli(replica.port, ['INFO', 'replication'])));
      group.sentinelProc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
      await group.waitUntil('Sentinel knows the replica', () => cli(sentinelPort, ['SENTINEL', 'REPLICAS', 'mymaster']).includes(String(replica.port)), 25_000);
      return group;
    } catch (err) {
      await group.stop();
      throw err;
    }
  }

  get sentinels(): Array<{ host: string; port: number }> {
    return [{ host: '127.0.0.1', port: this.sentinelPort }];
  }

  /** The port Sentinel currently names as master. */
  masterPort(): number {
    const out = cli(this.sentinelPort, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster']).trim().split(/\s+/);
    return Number(out[1]);
  }

  /** SIGKILLs the master and waits until Sentinel has promoted the replica and it accepts writes. */
  async failover(): Promise<void> {
    await this.master.kill();
    await this.waitUntil('Sentinel promoted the replica', () => {
      return this.masterPort() === this.replica.port && /role:master/.test(cli(this.replica.port, ['INFO', 'replication']));
    }, 30_000);
  }

  /** SIGKILLs the Sentinel (it stays dead until stop()): its clients lose it, the master and replica stay up. */
  killSentinel(): Promise<void> {
    const p = this.sentinelProc;
    this.sentinelProc = undefined;
    return killProcess(p);
  }

  async stop(): Promise<void> {
    const p = this.sentinelProc;
    this.sentinelProc = undefined;
    await killProcess(p);
    await Promise.all([this.master.stop(), this.replica.stop()]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitUntil(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ok()) {
      if (this.sentinelProc?.exitCode != null) throw new Error(`redis-server --sentinel exited with code ${this.sentinelProc.exitCode}`);
      if (Date.now() > deadline) throw new Error(`Sentinel setup: gave up waiting (${ms} ms) until ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** SIGKILL (plus SIGCONT, in case it was paused) and wait for the exit; nothing when it is gone already. */
function killProcess(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
    p.kill('SIGCONT');
  });
}
