import type { TierStats } from './tier-stats';

/** A tier's hit-rate target, resolved: judged on windows of at least `window` lookups. */
export interface ResolvedHitRateTarget {
  ratio: number;
  window: number;
}

interface Judged {
  target: ResolvedHitRateTarget;
  /** Cumulative hits and lookups when the current window began. */
  hits: number;
  lookups: number;
  windowRatio: number | null;
}

/**
 * Per-tier hit-rate targets (the design's 85 / 80 / 70 %). A tier's ratio since boot would hide a drop for hours
 * behind the good ones before it, so each judgement covers the lookups since the previous one, once there are at
 * least `window` of them: the first `window` lookups are the warm-up (not judged), and after that the verdict
 * moves with the traffic. Judged when stats are read (stats(), health, a metrics scrape): no timer, no work on
 * the lookup path.
 */
export class HitRateTargets {
  readonly #tiers = new Map<string, Judged>();

  constructor(targets: ReadonlyMap<string, ResolvedHitRateTarget>) {
    for (const [name, target] of targets) this.#tiers.set(name, { target, hits: 0, lookups: 0, windowRatio: null });
  }

  get empty(): boolean {
    return this.#tiers.size === 0;
  }

  /** Adds `target` to each tier that has one. */
  judge(tiers: Record<string, TierStats>): void {
    for (const [name, j] of this.#tiers) {
      const t = tiers[name];
      if (t === undefined) continue;
      const lookups = t.hits + t.misses;
      // Counters only grow; a smaller total means they were reset (a clear of stats): start over.
      if (lookups < j.lookups) {
        j.hits = 0;
        j.lookups = 0;
      }
      if (lookups - j.lookups >= j.target.window) {
        j.windowRatio = (t.hits - j.hits) / (lookups - j.lookups);
        j.hits = t.hits;
        j.lookups = lookups;
      }
      t.target = {
        ratio: j.target.ratio,
        window: j.target.window,
        windowRatio: j.windowRatio,
        met: j.windowRatio === null ? null : j.windowRatio >= j.target.ratio,
      };
    }
  }
}
