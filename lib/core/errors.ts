/** Thrown at boot when an option is invalid; names the option and the value it got. */
export class TieredCacheOptionsError extends Error {
  constructor(
    readonly option: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`Invalid tiered-cache option "${option}" = ${describe(value)}: ${reason}`);
    this.name = 'TieredCacheOptionsError';
  }
}

/** Thrown by set/mset/getOrSet before anything is written when a value cannot be stored. */
export class CacheSerializationError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`Cannot cache value for key "${key}": ${reason}`);
    this.name = 'CacheSerializationError';
  }
}

/**
 * What getOrSet rejects with when its factory ran past `timeout.hard` and there was no stale copy to serve. The
 * factory is not stopped (nothing can stop a promise): its result is still stored when it comes.
 */
export class CacheFactoryTimeoutError extends Error {
  constructor(
    readonly key: string,
    readonly timeoutMs: number,
  ) {
    super(`getOrSet("${key}"): the factory did not settle within ${timeoutMs} ms (timeout.hard)`);
    this.name = 'CacheFactoryTimeoutError';
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return '[function]';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
