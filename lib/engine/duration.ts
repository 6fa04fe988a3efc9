import { TieredCacheOptionsError } from './errors';

/** A duration: a number of **milliseconds**, or a string such as `'250ms'`, `'30s'`, `'5m'`, `'1h'`, `'1d'`. */
export type Duration = number | string;

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
  return Math.ceil(ms);
}

/** Per-call TTLs: same rules, but the error is a TypeError (a programming error at the call site). */
export function parseCallTtl(option: string, value: Duration | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && value > 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value)) return value;
  try {
    return parseDuration(option, value);
  } catch (err) {
    throw new TypeError((err as Error).message);
  }
}
