import { TieredCacheOptionsError } from '../../core/errors';
import { escapeGlob } from '../../core/glob';
import { templateSegment } from '../../core/keys/key-segment';
import type { InvalidationRule } from '../../core/tiered-cache-options.interface';
import { compileEventPatterns, type EventMatcher } from './event-pattern';

/** A literal run, or a placeholder: alternative payload paths, the first one present wins. */
type Part = string | { paths: string[][]; source: string };

/** A parsed `'property:detail:{propertyId}'`. */
export interface Template {
  readonly source: string;
  readonly parts: readonly Part[];
}

/** What a rule resolved to for one payload. */
export interface RuleTargets {
  keys: string[];
  patterns: string[];
  tags: string[];
}

/** Why a rule could not be applied: the placeholder whose payload field is missing or not a plain value. */
export interface RuleSkip {
  missing: string;
  template: string;
}

export interface CompiledRule {
  /** Where the rule came from, for log lines (`invalidationRules[2]`, a strategy name). */
  readonly name: string;
  readonly matches: EventMatcher;
  readonly keys: readonly Template[];
  readonly patterns: readonly Template[];
  readonly tags: readonly Template[];
}

const PATH = /^[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$0-9][\w$-]*)*$/;

/**
 * Parses a template. `{a.b}` reads a nested field, `{a|b}` takes the first one present, `{{` and `}}` are
 * literal braces (so a Cluster hash tag is written `{{user}}`). Anything else in braces is an error at boot.
 */
export function parseTemplate(option: string, source: unknown): Template {
  if (typeof source !== 'string' || source.length === 0) throw new TieredCacheOptionsError(option, source, 'expected a non-empty string');
  const parts: Part[] = [];
  let lit = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '{' && source[i + 1] === '{') {
      lit += '{';
      i++;
    } else if (c === '}' && source[i + 1] === '}') {
      lit += '}';
      i++;
    } else if (c === '{') {
      const end = source.indexOf('}', i + 1);
      const body = end === -1 ? '' : source.slice(i + 1, end);
      const alts = body.split('|').map((a) => a.trim());
      if (end === -1 || alts.some((a) => !PATH.test(a))) {
        throw new TieredCacheOptionsError(option, source, `"${source.slice(i, end === -1 ? undefined : end + 1)}" is not a placeholder like {propertyId}; write {{ and }} for literal braces`);
      }
      if (lit) parts.push(lit);
      lit = '';
      parts.push({ paths: alts.map((a) => a.split('.')), source: `{${body}}` });
      i = end;
    } else if (c === '}') {
      throw new TieredCacheOptionsError(option, source, 'unmatched "}"; write }} for a literal brace');
    } else {
      lit += c;
    }
  }
  if (lit) parts.push(lit);
  return { source, parts };
}

/**
 * Fills a template from a payload; `undefined` when a placeholder has no usable value (absent, null, empty,
 * or not a string/number/bigint/boolean): the caller must then skip, never widen. `glob` escapes filled
 * values so a payload cannot smuggle `*` into a pattern.
 */
export function fillTemplate(t: Template, payload: unknown, glob: boolean): { value: string } | { missing: string } {
  let out = '';
  for (const p of t.parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    let v: string | undefined;
    for (const path of p.paths) {
      v = scalarAt(payload, path);
      if (v !== undefined) break;
    }
    if (v === undefined) return { missing: p.source };
    // The segment a @Cacheable template makes of the same value, so a rule names the key that was cached.
    const seg = templateSegment(v);
    out += glob ? escapeGlob(seg) : seg;
  }
  return { value: out };
}

function scalarAt(payload: unknown, path: readonly string[]): string | undefined {
  let cur: unknown = payload;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  switch (typeof cur) {
    case 'string':
      return cur.length > 0 ? cur : undefined;
    case 'number':
      return Number.isFinite(cur) ? String(cur) : undefined;
    case 'bigint':
    case 'boolean':
      return String(cur);
    default:
      return undefined;
  }
}

/** Validates and compiles one rule; errors name the option path (`invalidationRules[1].keys[0]`). */
export function compileRule(option: string, rule: unknown): CompiledRule {
  if (rule === null || typeof rule !== 'object') throw new TieredCacheOptionsError(option, rule, 'expected { event, keys?, patterns?, tags? }');
  const r = rule as Partial<InvalidationRule>;
  const events = typeof r.event === 'string' ? [r.event] : r.event;
  if (!Array.isArray(events) || events.length === 0 || events.some((e) => typeof e !== 'string' || e.length === 0)) {
    throw new TieredCacheOptionsError(`${option}.event`, r.event, 'expected an event name or a non-empty array of them');
  }
  const list = (field: 'keys' | 'patterns' | 'tags'): Template[] => {
    const v = r[field];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new TieredCacheOptionsError(`${option}.${field}`, v, 'expected an array of templates');
    return v.map((s, i) => parseTemplate(`${option}.${field}[${i}]`, s));
  };
  const keys = list('keys');
  const patterns = list('patterns');
  const tags = list('tags');
  if (keys.length + patterns.length + tags.length === 0) {
    throw new TieredCacheOptionsError(option, rule, 'a rule needs at least one of keys, patterns, tags');
  }
  return { name: option, matches: compileEventPatterns(events), keys, patterns, tags };
}

export function compileRules(option: string, rules: unknown): CompiledRule[] {
  if (rules === undefined) return [];
  if (!Array.isArray(rules)) throw new TieredCacheOptionsError(option, rules, 'expected an array of rules');
  return rules.map((r, i) => compileRule(`${option}[${i}]`, r));
}

/** Resolves a rule for a payload: all of it, or nothing (a missing field skips the whole rule). */
export function resolveRule(rule: CompiledRule, payload: unknown): RuleTargets | RuleSkip {
  const out: RuleTargets = { keys: [], patterns: [], tags: [] };
  const groups: Array<[readonly Template[], string[], boolean]> = [
    [rule.keys, out.keys, false],
    [rule.patterns, out.patterns, true],
    [rule.tags, out.tags, false],
  ];
  for (const [templates, into, glob] of groups) {
    for (const t of templates) {
      const r = fillTemplate(t, payload, glob);
      if ('missing' in r) return { missing: r.missing, template: t.source };
      into.push(r.value);
    }
  }
  return out;
}
