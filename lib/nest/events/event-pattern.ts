/**
 * Event-name globs as EventEmitter2 understands them with `wildcard: true` and the default `.` delimiter:
 * `*` matches exactly one segment, `**` any number of segments (zero included).
 */
export type EventMatcher = (event: string) => boolean;

export function compileEventPattern(pattern: string): EventMatcher {
  if (!pattern.includes('*')) return (event) => event === pattern;
  const parts = pattern.split('.');
  return (event) => matchSegments(parts, 0, event.split('.'), 0);
}

/** Any of several patterns. */
export function compileEventPatterns(patterns: readonly string[]): EventMatcher {
  const matchers = patterns.map(compileEventPattern);
  return matchers.length === 1 ? matchers[0] : (event) => matchers.some((m) => m(event));
}

/** Event names reach `onAny` as a string, or as the array of segments it was emitted with. */
export function eventName(event: string | symbol | ReadonlyArray<string | symbol>, delimiter = '.'): string {
  if (typeof event === 'string') return event;
  if (typeof event === 'symbol') return event.toString();
  return event.map((e) => (typeof e === 'string' ? e : e.toString())).join(delimiter);
}

function matchSegments(p: readonly string[], i: number, e: readonly string[], j: number): boolean {
  for (; i < p.length; i++, j++) {
    if (p[i] === '**') {
      if (i === p.length - 1) return true;
      for (let k = j; k <= e.length; k++) if (matchSegments(p, i + 1, e, k)) return true;
      return false;
    }
    if (j >= e.length) return false;
    if (p[i] !== '*' && p[i] !== e[j]) return false;
  }
  return j === e.length;
}
