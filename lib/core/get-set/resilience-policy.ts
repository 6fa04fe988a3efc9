import { MAX_TTL_MS, parseCallTtl, parseDuration, parseTimerDuration } from '../duration';
import { TieredCacheOptionsError } from '../errors';
import type { FactoryTimeouts, GetOrSetOptions, ResilienceOptions, SetOptions } from '../tiered-cache-options.interface';

/** `resilience` after validation; durations in ms, 0 = off. */
export interface ResolvedResilience {
  readonly grace: number;
  readonly eagerRefresh: number;
  readonly failSafe: boolean;
  readonly failSafeTtl: number;
  readonly failSafeBackoff: number;
  readonly soft: number;
  readonly hard: number;
}

/** What one getOrSet call does about a slow or failing source (its options over the cache-wide defaults). */
export type CallPolicy = ResolvedResilience;

const DEFAULT_BACKOFF = 10_000;

/** Boot: the cache-wide defaults. Errors name the option. */
export function resolveResilience(input: ResilienceOptions | undefined): ResolvedResilience {
  const r = input ?? {};
  if (typeof r !== 'object' || r === null) throw new TieredCacheOptionsError('resilience', input, 'expected an options object');
  const grace = r.grace === undefined || r.grace === false || r.grace === 0 ? 0 : parseDuration('resilience.grace', r.grace);
  const eagerRefresh = r.eagerRefresh === undefined || r.eagerRefresh === false ? 0 : ratio('resilience.eagerRefresh', r.eagerRefresh, (o, v, why) => new TieredCacheOptionsError(o, v, why));
  if (r.failSafe !== undefined && typeof r.failSafe !== 'boolean') throw new TieredCacheOptionsError('resilience.failSafe', r.failSafe, 'expected true or false');
  const t = timeouts('resilience.timeout', r.timeout, (o, v) => parseTimerDuration(o, v), (o, v, why) => new TieredCacheOptionsError(o, v, why));
  return {
    grace,
    eagerRefresh,
    failSafe: r.failSafe ?? true,
    failSafeTtl: r.failSafeTtl === undefined ? grace : parseDuration('resilience.failSafeTtl', r.failSafeTtl),
    failSafeBackoff: r.failSafeBackoff === undefined ? DEFAULT_BACKOFF : parseDuration('resilience.failSafeBackoff', r.failSafeBackoff),
    soft: t.soft,
    hard: t.hard,
  };
}

/** Whether a policy asks for anything beyond a plain fill. */
export function isActive(p: ResolvedResilience): boolean {
  return p.grace > 0 || p.eagerRefresh > 0 || p.soft > 0 || p.hard > 0;
}

const policies = new WeakMap<object, CallPolicy | null>();

/**
 * A call's policy, or undefined when it asks for nothing beyond a plain fill (the fast path). Decorators and
 * routes pass the same frozen options object on every call: its policy is worked out once. A bad per-call value
 * is a TypeError (a programming error at the call site).
 */
export function callPolicy(defaults: ResolvedResilience, options: GetOrSetOptions<never> | undefined): CallPolicy | undefined {
  if (options === undefined) return isActive(defaults) ? defaults : undefined;
  const known = policies.get(options);
  if (known !== undefined) return known ?? undefined;
  const p = mergePolicy(defaults, options);
  const active = isActive(p) ? p : undefined;
  // Only a frozen object is sure to mean the same next time (a caller may reuse and change its own).
  if (Object.isFrozen(options)) policies.set(options, active ?? null);
  return active;
}

function mergePolicy(d: ResolvedResilience, o: GetOrSetOptions<never>): CallPolicy {
  const typeError = (option: string, value: unknown, why: string): Error => new TypeError(`getOrSet option ${option} = ${String(value)}: ${why}`);
  if (o.grace === undefined && o.eagerRefresh === undefined && o.failSafe === undefined && o.failSafeTtl === undefined && o.failSafeBackoff === undefined && o.timeout === undefined) return d;
  const grace = callGrace(d, o);
  if (o.failSafe !== undefined && typeof o.failSafe !== 'boolean') throw typeError('failSafe', o.failSafe, 'expected true or false');
  const t = o.timeout === undefined ? d : timeouts('timeout', o.timeout, (opt, v) => parseCallTtl(opt, v as never, 0), typeError);
  return {
    grace,
    eagerRefresh: o.eagerRefresh === undefined ? d.eagerRefresh : o.eagerRefresh === false ? 0 : ratio('eagerRefresh', o.eagerRefresh, typeError),
    failSafe: o.failSafe ?? d.failSafe,
    failSafeTtl: o.failSafeTtl === undefined ? (o.grace === undefined ? d.failSafeTtl : grace) : parseCallTtl('failSafeTtl', o.failSafeTtl, 0),
    failSafeBackoff: o.failSafeBackoff === undefined ? d.failSafeBackoff : parseCallTtl('failSafeBackoff', o.failSafeBackoff, 0),
    soft: t.soft,
    hard: t.hard,
  };
}

const NO_DEFAULTS: ResolvedResilience = { grace: 0, eagerRefresh: 0, failSafe: true, failSafeTtl: 0, failSafeBackoff: DEFAULT_BACKOFF, soft: 0, hard: 0 };

/** A decorator's resilience options, checked once when it is applied: the error names `where`. */
export function checkCallOptions(where: string, options: GetOrSetOptions<never>): void {
  try {
    mergePolicy(NO_DEFAULTS, options);
    if (options.lock !== undefined && typeof options.lock !== 'boolean') throw new TypeError(`getOrSet option lock = ${String(options.lock)}: expected true or false`);
  } catch (err) {
    throw new TypeError(`${where}: ${(err as Error).message}`);
  }
}

/** A write's grace: the call's, else the cache's; 0 = none. */
export function callGrace(d: ResolvedResilience, o: Pick<SetOptions<never>, 'grace'> | undefined): number {
  const g = o?.grace;
  if (g === undefined) return d.grace;
  if (g === false || g === 0) return 0;
  return parseCallTtl('grace', g, 0);
}

/** A physical lifetime: the TTL plus the grace, within what every tier can store. */
export function withGrace(ttl: number, grace: number): number {
  return grace > 0 ? Math.min(ttl + grace, MAX_TTL_MS) : ttl;
}

function ratio(option: string, value: unknown, error: (option: string, value: unknown, why: string) => Error): number {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) throw error(option, value, 'expected a fraction of the TTL between 0 and 1 (e.g. 0.8), or false');
  return value;
}

function timeouts(
  option: string,
  value: FactoryTimeouts | false | undefined,
  duration: (option: string, value: unknown) => number,
  error: (option: string, value: unknown, why: string) => Error,
): { soft: number; hard: number } {
  if (value === undefined || value === false) return { soft: 0, hard: 0 };
  if (typeof value !== 'object' || value === null) throw error(option, value, 'expected { soft?, hard? } or false');
  const soft = value.soft === undefined ? 0 : duration(`${option}.soft`, value.soft);
  const hard = value.hard === undefined ? 0 : duration(`${option}.hard`, value.hard);
  if (soft > 0 && hard > 0 && soft >= hard) throw error(`${option}.soft`, value.soft, `must be shorter than ${option}.hard`);
  return { soft, hard };
}
