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

/** `err` as one line of a log message (never a stack). */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
