import type { GetOrSetOptions } from '../core/tiered-cache-options.interface';
import type { Duration } from '../core/duration';
import { checkCallOptions } from '../core/get-set/resilience-policy';
import type { CacheEvictOptions } from './cache-decorator-options.interface';
import { parseDuration } from '../core/duration';
import { escapeGlob } from '../core/glob';
import type { TieredCache } from '../core/tiered-cache';
import { KeyTemplate } from '../core/keys/key-template';
import { templateSegment } from '../core/keys/key-segment';

/**
 * Pieces shared by the provider-method wrapper and the HTTP interceptor. `Lookup` is how a template
 * resolves: by argument position for provider methods, by route param / query for route handlers.
 */

/** Thrown out of a getOrSet factory to carry the method's own error past the engine unchanged. */
export class MethodFailure {
  constructor(readonly error: unknown) {}
}

/** Thrown out of a getOrSet factory so a result is returned to every waiter but not stored. */
export class NotStored {
  constructor(readonly value: unknown) {}
}

export type Args = readonly unknown[];
export type Render = (args: Args) => string;
export type RenderMany = (args: Args) => string[];

/** Compiles templates for one method. */
export interface TemplateCompiler {
  /** A template, filled with escaped segments. */
  template(source: string, segment?: (value: unknown) => string): Render;
  /** A user function: provider methods pass their arguments, route handlers the request. */
  call<R>(fn: (...args: never[]) => R): (args: Args) => R;
}

export function compileKey(c: TemplateCompiler, key: string | ((...args: never[]) => string), where: string): Render {
  if (typeof key === 'string') return c.template(key);
  const fn = c.call(key);
  return (args) => {
    const k = fn(args);
    if (typeof k !== 'string' || k.length === 0) throw new TypeError(`${where}: key function returned ${String(k)}, expected a non-empty string`);
    return k;
  };
}

function compileList(
  c: TemplateCompiler,
  list: string | ReadonlyArray<string | ((...args: never[]) => string | readonly string[])>,
  where: string,
  glob: boolean,
): RenderMany {
  const items = (typeof list === 'string' ? [list] : list).map((item): RenderMany => {
    if (typeof item === 'string') {
      const r = c.template(item, glob ? (v) => escapeGlob(templateSegment(v)) : templateSegment);
      return (args) => [r(args)];
    }
    const fn = c.call(item);
    return (args) => {
      const out = fn(args);
      const arr = typeof out === 'string' ? [out] : out;
      if (!Array.isArray(arr) || arr.some((k) => typeof k !== 'string' || k.length === 0)) {
        throw new TypeError(`${where}: function returned ${String(out)}, expected non-empty strings`);
      }
      return [...arr];
    };
  });
  return (args) => items.flatMap((r) => r(args));
}

export type TagsOf = (args: Args, result: unknown) => readonly string[];

export function compileTags(c: TemplateCompiler, tags: readonly string[] | ((args: never, result: never) => readonly string[]) | undefined, where: string): TagsOf | readonly string[] | undefined {
  if (tags === undefined) return undefined;
  if (typeof tags === 'function') {
    const fn = tags as unknown as (args: Args, result: unknown) => readonly string[];
    return (args, result) => {
      const out = fn(args, result);
      if (!Array.isArray(out)) throw new TypeError(`${where}: tags function returned ${String(out)}, expected an array of strings`);
      return out;
    };
  }
  const templates = tags.map((t) => KeyTemplate.parse(t, `${where} tags`));
  if (templates.every((t) => t.isStatic)) return [...tags];
  const renders = tags.map((t) => c.template(t));
  return (args) => renders.map((r) => r(args));
}

/** SetOptions fixed at bootstrap (durations parsed once). */
/** `resultOf`: what a TTL function is given of the stored value (a route stores its response around the body). */
export function baseSetOptions(where: string, o: CacheWriteOptions, tags: TagsOf | readonly string[] | undefined, resultOf?: (stored: never) => unknown): GetOrSetOptions<never> {
  const out: { -readonly [K in keyof GetOrSetOptions<never>]: GetOrSetOptions<never>[K] } = {};
  if (typeof o.ttl === 'function') {
    // A function of the result (adaptive TTL) is the engine's to call, once per value.
    const ttlOf = o.ttl as (result: unknown) => Duration;
    out.ttl = resultOf === undefined ? (ttlOf as (v: never) => Duration) : (v: never) => ttlOf(resultOf(v));
  } else if (o.ttl !== undefined) out.ttl = parseDuration(`${where} ttl`, o.ttl);
  if (o.l1Ttl !== undefined) out.l1Ttl = parseDuration(`${where} l1Ttl`, o.l1Ttl);
  if (Array.isArray(tags)) out.tags = tags;
  for (const k of RESILIENCE_KEYS) if (o[k] !== undefined) (out as Record<string, unknown>)[k] = o[k];
  // Checked at bootstrap too (the decorator checked it when applied), so a bad value names the decorator.
  checkCallOptions(where, out);
  return Object.freeze(out);
}

export const RESILIENCE_KEYS = ['grace', 'eagerRefresh', 'failSafe', 'failSafeTtl', 'failSafeBackoff', 'timeout', 'lock'] as const;

/** What a decorator passes on to the engine's writes (and getOrSet). */
export type CacheWriteOptions = { ttl?: unknown; l1Ttl?: unknown } & Pick<GetOrSetOptions<never>, (typeof RESILIENCE_KEYS)[number]>;

export type Evictor = (args: Args, result: unknown) => Promise<void>;

/** One @CacheEvict, compiled: deletes keys, patterns and tags (or clears the namespace). */
export function compileEvict(c: TemplateCompiler, o: CacheEvictOptions, where: string, engine: TieredCache): Evictor {
  const keys = o.keys !== undefined ? compileList(c, o.keys, `${where} keys`, false) : undefined;
  const patterns = o.patterns !== undefined ? compileList(c, o.patterns, `${where} patterns`, true) : undefined;
  const tags = compileTags(c, o.tags, where);
  const all = o.allEntries === true;
  return async (args, result) => {
    if (all) {
      await engine.clear();
      return;
    }
    if (keys) {
      const list = keys(args);
      if (list.length > 0) await engine.delete(list);
    }
    if (patterns) for (const p of patterns(args)) await engine.invalidatePattern(p);
    if (tags) {
      const list = typeof tags === 'function' ? tags(args, result) : tags;
      if (list.length > 0) await engine.invalidateTags(list);
    }
  };
}
