import type { InvalidationTarget } from './deferred-invalidations';
import { escapeGlob } from './glob';
import { fenceKeyOf, RESERVED } from './keys/cache-key';
import { replayWindow, type RecoveryTarget } from './recovery-queue';
import { L2_FAILED, type L2Write, type RedisTier } from './tiers/redis.tier';

export { fenceKeyOf };

/**
 * Fences that keep a getOrSet fill from storing a value an invalidation has overtaken, on any instance.
 *
 * A fill reads, in the round trip that finds the key missing, the key's fence and the namespace generation.
 * A delete of the key (on any instance) writes a new token into the key's fence, kept for `l2.fillWindow`;
 * a pattern or tag invalidation and a clear increment the namespace generation. The fill then stores with one
 * transaction that writes only when both still read as they did and the key is still absent (the redis tier's
 * FILL_STAGE): otherwise its value is returned to its caller and stored in no tier. Redis runs the transaction
 * atomically, so the check and the write cannot be split by an invalidation, however soon after it the factory
 * returns.
 *
 * Limits, by construction: a factory that runs longer than `l2.fillWindow` is not stored (its fence may have
 * expired); on a Cluster the namespace generation lives in another slot than the key, so it is read just before
 * the store and again after it, and a store that finds it moved deletes its value again: a pattern, tag or clear
 * invalidation that slips in between leaves the value readable for that one round trip, never for its TTL.
 */

/** What a fill saw in Redis when it found its key missing: the store compares these again. */
export interface FillSeen {
  fence: string;
  generation: string;
  /** performance.now() when the fill began; past fillWindow it does not store. */
  startedAt: number;
}

/**
 * Redis as invalidations see it: a delete also writes a new token into each key's fence, and a pattern or tag
 * walk moves the namespace generation before it starts (a fill that stores while the walk runs must already
 * see it). When the generation cannot move, the walk still cleans what it reaches and counts as incomplete.
 * A walk never deletes the generation or a fence (a fill that saw the generation absent would find it absent
 * again and store), nor, unless it clears the whole namespace, a tag index (its keys would never be found).
 */
export function fencedTarget(l2: RedisTier, names: { prefix: string; tagPrefix: string; legacyTagPrefix: string; fencePrefix: string; genKey: string }, fillWindow: number): InvalidationTarget {
  const reserved = names.prefix + RESERVED;
  const everything = escapeGlob(names.prefix) + '*';
  const isTagIndex = (k: string): boolean => k.startsWith(names.tagPrefix) || k.startsWith(names.legacyTagPrefix);
  const keepOnClear = (k: string): boolean => k.startsWith(reserved) && !isTagIndex(k);
  const keepOnPattern = (k: string): boolean => k.startsWith(reserved);
  return {
    get ready() {
      return l2.ready;
    },
    onReady: (listener) => l2.onReady(listener),
    del: (pkeys) => l2.del(pkeys, { keys: pkeys.map((p) => fenceKeyOf(names.fencePrefix, p)), ttl: fillWindow }),
    scanDelete: async (match, onKeys) => {
      const bumped = await l2.bump(names.genKey);
      const r = await l2.scanDelete(match, onKeys, match === everything ? keepOnClear : keepOnPattern);
      return bumped || r.failedNodes.length > 0 ? r : { removed: r.removed, failedNodes: ['generation'] };
    },
    popTag: async (tagKey, legacyKey, onKeys) => {
      const bumped = await l2.bump(names.genKey);
      const r = await l2.popTag(tagKey, legacyKey, onKeys);
      return bumped ? r : { removed: r.removed, complete: false };
    },
  };
}

/**
 * Redis as the replay of queued writes sees it (recovery-queue.ts): the fill read and a store over what it read,
 * both against the key's fence and the namespace generation.
 */
export function replayTarget(l2: RedisTier, names: { fencePrefix: string; genKey: string }, fillWindow: number, commandTimeout: number): RecoveryTarget<L2Write> {
  const fenceOf = (w: L2Write): string | undefined => fenceKeyOf(names.fencePrefix, w.pkey);
  return {
    get ready() {
      return l2.ready;
    },
    onReady: (listener) => l2.onReady(listener),
    window: replayWindow(fillWindow, commandTimeout),
    ttl: (w) => w.ttl,
    generation: () => l2.generation(names.genKey),
    read: (w) => {
      const fenceKey = fenceOf(w);
      // No fence key (braces that defeat the slot rule): nothing can be proven, as if fenced.
      if (fenceKey === undefined) return Promise.resolve({ value: undefined, fence: 'unfenced', generation: '' });
      return l2.readForFill(w.pkey, fenceKey, names.genKey, false).then((r) => (r === L2_FAILED ? r : { value: r[0] ?? undefined, fence: r[2], generation: r[3] }));
    },
    replace: (w, ttl, mark, expected) => l2.replaceFill({ ...w, ttl }, fenceOf(w), names.genKey, mark, expected),
    drop: (ws) => l2.del(ws.map((w) => w.pkey), { keys: ws.map(fenceOf), ttl: fillWindow }).then((r) => r !== L2_FAILED),
  };
}
