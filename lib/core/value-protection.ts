import type { L1Protection } from './tiered-cache-options.interface';

// lru-cache cannot hold null/undefined; null results (when cached) are stored as this marker.
export const NULL_MARKER = Object.freeze({ __tieredCacheNull: true });

/**
 * L1 holds live objects, shared by every caller that reads them. `l1.protection` decides what guards them
 * from a caller that mutates its result: nothing, a deep freeze when stored, or a structured clone per read.
 */
export class ValueProtection {
  readonly #freeze: boolean;
  readonly #clone: boolean;
  /** No clone on read: an L1 hit is the stored object itself (or null), which the facade's hot path inlines. */
  readonly plain: boolean;

  constructor(mode: L1Protection) {
    this.#freeze = mode === 'freeze';
    this.#clone = mode === 'clone';
    this.plain = !this.#clone;
  }

  /** What L1 stores for `value` (never null: lru-cache cannot hold it). */
  toStored(value: unknown): object {
    if (value === null) return NULL_MARKER;
    if (this.#freeze) deepFreeze(value);
    return value as object;
  }

  /** What a caller gets for an L1 hit. */
  fromStored(hit: object): unknown {
    if (hit === NULL_MARKER) return null;
    return this.#clone ? structuredClone(hit) : hit;
  }
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k);
      deepFreeze(v);
    }
  } else if (value instanceof Set) {
    for (const v of value) deepFreeze(v);
  } else {
    for (const v of Object.values(value)) deepFreeze(v);
  }
}
