import type { TieredCache } from '../../core/tiered-cache';
import { resolveRule, type CompiledRule, type RuleTargets } from './invalidation-rule';
import { engineInternals } from '../../core/tiered-cache';

/**
 * Applies every rule matching `event`: rules whose payload lacks a field are skipped (logged, counted) and
 * never widened; what the others resolve to is applied together (one delete, one tag invalidation).
 * Resolves to the number of entries removed; never rejects.
 */
export async function applyRules(engine: TieredCache, rules: readonly CompiledRule[], event: string, payload: unknown): Promise<number> {
  const all: RuleTargets = { keys: [], patterns: [], tags: [] };
  const counters = engine.invalidationCounters;
  for (const rule of rules) {
    if (!rule.matches(event)) continue;
    const r = resolveRule(rule, payload);
    if ('missing' in r) {
      counters.rulesSkipped++;
      engineInternals(engine).log(
        'error',
        `rule-skipped:${rule.name}`,
        `invalidation rule ${rule.name} skipped for event "${event}": the payload has no value for ${r.missing} (in "${r.template}"); nothing was invalidated by this rule`,
      );
      continue;
    }
    counters.rulesApplied++;
    all.keys.push(...r.keys);
    all.patterns.push(...r.patterns);
    all.tags.push(...r.tags);
  }
  let removed = 0;
  try {
    const jobs: Array<Promise<number>> = [];
    if (all.keys.length > 0) jobs.push(engine.delete([...new Set(all.keys)]));
    for (const p of new Set(all.patterns)) jobs.push(engine.invalidatePattern(p));
    if (all.tags.length > 0) jobs.push(engine.invalidateTags([...new Set(all.tags)]));
    for (const n of await Promise.all(jobs)) removed += n;
  } catch (err) {
    // Only a programming error gets here (e.g. a reserved key): the engine never throws for Redis trouble.
    engineInternals(engine).log('error', 'rules', `invalidation for event "${event}" failed: ${(err as Error).message}`);
  }
  counters.removed += removed;
  return removed;
}
