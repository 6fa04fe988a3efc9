/** A notice that came while its key's waiter was not parked (between two waits): the next wait returns at once. */
const NOTIFIED = 1;

/**
 * Where a miss waiting for another instance's fill parks between two reads: woken by the announcement of the
 * key's released lock (the bus hears it, distributed-lock.ts forwards it), or by its poll timer, whichever
 * comes first. A key is watched from the fill read that may find the lock taken until the wait is over, so an
 * announcement that arrives while a read is still in flight is not lost.
 *
 * At most one entry per key: a key's misses in this process share one single flight, so one waiter each.
 * Nothing here talks to Redis: one subscription (the bus's) serves every key.
 */
export class FillWaiters {
  readonly #keys = new Map<string, (() => void) | typeof NOTIFIED | undefined>();

  watch(key: string): void {
    this.#keys.set(key, undefined);
  }

  unwatch(key: string): void {
    this.#keys.delete(key);
  }

  notify(key: string): void {
    const w = this.#keys.get(key);
    if (typeof w === 'function') w();
    else if (w === undefined && this.#keys.has(key)) this.#keys.set(key, NOTIFIED);
  }

  /** Resolves when `key` is announced or after `ms`, whichever comes first (never rejects). */
  wait(key: string, ms: number): Promise<void> {
    if (this.#keys.get(key) === NOTIFIED) {
      this.#keys.set(key, undefined);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        if (this.#keys.get(key) === wake) this.#keys.set(key, undefined);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#keys.set(key, wake);
    });
  }

  /** Wakes every parked waiter (the cache is closing: they give up waiting). */
  wakeAll(): void {
    for (const w of [...this.#keys.values()]) if (typeof w === 'function') w();
  }
}
