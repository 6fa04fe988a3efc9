import type { CacheChange } from '../core/cache-change';
import type { TieredCache } from '../core/tiered-cache';

/** What a refresh reports: the new value once stored, or the old value and why it was not replaced. */
export interface RefreshOutcome {
  key: string;
  value: unknown;
  error?: unknown;
}

/** A refresh whose result was not stored because its key was deleted or overwritten while the function ran. */
export class CacheRefreshDiscardedError extends Error {
  override name = 'CacheRefreshDiscardedError';
  constructor(readonly key: string) {
    super(`refresh of "${key}" discarded: the key was deleted or overwritten while the function ran`);
  }
}

interface Running {
  overtaken: boolean;
}

/**
 * wrap()'s background refresh (refreshThreshold): one run per key at a time in this process. Its result is
 * written only if nothing replaced or removed the key meanwhile — a change made here (through this cache or the
 * engine) marks the run, and a key that is gone by the time the function returns (a delete on another instance
 * reached Redis) is not brought back. A plain cache-manager refresh would write the old source's answer over
 * the invalidation.
 */
export class BackgroundRefreshes {
  readonly #running = new Map<string, Running>();
  readonly #unsubscribe: () => void;

  constructor(
    private readonly engine: TieredCache,
    private readonly write: (key: string, value: unknown, ttl: number | undefined) => Promise<unknown>,
    private readonly report: (outcome: RefreshOutcome) => void,
  ) {
    this.#unsubscribe = engine.onChange((change) => this.#overtake(change));
  }

  /** Starts a refresh of `key` unless one is running; `old` is what the caller was answered. */
  start<T>(key: string, fn: () => T | Promise<T>, ttlOf: (value: T) => number | undefined, old: unknown): void {
    if (this.#running.has(key)) return;
    const run: Running = { overtaken: false };
    this.#running.set(key, run);
    void this.#run(key, fn, ttlOf, old, run).finally(() => this.#running.delete(key));
  }

  get size(): number {
    return this.#running.size;
  }

  close(): void {
    this.#unsubscribe();
  }

  async #run<T>(key: string, fn: () => T | Promise<T>, ttlOf: (value: T) => number | undefined, old: unknown, run: Running): Promise<void> {
    try {
      const value = await fn();
      // ttl() asks Redis first (has() would trust this instance's copy, which a remote delete may not have reached yet).
      if (run.overtaken || (await this.engine.ttl(key)) === undefined) throw new CacheRefreshDiscardedError(key);
      await this.write(key, value, ttlOf(value));
      this.report({ key, value });
    } catch (error) {
      this.report({ key, value: old, error });
    }
  }

  #overtake(change: CacheChange): void {
    if (this.#running.size === 0) return;
    if (change.type === 'delete' || change.type === 'overwrite') {
      for (const k of change.keys) {
        const r = this.#running.get(k);
        if (r !== undefined) r.overtaken = true;
      }
      return;
    }
    // Patterns, tags and clear: which running keys they cover is not worth working out for a rare race.
    for (const r of this.#running.values()) r.overtaken = true;
  }
}
