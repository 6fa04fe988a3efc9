import { coarseNow } from '../coarse-clock';

/**
 * An L1 entry written with a logical expiry (grace or eager refresh): the stored value and the times a reader
 * needs. L1 keeps it until the end of its grace; readers unwrap it (tiered-cache.ts) and decide from these times
 * whether it is fresh, due for an early refresh, or a stale copy only getOrSet may serve. Entries without a
 * logical expiry stay bare values: the plain L1 hit does not pay for this.
 */
export class GracedEntry {
  constructor(
    /** The value as L1 stores it (ValueProtection.toStored). */
    readonly stored: unknown,
    /** When the value was encoded (epoch ms), as the entry envelope says. */
    readonly createdAt: number,
    /** Until when this copy is fresh here (epoch ms): the earlier of the entry's logical expiry and L1's own TTL. */
    readonly freshUntil: number,
    /** The entry's logical expiry (epoch ms); past it, it is a stale copy within grace. */
    readonly staleAt: number,
  ) {}

  /** The background refresh this copy started, while it runs: later hits need not look the key's flight up. */
  refresh: { readonly done: boolean } | undefined = undefined;

  /** Whether a hit at `now` is past `ratio` (0..1) of its lifetime: time to refresh it early. */
  refreshDue(now: number, ratio: number): boolean {
    return ratio > 0 && now >= this.createdAt + ratio * (this.staleAt - this.createdAt);
  }
}

/**
 * What a plain read (get, mget, peekLocal) takes from an L1 hit: the value as stored, or undefined for a graced
 * copy past L1's own TTL (stale copies are getOrSet's alone). Call it only once MemoryTier.graced is set.
 */
export function freshStored(hit: object): object | undefined {
  if (!(hit instanceof GracedEntry)) return hit;
  return coarseNow() < hit.freshUntil ? (hit.stored as object) : undefined;
}
