/**
 * What changed locally: the invalidation bus (and metrics) listen to this. `replay`: an invalidation that
 * could not reach Redis when it was made and has reached it now; announced again so that every instance drops
 * what it may have re-read meanwhile, and not counted again.
 */
export type CacheChange =
  /** `byTag`: keys removed as part of a tag invalidation (already counted as one; metrics skip them). */
  | { type: 'delete'; keys: string[]; byTag?: true; replay?: true }
  | { type: 'overwrite'; keys: string[] }
  | { type: 'pattern'; pattern: string; replay?: true }
  | { type: 'tags'; tags: string[]; replay?: true }
  | { type: 'clear'; replay?: true };

/** What `invalidatePattern(glob, { detailed: true })` resolves to. */
export interface PatternInvalidationReport {
  /** Entries removed: the larger of the L1 and the Redis count. */
  removed: number;
  /** Every tier was walked to the end (on a Cluster: every master). */
  complete: boolean;
  /**
   * Redis nodes (`host:port`) whose walk failed; `['all']` when Redis was not reachable at all; `['generation']`
   * when every node was walked but the namespace generation that fences running fills could not be moved.
   */
  failedNodes: string[];
  /** The pattern was kept and is replayed on Redis until it lands (see stats().l2.pendingInvalidations). */
  deferred: boolean;
}
