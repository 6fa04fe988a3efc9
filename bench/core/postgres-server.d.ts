// Types of postgres-server.js, for the tests (test/support/postgres-server.ts) that start their server with it.

export declare class PostgresServer {
  private constructor();
  readonly port: number;
  /** initdb + start; resolves once the server accepts connections. */
  static start(): Promise<PostgresServer>;
  /** initdb only, port chosen and not listening yet (a database that is down at the app's boot); boot() starts it. */
  static initialize(): Promise<PostgresServer>;
  readonly url: string;
  readonly running: boolean;
  readonly socketDir: string;
  /** Starts the postmaster on this server's port and waits until it accepts connections. */
  boot(): Promise<void>;
  /** SIGKILL to the postmaster and every backend: no shutdown, no goodbye to clients (a host that died). */
  kill(): Promise<void>;
  /** Killed and started again on the same port, over the same data (crash recovery runs). */
  restart(): Promise<void>;
  /** SIGSTOP to the postmaster and every process it forked: connections stay open and nothing answers, like a hung host. */
  pause(): void;
  /** SIGCONT to every process pause() stopped. */
  resume(): void;
  /** Between pause() and resume(). */
  readonly isPaused: boolean;
  /** Runs SQL through psql over the unix socket (no driver involved); throws with psql's output when it fails. */
  psql(sql: string): string;
  /** Killed, and its temp dir (data included) removed. */
  stop(): Promise<void>;
  /** stop() without waiting, for a process 'exit' handler. */
  killSync(): void;
}
