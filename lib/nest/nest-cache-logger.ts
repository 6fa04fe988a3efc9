import { Logger } from '@nestjs/common';
import type { CacheLogger } from '../core/tiered-cache-options.interface';

/** The context of every message the cache logs through Nest. */
export const TIERED_CACHE_LOG_CONTEXT = 'TieredCache';

/**
 * The engine's logger as Nest's `Logger` (context `TieredCache`): what the module gives the engine when the
 * options name no `logger`. Messages then follow whatever the app set up (`app.useLogger`, `bufferLogs`,
 * `Logger.overrideLogger`, log levels); the engine itself stays free of Nest.
 */
export function nestCacheLogger(context = TIERED_CACHE_LOG_CONTEXT): CacheLogger {
  const logger = new Logger(context);
  return {
    warn: (message) => logger.warn(message),
    error: (message) => logger.error(message),
  };
}
