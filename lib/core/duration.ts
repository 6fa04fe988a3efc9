import { TieredCacheOptionsError } from './errors';

/** A duration: a number of **milliseconds**, or a string such as `'250ms'`, `'30s'`, `'5m'`, `'1h'`, `'1d'`. */
export type Duration = number | string;

/**
 * The longest TTL accepted anywhere (8e15 ms, about 250,000 years). Every tier can store it: Redis takes any
 * PX whose expiry fits a signed 64-bit millisecond clock, lru-cache any finite integer, and an expiry of
 * now + MAX_TTL_MS still fits a JavaScript Date (±8.64e15 ms around 1970), which a timestamp column is written
 * from. Past it a TTL is a mistake (usually `Infinity` or `Number.MAX_VALUE` meant as "forever"), and letting
 * it through made Redis refuse the SET while L1 kept the value and `set` resolved true.
 */
export const MAX_TTL_MS = 8_000_000_000_000_000;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i;

/**
 * Parses a duration into whole milliseconds (fractions round up, so 0.5 ms never becomes 0 = "no TTL").
 * `bareUnit` is the unit of a string with no unit: code passes 'ms'; environment variables pass 's',
 * because the .env files this project replaces wrote TTLs in seconds.
 */
export function parseDuration(option: string, value: unknown, bareUnit: 'ms' | 's' = 'ms'): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const m = DURATION_RE.exec(value);
    if (!m) {
      throw new TieredCacheOptionsError(option, value, "expected milliseconds or a duration such as '30s', '5m', '1h'");
    }
    ms = Number(m[1]) * UNIT_MS[(m[2] ?? bareUnit).toLowerCase()];
  } else {
    throw new TieredCacheOptionsError(option, value, "expected milliseconds or a duration such as '30s', '5m', '1h'");
  }
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new TieredCacheOptionsError(option, value, 'must be a positive, finite duration');
  }
  if (ms > MAX_TTL_MS) {
    throw new TieredCacheOptionsError(option, value, `must be at most ${MAX_TTL_MS} ms (MAX_TTL_MS, about 250,000 years), the longest TTL every tier can store`);
  }
  return Math.ceil(ms);
}

/** Node's timers take at most 2^31 - 1 ms; a longer delay silently becomes 1 ms (a timer firing every millisecond). */
export const MAX_TIMER_MS = 2_147_483_647;

/** A duration that arms a timer (an interval, a timeout): same rules, at most MAX_TIMER_MS (about 24.8 days). */
export function parseTimerDuration(option: string, value: unknown): number {
  const ms = parseDuration(option, value);
  if (ms > MAX_TIMER_MS) {
    throw new TieredCacheOptionsError(option, value, `must be at most ${MAX_TIMER_MS} ms (about 24.8 days): Node's timers cannot wait longer`);
  }
  return ms;
}

/** Per-call TTLs: same rules, but the error is a TypeError (a programming error at the call site). */
export function parseCallTtl(option: string, value: Duration | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && value > 0 && value <= MAX_TTL_MS && Number.isInteger(value)) return value;
  try {
    return parseDuration(option, value);
  } catch (err) {
    throw new TypeError((err as Error).message);
  }
}
