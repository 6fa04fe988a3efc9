/**
 * How log messages name a tier: its level (L2 is the first Redis tier, the ones below it L3, L4, … in the order
 * of `tiers`), its kind and its name, e.g. `L3 postgres tier "archive"`. Every Redis or database error the cache
 * logs starts with it, followed by the operation that failed.
 */
export function tierLabel(level: number, kind: string, name: string): string {
  return `L${level} ${kind} tier "${name}"`;
}

/** The level of the first Redis tier. */
export const L2_LEVEL = 2;

/**
 * `err` as one line of a log message (never a stack). Duck-typed, not `instanceof Error`: errors made by Node's
 * own modules may come from another realm (a test runner's vm context). An AggregateError (a connect to every
 * address of a host refused) has no message of its own: its errors' are used.
 */
export function errorText(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { message?: unknown; name?: unknown; errors?: unknown; code?: unknown };
    if (typeof e.message === 'string' && e.message !== '') return e.message;
    if (Array.isArray(e.errors) && e.errors.length > 0) return e.errors.map(errorText).join('; ');
    if (typeof e.code === 'string') return e.code;
    if (typeof e.name === 'string') return e.name;
  }
  return String(err);
}
