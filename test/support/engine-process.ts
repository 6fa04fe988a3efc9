import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TieredCacheOptions } from '../../lib';

const ROOT = join(__dirname, '..', '..');

/** The newest modification time under `dir` (files only). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * An instance of the cache in a separate Node process (test/support/engine-child.js), built from dist/: what
 * another replica of an app behind a load balancer would run. `npm test` builds dist/ first; run `npm run build`
 * before running one spec alone.
 */
export class EngineProcess {
  private next = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  exitCode: number | null | undefined;
  signal: NodeJS.Signals | null | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { id: number; ok: boolean; value?: unknown; undef?: boolean; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.undef ? undefined : m.value);
      else w.reject(new Error(m.error));
    });
    child.on('exit', (code, signal) => {
      this.exitCode = code;
      this.signal = signal;
      for (const w of this.waiting.values()) w.reject(new Error(`engine process exited (code ${code}, signal ${signal})`));
      this.waiting.clear();
    });
  }

  static start(options: TieredCacheOptions): Promise<EngineProcess> {
    return EngineProcess.fork('engine-child.js', options);
  }

  /**
   * A child running another script of test/support that speaks the same protocol (nest-app-child.js: a whole
   * Nest app; typeorm-app-child.js: an app on TypeORM and PostgreSQL). `options` reaches it as JSON in TC_OPTIONS.
   */
  static async fork(script: string, options: unknown): Promise<EngineProcess> {
    const dist = join(ROOT, 'dist', 'index.js');
    if (!existsSync(dist) || statSync(dist).mtimeMs < newest(join(ROOT, 'lib'))) {
      throw new Error('dist/ is missing or older than lib/: run `npm run build` (npm test does) before this spec');
    }
    const child = fork(join(__dirname, script), [], { env: { ...process.env, TC_OPTIONS: JSON.stringify(options) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const p = new EngineProcess(child);
    await new Promise<void>((resolve, reject) => {
      p.waiting.set(0, { resolve: () => resolve(), reject });
    });
    return p;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`engine process is not running (code ${this.exitCode}, signal ${this.signal})`));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, args });
    });
  }

  /** SIGKILL: the process dies at once, as a crashed host would (no close, no goodbye to Redis). */
  async kill(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Closes the cache and waits for the process to end (killed after 5 s). */
  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.call('close').catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
