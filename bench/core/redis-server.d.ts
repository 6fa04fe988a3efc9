// Types of redis-server.js, for the tests (test/support/redis-server.ts) that start their servers with it.

export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** SIGTERM, SIGKILL after 2 s; resolves once it exited. */
  stop(): Promise<void>;
  /** SIGKILL (and SIGCONT, in case it was paused); resolves once it exited. */
  kill(): Promise<void>;
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL without waiting, for a process 'exit' handler. */
  killSync(): void;
}

export interface ClusterNodeProcess {
  readonly port: number;
  stop(): Promise<void>;
  killSync?(): void;
}

export interface RedisClusterProcess<S extends ClusterNodeProcess> {
  readonly servers: readonly S[];
  readonly dir: string;
  readonly nodes: Array<{ host: string; port: number }>;
  info(i: number): string;
  stop(): Promise<void>;
  killSync(): void;
}

export function startRedis(options?: { args?: string[]; port?: number }): Promise<RedisProcess>;
export function startRedisCluster<S extends ClusterNodeProcess = RedisProcess>(options?: {
  masters?: number;
  startNode?: (args: string[], port: number) => Promise<S>;
}): Promise<RedisClusterProcess<S>>;
export function freePort(): Promise<number>;
export function distinctPorts(n: number, taken?: Set<number>): Promise<number[]>;
export function canConnect(port: number): Promise<boolean>;
export function redisCli(port: number, args: string[], timeoutMs?: number): string;
