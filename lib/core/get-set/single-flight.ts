import type { GlobMatcher } from '../glob';

export interface Flight {
  promise: Promise<unknown>;
  /** Set when the key is invalidated while the factory runs: its result is returned but not cached. */
  stale: boolean;
  /** Set when it ends. */
  done: boolean;
  /** The tier whose fresh value answered its callers (undefined: the factory's value, or not answered yet); read by tracing. */
  from: string | undefined;
  /** A copy past its TTL answered its callers (grace: stale-while-revalidate, soft timeout, fail-safe); read by tracing. */
  answeredStale: boolean;
}

/**
 * One lookup and one factory run per missing key in this process; concurrent callers share its promise.
 * An invalidation of the key while it runs marks the flight stale, so its result is stored nowhere.
 */
export class SingleFlight {
  readonly #flights = new Map<string, Flight>();

  running(key: string): Flight | undefined {
    return this.#flights.get(key);
  }

  /** Starts `run` for `key`; `run` calls end() when it settles (in its own finally: no extra promise per miss). */
  start<T>(key: string, run: (flight: Flight) => Promise<T>): Promise<T> {
    const flight: Flight = { promise: undefined as unknown as Promise<T>, stale: false, done: false, from: undefined, answeredStale: false };
    this.#flights.set(key, flight);
    const promise = run(flight);
    flight.promise = promise;
    return promise;
  }

  end(key: string, flight: Flight): void {
    flight.done = true;
    if (this.#flights.get(key) === flight) this.#flights.delete(key);
  }

  markStale(key: string): void {
    const f = this.#flights.get(key);
    if (f) f.stale = true;
  }

  markMatching(matcher: GlobMatcher): void {
    for (const [k, f] of this.#flights) if (matcher.test(k)) f.stale = true;
  }

  markAll(): void {
    for (const f of this.#flights.values()) f.stale = true;
  }

  isStale(key: string): boolean {
    return this.#flights.get(key)?.stale === true;
  }
}
