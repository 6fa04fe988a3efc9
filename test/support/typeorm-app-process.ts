import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * An ORM-invalidation test instance (test/support/typeorm-app-child.js) in a Node process of its own, from the
 * built dist/ (`npm run build` first): another replica of the app, with its own DataSource, cache and subscriber.
 */
export class TypeOrmAppProcess {
  private next = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited = false;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { id: number; ok: boolean; value?: unknown; undef?: boolean; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.undef ? undefined : m.value);
      else w.reject(new Error(m.error));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`typeorm app process exited (code ${code}, signal ${signal})`));
      this.waiting.clear();
    });
  }

  static async start(config: { pgUrl: string; redisUrl: string; keyPrefix: string; typeorm?: Record<string, unknown> }): Promise<TypeOrmAppProcess> {
    const dist = join(ROOT, 'dist', 'typeorm', 'index.js');
    if (!existsSync(dist) || statSync(dist).mtimeMs < newest(join(ROOT, 'lib'))) {
      throw new Error('dist/ is missing or older than lib/: run `npm run build` (npm test does) before this spec');
    }
    const child = fork(join(__dirname, 'typeorm-app-child.js'), [], {
      env: { ...process.env, TC_TYPEORM_APP: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const p = new TypeOrmAppProcess(child);
    await new Promise<void>((resolve, reject) => p.waiting.set(0, { resolve: () => resolve(), reject }));
    return p;
  }

  call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    if (this.exited) return Promise.reject(new Error('typeorm app process is not running'));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, args });
    });
  }

  /** Closes the app (its DataSource and cache) and waits for the process to end (killed after 5 s). */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.call('close').catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }
}
