/** Counters of event-driven invalidation; they appear under `stats().invalidation` (and so in metrics). */
export class InvalidationCounters {
  /** Events that matched at least one rule or strategy. */
  events = 0;
  rulesApplied = 0;
  /** Rules skipped because the payload lacked a placeholder's field. */
  rulesSkipped = 0;
  strategyRuns = 0;
  strategyFailures = 0;
  /** Entries removed by rules and strategies (as reported by delete/invalidatePattern/invalidateTags). */
  removed = 0;
}

export interface InvalidationStats {
  events: number;
  rulesApplied: number;
  rulesSkipped: number;
  strategyRuns: number;
  strategyFailures: number;
  removed: number;
  /** `invalidate(key)` batching. */
  queued: number;
  applied: number;
  batches: number;
  queueLength: number;
}
