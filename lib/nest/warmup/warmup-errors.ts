/** Thrown at boot when a warmer cannot work as declared (a missing method, a cron without @nestjs/schedule, …). */
export class CacheWarmerError extends Error {
  override name = 'CacheWarmerError';
}

/** What a key that passed `keyTimeout` fails with (and its signal is aborted with). */
export class WarmupKeyTimeoutError extends Error {
  override name = 'WarmupKeyTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`not warmed within ${timeoutMs} ms (keyTimeout)`);
  }
}

/** What a run's signal is aborted with when it is cancelled. */
export class WarmupCancelledError extends Error {
  override name = 'WarmupCancelledError';
}
