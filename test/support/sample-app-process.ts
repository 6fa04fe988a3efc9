import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
export const SAMPLE_MAIN = join(ROOT, 'dist-sample', 'sample-app', 'src', 'main.js');
const MAX_OUTPUT = 32 * 1024;

/** Builds dist-sample/ through the sample's launcher (tsc only when a source changed); throws with tsc's output. */
export function buildSample(): void {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'sample.js'), 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  if (r.error || r.status !== 0) throw new Error(`scripts/sample.js build failed (${r.status ?? r.error?.message}):\n${r.stdout}${r.stderr}`);
}

/** Children still running, killed if this process exits without stopping them (a crashed or interrupted run). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/**
 * One instance of the built sample app (`node dist-sample/sample-app/src/main.js`) in a process of its own, as it
 * runs in production: its own L1, registry and connections. Environment variables the app reads (CACHE_*,
 * REDIS_*, DATABASE_URL, ADMIN_TOKEN) come only from `env`, never from the machine running the tests.
 */
export class SampleAppProcess {
  private out = '';
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    const keep = (chunk: Buffer) => {
      this.out = (this.out + chunk.toString('utf8')).slice(-MAX_OUTPUT);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Starts it and resolves once it listens on `port` (its "Real-estate sample API on …" line). */
  static async start(port: number, env: Record<string, string>, timeoutMs = 60_000): Promise<SampleAppProcess> {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(CACHE_|REDIS_|DATABASE_URL$|ADMIN_TOKEN$|PORT$)/.test(k)));
    const child = spawn(process.execPath, [SAMPLE_MAIN], {
      cwd: ROOT,
      env: { ...inherited, NO_COLOR: '1', ...env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child);
    const app = new SampleAppProcess(child, port);
    const listening = `Real-estate sample API on http://127.0.0.1:${port}`;
    const deadline = Date.now() + timeoutMs;
    while (!app.out.includes(listening)) {
      if (!app.running) throw new Error(`sample app on port ${port} exited (${child.exitCode ?? child.signalCode}) before listening:\n${app.out}`);
      if (Date.now() > deadline) {
        await app.kill();
        throw new Error(`sample app on port ${port} did not listen within ${timeoutMs} ms:\n${app.out}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return app;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get exitCode(): number | null {
    return this.child.exitCode;
  }

  get exitSignal(): NodeJS.Signals | null {
    return this.child.signalCode;
  }

  /** The last 32 KB it wrote (stdout and stderr), for failure messages. */
  get output(): string {
    return this.out;
  }

  /** SIGTERM (the app's shutdown hooks close Redis, the bus and the database pool); SIGKILL if it is not gone in `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}
