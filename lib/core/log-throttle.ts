import type { CacheLogger } from './tiered-cache-options.interface';

const WINDOW_MS = 60_000;
/** Kinds remembered at once; past that the memory is dropped (a kind may then log again early, never often). */
const MAX_KINDS = 100;

/** Logs at most once a minute per kind, so a Redis outage does not flood the logs. */
export class LogThrottle {
  readonly #last = new Map<string, number>();

  constructor(private readonly logger: CacheLogger) {}

  log(level: 'warn' | 'error', kind: string, message: string): void {
    const now = Date.now();
    const last = this.#last.get(kind);
    if (last !== undefined && now - last < WINDOW_MS) return;
    if (this.#last.size > MAX_KINDS) this.#last.clear();
    this.#last.set(kind, now);
    this.logger[level](message);
  }
}
