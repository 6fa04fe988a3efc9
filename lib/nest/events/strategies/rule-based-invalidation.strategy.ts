import type { CacheManagerService } from '../../cache-manager.service';
import type { InvalidationRule } from '../../../core/tiered-cache-options.interface';
import { compileRules, type CompiledRule } from '../invalidation-rule';
import type { InvalidationStrategy } from '../invalidation-strategy.interface';
import { applyRules } from '../rule-runner';

/**
 * A strategy made of declarative rules: the base of the ready-made Property/Score/Timeline strategies, and a
 * way to package rules as a provider. Rules are validated when the strategy is constructed (at boot).
 */
export class RuleBasedInvalidationStrategy implements InvalidationStrategy {
  protected readonly rules: CompiledRule[];

  constructor(name: string, rules: InvalidationRule[]) {
    this.rules = compileRules(name, rules);
  }

  supports(event: string): boolean {
    return this.rules.some((r) => r.matches(event));
  }

  invalidate(event: string, payload: unknown, cache: CacheManagerService): Promise<number> {
    return applyRules(cache.engine, this.rules, event, payload);
  }
}

/** A template, or `false` to leave that cache out. */
export type LayoutEntry = string | false;

/** Builds the rule for `events` from the layout entries that are not turned off. */
export function layoutRule(event: string[], parts: { keys?: LayoutEntry[]; patterns?: LayoutEntry[]; tags?: LayoutEntry[] }): InvalidationRule[] {
  const on = (l: LayoutEntry[] | undefined) => (l ?? []).filter((x): x is string => typeof x === 'string');
  const rule: InvalidationRule = { event, keys: on(parts.keys), patterns: on(parts.patterns), tags: on(parts.tags) };
  return rule.keys!.length + rule.patterns!.length + rule.tags!.length > 0 ? [rule] : [];
}
